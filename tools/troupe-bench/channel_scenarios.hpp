// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "bench_util.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace troupe::bench {

enum class channel_scenario { throughput, latency };

/// One run of `troupe-bench throughput` or `troupe-bench latency`.
struct channel_options {
    channel_scenario scenario = channel_scenario::throughput;
    std::size_t receivers = 2;
    std::size_t size = 1024;
    std::uint64_t count = 0;       ///< measured sends; 0 = run for `seconds` (throughput only)
    double seconds = 0;            ///< measured time, when count is 0
    double warmup_fraction = 0.25; ///< throughput: warm-up sends (or time) as a fraction
    std::uint64_t warmup = 0;      ///< latency: warm-up sends in total
    std::uint32_t options = 8;     ///< troupe send options (async 8, ack 2, sync 6)
    std::string options_name = "async";
    std::size_t callers = 1;      ///< latency: caller threads in the sender
    std::uint32_t io_threads = 1; ///< receiver.threads of every member
    bool with_raw = true;         ///< embed the loopback limit measured in the same run
    double time_limit = 300;      ///< a --count run stops sending after this many seconds
    std::string cpus;             ///< as given to --cpus (already applied), for the report
};

/// Runs the scenario: N receiver processes, this process as the sender. Returns
/// the JSON line to print.
/// @throws std::runtime_error when a member fails to start or join.
nlohmann::json run_channel_scenario(const channel_options& options);

/// Hidden role `_receiver`: one receiving member.
int receiver_main(flag_parser& flags);

} // namespace troupe::bench
