// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/engine/interceptor.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace troupe::engine {

/// The bottom layer of every channel: counts messages and bytes in and out,
/// per member on the way in, and send failures by kind. (Per-member outbound
/// counters, queue depth and ack latency live with each transport stream.)
class stats_interceptor final : public interceptor {
public:
    std::string_view name() const noexcept override { return "stats"; }
    void on_send(const outgoing_message& m) override;
    void on_sent(const outgoing_message& m, const send_result& r) override;
    bool on_receive(const incoming_message& m) override;

    void count_listener_failure() { listener_failures_.fetch_add(1, std::memory_order_relaxed); }
    void count_no_listener() { no_listener_.fetch_add(1, std::memory_order_relaxed); }

    nlohmann::json to_json() const;
    /// Prometheus lines (without HELP/TYPE headers of other sources).
    std::string to_metrics() const;

private:
    /// Counts from one member on one I/O thread. Only that thread writes it, so
    /// it adds with a plain load and store: a locked add per message cost ~5 %
    /// of a 1 KiB stream's CPU. Readers sum the shards.
    struct shard {
        std::atomic<std::uint64_t> messages{0};
        std::atomic<std::uint64_t> bytes{0};
    };
    shard& shard_for(const membership::member& m);
    /// messages and bytes in, by member name, summed over threads (caller holds mutex_).
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> in_by_member_locked() const;
    std::atomic<std::uint64_t> sends_{0};
    std::atomic<std::uint64_t> messages_out_{0}; ///< one per destination
    std::atomic<std::uint64_t> bytes_out_{0};
    std::atomic<std::uint64_t> listener_failures_{0};
    std::atomic<std::uint64_t> no_listener_{0};
    mutable std::mutex mutex_;
    std::map<std::string, std::uint64_t> failures_by_kind_;
    /// By member name and receiving thread; never erased, so a shard& stays valid.
    std::map<std::pair<std::string, std::thread::id>, std::unique_ptr<shard>> in_shards_;
};

} // namespace troupe::engine
