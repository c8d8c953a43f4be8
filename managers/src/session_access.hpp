// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the managers do to a session's internals. Every function takes the
// session's lock itself unless its name ends in _locked.

#include <troupe/managers/manager.hpp>
#include <troupe/managers/session.hpp>

#include "session_state.hpp"
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
    applied,    ///< before matched (version and tag): the session is at `after` now
    stale,      ///< a late duplicate: this copy's recent lineage holds `after` already
    stale_base, ///< built on a copy this replica has moved past or never had: refuse it
    gap,        ///< before is ahead of the version: something is missing
    invalid,    ///< the session is no longer valid
};

/// When a whole copy replaces the one held.
enum class install_mode {
    if_wins, ///< only when it wins by (acked, version, tag) and is another copy
    adopt,   ///< also when our last steps were not acknowledged (a refused request) and theirs holds our acked
};

/// What a request's end sends: built under the session's lock, sent in order.
struct outgoing {
    std::vector<wire::buffer> messages;
    std::vector<wire::msg_type> types;
    bool touched_only = false; ///< nothing to send: only the access time changed
    /// A newer copy replaced the session while the request held it: what the
    /// request changed was computed from the old copy and is dropped.
    bool superseded = false;
    std::uint64_t version = 0; ///< the session's version after these messages
    std::uint64_t tag = 0;     ///< and its tag
    /// The step carries a request's changes, so it counts as acknowledged once
    /// the request stands. False for a whole copy sent with no request's
    /// changes (a restore or a move): it holds nothing a client was told of.
    bool client_change = true;
};

struct session_access {
    static std::mutex& order(session& s) noexcept { return s.d_->order; }
    /// Moves the copy to (version, tag), remembering the step it leaves. Caller holds mutex(s).
    static void step_locked(session& s, std::uint64_t version, std::uint64_t tag);
    static bool lineage_has_locked(const session& s, std::uint64_t version, std::uint64_t tag);
    /// The id's storage, for the store's keys (which view it). Callers hold the
    /// store shard's lock; renames change it only under both shards' locks.
    static std::string_view key(const session& s) noexcept { return s.d_->id; }
    static void set_id(session& s, std::string id) {
        std::lock_guard lock(s.d_->mutex);
        s.d_->id = std::move(id);
        if (s.d_->replicated_id == s.d_->id) {
            s.d_->replicated_id.clear(); // renamed and back before either went out: no rename
        }
    }

    // ---- the request path

    /// Marks the start of a request: touched, in use, served here.
    /// @return false if the session is no longer valid.
    static bool begin_use(session& s, wall_clock::time_point now);
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
    static std::mutex& mutex(session& s) noexcept { return s.d_->mutex; }

    /// Commits what requests changed since the last commit, without replication
    /// (the standard manager): one version step if anything changed. With
    /// `ends_use`, the ending request's use of the session ends in the same step.
    static void commit_local(session& s, bool ends_use);
    /// Builds the messages that replicate what requests changed since the last
    /// time: CREATED (whole) the first time, else ID_CHANGED and/or one DELTA
    /// carrying the current state of every changed name; EXPIRED once for an
    /// invalidated session. Each message advances the version by one, and the
    /// tag by `self` (lineage.hpp). Caller holds order(s), so that messages
    /// leave in version order.
    /// With `whole`, the message is a CREATED carrying the whole session at
    /// one step more, changed or not: for a member that has no copy in step
    /// yet (the backup manager's new backup). Without `replicate_changes` that
    /// step carries the copy's own `acked`, not its version (lineage.hpp). A session handed
    /// over to another member (hand_over) sends nothing: superseded.
    /// With `ends_use` (a request's end), the request's use of the session
    /// ends under the same lock: a copy adopted before that still counts the
    /// request as in use and supersedes it; one adopted after finds its
    /// changes already taken. Ending the use first would leave a window in
    /// which the request's changed names went out with the adopted copy's
    /// values, and the request was acknowledged for a change it never made.
    static outgoing take_outgoing(session& s, bool replicate_changes, wall_clock::time_point now,
                                  const membership::member_id& self, bool whole, bool ends_use);
    /// The request that made step (version, tag) stands (acknowledged, or
    /// queued under async): the copy's `acked` reaches it, if the copy still
    /// holds that step (lineage.hpp). A failed request's step is never
    /// acknowledged, so it cannot outrank a copy holding acknowledged ones.
    /// @return false when the copy no longer holds that step (another copy
    /// replaced it meanwhile): the request must not be acknowledged.
    static bool acknowledge(session& s, std::uint64_t version, std::uint64_t tag);
    /// Marks the session changed (its max_inactive goes again, unchanged), so
    /// that the next take_outgoing sends a step, and one that claims a
    /// request's change: a request whose step reached no member (its backup
    /// left meanwhile) is sent again (replication_core::resend). Caller
    /// holds order(s).
    static void mark_changed(session& s);
    /// The EXPIRED message for a session this node expired, once.
    static std::optional<wire::buffer> take_expired(session& s);

