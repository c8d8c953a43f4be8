// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/member.hpp>

#include <chrono>
#include <optional>
#include <vector>

namespace troupe::membership {

/// The members this node knows, keyed by member id, with each one's state and
/// when it last changed. Gone and left members are kept (for reporting) until a
/// new incarnation at the same endpoint replaces them.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: const members safe; unsafe while any
/// thread modifies it (the channel guards it with its own mutex).
class member_table {
public:
    /// The clock of `since` and of every `now`.
    using clock = std::chrono::steady_clock;

    /// One member and when it entered its current state.
    struct entry {
        member m;                ///< the member, with its current state
        clock::time_point since; ///< when that state began
    };

    /// A member completed a handshake. Returns every change in order: an older
    /// incarnation at the same endpoint goes first ("gone"), then this one
    /// ("alive"). Empty when it was alive already.
    std::vector<member> mark_alive(const member& m, clock::time_point now = clock::now());

    /// Moves a known member to `state`; nullopt when unknown or already there.
    std::optional<member> set_state(const member_id& id, member_state state,
                                    clock::time_point now = clock::now());

    /// The entry of `id`, whatever its state; nullopt when unknown.
    std::optional<entry> find(const member_id& id) const;
    /// The newest member at host:port, whatever its state.
    std::optional<entry> find_endpoint(const std::string& endpoint) const;
    /// Every entry, gone and left included, in the order first seen (a copy).
    std::vector<entry> all() const { return entries_; }
    /// Alive or suspect: the ones a send goes to.
    std::vector<member> sendable() const;

private:
    std::vector<entry> entries_;
};

} // namespace troupe::membership
