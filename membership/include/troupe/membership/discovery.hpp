// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/heartbeat.hpp>

#include <functional>
#include <string>

namespace troupe::membership {

/// A way of learning that members exist (multicast today; DNS or a file later).
/// Discovery only hears: admission and failure detection are the detector's.
///
/// @par Thread safety
/// start()/stop() from one thread; `heard` runs on an I/O thread.
class discovery {
public:
    using heard_handler = std::function<void(const heartbeat&)>;

    virtual ~discovery() = default;
    virtual std::string_view name() const noexcept = 0;
    /// @throws boost::system::system_error when its socket cannot be set up.
    virtual void start(heard_handler heard) = 0;
    /// Announce ourselves now (e.g. to answer a newcomer at once).
    virtual void announce() = 0;
    /// Tell everyone we leave, then stop.
    virtual void stop(bool leaving) = 0;
    /// Counters as "name": value pairs, for /stats and /metrics.
    virtual std::vector<std::pair<std::string, std::uint64_t>> counters() const = 0;
};

} // namespace troupe::membership
