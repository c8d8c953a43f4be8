// SPDX-License-Identifier: Apache-2.0
#include "replication_core.hpp"

#include <troupe/transport/error.hpp>

#include "log.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <algorithm>
#include <thread>

namespace troupe::managers::detail {

namespace {

using membership::member;
using membership::member_id;
using steady = std::chrono::steady_clock;

/// An access batch is sent in messages of at most this size.
constexpr std::size_t access_chunk_bytes = 64 * 1024;

/// The members that answered one send_each (its progress reports).
class heard_from {
public:
    void add(const member_id& m) {
        std::lock_guard lock(mutex_);
        ids_.insert(m);
    }
    bool has(const member_id& m) const {
        std::lock_guard lock(mutex_);
        return ids_.count(m) > 0;
    }

private:
    mutable std::mutex mutex_;
    std::set<member_id> ids_;
};

/// What the merged result says of a member that never answered on its own:
/// its failure, or (it was no destination: it left meanwhile) not a member.
engine::send_result not_heard(const member_id& m, const engine::send_result& all) {
    engine::send_result r;
    for (const auto& f : all.failures) {
        if (f.member.id == m) {
            r.failures.push_back(f);
            return r;
        }
    }
    membership::member who;
    who.id = m;
    r.failures.push_back({who, transport::error::not_a_member, "not a destination of the send"});
    return r;
}

/// The member itself answered (an ack, or a NACK with its reason), as opposed
/// to the transport giving up on it.
bool answered(const engine::send_result& r) {
    return std::all_of(r.failures.begin(), r.failures.end(), [](const auto& f) {
        return f.ec == transport::error::remote_failure || f.ec == transport::error::no_listener;
    });
}

} // namespace

std::string describe(const member& m) { return m.name + " (" + m.endpoint() + ")"; }

replication_core::replication_core(std::unique_ptr<link> l, manager_config config)
    : manager_base(l->self().name, std::move(config))
    , link_(std::move(l))
    , self_(link_->self())
    , bulk_("troupe-xfer-" + this->config().context) {
    note_tick();
}

replication_core::~replication_core() { stop(); }

bool replication_core::older(const member& m) const {
    return std::tie(m.incarnation, m.id) < std::tie(self_.incarnation, self_.id);
}

std::uint64_t replication_core::random_request() const {
    std::uint64_t v = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) {
        v = static_cast<std::uint64_t>(steady::now().time_since_epoch().count());
    }
    return v == 0 ? 1 : v;
}

void replication_core::start() {
    self_ = link_->self();
    {
        std::lock_guard lock(repl_mutex_);
        if (!link_->discovered()) {
            // Right after the channel's start no member may be in view yet,
            // which is not "first of the cluster": a node that took it so would
            // serve requests without the sessions and make new ones for the ids
            // it does not know. Requests and messages wait as for a catch-up,
            // from before the first event can arrive.
            discovering_ = true;
            catching_up_ = true;
            catch_up_started_ = steady_now();
        }
    }
    link_->attach({[this](const member& from, std::span<const std::uint8_t> payload) { on_message(from, payload); },
                   [this](const member& m) { on_member(m); }, [this] { on_discovered(); }});
    timers().every(config().access_batch_interval, [this] { send_access_batch(); });
    timers().every(std::chrono::milliseconds(200), [this] { housekeeping(); });
    if (engine::send_options::wants_ack(config().send_options)) {
        timers().every(std::chrono::milliseconds(50), [this] { settle_lingering(); });
    }
    start_timers();
    bulk_.start();
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        if (!catching_up_) { // neither discovering nor begun by a member event since attach
            begin_catch_up_locked(a);
        }
    }
    run(a);
}

void replication_core::on_discovered() {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        discovered_locked(a);
    }
    run(a);
}

