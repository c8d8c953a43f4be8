// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/engine/admin_server.hpp>
#include <troupe/engine/channel.hpp>

#include <cstdint>
#include <optional>

namespace troupe::tools {

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
