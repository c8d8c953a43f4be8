// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/session.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace troupe::test {

/// The managers' two clocks, under a test's control.
///
/// The wall clock (manager_config::now) moves only when told: creation,
/// access and expiry. The monotonic clock (manager_config::steady_now) runs
/// with real time and jumps ahead when told: a test reaches a state
/// transfer's timeout or the end of a hold by advancing it and running
/// housekeeping, without sleeping, while the waits that the fake bus's
/// delivery threads and the managers' own retries need still pass.
class manual_clock {
public:
    managers::wall_clock::time_point now() const {
        return managers::wall_clock::time_point(std::chrono::milliseconds(ms_.load()));
    }
    void advance(std::chrono::milliseconds d) { ms_ += d.count(); }

    std::chrono::steady_clock::time_point steady_now() const {
        return std::chrono::steady_clock::now() + std::chrono::milliseconds(steady_ahead_ms_.load());
    }
    void advance_steady(std::chrono::milliseconds d) { steady_ahead_ms_ += d.count(); }

private:
    std::atomic<std::int64_t> ms_{1'700'000'000'000};
    std::atomic<std::int64_t> steady_ahead_ms_{0};
};

} // namespace troupe::test