void replication_core::discovered_locked(actions& a) {
    if (!discovering_ || stopping_) {
        return;
    }
    discovering_ = false;
    catching_up_ = false; // begin_catch_up_locked sets it again if it finds a source
    [[maybe_unused]] const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady_now() - catch_up_started_);
    SPDLOG_LOGGER_DEBUG(log(), "context {}: discovery done after {} ms", config().context, waited.count());
    begin_catch_up_locked(a);
    if (!catching_up_) {
        // The oldest member, first of the cluster: replay what came meanwhile.
        // No digests: every member that found us is younger and catches up
        // from a member older than itself, as before a discovery wait existed.
        end_catch_up_locked({}, a, false);
    }
}

void replication_core::end_catch_up_locked(const member_id& source, actions& a, bool compare_digests) {
    catching_up_ = false;
    auto queue = std::move(queue_);
    queue_.clear();
    for (auto& q : queue) {
        dispatch_locked(q.from, q.msg, q.bytes, a);
    }
    // Those were acknowledged when queued: a refusal can no longer reach their
    // senders as a NACK (the copy sent back still does).
    a.refuse.clear();
    for (auto& d : deferred_) {
        a.answer.push_back(std::move(d));
    }
    deferred_.clear();
    // A member may have sent a change before it knew us: each other member's
    // digest closes that window (the source's copies are what we hold).
    a.digests = compare_digests;
    a.digest_skip = source;
    repl_cv_.notify_all();
}

void replication_core::stop() {
    if (stopping_.exchange(true)) {
        return;
    }
    refuse_begins();
    if (config().expire_sessions_on_shutdown) {
        // Tomcat's expireSessionsOnShutdown: every session ends, here and on
        // every member.
        std::vector<std::shared_ptr<session>> all;
        store().for_each_locked([&](const std::shared_ptr<session>& s) {
            if (session_access::expire(*s)) {
                all.push_back(s);
            }
        });
        for (const auto& s : all) {
            destroyed(s, s->id(), true, false);
            std::lock_guard order(session_access::order(*s));
            if (auto b = session_access::take_expired(*s)) {
                counters_->expired_sent.fetch_add(1, std::memory_order_relaxed);
                link_->send(destinations(*s), std::move(*b), engine::send_options::async, count_failures());
            }
        }
    }
    {
        std::unique_lock lock(lifetime_->mutex);
        lifetime_->open = false;
    }
    bulk_.stop();
    stop_base();
    link_->detach();
    {
        std::lock_guard lock(repl_mutex_);
        repl_cv_.notify_all();
    }
    manager_base::stop();
}

bool replication_core::await_state_transfer(std::chrono::milliseconds limit) {
    std::unique_lock lock(repl_mutex_);
    // `limit` counts from the start of the current phase: discovery, then the
    // transfer, each bounded on its own.
    // The bound is on the manager's clock; the wait is real (real_deadline),
    // computed again when a new phase moves the bound.
    const auto done = [&] { return !catching_up_ || stopping_; };
    auto bound = catch_up_started_ + limit;
    auto until = real_deadline(bound);
    while (!done()) {
        if (catch_up_started_ + limit != bound) {
            bound = catch_up_started_ + limit;
            until = real_deadline(bound);
        }
        if (repl_cv_.wait_until(lock, until) == std::cv_status::timeout && !done() &&
            catch_up_started_ + limit == bound) {
            return false;
        }
    }
    return true;
}

bool replication_core::transferring() const {
    std::lock_guard lock(repl_mutex_);
    return catching_up_;
}

std::size_t replication_core::awaiting() const {
    std::lock_guard lock(repl_mutex_);
    return awaiting_.size();
}

link::done_handler replication_core::count_failures() {
    // Owns what it touches: it may run after the manager is gone.
    return [c = counters_](const engine::send_result& r) {
        if (!r.ok()) {
            c->async_send_failures.fetch_add(1, std::memory_order_relaxed);
        }
    };
}

// ---------------------------------------------------------------------------
// Sending

