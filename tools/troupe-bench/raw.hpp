// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "bench_util.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

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

/// Two raw echo servers kept for a whole latency run, so that the round trip to
/// two servers (rtt2) can be measured in slices between the channel's own sends:
/// both then see the same moment of a noisy host, on the same CPUs. Measured
/// before or after the run instead, host noise moves the ratio more than the
/// code does.
class raw_rtt2_slices {
public:
    /// Starts both servers; each serves at most `max_round_trips`.
    raw_rtt2_slices(std::size_t size, std::uint64_t max_round_trips);
    ~raw_rtt2_slices();
    raw_rtt2_slices(const raw_rtt2_slices&) = delete;
    raw_rtt2_slices& operator=(const raw_rtt2_slices&) = delete;

    /// `n` round trips (write to both, read both), each appended to samples().
    void measure(std::size_t n);
    const std::vector<std::int64_t>& samples() const noexcept { return samples_; }
    /// Closes the connections and collects the servers' reports (once).
    void finish();

private:
    struct state;
    std::unique_ptr<state> state_;
    std::vector<std::int64_t> samples_;
};

/// Hidden role `_raw-server`: one echo or sink server process.
int raw_server_main(flag_parser& flags);

} // namespace troupe::bench
