// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace troupe::managers::detail {

/// Lets a repeating warning through at most once per period and says how many
/// were held back since the last one.
class rate_limit {
public:
    explicit rate_limit(std::chrono::milliseconds period)
        : period_(period) {}

    /// @return the number suppressed since the last allowed call, or nullopt if
    /// this call must stay quiet.
    std::optional<std::uint64_t> allow() noexcept {
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        auto last = last_.load(std::memory_order_relaxed);
        const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(period_).count();
        if (last != 0 && now - last < period) {
            suppressed_.fetch_add(1, std::memory_order_relaxed);
            return std::nullopt;
        }
        if (!last_.compare_exchange_strong(last, now)) {
            suppressed_.fetch_add(1, std::memory_order_relaxed);
            return std::nullopt;
        }
        return suppressed_.exchange(0, std::memory_order_relaxed);
    }

private:
    std::chrono::milliseconds period_;
    std::atomic<std::int64_t> last_{0};
    std::atomic<std::uint64_t> suppressed_{0};
};

} // namespace troupe::managers::detail
