// SPDX-License-Identifier: Apache-2.0
// troupe-httpd: a Boost.Beast HTTP/1.1 server whose sessions are replicated by a
// troupe session manager, plus the admin endpoint troupe-node has.
//
//   troupe-httpd --config FILE [--set key=value]... [--events] [--static DIR]
//   troupe-httpd --check-config FILE [--set key=value]...
//
// Prints one JSON "ready" line on stdout once it serves (troupe-node's, with
// "http_port"), then logs to stderr (or logging.file). SIGTERM/SIGINT stop it
// gracefully: no new connections, requests in progress answered, then the
// manager and the channel stop (BYE to peers, queues flushed).
#include <troupe/engine/admin_server.hpp>
#include <troupe/managers/manager.hpp>
#include <troupe/troupe.hpp>

#include "http_server.hpp"
#include "session_app.hpp"
#include "troupe-node/node_setup.hpp"
#include "troupe-node/statsd_reporter.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>

namespace {

using namespace troupe;

/// Entries admin /copies lists at most (a store of a million sessions would
/// make a 60 MB answer).
constexpr std::size_t max_listed_copies = 100'000;

void usage(std::FILE* to) {
    std::fprintf(
        to, "usage: troupe-httpd --config FILE [--set key=value]... [--events] [--static DIR]\n"
            "                    [--read-timeout DURATION]\n"
            "       troupe-httpd --check-config FILE [--set key=value]...\n"
            "  --events        print one JSON line per member event on stdout\n"
            "  --static DIR    serve DIR under /static/ (default: a built-in page)\n"
            "  --read-timeout  a request must arrive whole within this (default 10s)\n");
}

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check_only = false;
    bool events = false;
    std::optional<std::filesystem::path> static_dir;
    conf::duration read_timeout{10000};
    std::vector<std::string> overrides;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "troupe-httpd: %s needs a value\n", arg.c_str());
                usage(stderr);
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--config") {
            config_path = value();
        } else if (arg == "--check-config") {
            config_path = value();
            check_only = true;
        } else if (arg == "--set") {
            overrides.push_back(value());
        } else if (arg == "--events") {
            events = true;
        } else if (arg == "--static") {
            static_dir = value();
        } else if (arg == "--read-timeout") {
            const auto text = value();
            if (!conf::parse_duration(text, read_timeout) || read_timeout.count() <= 0) {
                std::fprintf(
                    stderr,
                    "troupe-httpd: --read-timeout: expected a duration like 10s (got '%s')\n",
                    text.c_str());
                return 2;
            }
        } else if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "troupe-httpd: unknown argument '%s'\n", arg.c_str());
            usage(stderr);
            return 2;
        }
    }
    if (config_path.empty()) {
        usage(stderr);
        return 2;
    }

    const auto loaded = tools::load_config(config_path, overrides);
    if (!loaded) {
        return 2;
    }
    const auto& config = *loaded;
    if (check_only) {
        tools::print_effective_config(config);
        return 0;
    }

    // Before any thread starts, so all inherit the mask; main sigwaits.
    const sigset_t signals = tools::block_stop_signals();

    tools::setup_logging(config);
    try {
        engine::channel channel(config);
        if (events) {
            tools::print_member_events(channel);
        }
        channel.start();

        // The front listens before the manager exists: until the cluster's
        // sessions are here (state transfer), every request, /healthz too,
        // gets 503, so a balancer's health check keeps this node out of
        // rotation instead of failing to connect or sending users to it.
        std::atomic<httpd::session_app*> ready_app{nullptr};
        httpd::server_options server_options;
        server_options.address = config.http.address;
        server_options.port = config.http.port;
        server_options.threads = config.http.threads;
        server_options.read_timeout = read_timeout;
        const std::string node_name = channel.self().name;
        httpd::http_server server(
            server_options,
            [&ready_app, &node_name](const httpd::request& req, httpd::responder respond) {
                if (auto* app = ready_app.load(std::memory_order_acquire)) {
                    app->handle(req, std::move(respond));
                    return;
                }
                respond(httpd::starting_response(node_name));
            },
            [&ready_app](unsigned status) {
                if (auto* app = ready_app.load(std::memory_order_acquire)) {
                    app->count_rejected(status);
                }
            });
        server.start();
        spdlog::info("http: listening on {}:{} (503 until the state transfer is over)", config.http.address,
                     server.port());

        // Returns once the sessions of the running members are here (or
        // manager.state_transfer_timeout passed): no request is served without them.
        const auto manager = managers::make_manager(channel, managers::manager_config_from(config.manager));

        httpd::app_options app_options;
        app_options.node = node_name;
        app_options.cookie = manager->config().cookie;
        app_options.static_dir = static_dir;
        httpd::session_app app(*manager, channel, app_options);
        app.set_server(&server);
        ready_app.store(&app, std::memory_order_release);
        // Whatever way this scope is left (a throw below included), the front
        // stops before the app and the manager it calls go.
        struct front_guard {
            httpd::http_server& server;
            std::atomic<httpd::session_app*>& app;
            ~front_guard() {
                server.stop();
                app.store(nullptr, std::memory_order_release);
            }
        } guard{server, ready_app};

        std::unique_ptr<engine::admin_server> admin;
        if (config.admin.enabled) {
            admin = std::make_unique<engine::admin_server>(channel.io_context(),
                                                           config.admin.address, config.admin.port);
            tools::add_channel_routes(*admin, channel);
            // The admin /metrics shows what the HTTP front's does.
            admin->add_route("/metrics", [&app] {
                return engine::http_reply{200, "text/plain; version=0.0.4", app.metrics_text()};
            });
            admin->add_route("/manager", [&manager] {
                return engine::http_reply{200, "application/json", manager->stats_json()};
            });
            // Every copy held here and its role (checks, troubleshooting):
            // bounded, so that a large store cannot make an unbounded answer.
            admin->add_route("/copies", [&manager] {
                return engine::http_reply{200, "application/json", manager->copies_json(max_listed_copies)};
            });
        }
        std::unique_ptr<tools::statsd_reporter> statsd;
        if (!config.metrics.statsd.address.empty()) {
            statsd = std::make_unique<tools::statsd_reporter>(config.metrics.statsd, [&channel, &manager] {
                auto readings = tools::channel_readings(channel.stats_json());
                for (auto& r : tools::manager_readings(manager->stats_json())) {
                    readings.push_back(std::move(r));
                }
                return readings;
            });
        }
        if (admin) {
            admin->start();
        }
        tools::print_ready(channel, admin ? admin->port() : 0, server.port());

        int sig = 0;
        sigwait(&signals, &sig);
        spdlog::info("signal {}: stopping", sig);
        // Front first: no request may start once the manager stops (the
        // guard does it again on the way out, idempotently).
        server.stop();
        ready_app.store(nullptr, std::memory_order_release);
        if (statsd) {
            statsd->stop(); // the last lines, with every request counted
        }
        if (admin) {
            admin->stop();
        }
        manager->stop();
        channel.stop();
    } catch (const std::exception& e) {
        spdlog::critical("troupe-httpd: {}", e.what());
        if (!config.logging.file.empty()) {
            std::fprintf(stderr, "troupe-httpd: %s\n", e.what());
        }
        return 1;
    }
    return 0;
}
