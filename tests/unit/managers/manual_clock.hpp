// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/session.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace troupe::test {

/// A wall clock that moves only when told (manager_config::now).
class manual_clock {
public:
    managers::wall_clock::time_point now() const {
        return managers::wall_clock::time_point(std::chrono::milliseconds(ms_.load()));
    }
    void advance(std::chrono::milliseconds d) { ms_ += d.count(); }

private:
    std::atomic<std::int64_t> ms_{1'700'000'000'000};
};

} // namespace troupe::test