    // ---- the backup manager's roles (backup_manager.hpp). Whole copies and
    // deltas from another member make a copy a non-primary one.

    struct roles {
        bool primary = true;
        membership::member_id handed_to; ///< who alone may change it: a fetcher, or this node once primary
        membership::member_id copy_at;   ///< nil: no whole copy in step known
        /// The member copy_at last named before a failed step cleared it: the
        /// old backup, told when the next whole copy goes elsewhere.
        membership::member_id was_copy_at;
        /// Served here until a pause demoted it (demote): where its backup
        /// was then. Nil once anything settles its role again.
        membership::member_id doubted_backup;
    };
    static roles roles_of(const session& s);
    /// Served here from now on (fetched or promoted here): only `self` changes
    /// this copy (deltas from a member that served it before are refused).
    static void make_primary(session& s, const membership::member_id& self);
    /// A copy kept for `primary` (the backup): changes from it apply again.
    static void make_backup(session& s);
    /// A fetch gave it to `to`: a request holding it can no longer commit, and
    /// only `to` may change this copy. Caller holds order(s).
    static void hand_over(session& s, const membership::member_id& to);
    /// This node may have been replaced as its primary while away (a pause, a
    /// removal): no longer served here until fetched again; a request holding
    /// it can no longer commit, and changes from others apply again.
    /// `in_step`: the backup holding its last acknowledged step when copy_at
    /// names a whole copy not confirmed yet (nil: copy_at, or was_copy_at);
    /// the one whose loss leaves this copy alone, so the one to watch.
    /// @return true if it was primary here.
    static bool demote(session& s, const membership::member_id& in_step = {});
    /// Nil: the backup may have missed a step (was_copy_at remembers it).
    static void set_copy_at(session& s, const membership::member_id& m);
    /// A whole copy to copy_at failed: was_copy_at becomes the backup before
    /// it (`previous`, which still holds the last acknowledged step), or
    /// copy_at when none was known. Nothing once demoted or handed over.
    static void whole_copy_failed(session& s, const membership::member_id& previous);
    /// A whole copy to `to` was confirmed: a copy demoted meanwhile that
    /// watched `previous` (demote's in_step) watches `to` instead.
    static void copy_confirmed(session& s, const membership::member_id& previous, const membership::member_id& to);

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

    static apply_result apply_delta(session& s, const wire::delta_msg& d, wall_clock::time_point now,
                                    bool events, std::vector<session_event>& out);
    /// Replaces the session's state by a whole copy as `mode` says.
    /// @return true if installed; `diverged` (if given) tells whether the
    /// replaced copy was not an ancestor of the new one (a conflict).
    static bool install(session& s, const wire::full_session& f, wall_clock::time_point now,
                        install_mode mode, bool* diverged = nullptr);
    static std::shared_ptr<session> from_full(const wire::full_session& f, wall_clock::time_point now);
    /// Another member served it `idle` ago.
    static void touch_remote(session& s, std::chrono::milliseconds idle, wall_clock::time_point now);
    /// For an ID_CHANGED: the version step, if it is the next one.
    static apply_result apply_rename_version(session& s, std::uint64_t before, std::uint64_t after,
                                             const membership::member_id& from, wall_clock::time_point now);
    /// The copy's stamp, or nullopt once it is no longer valid.
    static std::optional<wire::stamp> valid_stamp(const session& s);
    /// True when this copy is at (version, tag) or passed through it recently.
    static bool lineage_has(const session& s, std::uint64_t version, std::uint64_t tag);

    // ---- whole sessions

    static wire::full_session to_full(const session& s, wall_clock::time_point now);
    /// Adds the whole session to a chunk (all-data, session-data, newer-copy).
    /// @return false if it is no longer valid (nothing added).
    static bool add_to(const session& s, wire::counted_writer& out, wall_clock::time_point now);
    /// Bytes the whole session takes on the wire (approximately, from above).
    static std::size_t wire_size(const session& s);
    /// How long it has been idle.
    static std::chrono::milliseconds idle(const session& s, wall_clock::time_point now);
};

} // namespace troupe::managers::detail