replication_core::sent_changes replication_core::send_changes(const std::shared_ptr<session>& s, bool replicates,
                                                               bool ends_use,
                                                               const std::shared_ptr<send_waiter>& waiter,
                                                               const sent_changes* again_of) {
    const auto options = config().send_options;
    // The order lock spans the version step and the queuing, so messages of
    // one session leave in version order on every member's stream.
    std::lock_guard order(session_access::order(*s));
    if (again_of != nullptr) {
        // A resend (departed_only): only of the copy that holds the failed
        // step; a copy adopted since is another lineage, the request's change
        // is not in it. Marked under the order lock, so that no other send
        // (a restore's whole copy) takes the mark first.
        if (!session_access::lineage_has(*s, again_of->version, again_of->tag)) {
            return {0, again_of->version, again_of->tag, true, again_of->client_change};
        }
        if (again_of->client_change) {
            session_access::mark_changed(*s);
        }
    }
    auto to = destinations(*s);
    auto out = session_access::take_outgoing(*s, replicates, now(), self_.id, needs_whole_copy(*s, to), ends_use);
    if (out.superseded) {
        return {0, out.version, out.tag, true, out.client_change};
    }
    if (out.touched_only) {
        note_access(s);
        return {0, out.version, out.tag, false, out.client_change};
    }
    if (waiter) {
        // The waiter hears each member's answer (send_each), so it needs the
        // destinations up front: all expected before the first send.
        if (to.empty()) {
            for (const auto& m : link_->members()) {
                to.push_back(m.id);
            }
        }
        waiter->version = out.version;
        waiter->tag = out.tag;
        waiter->client_change = out.client_change;
        for (std::size_t i = 0; i < out.messages.size(); ++i) {
            for (const auto& m : to) {
                waiter->expect(m);
            }
        }
    }
    for (std::size_t i = 0; i < out.messages.size(); ++i) {
        switch (out.types[i]) {
        case wire::msg_type::created: counters_->created_sent.fetch_add(1, std::memory_order_relaxed); break;
        case wire::msg_type::delta: counters_->deltas_sent.fetch_add(1, std::memory_order_relaxed); break;
        case wire::msg_type::expired: counters_->expired_sent.fetch_add(1, std::memory_order_relaxed); break;
        case wire::msg_type::id_changed:
            counters_->id_changes_sent.fetch_add(1, std::memory_order_relaxed);
            break;
        default: break;
        }
        if (!waiter) {
            link_->send(to, std::move(out.messages[i]), options, count_failures());
            continue;
        }
        // One frame for every member; each answer reaches the waiter as it
        // comes, and the merged result settles what never answered (members
        // that left meanwhile, or that the channel refused at once).
        auto heard = std::make_shared<heard_from>();
        link_->send_each(
            to, std::move(out.messages[i]), options,
            [waiter, heard, laggards = laggards_](const member_id& m, const engine::send_result& one) {
                heard->add(m);
                if (answered(one)) {
                    laggards->remove(m); // it answers again: requests wait for it
                }
                waiter->done(m, one);
            },
            [waiter, heard, to](const engine::send_result& all) {
                for (const auto& m : to) {
                    if (!heard->has(m)) {
                        waiter->done(m, not_heard(m, all));
                    }
                }
            });
    }
    return {out.messages.size(), out.version, out.tag, false, out.client_change};
}

void replication_core::account(end_result& result, const std::shared_ptr<session>& s, std::uint64_t version,
                               std::uint64_t tag, bool client_change, engine::send_result merged, bool skipped) {
    if (skipped) {
        counters_->laggards_skipped.fetch_add(1, std::memory_order_relaxed);
    }
    bool refused = false;
    if (!merged.ok()) {
        counters().replication_failures.fetch_add(1, std::memory_order_relaxed);
        refused = std::any_of(merged.failures.begin(), merged.failures.end(), [](const auto& f) {
            return f.detail.rfind(stale_base_refusal, 0) == 0;
        });
        if (auto n = failure_log_.allow()) {
            log()->warn("context {}: replication of session {} failed: {} ({} such since the last line)",
                        config().context, s->id(), merged.describe(), *n);
        }
        if (refused) {
            // The response was computed from a copy another member had moved
            // past: whatever on_replication_failure says, it must not stand.
            counters_->requests_refused.fetch_add(1, std::memory_order_relaxed);
            fail(result, "the session changed elsewhere meanwhile: " + merged.describe());
        } else if (config().on_replication_failure == manager_config::on_failure::fail || strict_replication()) {
            fail(result, "replication failed: " + merged.describe());
        }
    }
    if (!result.error && minority_.load(std::memory_order_acquire)) {
        // Cut off from most of the cluster: the others may be serving this
        // session now, and will not take this change. Not acknowledged.
        counters_->minority_refusals.fetch_add(1, std::memory_order_relaxed);
        fail(result, "this node sees fewer than half of the cluster's members (or half, without the first by name): "
                       "a change made here now could "
                       "be lost when it rejoins");
    }
    if (!result.error && client_change && !session_access::acknowledge(*s, version, tag)) {
        // Another copy replaced ours while the members answered (a woken
        // member's refusal brought its copy, and ours was adopted over):
        // this copy no longer holds the step, so the request must not be
        // told it stands (the members that took it may still win later).
        counters_->requests_refused.fetch_add(1, std::memory_order_relaxed);
        fail(result, "session " + s->id() + " was replaced by another copy while its change replicated");
    }
    // Standing: the copy's stamp says so (acknowledge above). A failed step
    // stays unacknowledged, so it cannot outrank a copy that holds
    // acknowledged changes (lineage.hpp).
    replicated(s, version, !result.error);
    result.send = std::move(merged);
}

