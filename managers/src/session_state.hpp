// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/session.hpp>
#include <troupe/membership/member.hpp>

#include <array>
#include <mutex>

namespace troupe::managers {

/// A session's fields (session.hpp keeps them private). Read and written
/// through session's getters and detail::session_access only.
struct session::state {
    state(std::string i, wall_clock::time_point c, std::chrono::seconds mi)
        : id(std::move(i))
        , created(c)
        , accessed(c)
        , max_inactive(mi) {}

    mutable std::mutex mutex; ///< everything below
    std::mutex order;         ///< held while a version is assigned and its message queued
    std::string id;
    std::string replicated_id; ///< the id replicas know, when it differs from id (after a rotation)
    wall_clock::time_point created;
    wall_clock::time_point accessed;
    std::chrono::seconds max_inactive;
    std::uint64_t version = 0;
    std::map<std::string, attribute, std::less<>> attributes;
    std::vector<std::string> dirty; ///< names changed since the last delta
    std::uint64_t tag = 0;         ///< the lineage of the current version (lineage.hpp)
    /// The tags of versions version-1 .. version-4 of this lineage (0: not
    /// known): a late duplicate delta is told from one built on a stale copy,
    /// and divergence is noticed. Whole copies carry them.
    std::array<std::uint64_t, 4> ancestors{};
    std::uint64_t acked = 0; ///< the last version that may have been acknowledged (lineage.hpp)
    /// Requests in flight when a newer copy was installed over this one: their
    /// changes were computed from the old copy and must not be replicated.
    std::uint32_t superseded = 0;
    std::uint32_t in_use = 0;      ///< requests holding it (expiry skips it)
    bool valid = true;
    bool max_inactive_dirty = false;
    bool announced = false; ///< replicas know it (CREATED sent, or received from one)
    bool local = true;      ///< last served by this node (it then expires it for all)
    bool expired = false;   ///< destroyed by expiry rather than invalidate()
    // The backup manager's roles (managers/src/backup_manager.hpp); the delta
    // manager never hands a copy over, so they do not change what it does.
    bool primary = true;             ///< made, fetched or promoted here: served without asking
    membership::member_id handed_to; ///< given to this member by a fetch: no change from anyone else
    membership::member_id copy_at;   ///< the member holding a whole copy in step (nil: none known)
    membership::member_id was_copy_at; ///< copy_at before a failed step cleared it
    membership::member_id doubted_backup; ///< demoted after a pause: where its copy_at was (nil: not demoted)
};

} // namespace troupe::managers
