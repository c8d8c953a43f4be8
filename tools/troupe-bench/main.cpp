// SPDX-License-Identifier: Apache-2.0
// troupe-bench: system numbers for troupe, one process per member (libzmq perf/,
// Aeron Ping/Throughput). One JSON object per line on stdout; logs on stderr.

#include "bench_util.hpp"
#include "channel_scenarios.hpp"
#include "raw.hpp"

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::bench {

// sessions.cpp: 3 members with the delta manager (replication, memory, state transfer).
int sessions_main(flag_parser& flags);
int session_member_main(flag_parser& flags);
// backup.cpp: the backup manager beside delta (cost per request, fetch, restore, memory).
int backup_bench_main(flag_parser& flags);
int backup_member_main(flag_parser& flags);

// reconcile.cpp: a healed partition, 3 members in a tools/netlab lab (root).
int reconcile_main(flag_parser& flags);
int reconcile_member_main(flag_parser& flags);
namespace {

constexpr std::string_view usage_text = R"(usage: troupe-bench <scenario> [options]

Scenarios (each member is its own process, all on 127.0.0.1):
  raw          loopback TCP limit: round trip to 1 and to 2 echo servers, one-stream MB/s
  throughput   1 sender -> N receivers over the troupe Channel: delivered msgs/s per receiver
  latency      C caller threads sending one message at a time: send() percentiles
  sessions     3 members with the delta manager: replicated requests/s and overhead
               (async, sync), memory per session, state transfer of --fill sessions
               (--members N --size BYTES --requests N --sessions N --fill N
                --skip replication|memory|transfer)
  backup       the backup manager beside delta, sync, members on 127.0.0.1: messages,
               bytes and requests/s per request with 2, 4, 8 members; fetch-on-miss
               p50/p99 beside the raw round trip; SIGKILL to two copies again;
               memory per member
               (--cost-members 2,4,8 --members 4 --managers delta,backup --size BYTES
                --requests N --sessions N --fetches N --restore-sessions N --fill N
                --skip cost|fetch|restore|memory --no-raw
                --callers N --pin-primary
                --lab [--netlab PATH]: one member per tools/netlab namespace, root)
  reconcile    a healed partition, 3 members, one per tools/netlab namespace (root;
               exits 77 otherwise): view merge -> every copy identical (target 1 s),
               wire, digest and copy bytes
               (--sessions N --size BYTES --changed F --timeout S --poll-ms MS
                --skip little_changed|all_changed --netlab PATH)

raw options:
  --size BYTES             request and reply size (1024)
  --count N                measured round trips per phase (20000)
  --warmup N               warm-up round trips per phase (2000)
  --stream-seconds S       duration of the one-stream phase (2)

throughput options:
  --receivers N            receiver processes (2)
  --size BYTES             payload size (1024)
  --count N | --seconds S  measured sends, or measured time (default --count 100000)
  --options async|ack|sync (async)
  --warmup-fraction F      warm-up sends (or time) as a fraction of the measured ones (0.25)

latency options:
  --receivers N            receiver processes (2)
  --size BYTES             payload size (1024)
  --count N                measured sends over all callers (20000)
  --options sync|ack       (sync)
  --callers C              caller threads in the sender process (1)
  --warmup W               warm-up sends over all callers (count / 4)

throughput and latency:
  --io-threads N           receiver.threads of every member (1)
  --no-raw                 skip the loopback limit measured in the same run
  --time-limit S           a --count run stops sending after S seconds ("truncated") (300)

all scenarios:
  --cpus LIST              run every process on these CPUs (taskset -c syntax: 0, 0-1, 0,1)
  --help                   this text

Output: one JSON object per line on stdout. Logs go to stderr; SPDLOG_LEVEL=debug
(or troupe.transport=debug,...) sets levels.
)";

void print_usage(std::FILE* to) {
    std::fwrite(usage_text.data(), 1, usage_text.size(), to);
}

// Logs never touch stdout: it carries the JSON lines other processes parse.
// The library's loggers are registered here, on our stderr sink and at warn, as
// its log.hpp files allow: left to themselves they would copy the default
// logger's level, and their per-node lifecycle lines are noise in a benchmark.
// SPDLOG_LEVEL still overrides everything.
void setup_logging(const std::string& role) {
    auto logger = spdlog::stderr_color_mt(role);
    logger->set_pattern("[%H:%M:%S.%e] [%n] [%^%l%$] %v");
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
    for (const char* name : {"troupe.conf", "troupe.membership", "troupe.transport",
                             "troupe.engine", "troupe.managers"}) {
        auto library =
            std::make_shared<spdlog::logger>(name, logger->sinks().begin(), logger->sinks().end());
        library->set_level(spdlog::level::warn);
        spdlog::register_logger(library);
    }
    spdlog::cfg::load_env_levels();
}

struct common_flags {
    std::string cpus;
    bool with_raw = true;
};

/// Flags every scenario takes; false if `flags` holds another one.
bool parse_common(flag_parser& flags, common_flags& common, bool channel) {
    if (flags.is("--cpus")) {
        common.cpus = flags.value();
        parse_cpu_list(common.cpus); // a usage error now, not after the servers started
        return true;
    }
    if (channel && flags.is("--no-raw")) {
        flags.no_value();
        common.with_raw = false;
        return true;
    }
    return false;
}

int run_raw(flag_parser& flags) {
    raw_options o;
    common_flags common;
    while (flags.next()) {
        if (parse_common(flags, common, false)) {
            continue;
        }
        if (flags.is("--size")) {
            o.size = flags.integer<std::size_t>(1, std::size_t{64} << 20);
        } else if (flags.is("--count")) {
            o.count = flags.integer<std::size_t>(1, 100'000'000);
        } else if (flags.is("--warmup")) {
            o.warmup = flags.integer<std::size_t>(0, 100'000'000);
        } else if (flags.is("--stream-seconds")) {
            o.stream_seconds = flags.real(0.1, 600);
        } else {
            flags.unknown();
        }
    }
    if (!common.cpus.empty()) {
        apply_cpus(common.cpus);
    }
    auto out = measure_raw(o);
    if (!common.cpus.empty()) {
        out["cpus"] = common.cpus;
    }
    emit_line(out);
    return 0;
}

std::uint32_t parse_options(flag_parser& flags, bool allow_async, std::string& name) {
    name = flags.value();
    if (name == "async" && allow_async) {
        return 8;
    }
    if (name == "ack") {
        return 2;
    }
    if (name == "sync") {
        return 6;
    }
    const std::string valid = allow_async ? "async|ack|sync" : "sync|ack";
    throw usage_error("--options: expected " + valid + ", got '" + name + "'");
}

int run_channel(flag_parser& flags, channel_scenario scenario) {
    const bool latency = scenario == channel_scenario::latency;
    channel_options o;
    o.scenario = scenario;
    o.options = latency ? 6 : 8;
    o.options_name = latency ? "sync" : "async";
    common_flags common;
    bool warmup_given = false;
    bool seconds_given = false;
    bool count_given = false;
    while (flags.next()) {
        if (parse_common(flags, common, true)) {
            continue;
        }
        if (flags.is("--receivers")) {
            o.receivers = flags.integer<std::size_t>(1, 64);
        } else if (flags.is("--size")) {
            o.size = flags.integer<std::size_t>(1, std::size_t{16} << 20);
        } else if (flags.is("--count")) {
            o.count = flags.integer<std::uint64_t>(1, 100'000'000);
            count_given = true;
        } else if (flags.is("--options")) {
            o.options = parse_options(flags, !latency, o.options_name);
        } else if (flags.is("--io-threads")) {
            o.io_threads = flags.integer<std::uint32_t>(1, 64);
        } else if (flags.is("--time-limit")) {
            o.time_limit = flags.real(1, 86400);
        } else if (!latency && flags.is("--seconds")) {
            o.seconds = flags.real(0.1, 3600);
            seconds_given = true;
        } else if (!latency && flags.is("--warmup-fraction")) {
            o.warmup_fraction = flags.real(0, 10);
        } else if (latency && flags.is("--callers")) {
            o.callers = flags.integer<std::size_t>(1, 256);
        } else if (latency && flags.is("--warmup")) {
            o.warmup = flags.integer<std::uint64_t>(0, 100'000'000);
            warmup_given = true;
        } else {
            flags.unknown();
        }
    }
    if (count_given && seconds_given) {
        throw usage_error("give --count or --seconds, not both");
    }
    if (!count_given && !seconds_given) {
        o.count = latency ? 20000 : 100000;
    }
    if (latency && !warmup_given) {
        o.warmup = o.count / 4;
    }
    o.with_raw = common.with_raw;
    o.cpus = common.cpus;
    if (!o.cpus.empty()) {
        apply_cpus(o.cpus);
    }
    emit_line(run_channel_scenario(o));
    return 0;
}

int run(const std::vector<std::string>& args) {
    if (args.empty()) {
        throw usage_error("no scenario given");
    }
    const std::string& command = args[0];
    if (command == "--help" || command == "-h" || command == "help") {
        print_usage(stdout);
        return 0;
    }
    for (const auto& a : args) {
        if (a == "--help" || a == "-h") {
            print_usage(stdout);
            return 0;
        }
    }
    flag_parser flags({args.begin() + 1, args.end()});
    if (command == "raw") {
        return run_raw(flags);
    }
    if (command == "throughput") {
        return run_channel(flags, channel_scenario::throughput);
    }
    if (command == "latency") {
        return run_channel(flags, channel_scenario::latency);
    }
    if (command == "sessions") {
        return sessions_main(flags);
    }
    if (command == "_session_member") {
        return session_member_main(flags);
    }
    if (command == "backup") {
        return backup_bench_main(flags);
    }
    if (command == "_backup_member") {
        return backup_member_main(flags);
    }
    if (command == "reconcile") {
        return reconcile_main(flags);
    }
    if (command == "_reconcile_member") {
        return reconcile_member_main(flags);
    }
    if (command == "_raw-server") {
        return raw_server_main(flags);
    }
    if (command == "_receiver") {
        return receiver_main(flags);
    }
    throw usage_error("unknown scenario '" + command + "'");
}

std::string role_name(const std::vector<std::string>& args) {
    if (args.empty() || args[0].empty() || args[0][0] != '_') {
        return "troupe-bench";
    }
    // Child roles say who they are in every log line: "bench._receiver.3".
    std::string name = "bench." + args[0];
    for (std::size_t i = 1; i + 1 < args.size(); ++i) {
        if (args[i] == "--index" || args[i] == "--mode") {
            name += "." + args[i + 1];
        }
    }
    return name;
}

} // namespace
} // namespace troupe::bench

int main(int argc, char** argv) {
    using namespace troupe::bench;
    const std::vector<std::string> args(argv + 1, argv + argc);
    // Writes to a closed socket or pipe become errors (EPIPE) we report, not deaths.
    std::signal(SIGPIPE, SIG_IGN);
    setup_logging(role_name(args));
    try {
        return run(args);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "troupe-bench: %s\n\n", e.what());
        print_usage(stderr);
        return 2;
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
}