end_result replication_core::replicate(const std::shared_ptr<session>& s, bool replicates, bool ends_use) {
    if (stopping_) {
        session_access::commit_local(*s, ends_use);
        return {};
    }
    const bool wait = engine::send_options::wants_ack(config().send_options);
    auto waiter = wait ? make_waiter(s) : nullptr;
    const auto sent = send_changes(s, replicates, ends_use, waiter);
    end_result result;
    if (sent.superseded) {
        superseded(result, s->id());
        return result;
    }
    result.replicated = sent.messages > 0;
    if (!waiter || !result.replicated) {
        if (result.replicated) {
            if (sent.client_change) {
                session_access::acknowledge(*s, sent.version, sent.tag);
            }
            replicated(s, sent.version, true); // queued: all async options promise
        }
        return result;
    }
    if (link_->on_io_thread()) {
        fail(result, "end() with ack/sync send options on a troupe I/O thread: not waited for");
        return result;
    }
    // The members' answers; one that never came fails as a timeout.
    const auto answers = [this](send_waiter& w, bool& settled) {
        settled = w.wait(link_->wait_limit());
        auto merged = w.result();
        if (!settled) {
            merged.failures.push_back({self_, transport::error::ack_timeout, "no completion from the channel"});
        }
        return merged;
    };
    bool settled = false;
    auto merged = answers(*waiter, settled);
    auto step = sent;
    if (settled && departed_only(merged)) {
        auto again_waiter = make_waiter(s);
        if (const auto again = resend(s, sent, again_waiter)) {
            step = *again;
            waiter = std::move(again_waiter);
            merged = answers(*waiter, settled);
        }
    }
    account(result, s, step.version, step.tag, step.client_change, std::move(merged), waiter->skipped_any());
    return result;
}

bool replication_core::departed_only(const engine::send_result& merged) const {
    if (!strict_replication() || stopping_ || merged.ok() || minority_.load(std::memory_order_acquire)) {
        return false;
    }
    const auto members = link_->members();
    return std::all_of(merged.failures.begin(), merged.failures.end(), [&](const auto& f) {
        const bool departure = f.ec == transport::error::member_gone || f.ec == transport::error::not_a_member ||
                               f.ec == transport::error::connection_lost || f.ec == transport::error::ack_timeout;
        // A refusal (remote_failure: a stale base) is an answer, never a departure.
        return departure && f.member.id != self_.id &&
               std::none_of(members.begin(), members.end(), [&](const member& m) { return m.id == f.member.id; });
    });
}

std::optional<replication_core::sent_changes> replication_core::resend(const std::shared_ptr<session>& s,
                                                                       const sent_changes& failed,
                                                                       const std::shared_ptr<send_waiter>& waiter) {
    if (!session_access::lineage_has(*s, failed.version, failed.tag)) {
        // Another copy replaced this one meanwhile: the request's change is
        // not in it (send_changes checks again under the order lock).
        counters_->departure_resends_failed.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;
    }
    // The failed step is not acknowledged: the copy forgets the backup it
    // chose (the next step goes whole to the one chosen now).
    replicated(s, failed.version, false);
    auto again = send_changes(s, failed.client_change, false, waiter, &failed);
    if (again.messages == 0 || again.superseded) {
        counters_->departure_resends_failed.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;
    }
    counters_->departure_resends.fetch_add(1, std::memory_order_relaxed);
    return again;
}

