// SPDX-License-Identifier: Apache-2.0
// troupe-node: a member with no HTTP front (replica holder, admin endpoint).
//
//   troupe-node --config FILE [--set key=value]...
//   troupe-node --check-config FILE [--set key=value]...
//
// Prints one JSON "ready" line on stdout once it serves, then logs to stderr (or
// logging.file). SIGTERM/SIGINT stop it gracefully: BYE to peers, queues flushed.
#include <troupe/engine/admin_server.hpp>
#include <troupe/troupe.hpp>

#include "node_setup.hpp"
#include "statsd_reporter.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>

namespace {

void usage(std::FILE* to) {
    std::fprintf(to, "usage: troupe-node --config FILE [--set key=value]... [--events]\n"
                     "       troupe-node --check-config FILE [--set key=value]...\n"
                     "  --events  print one JSON line per member event on stdout\n");
}

} // namespace

int main(int argc, char** argv) {
    using namespace troupe;
    std::string config_path;
    bool check_only = false;
    bool events = false;
    std::vector<std::string> overrides;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "troupe-node: %s needs a value\n", arg.c_str());
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
        } else if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "troupe-node: unknown argument '%s'\n", arg.c_str());
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
        std::unique_ptr<engine::admin_server> admin;
        if (config.admin.enabled) {
            admin = std::make_unique<engine::admin_server>(channel.io_context(), config.admin.address,
                                                           config.admin.port);
            tools::add_channel_routes(*admin, channel);
            admin->start();
        }
        std::unique_ptr<tools::statsd_reporter> statsd;
        if (!config.metrics.statsd.address.empty()) {
            statsd = std::make_unique<tools::statsd_reporter>(
                config.metrics.statsd, [&channel] { return tools::channel_readings(channel.stats_json()); });
        }
        tools::print_ready(channel, admin ? admin->port() : 0);

        int sig = 0;
        sigwait(&signals, &sig);
        spdlog::info("signal {}: stopping", sig);
        if (statsd) {
            statsd->stop(); // the last lines, before the channel goes
        }
        if (admin) {
            admin->stop();
        }
        channel.stop();
    } catch (const std::exception& e) {
        // The logger may write to a file: say it on stderr too, unless that is where it writes.
        spdlog::critical("troupe-node: {}", e.what());
        if (!config.logging.file.empty()) {
            std::fprintf(stderr, "troupe-node: %s\n", e.what());
        }
        return 1;
    }
    return 0;
}
