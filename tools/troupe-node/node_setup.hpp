// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/engine/admin_server.hpp>
#include <troupe/engine/channel.hpp>

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace troupe::tools {

/// Loads the cluster file with its `--set` overrides. On a mistake prints every
/// diagnostic (file:line:column: ...) to stderr and returns nothing: exit 2.
std::optional<conf::cluster_config> load_config(const std::string& path,
                                                const std::vector<std::string>& overrides);

/// `--check-config`: the effective config on stdout, the secret hidden (printed
/// configs end up in tickets and chat).
void print_effective_config(const conf::cluster_config& config);

/// Blocks SIGTERM and SIGINT in this thread and every thread it starts later;
/// returns the set for main to sigwait() on (graceful stop).
sigset_t block_stop_signals();

/// Default logger to stderr (or logging.file) at logging.level; SPDLOG_LEVEL
/// (e.g. `troupe.transport=debug`) overrides per logger.
void setup_logging(const conf::cluster_config& config);

/// GET /members, /stats, /metrics and /healthz from the channel.
void add_channel_routes(engine::admin_server& admin, engine::channel& channel);

/// The one JSON line tests and scripts wait for, instead of sleeping:
/// {"ready":true,"node":...,"id":...,"port":P,"admin_port":A,"pid":N}
/// troupe-httpd passes its HTTP port, which adds "http_port":H before "pid".
void print_ready(const engine::channel& channel, std::uint16_t admin_port,
                 std::optional<std::uint16_t> http_port = std::nullopt);

/// With --events: one JSON line per member event on stdout,
/// {"event":"member","node":..,"member":..,"id":..,"state":..,"reason":..,"mono_ns":..};
/// mono_ns is CLOCK_MONOTONIC, comparable across processes (and namespaces).
void print_member_events(engine::channel& channel);

} // namespace troupe::tools