bool replication_core::resend_later(const std::shared_ptr<session>& s, const sent_changes& failed,
                                    engine::send_result merged, result_handler done) {
    // Completes the request once, whatever happens to the task: a task the
    // stopping timer thread drops still fails its request.
    struct pending {
        result_handler done;
        std::string why;
        ~pending() {
            if (done) {
                end_result r;
                r.replicated = true;
                fail(r, why);
                deliver(done, std::move(r));
            }
        }
    };
    auto p = std::make_shared<pending>();
    p->done = std::move(done);
    p->why = "replication failed: " + merged.describe();
    const bool posted = timers().post([this, s, failed, merged = std::move(merged), p] {
        // On the timer thread: the manager is there until stop() joins it.
        if (stopping_) {
            return; // p fails the request as it goes
        }
        auto waiter = make_waiter(s);
        waiter->on_done = on_settled(s, waiter.get(), p->done, false);
        if (!resend(s, failed, waiter)) {
            waiter->on_done = nullptr;
            end_result result;
            result.replicated = true;
            account(result, s, failed.version, failed.tag, failed.client_change, merged, false);
            deliver(p->done, std::move(result));
        } else if (!waiter->poll()) {
            std::lock_guard lock(lingering_mutex_);
            lingering_.push_back(waiter);
        }
        p->done = nullptr; // delivered, or the waiter's on_done will
    });
    if (!posted) {
        p->done = nullptr; // the caller accounts for the failure itself
    }
    return posted;
}

std::function<void(engine::send_result)> replication_core::on_settled(const std::shared_ptr<session>& s,
                                                                      send_waiter* w, result_handler done,
                                                                      bool may_resend) {
    // Runs once, when the waiter settles: on an I/O thread or the timer
    // thread, maybe after this manager stopped (then only the caller hears of
    // a failure). It runs inside a call on the waiter, so `w` is there; the
    // version was set before the first send.
    return [this, life = lifetime_, s, w, done = std::move(done), may_resend](engine::send_result merged) {
        end_result result;
        result.replicated = true;
        {
            std::shared_lock lock(life->mutex);
            if (life->open) {
                if (may_resend && departed_only(merged) &&
                    resend_later(s, {1, w->version, w->tag, false, w->client_change}, merged, done)) {
                    return; // the resend completes the request
                }
                account(result, s, w->version, w->tag, w->client_change, merged, w->skipped_any());
            }
        }
        if (!result.send) {
            result.send = std::move(merged);
        }
        deliver(done, std::move(result));
    };
}

void replication_core::replicate_async(const std::shared_ptr<session>& s, bool replicates, bool ends_use,
                                       result_handler done) {
    if (stopping_ || !engine::send_options::wants_ack(config().send_options)) {
        deliver(done, replicate(s, replicates, ends_use));
        return;
    }
    auto waiter = make_waiter(s);
    waiter->on_done = on_settled(s, waiter.get(), done, true);
    const auto sent = send_changes(s, replicates, ends_use, waiter);
    if (sent.messages == 0) {
        waiter->on_done = nullptr;
        end_result result;
        if (sent.superseded) {
            superseded(result, s->id());
        }
        deliver(done, std::move(result));
        return;
    }
    if (!waiter->poll()) {
        // Not all answered yet: the timer thread applies the early rule.
        std::lock_guard lock(lingering_mutex_);
        lingering_.push_back(waiter);
    }
}

