// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small helpers shared by the troupe-bench scenarios and their child roles:
// command-line flags, JSON lines, clocks, CPU affinity.

#include "common/child_process.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace troupe::bench {

/// A bad command line: main prints the usage on stderr and exits 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The program the roles re-execute: the very binary that is running, even if the
/// file was replaced since (a rebuild during a run).
inline constexpr const char* self_exe = "/proc/self/exe";

/// CLOCK_MONOTONIC in ns. steady_clock is CLOCK_MONOTONIC on Linux, so a time read
/// in one process compares with one read in another (the receivers' last delivery
/// against the sender's first send).
inline std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

inline double round_to(double value, int decimals) {
    const double scale = std::pow(10.0, decimals);
    return std::round(value * scale) / scale;
}

/// One JSON object as one line on stdout, flushed at once: the reader is usually
/// another troupe-bench waiting on a pipe for exactly this line.
inline void emit_line(const nlohmann::json& object) {
    std::string text = object.dump();
    text += '\n';
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

/// Flags written `--name value` or `--name=value`, read in order.
class flag_parser {
public:
    explicit flag_parser(std::vector<std::string> args)
        : args_(std::move(args)) {}

    /// Moves to the next flag; false when none is left.
    bool next() {
        if (pos_ >= args_.size()) {
            return false;
        }
        const std::string& arg = args_[pos_++];
        if (arg.rfind("--", 0) != 0) {
            throw usage_error("unexpected argument '" + arg + "'");
        }
        if (const auto eq = arg.find('='); eq != std::string::npos) {
            name_ = arg.substr(0, eq);
            inline_value_ = arg.substr(eq + 1);
        } else {
            name_ = arg;
            inline_value_.reset();
        }
        return true;
    }

    const std::string& name() const noexcept { return name_; }

    bool is(std::string_view flag) const noexcept { return name_ == flag; }

    /// For a switch such as --no-raw.
    void no_value() const {
        if (inline_value_) {
            throw usage_error(name_ + " takes no value");
        }
    }

    std::string value() {
        if (inline_value_) {
            return *std::exchange(inline_value_, std::nullopt);
        }
        if (pos_ >= args_.size()) {
            throw usage_error(name_ + " needs a value");
        }
        return args_[pos_++];
    }

    template <class Integer> Integer integer(Integer min, Integer max) {
        const std::string text = value();
        Integer v{};
        const auto* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (ec != std::errc{} || ptr != end || v < min || v > max) {
            throw usage_error(name_ + ": expected an integer in [" + std::to_string(min) + ", " +
                              std::to_string(max) + "], got '" + text + "'");
        }
        return v;
    }

    double real(double min, double max) {
        const std::string text = value();
        double v = 0;
        const auto* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (ec != std::errc{} || ptr != end || !(v >= min && v <= max)) {
            throw usage_error(name_ + ": expected a number in [" + std::to_string(min) + ", " +
                              std::to_string(max) + "], got '" + text + "'");
        }
        return v;
    }

    [[noreturn]] void unknown() const { throw usage_error("unknown flag " + name_); }

private:
    std::vector<std::string> args_;
    std::size_t pos_ = 0;
    std::string name_;
    std::optional<std::string> inline_value_;
};

/// Parses a `taskset -c` list ("0", "0,1", "0-1,3").
/// @throws usage_error when it is not one.
inline cpu_set_t parse_cpu_list(const std::string& list) {
    cpu_set_t set;
    CPU_ZERO(&set);
    auto number = [&list](std::string_view text) {
        int v = -1;
        const auto* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);
        if (ec != std::errc{} || ptr != end || v < 0 || v >= CPU_SETSIZE) {
            throw usage_error("--cpus: bad CPU list '" + list + "'");
        }
        return v;
    };
    std::string_view rest = list;
    bool any = false;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        const auto dash = item.find('-');
        const int first = number(item.substr(0, dash));
        const int last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
        if (last < first) {
            throw usage_error("--cpus: bad CPU list '" + list + "'");
        }
        for (int cpu = first; cpu <= last; ++cpu) {
            CPU_SET(cpu, &set);
            any = true;
        }
    }
    if (!any) {
        throw usage_error("--cpus: empty CPU list");
    }
    return set;
}

/// Restricts this process to `list` (taskset -c semantics). Called on the main
/// thread before any other thread or child exists: threads and children (fork
/// and exec keep the mask) then run on these CPUs too, so every member does.
/// @throws std::system_error if the kernel refuses (say, no such CPU online).
inline void apply_cpus(const std::string& list) {
    const cpu_set_t set = parse_cpu_list(list);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
        throw std::system_error(errno, std::generic_category(), "sched_setaffinity(" + list + ")");
    }
}

/// In a role process: die with the troupe-bench that started it, so a killed run
/// leaves no member behind holding ports and CPU. The death signal follows the
/// thread that forked us, which is the parent's main thread in troupe-bench.
inline void die_with_parent(pid_t parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
        std::_Exit(1); // the parent died before prctl took effect
    }
}

/// Reads the child's stdout until a line is a JSON object with `key` true (the
/// "ready" and "done" lines). Other lines are logged and skipped.
/// @return nullopt on timeout or EOF.
inline std::optional<nlohmann::json>
await_json(tools::child_process& child, const std::string& key, std::chrono::milliseconds timeout) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    // Bounded in lines too, so a child flooding stdout cannot keep us here.
    for (int lines = 0; lines < 10000; ++lines) {
        const auto left = std::max(
            std::chrono::milliseconds(0),
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
        auto line = child.read_line(left);
        if (!line) {
            return std::nullopt;
        }
        auto object = nlohmann::json::parse(*line, nullptr, false);
        if (object.is_object()) {
            const auto it = object.find(key);
            if (it != object.end() && it->is_boolean() && it->get<bool>()) {
                return object;
            }
        }
        spdlog::warn("pid {}: unexpected line on stdout: {}", child.pid(), *line);
    }
    return std::nullopt;
}

} // namespace troupe::bench
