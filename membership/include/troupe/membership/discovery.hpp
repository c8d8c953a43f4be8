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
/// Distinct objects: safe. Shared objects: start()/stop() from one thread;
/// announce(), counters() and name() from any thread. `heard` runs on an I/O thread.
class discovery {
public:
    /// Called for every valid heartbeat of this cluster heard from another member.
    using heard_handler = std::function<void(const heartbeat&)>;

    /// Implementations stop (without leaving) if stop() was not called.
    virtual ~discovery() = default;
    /// The mechanism's name, shown in /stats ("multicast").
    virtual std::string_view name() const noexcept = 0;
    /// @throws boost::system::system_error when its socket cannot be set up.
    virtual void start(heard_handler heard) = 0;
    /// Announce ourselves now (e.g. to answer a newcomer at once).
    virtual void announce() = 0;
    /// Tell everyone we leave (when `leaving`), then stop. Idempotent; waits up to 1 s
    /// for the io_context to apply it, after which `heard` is no longer called.
    virtual void stop(bool leaving) = 0;
    /// Counters as "name": value pairs, for /stats and /metrics.
    virtual std::vector<std::pair<std::string, std::uint64_t>> counters() const = 0;
};

} // namespace troupe::membership