std::shared_ptr<send_waiter> replication_core::make_waiter(const std::shared_ptr<session>& s) {
    // on_replication_failure: fail asks for every member's answer: a member
    // that does not answer fails the request, as it says. With log (the
    // default) half of the group suffices after laggard_wait.
    const bool every_member =
        config().on_replication_failure == manager_config::on_failure::fail || strict_replication();
    auto waiter = every_member ? std::make_shared<send_waiter>()
                               : std::make_shared<send_waiter>(steady::now() + laggard_wait, laggards_);
    // A member skipped by the early rule whose send then failed missed this
    // step without (yet) being removed: it gets the whole session.
    waiter->on_late = [this, life = lifetime_, weak = std::weak_ptr<session>(s)](const member_id& m,
                                                                                 const engine::send_result& r) {
        const bool refused = std::any_of(r.failures.begin(), r.failures.end(), [](const auto& f) {
            return f.ec == transport::error::member_gone || f.ec == transport::error::not_a_member;
        });
        auto s = weak.lock();
        std::shared_lock lock(life->mutex);
        if (!life->open || !s || refused) {
            return; // gone from the view: it reconciles when it comes back
        }
        auto w = wire::counted_writer::newer_copy();
        if (session_access::add_to(*s, w, now())) {
            counters_->laggard_resyncs.fetch_add(1, std::memory_order_relaxed);
            link_->send({m}, w.finish(), engine::send_options::async, count_failures());
        }
    };
    return waiter;
}

void replication_core::settle_lingering() {
    std::vector<std::shared_ptr<send_waiter>> due;
    {
        std::lock_guard lock(lingering_mutex_);
        due.swap(lingering_);
    }
    std::vector<std::shared_ptr<send_waiter>> left;
    for (auto& w : due) {
        if (!w->poll()) {
            left.push_back(std::move(w));
        }
    }
    std::lock_guard lock(lingering_mutex_);
    lingering_.insert(lingering_.end(), std::make_move_iterator(left.begin()), std::make_move_iterator(left.end()));
}

void replication_core::superseded(end_result& result, const std::string& id) {
    counters_->requests_refused.fetch_add(1, std::memory_order_relaxed);
    fail(result, "session " + id + " was replaced by a newer copy from another member during the request");
    if (auto n = stale_log_.allow()) {
        log()->warn("context {}: {}; its changes are dropped ({} such since the last line)", config().context,
                    result.detail, *n);
    }
}

void replication_core::note_access(const std::shared_ptr<session>& s) {
    if (!session_access::announced(*s)) {
        return;
    }
    auto id = s->id();
    std::lock_guard lock(access_mutex_);
    accessed_.insert(std::move(id));
}

void replication_core::send_access_batch() {
    std::unordered_set<std::string> ids;
    {
        std::lock_guard lock(access_mutex_);
        ids.swap(accessed_);
    }
    if (ids.empty() || stopping_) {
        return;
    }
    const auto t = now();
    // One batch per set of destinations (the delta manager has one: everyone).
    std::map<std::vector<member_id>, wire::counted_writer> batches;
    auto flush = [&](const std::vector<member_id>& to, wire::counted_writer& batch) {
        if (batch.empty()) {
            return;
        }
        counters_->accessed_sent.fetch_add(batch.count(), std::memory_order_relaxed);
        counters_->access_batches_sent.fetch_add(1, std::memory_order_relaxed);
        link_->send(to, batch.finish(), engine::send_options::async, count_failures());
        batch = wire::counted_writer::accessed();
    };
    for (const auto& id : ids) {
        auto s = find(id);
        if (!s || !s->valid()) {
            continue;
        }
        auto to = destinations(*s);
        auto it = batches.find(to);
        if (it == batches.end()) {
            it = batches.emplace(std::move(to), wire::counted_writer::accessed()).first;
        }
        const auto idle = session_access::idle(*s, t).count();
        it->second.add_access(id, static_cast<std::uint32_t>(std::min<std::int64_t>(idle, UINT32_MAX)));
        if (it->second.size() >= access_chunk_bytes) {
            flush(it->first, it->second);
        }
    }
    for (auto& [to, batch] : batches) {
        flush(to, batch);
    }
}

