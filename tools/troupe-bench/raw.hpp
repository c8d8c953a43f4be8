// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "bench_util.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>

namespace troupe::bench {

/// What `troupe-bench raw` measures: the physical limit of loopback TCP on this
/// machine, to put next to every troupe number.
struct raw_options {
    std::size_t size = 1024;   ///< request and reply bytes of one round trip
    std::size_t count = 20000; ///< measured round trips (per phase)
    std::size_t warmup = 2000; ///< round trips before measuring (per phase)
    double stream_seconds = 2; ///< how long the one-stream phase writes
};

/// Measures plain TCP (TCP_NODELAY) on 127.0.0.1 with servers in their own processes:
/// round trip to one echo server (rtt1), to two (write both, then read both:
/// rtt2), and one connection streamed with 256 KiB writes (stream_mb_per_sec,
/// MB = 10^6 B). Returns the `raw` scenario's JSON object.
/// @throws std::runtime_error / std::system_error when a server or socket fails.
nlohmann::json measure_raw(const raw_options& options);

/// The subset the channel scenarios embed as "raw".
nlohmann::json raw_summary(const nlohmann::json& full);

/// Options for the measurement embedded in a channel scenario: smaller than the
/// stand-alone run, and capped in bytes so that large payloads stay quick.
raw_options embedded_raw_options(std::size_t size);

/// Hidden role `_raw-server`: one echo or sink server process.
int raw_server_main(flag_parser& flags);

} // namespace troupe::bench
