// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace troupe::transport {

/// Ack latency histogram: bucket i counts acks that took < bounds[i] µs; the last
/// bucket is +Inf.
inline constexpr std::array<std::uint64_t, 12> ack_latency_bounds_us = {
    50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, 100000, 1000000, UINT64_MAX};

/// Counters of one outbound stream. Relaxed atomics: read for reporting only.
struct peer_stats {
    std::atomic<std::uint64_t> frames_out{0};
    std::atomic<std::uint64_t> bytes_out{0};
    std::atomic<std::uint64_t> writes{0}; ///< gathered writes: frames_out / writes = coalescing
    std::atomic<std::uint64_t> acks{0};
    std::atomic<std::uint64_t> nacks{0};
    std::atomic<std::uint64_t> ack_timeouts{0};
    std::atomic<std::uint64_t> connection_losses{0}; ///< ack/sync frames failed by a broken connection
    std::atomic<std::uint64_t> possibly_lost{0};     ///< async frames in a write that broke
    std::atomic<std::uint64_t> dropped{0};           ///< frames failed because the member went or we stopped
    std::atomic<std::uint64_t> queue_full{0};
    std::atomic<std::uint64_t> connects{0};
    std::atomic<std::uint64_t> connect_failures{0};
    std::atomic<std::uint64_t> handshake_failures{0};
    std::atomic<std::uint64_t> pings{0};
    std::atomic<std::uint64_t> caller_read_acks{0}; ///< acks read by the waiting caller (direct reads)
    std::atomic<std::uint64_t> direct_entries{0};   ///< times the stream switched to direct reads
    std::atomic<std::uint64_t> ack_latency_sum_us{0};
    std::array<std::atomic<std::uint64_t>, ack_latency_bounds_us.size()> ack_latency_buckets{};

    void record_ack_latency(std::uint64_t us) noexcept {
        ack_latency_sum_us.fetch_add(us, std::memory_order_relaxed);
        for (std::size_t i = 0; i < ack_latency_bounds_us.size(); ++i) {
            if (us < ack_latency_bounds_us[i]) {
                ack_latency_buckets[i].fetch_add(1, std::memory_order_relaxed);
                return;
            }
        }
    }
};

} // namespace troupe::transport