void replication_core::expired_here(const std::shared_ptr<session>& s) {
    // Another member served it last: expiring it for everyone is that member's
    // job; we waited a grace period longer and end our copy quietly (Tomcat).
    if (stopping_ || !session_access::local(*s)) {
        return;
    }
    std::lock_guard order(session_access::order(*s));
    if (auto b = session_access::take_expired(*s)) {
        counters_->expired_sent.fetch_add(1, std::memory_order_relaxed);
        // Async whatever the options: this runs on the timer thread.
        link_->send(destinations(*s), std::move(*b), engine::send_options::async, count_failures());
    }
}

bool replication_core::route_in_view(std::string_view route) const {
    for (const auto& m : link_->members()) {
        if (m.name == route && m.state != membership::member_state::gone &&
            m.state != membership::member_state::left) {
            return true;
        }
    }
    return false;
}

void replication_core::route_renamed(const std::string& old_id, const std::string& new_id, std::uint64_t version) {
    std::lock_guard lock(repl_mutex_);
    tombstone_locked(old_id, version, true, new_id);
    // Taken back under an id it had before (x.a -> x.b -> x.a): that id's
    // old route end must not drop what comes for it now (an end for good,
    // an invalidation's, stays).
    if (auto it = tombstones_.find(new_id); it != tombstones_.end() && it->second.route) {
        tombstones_.erase(it);
    }
}

void replication_core::id_gone(const std::string& id) {
    std::lock_guard lock(repl_mutex_);
    // Ended or renamed here: whatever version a copy elsewhere is at, it ended.
    tombstone_locked(id, std::numeric_limits<std::uint64_t>::max());
}

std::chrono::milliseconds replication_core::expiry_grace() const {
    return 2 * config().access_batch_interval + config().expiry_interval + std::chrono::seconds(1);
}

// ---------------------------------------------------------------------------
// Statistics

void replication_core::add_stats(nlohmann::json& j) const {
    const auto& c = *counters_;
    auto& r = j["replication"];
    r["send_options"] = config().send_options;
    r["created_sent"] = c.created_sent.load();
    r["deltas_sent"] = c.deltas_sent.load();
    r["expired_sent"] = c.expired_sent.load();
    r["id_changes_sent"] = c.id_changes_sent.load();
    r["accessed_sent"] = c.accessed_sent.load();
    r["access_batches_sent"] = c.access_batches_sent.load();
    r["created_received"] = c.created_received.load();
    r["deltas_received"] = c.deltas_received.load();
    r["deltas_applied"] = c.deltas_applied.load();
    r["deltas_stale"] = c.deltas_stale.load();
    r["gaps"] = c.gaps.load();
    r["unknown_sessions"] = c.unknown_sessions.load();
    r["conflicts"] = c.conflicts.load();
    r["tombstone_drops"] = c.tombstone_drops.load();
    r["expired_received"] = c.expired_received.load();
    r["id_changes_received"] = c.id_changes_received.load();
    r["accessed_received"] = c.accessed_received.load();
    r["full_requests_sent"] = c.full_requests_sent.load();
    r["full_copies_received"] = c.full_copies_received.load();
    r["full_missing"] = c.full_missing.load();
    r["full_copies_sent"] = c.full_copies_sent.load();
    r["requests_given_up"] = c.requests_given_up.load();
    r["async_send_failures"] = c.async_send_failures.load();
    r["malformed"] = c.malformed.load();
    nlohmann::json reasons = nlohmann::json::object();
    for (std::size_t i = 1; i < c.malformed_by_reason.size(); ++i) {
        if (const auto n = c.malformed_by_reason[i].load()) {
            reasons[make_error_code(static_cast<error>(i)).message()] = n;
        }
    }
    r["malformed_by_reason"] = std::move(reasons);
    r["digest_entries_sent"] = c.digest_entries_sent.load();
    r["digest_bytes_sent"] = c.digest_bytes_sent.load();
    r["full_copy_bytes_sent"] = c.full_copy_bytes_sent.load();
    r["transfer_bytes_sent"] = c.transfer_bytes_sent.load();
    r["digest_entries_received"] = c.digest_entries_received.load();
    r["transfers_answered"] = c.transfers_answered.load();
    r["transfer_sessions_sent"] = c.transfer_sessions_sent.load();
    r["stale_transfer_messages"] = c.stale_transfer_messages.load();
    r["stale_bases_refused"] = c.stale_bases_refused.load();
    r["requests_refused"] = c.requests_refused.load();
    r["newer_copies_sent"] = c.newer_copies_sent.load();
    r["newer_copies_received"] = c.newer_copies_received.load();
    r["newer_copies_installed"] = c.newer_copies_installed.load();
    r["laggards_skipped"] = c.laggards_skipped.load();
    r["laggard_resyncs"] = c.laggard_resyncs.load();
    r["departure_resends"] = c.departure_resends.load();
    r["departure_resends_failed"] = c.departure_resends_failed.load();
    auto& rc = j["reconciliation"];
    rc["started"] = c.reconciles_started.load();
    rc["completed"] = c.reconciles_completed.load();
    rc["abandoned"] = c.reconciles_abandoned.load();
    rc["fetches"] = c.reconcile_fetches.load();
    rc["tombstones_applied"] = c.tombstones_applied.load();
    rc["conflicts"] = c.conflicts.load();
    rc["pauses_detected"] = c.pauses_detected.load();
    rc["unverified_waits"] = c.unverified_waits.load();
    rc["unverified_wait_timeouts"] = c.unverified_wait_timeouts.load();
    rc["minority_refusals"] = c.minority_refusals.load();
    rc["minority"] = minority_.load();
    std::lock_guard lock(repl_mutex_);
    r["awaiting"] = awaiting_.size();
    rc["in_progress"] = reconciling_.size();
    rc["blocking"] = std::count_if(reconciling_.begin(), reconciling_.end(),
                                   [](const auto& p) { return p.second.blocking; });
    r["discovering"] = discovering_;
    add_catch_up_stats_locked(j);
}

