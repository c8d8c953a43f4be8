// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the managers do to a session's internals. Every function takes the
// session's lock itself unless its name ends in _locked.

#include <troupe/managers/manager.hpp>
#include <troupe/managers/session.hpp>

#include "wire.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::managers::detail {

/// Outcome of applying a delta to a replica.
enum class apply_result {
    applied, ///< before matched: the session is at `after` now
    stale,   ///< already there (after <= version): nothing to do
    conflict, ///< after == version but made by another member: two members wrote concurrently
    gap,     ///< before is ahead of the version: something is missing
    invalid, ///< the session is no longer valid
};

/// What a request's end sends: built under the session's lock, sent in order.
struct outgoing {
    std::vector<wire::buffer> messages;
    std::vector<wire::msg_type> types;
    bool touched_only = false; ///< nothing to send: only the access time changed
};

struct session_access {
    static std::mutex& order(session& s) noexcept { return s.order_; }
    /// The id's storage, for the store's keys (which view it). Callers hold the
    /// store shard's lock; renames change it only under both shards' locks.
    static std::string_view key(const session& s) noexcept { return s.id_; }
    static void set_id(session& s, std::string id) {
        std::lock_guard lock(s.mutex_);
        s.id_ = std::move(id);
    }

    // ---- the request path

    /// Marks the start of a request: touched, in use, served here.
    /// @return false if the session is no longer valid.
    static bool begin_use(session& s, wall_clock::time_point now);
    static void end_use(session& s);
    /// @return nullopt if the session is invalid, else whether the name existed.
    static std::optional<bool> set(session& s, std::string_view name, attribute value);
    static std::optional<bool> remove(session& s, std::string_view name);
    static std::optional<bool> update(session& s, std::string_view name,
                                      const std::function<attribute(const attribute*)>& fn);
    static bool set_max_inactive(session& s, std::chrono::seconds interval);
    /// @return true if it was valid (this call invalidated it).
    static bool invalidate(session& s);
    /// Before a rename: remembers the id replicas know, once.
    static void note_rename_locked(session& s);
    static std::mutex& mutex(session& s) noexcept { return s.mutex_; }

    /// Commits what requests changed since the last commit, without replication
    /// (the standard manager): one version step if anything changed.
    static void commit_local(session& s);
    /// Builds the messages that replicate what requests changed since the last
    /// time: CREATED (whole) the first time, else ID_CHANGED and/or one DELTA
    /// carrying the current state of every changed name; EXPIRED once for an
    /// invalidated session. Each message advances the version by one.
    /// Caller holds order(s), so that messages leave in version order.
    static outgoing take_outgoing(session& s, bool replicate_changes, wall_clock::time_point now);
    /// The EXPIRED message for a session this node expired, once.
    static std::optional<wire::buffer> take_expired(session& s);

    // ---- expiry

    /// Invalidates the session if it has been idle past its max inactive interval
    /// (plus `grace` when another member served it last) and no request holds it.
    /// @return true if this call expired it.
    static bool expire_if_idle(session& s, wall_clock::time_point now, std::chrono::milliseconds grace);
    /// Invalidates it as expired, whatever its age. @return true if it was valid.
    static bool expire(session& s);
    static bool local(const session& s);
    static bool announced(const session& s);

    // ---- the replica path

    static apply_result apply_delta(session& s, const wire::delta_msg& d,
                                    const membership::member_id& from, wall_clock::time_point now,
                                    bool events, std::vector<session_event>& out);
    /// Replaces the session's state by a whole copy when it is newer (or `force`).
    /// @return true if installed.
    static bool install(session& s, const wire::full_session& f, const membership::member_id& from,
                        wall_clock::time_point now, bool force);
    static std::shared_ptr<session> from_full(const wire::full_session& f,
                                              const membership::member_id& from,
                                              wall_clock::time_point now);
    /// Another member served it `idle` ago.
    static void touch_remote(session& s, std::chrono::milliseconds idle, wall_clock::time_point now);
    /// For an ID_CHANGED: the version step, if it is the next one.
    static apply_result apply_rename_version(session& s, std::uint64_t before, std::uint64_t after,
                                             const membership::member_id& from, wall_clock::time_point now);
    static membership::member_id origin(const session& s);

    // ---- whole sessions

    static wire::full_session to_full(const session& s, wall_clock::time_point now);
    /// Appends the whole session to `out` (an all-data or session-data chunk).
    /// @return false if it is no longer valid (nothing appended).
    static bool append_full(const session& s, wire::buffer& out, wall_clock::time_point now);
    /// Bytes the whole session takes on the wire (approximately, from above).
    static std::size_t wire_size(const session& s);
    /// (valid, version) read together.
    static std::pair<bool, std::uint64_t> valid_version(const session& s);
    /// How long it has been idle.
    static std::chrono::milliseconds idle(const session& s, wall_clock::time_point now);
};

} // namespace troupe::managers::detail
