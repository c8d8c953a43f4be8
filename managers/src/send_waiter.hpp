// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/engine/send_result.hpp>
#include <troupe/membership/member.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace troupe::managers::detail {

/// Members that were skipped by a request's early rule and have not answered
/// anything since: the next requests do not wait for them (thread-safe).
class laggard_set {
public:
    void add(const membership::member_id& m);
    /// It answered (or left the view): requests wait for it again.
    void remove(const membership::member_id& m);
    bool contains(const membership::member_id& m) const;

private:
    mutable std::mutex mutex_;
    std::set<membership::member_id> ids_;
};

/// Waits for the answers to one request's replication: each message to each
/// member is sent on its own, so that the answers are told apart.
///
/// It settles when every member has answered every message, or, from
/// `early_at` on, as soon as at least half of the group (this node included)
/// has taken every message. A member that froze then holds requests about
/// until `early_at`, not for the transport's ack timeout plus the failure
/// detector's verification. A member skipped that way still gets the
/// messages (they stay queued for it); if one of them then fails, `on_late`
/// hears of it, and the manager sends that member the whole session. A member
/// that is removed meanwhile reconciles when it comes back. Members in
/// `laggards` (skipped by the early rule before, silent since) are not waited
/// for at all: the early rule applies at once while only they are
/// outstanding, provided another member has taken every message.
class send_waiter {
public:
    using clock = std::chrono::steady_clock;

    /// `early_at`: from then on half of the group suffices (max: never).
    explicit send_waiter(clock::time_point early_at = clock::time_point::max(),
                         std::shared_ptr<laggard_set> laggards = nullptr)
        : early_at_(early_at)
        , laggards_(std::move(laggards)) {}

    /// Before the first send: one more message to `member`.
    void expect(const membership::member_id& member);
    /// The answer to one send to `member` (any thread).
    void done(const membership::member_id& member, engine::send_result r);
    /// Blocks until settled, at most `limit`. @return true if settled.
    bool wait(std::chrono::milliseconds limit);
    /// Settles if the early rule now allows it (a timer's check).
    /// @return true once settled.
    bool poll();
    /// The failures of the members that answered before it settled, and how
    /// many members it went to; skipped members are not failures.
    engine::send_result result() const;
    bool skipped_any() const;

    /// The session's version and tag after the messages waited for (set before the first send).
    std::uint64_t version = 0;
    std::uint64_t tag = 0;
    bool client_change = true; ///< see outgoing::client_change
    /// Runs once, when it settles (the asynchronous form), on the thread that settled it.
    std::function<void(engine::send_result)> on_done;
    /// A skipped member's send failed after it settled.
    std::function<void(const membership::member_id&, const engine::send_result&)> on_late;

private:
    struct member_state {
        std::size_t outstanding = 0;
        bool reached = false; ///< the transport had it as a destination
        bool failed = false;
    };

    bool settles_locked(clock::time_point now) const;
    engine::send_result result_locked() const;
    /// Marks it settled; returns the completion to run outside the lock.
    std::function<void()> settle_locked(clock::time_point now);

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    clock::time_point early_at_;
    std::shared_ptr<laggard_set> laggards_;
    std::map<membership::member_id, member_state> members_;
    std::size_t remaining_ = 0;
    engine::send_result failures_;
    bool settled_ = false;
};

} // namespace troupe::managers::detail
