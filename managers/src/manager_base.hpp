// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/manager.hpp>

#include "rate_limit.hpp"
#include "route.hpp"
#include "session_access.hpp"
#include "session_store.hpp"
#include "wait_pool.hpp"
#include "worker.hpp"

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace troupe::managers::detail {

/// Counters for /stats and /metrics. Atomics: bumped from request threads, I/O
/// threads and the timer thread alike.
struct manager_counters {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> requests_filtered{0};
    std::atomic<std::uint64_t> requests_skipped{0};
    std::atomic<std::uint64_t> requests_unavailable{0}; ///< begins that failed: the session could not be had
    std::atomic<std::uint64_t> async_waits{0};          ///< asynchronous begins that waited on a wait thread
    std::atomic<std::uint64_t> route_rewrites{0};
    std::atomic<std::uint64_t> route_rewrites_failed{0}; ///< their request failed: the alias is dropped
    std::atomic<std::uint64_t> alias_hits{0};
    std::atomic<std::uint64_t> created{0};
    std::atomic<std::uint64_t> expired{0};
    std::atomic<std::uint64_t> invalidated{0};
    std::atomic<std::uint64_t> rotated{0};
    std::atomic<std::uint64_t> listener_failures{0};
    std::atomic<std::uint64_t> replication_failures{0};
};

/// Where the managers' asynchronous ends deliver their result.
using end_slot = completion_slot<boost::system::error_code, end_result>;
using result_handler = std::shared_ptr<end_slot>;

inline void deliver(const result_handler& to, end_result r) {
    const auto ec = r.error;
    to->complete(ec, std::move(r));
}

/// Marks `r` failed: errc::replication_failed, `why` in its detail.
inline void fail(end_result& r, std::string why) {
    r.error = make_error_code(errc::replication_failed);
    r.detail = std::move(why);
}

/// How begin_request() looks a session up, and what came of it.
struct lookup {
    bool may_wait = true;    ///< false: an asynchronous begin's first try, on the caller's thread
    bool would_wait = false; ///< a wait or fetch was needed but not allowed: nothing was done
    bool unavailable = false;
};

/// The common part of every manager: the sharded store, request scopes,
/// listeners, expiry on the timer thread and counters. Replicating managers
/// override the hooks.
class manager_base : public session_manager {
public:
    manager_base(std::string node_name, manager_config config);
    ~manager_base() override;

    using session_manager::begin_request;
    request_scope begin_request(const request_info& request, boost::system::error_code& ec) override;
    void begin_into(const request_info& request, std::shared_ptr<begin_slot> slot) override;
    void add_listener(session_listener listener) override;
    std::shared_ptr<session> find(std::string_view id) const override;
    std::size_t size() const override;
    std::vector<std::string> session_ids() const override;
    std::size_t expire_now() override;
    bool await_state_transfer(std::chrono::milliseconds limit) override;
    void stop() override;
    const manager_config& config() const noexcept override { return config_; }
    std::string stats_json() const override;
    std::string copies_json(std::size_t limit) const override;
    std::string metrics_text() const override;

    // ---- called by request scopes
    std::shared_ptr<session> create_session();
    void fire(const session_event& e);
    bool fire_on_replication() const noexcept { return config_.notify_listeners_on_replication; }
    /// One session left the store (invalidated or expired here).
    void destroyed(const std::shared_ptr<session>& s, const std::string& id, bool expired, bool replicated);
    bool rotate(const std::shared_ptr<session>& s);
    /// Gives `s` this member's route (manager_config::route_rewrite); the old
    /// id becomes an alias. @return false if it already had it or was renamed meanwhile.
    bool rewrite_route(const std::shared_ptr<session>& s);
    /// The request that route-rewrote `s` from `old_id` failed: `s` gets
    /// `old_id` back (the client kept it), its new id becoming the alias.
    void rename_failed(const std::shared_ptr<session>& s, const std::string& old_id);
    end_result finish(const std::shared_ptr<session>& s, bool replicates);
    void finish_async(const std::shared_ptr<session>& s, bool replicates, result_handler done);
    wall_clock::time_point now() const { return config_.now ? config_.now() : wall_clock::now(); }
    /// The manager's monotonic time (manager_config::steady_now): timeouts,
    /// holds and retries that housekeeping decides are measured on it.
    std::chrono::steady_clock::time_point steady_now() const {
        return config_.steady_now ? config_.steady_now() : std::chrono::steady_clock::now();
    }
    /// `t`, a time on steady_now()'s clock, as a deadline for a real wait (a
    /// condition variable): the same time left, counted on the steady clock.
    /// With a manual clock that does not move, the whole remainder is waited
    /// unless housekeeping ends the wait first.
    std::chrono::steady_clock::time_point real_deadline(std::chrono::steady_clock::time_point t) const {
        if (!config_.steady_now) {
            return t;
        }
        return std::chrono::steady_clock::now() + (t - config_.steady_now());
    }
    std::string new_id() const;
    const std::string& node() const noexcept { return node_; }
    manager_counters& counters() noexcept { return counters_; }

protected:
    /// Starts the timer thread; subclasses add periodic tasks to timers() first.
    void start_timers();
    worker& timers() noexcept { return timers_; }
    session_store& store() noexcept { return store_; }
    const session_store& store() const noexcept { return store_; }
    /// Stops the timer thread (idempotent).
    void stop_base();
    bool stopped() const noexcept { return stopped_.load(); }
    /// The first thing a stop() does: begins fail from now on (and a begin
    /// whose wait the stop ends, by ending a transfer or waking it, fails too).
    void refuse_begins() noexcept { stopped_.store(true); }

    /// What end() does with what the request changed (`ends_use`: called for
    /// a request's end, whose use of the session ends with it; else a copy
    /// sent on the manager's own account). The standard manager commits it
    /// locally (a version step).
    virtual end_result replicate(const std::shared_ptr<session>& s, bool replicates, bool ends_use);
    /// replicate() without blocking: `done` runs once with the outcome (see
    /// request_scope::end_async). By default it is replicate()'s result at once.
    virtual void replicate_async(const std::shared_ptr<session>& s, bool replicates, bool ends_use, result_handler done);
    /// A session expired here (not yet announced to anyone).
    virtual void expired_here(const std::shared_ptr<session>& s) { (void)s; }
    /// A session id left the store (expired, invalidated, renamed away).
    virtual void id_gone(const std::string& id) { (void)id; }
    /// A session served here was rotated from `old_id` to `new_id` at
    /// `version` (before the rotation's own step); id_gone() has been called.
    virtual void renamed_here(const std::string& old_id, const std::string& new_id, std::uint64_t version) {
        (void)old_id, (void)new_id, (void)version;
    }
    /// A session served here was route-rewritten away from `old_id`, whose
    /// last step is `version`. Unlike a rotation's, the old id may come back
    /// (a later rewrite to that route): it ends only up to `version`.
    /// `new_id` (this member's route) may have ended here in an earlier life.
    virtual void route_renamed(const std::string& old_id, const std::string& new_id, std::uint64_t version) {
        (void)new_id, (void)version;
        id_gone(old_id);
    }
    /// Wakes every wait of a begin (stop(): before the wait threads are
    /// joined); the waits see the manager stopping and return.
    virtual void wake_waits() {}
    /// Extra wait for sessions another member served last (their expiry is its job).
    virtual std::chrono::milliseconds expiry_grace() const { return std::chrono::milliseconds(0); }
    /// begin_request found no session for `id`, or one it must not serve yet:
    /// a replicating manager may wait for it (state transfer, a copy on its
    /// way, a fetch). @return the session if it came; else `l.unavailable`
    /// tells a session that may exist but could not be had (the request must
    /// fail) from one no member holds. Without `l.may_wait`, a wait that would
    /// be needed is not started: `l.would_wait` says so, and the asynchronous
    /// begin repeats the lookup on a wait thread.
    virtual std::shared_ptr<session> wait_for(std::string_view id, lookup& l) {
        (void)id, (void)l;
        return nullptr;
    }
    /// The session now named `id` (a route alias's target not held here),
    /// from where it is known to live; never from every member's copies
    /// (the alias may be stale, and a copy taken from anyone would fork it).
    /// Null when not found that way: the request then looks for its own id.
    /// `l` as for wait_for().
    virtual std::shared_ptr<session> find_moved(const std::string& id, lookup& l) {
        (void)id, (void)l;
        return nullptr;
    }
    /// Whether a member named `route` is in this member's view (alive or
    /// suspected, not yet removed): a request for its session that landed
    /// here is a detour (the balancer thought it down for a moment), not a
    /// failover, and the id keeps its route.
    virtual bool route_in_view(std::string_view route) const { (void)route; return false; }
    /// True when the copy held for `id` (if any) may be stale and must not be
    /// served before wait_for() (this node rejoined, or reconciles after a pause).
    virtual bool unverified(std::string_view id) { (void)id; return false; }
    virtual void add_stats(nlohmann::json& j) const;
    virtual void add_metrics(std::string& out) const { (void)out; }
    virtual std::string_view type_name() const noexcept { return "standard"; }
    /// What this member's copy is, for copies_json().
    virtual std::string_view role_name(const session& s) const { (void)s; return "copy"; }

    /// `from` was renamed to `to` elsewhere: when only the route changed, the
    /// old id stays an alias here too. Takes only the alias table's lock.
    void renamed_elsewhere(const std::string& from, const std::string& to);
    /// The id `id` was route-rewritten to, while this member keeps it as an
    /// alias (route_alias_time after it learned of the rename).
    std::optional<std::string> alias_of(const std::string& id) const { return aliases_.find(id, now()); }
    /// `id` lives again (x.a -> x.b -> x.a): it is no longer an alias here.
    void forget_alias(const std::string& id) { aliases_.erase(id); }

    detail::rate_limit failure_log_{std::chrono::seconds(1)};

private:
    bool skips(const request_info& request) const;
    /// The part of a begin that never blocks: counters, skip, filter, the
    /// cookie's id. Null when the manager is stopped.
    std::unique_ptr<request_scope::state> open(const request_info& request);
    /// Finds the session for `st`'s cookie id and begins its use. @return
    /// false (nothing done) when it must wait and `may_wait` is false.
    bool look_up(request_scope::state& st, bool may_wait);
    /// look_up() on a wait thread, then the result to `slot`, exactly once
    /// whatever happens.
    void look_up_waiting(std::unique_ptr<request_scope::state> st, const std::shared_ptr<begin_slot>& slot);
    request_scope finish_begin(std::unique_ptr<request_scope::state> st, boost::system::error_code& ec);

    manager_config config_;
    std::string node_;
    std::optional<std::regex> filter_;
    std::optional<std::regex> skip_paths_;
    alias_table aliases_;
    session_store store_;
    worker timers_;
    wait_pool waits_;
    manager_counters counters_;
    mutable std::shared_mutex listeners_mutex_;
    std::vector<std::shared_ptr<const session_listener>> listeners_;
    std::atomic<bool> stopped_{false};
    detail::rate_limit listener_log_{std::chrono::seconds(1)};
};

} // namespace troupe::managers::detail
