// SPDX-License-Identifier: Apache-2.0
#include "node_setup.hpp"

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <troupe/conf/load.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <pthread.h>
#include <mutex>
#include <unistd.h>

namespace troupe::tools {

std::optional<conf::cluster_config> load_config(const std::string& path,
                                                const std::vector<std::string>& overrides) {
    try {
        return conf::load_file(path, overrides);
    } catch (const conf::config_error& e) {
        for (const auto& d : e.diagnostics()) {
            std::fprintf(stderr, "%s\n", d.str().c_str());
        }
        return std::nullopt;
    }
}

void print_effective_config(const conf::cluster_config& config) {
    auto shown = config;
    if (!shown.cluster.secret.empty()) {
        shown.cluster.secret = "<hidden: " + std::to_string(config.cluster.secret.size()) + " bytes>";
    }
    std::cout << conf::to_yaml(shown);
}

sigset_t block_stop_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return signals;
}

void setup_logging(const conf::cluster_config& config) {
    std::shared_ptr<spdlog::logger> logger;
    if (config.logging.file.empty()) {
        logger = spdlog::stderr_color_mt("troupe");
    } else {
        logger = spdlog::basic_logger_mt("troupe", config.logging.file);
    }
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(config.logging.level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
    spdlog::flush_on(spdlog::level::warn);
    spdlog::cfg::load_env_levels();
}

void add_channel_routes(engine::admin_server& admin, engine::channel& channel) {
    admin.add_route("/members", [&channel] { return engine::http_reply{200, "application/json", channel.members_json()}; });
    admin.add_route("/stats", [&channel] { return engine::http_reply{200, "application/json", channel.stats_json()}; });
    admin.add_route("/metrics", [&channel] {
        return engine::http_reply{200, "text/plain; version=0.0.4", channel.metrics_text()};
    });
    admin.add_route("/healthz", [] { return engine::http_reply{200, "application/json", "{\"ok\":true}"}; });
}

void print_member_events(engine::channel& channel) {
    const std::string self = channel.self().name;
    channel.add_member_listener([self](const membership::member& m) {
        const auto mono = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
        const nlohmann::json line{{"event", "member"}, {"node", self},          {"member", m.name},
                                  {"id", m.id.str()},  {"endpoint", m.endpoint()},
                                  {"state", std::string(membership::to_string(m.state))},
                                  {"reason", m.reason}, {"mono_ns", mono}};
        static std::mutex out;
        std::lock_guard lock(out);
        std::printf("%s\n", line.dump().c_str());
        std::fflush(stdout);
    });
}

void print_ready(const engine::channel& channel, std::uint16_t admin_port,
                 std::optional<std::uint16_t> http_port) {
    const std::string http =
        http_port ? ",\"http_port\":" + std::to_string(static_cast<unsigned>(*http_port)) : "";
    // mono_ns (CLOCK_MONOTONIC, as the member events'): when the node was ready,
    // whatever the line's way out (a container runtime relays it later).
    const auto mono = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
    std::printf("{\"ready\":true,\"node\":\"%s\",\"id\":\"%s\",\"port\":%u,\"admin_port\":%u%s,\"pid\":%d,"
                "\"mono_ns\":%lld}\n",
                channel.self().name.c_str(), channel.self().id.str().c_str(),
                static_cast<unsigned>(channel.port()), static_cast<unsigned>(admin_port),
                http.c_str(), static_cast<int>(::getpid()), static_cast<long long>(mono));
    std::fflush(stdout);
}

} // namespace troupe::tools