void replication_core::add_metrics(std::string& out) const {
    const std::string label = "{context=\"" + config().context + "\"}";
    auto counter = [&](const char* name, std::uint64_t v) {
        out += std::string("# TYPE ") + name + " counter\n" + name + label + " " + std::to_string(v) + "\n";
    };
    const auto& c = *counters_;
    counter("troupe_session_deltas_sent_total", c.deltas_sent.load());
    counter("troupe_session_deltas_received_total", c.deltas_received.load());
    counter("troupe_session_deltas_applied_total", c.deltas_applied.load());
    counter("troupe_session_gaps_total", c.gaps.load());
    counter("troupe_session_unknown_total", c.unknown_sessions.load());
    counter("troupe_session_conflicts_total", c.conflicts.load());
    counter("troupe_session_full_requests_total", c.full_requests_sent.load());
    counter("troupe_session_full_copies_received_total", c.full_copies_received.load());
    counter("troupe_session_async_send_failures_total", c.async_send_failures.load());
    counter("troupe_session_malformed_total", c.malformed.load());
    counter("troupe_session_transfer_sessions_sent_total", c.transfer_sessions_sent.load());
    counter("troupe_session_stale_bases_refused_total", c.stale_bases_refused.load());
    counter("troupe_session_requests_refused_total", c.requests_refused.load());
    counter("troupe_session_newer_copies_installed_total", c.newer_copies_installed.load());
    counter("troupe_session_laggards_skipped_total", c.laggards_skipped.load());
    counter("troupe_session_laggard_resyncs_total", c.laggard_resyncs.load());
    counter("troupe_session_departure_resends_total", c.departure_resends.load());
    counter("troupe_session_departure_resends_failed_total", c.departure_resends_failed.load());
    counter("troupe_session_reconciles_total", c.reconciles_completed.load());
    counter("troupe_session_reconciles_abandoned_total", c.reconciles_abandoned.load());
    counter("troupe_session_reconcile_fetches_total", c.reconcile_fetches.load());
    counter("troupe_session_pauses_detected_total", c.pauses_detected.load());
    counter("troupe_session_unverified_waits_total", c.unverified_waits.load());
    counter("troupe_session_unverified_wait_timeouts_total", c.unverified_wait_timeouts.load());
    counter("troupe_session_minority_refusals_total", c.minority_refusals.load());
}

} // namespace troupe::managers::detail
