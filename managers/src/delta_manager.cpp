// SPDX-License-Identifier: Apache-2.0
#include "delta_manager.hpp"

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

constexpr int request_attempts = 5;
/// How long a removed id is remembered, so that a late message does not bring it back.
constexpr auto tombstone_ttl = std::chrono::seconds(120);
constexpr std::size_t tombstone_cap = 1u << 20;
/// Chunks of a state transfer in flight at once (each acknowledged once applied).
constexpr int transfer_window = 4;
/// How a replica's NACK of a delta built on a stale copy begins (the sender
/// recognises it in the failure's detail).
constexpr std::string_view stale_base_refusal = "stale base: ";
/// Requests for this many sessions or fewer are answered on the I/O thread.
constexpr std::size_t inline_answer = 16;
constexpr std::size_t access_chunk_bytes = 64 * 1024;

std::string describe(const member& m) { return m.name + " (" + m.endpoint() + ")"; }

template <typename T>
T& as(wire::message& m) {
    return std::get<T>(m);
}

/// The chunks of a state transfer in flight: at most transfer_window at once.
struct send_window {
    std::mutex mutex;
    std::condition_variable cv;
    int in_flight = 0;
    bool failed = false;
    std::string error;
};

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

} // namespace

delta_manager::delta_manager(std::unique_ptr<link> l, manager_config config)
    : manager_base(l->self().name, std::move(config))
    , link_(std::move(l))
    , self_(link_->self())
    , bulk_("troupe-xfer-" + this->config().context) {
    note_tick();
}

delta_manager::~delta_manager() { stop(); }

bool delta_manager::older(const member& m) const {
    return std::tie(m.incarnation, m.id) < std::tie(self_.incarnation, self_.id);
}

std::uint64_t delta_manager::random_request() const {
    std::uint64_t v = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) {
        v = static_cast<std::uint64_t>(steady::now().time_since_epoch().count());
    }
    return v == 0 ? 1 : v;
}

void delta_manager::start() {
    self_ = link_->self();
    link_->attach({[this](const member& from, std::span<const std::uint8_t> payload) { on_message(from, payload); },
                   [this](const member& m) { on_member(m); }});
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
        start_transfer_locked(a);
    }
    run(a);
}

void delta_manager::stop() {
    if (stopping_.exchange(true)) {
        return;
    }
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
                link_->send({}, std::move(*b), engine::send_options::async, count_failures());
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

bool delta_manager::await_state_transfer(std::chrono::milliseconds limit) {
    std::unique_lock lock(repl_mutex_);
    return repl_cv_.wait_for(lock, limit, [&] { return !transferring_ || stopping_; });
}

bool delta_manager::transferring() const {
    std::lock_guard lock(repl_mutex_);
    return transferring_;
}

std::size_t delta_manager::awaiting() const {
    std::lock_guard lock(repl_mutex_);
    return awaiting_.size();
}

link::done_handler delta_manager::count_failures() {
    // Owns what it touches: it may run after the manager is gone.
    return [c = counters_](const engine::send_result& r) {
        if (!r.ok()) {
            c->async_send_failures.fetch_add(1, std::memory_order_relaxed);
        }
    };
}

// ---------------------------------------------------------------------------
// Sending

delta_manager::sent_changes delta_manager::send_changes(const std::shared_ptr<session>& s, bool replicates,
                                                      const std::shared_ptr<send_waiter>& waiter) {
    const auto options = config().send_options;
    // The order lock spans the version step and the queuing, so messages of
    // one session leave in version order on every member's stream.
    std::lock_guard order(session_access::order(*s));
    auto out = session_access::take_outgoing(*s, replicates, now(), self_.id);
    if (out.superseded) {
        return {0, out.version, true};
    }
    if (out.touched_only) {
        note_access(s);
        return {0, out.version, false};
    }
    std::vector<member_id> to;
    if (waiter) {
        // The waiter hears each member's answer (send_each), so it needs the
        // destinations up front: all expected before the first send.
        for (const auto& m : link_->members()) {
            to.push_back(m.id);
        }
        waiter->version = out.version;
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
            link_->send({}, std::move(out.messages[i]), options, count_failures());
            continue;
        }
        // One frame for every member; each answer reaches the waiter as it
        // comes, and the merged result settles what never answered (members
        // that left meanwhile, or that the channel refused at once).
        auto heard = std::make_shared<heard_from>();
        link_->send_each(
            to, std::move(out.messages[i]), options,
            [waiter, heard](const member_id& m, const engine::send_result& one) {
                heard->add(m);
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
    return {out.messages.size(), out.version, false};
}

void delta_manager::account(end_result& result, const std::shared_ptr<session>& s, std::uint64_t version,
                            engine::send_result merged, bool skipped) {
    if (skipped) {
        counters_->laggards_skipped.fetch_add(1, std::memory_order_relaxed);
    }
    if (!merged.ok()) {
        counters().replication_failures.fetch_add(1, std::memory_order_relaxed);
        const bool refused = std::any_of(merged.failures.begin(), merged.failures.end(), [](const auto& f) {
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
            result.error = "the session changed elsewhere meanwhile: " + merged.describe();
        } else if (config().on_replication_failure == manager_config::on_failure::fail) {
            result.error = "replication failed: " + merged.describe();
        }
    }
    if (result.error.empty() && minority_.load(std::memory_order_acquire)) {
        // Cut off from most of the cluster: the others may be serving this
        // session now, and will not take this change. Not acknowledged.
        counters_->minority_refusals.fetch_add(1, std::memory_order_relaxed);
        result.error = "this node sees fewer than half of the cluster's members: a change made here now could "
                       "be lost when it rejoins";
    }
    if (!result.error.empty()) {
        // Never acknowledged: this copy must not win over one that may hold
        // acknowledged changes (lineage.hpp).
        session_access::disown(*s, version);
    }
    result.send = std::move(merged);
}

end_result delta_manager::replicate(const std::shared_ptr<session>& s, bool replicates) {
    if (stopping_) {
        session_access::commit_local(*s);
        return {};
    }
    const bool wait = engine::send_options::wants_ack(config().send_options);
    auto waiter = wait ? make_waiter(s) : nullptr;
    const auto sent = send_changes(s, replicates, waiter);
    end_result result;
    if (sent.superseded) {
        superseded(result, s->id());
        return result;
    }
    result.replicated = sent.messages > 0;
    if (!waiter || !result.replicated) {
        return result;
    }
    if (link_->on_io_thread()) {
        result.error = "end() with ack/sync send options on a troupe I/O thread: not waited for";
        return result;
    }
    const bool settled = waiter->wait(link_->wait_limit());
    auto merged = waiter->result();
    if (!settled) {
        merged.failures.push_back({self_, transport::error::ack_timeout, "no completion from the channel"});
    }
    account(result, s, sent.version, std::move(merged), waiter->skipped_any());
    return result;
}

void delta_manager::replicate_async(const std::shared_ptr<session>& s, bool replicates, end_handler done) {
    if (stopping_ || !engine::send_options::wants_ack(config().send_options)) {
        done(replicate(s, replicates));
        return;
    }
    auto waiter = make_waiter(s);
    // Runs once, when it settles: on an I/O thread or the timer thread, maybe
    // after this manager stopped (then only the caller hears of a failure).
    // It runs inside a call on the waiter, so the waiter is there; the
    // version was set before the first send.
    waiter->on_done = [this, life = lifetime_, s, w = waiter.get(), done](engine::send_result merged) {
        end_result result;
        result.replicated = true;
        {
            std::shared_lock lock(life->mutex);
            if (life->open) {
                account(result, s, w->version, merged, w->skipped_any());
            }
        }
        if (!result.send) {
            result.send = std::move(merged);
        }
        done(std::move(result));
    };
    const auto sent = send_changes(s, replicates, waiter);
    if (sent.messages == 0) {
        waiter->on_done = nullptr;
        end_result result;
        if (sent.superseded) {
            superseded(result, s->id());
        }
        done(std::move(result));
        return;
    }
    if (!waiter->poll()) {
        // Not all answered yet: the timer thread applies the early rule.
        std::lock_guard lock(lingering_mutex_);
        lingering_.push_back(waiter);
    }
}

std::shared_ptr<send_waiter> delta_manager::make_waiter(const std::shared_ptr<session>& s) {
    // on_replication_failure: fail asks for every member's answer: a member
    // that does not answer fails the request, as it says. With log (the
    // default) half of the group suffices after laggard_wait.
    const bool every_member = config().on_replication_failure == manager_config::on_failure::fail;
    auto waiter = std::make_shared<send_waiter>(every_member ? steady::time_point::max()
                                                             : steady::now() + laggard_wait);
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

void delta_manager::settle_lingering() {
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

void delta_manager::superseded(end_result& result, const std::string& id) {
    counters_->requests_refused.fetch_add(1, std::memory_order_relaxed);
    result.error = "session " + id + " was replaced by a newer copy from another member during the request";
    if (auto n = stale_log_.allow()) {
        log()->warn("context {}: {}; its changes are dropped ({} such since the last line)", config().context,
                    result.error, *n);
    }
}

void delta_manager::note_access(const std::shared_ptr<session>& s) {
    if (!session_access::announced(*s)) {
        return;
    }
    auto id = s->id();
    std::lock_guard lock(access_mutex_);
    accessed_.insert(std::move(id));
}

void delta_manager::send_access_batch() {
    std::unordered_set<std::string> ids;
    {
        std::lock_guard lock(access_mutex_);
        ids.swap(accessed_);
    }
    if (ids.empty() || stopping_) {
        return;
    }
    const auto t = now();
    auto batch = wire::counted_writer::accessed();
    auto flush = [&] {
        if (batch.empty()) {
            return;
        }
        counters_->accessed_sent.fetch_add(batch.count(), std::memory_order_relaxed);
        counters_->access_batches_sent.fetch_add(1, std::memory_order_relaxed);
        link_->send({}, batch.finish(), engine::send_options::async, count_failures());
        batch = wire::counted_writer::accessed();
    };
    for (const auto& id : ids) {
        auto s = find(id);
        if (!s || !s->valid()) {
            continue;
        }
        const auto idle = session_access::idle(*s, t).count();
        batch.add_access(id, static_cast<std::uint32_t>(std::min<std::int64_t>(idle, UINT32_MAX)));
        if (batch.size() >= access_chunk_bytes) {
            flush();
        }
    }
    flush();
}

void delta_manager::expired_here(const std::shared_ptr<session>& s) {
    // Another member served it last: expiring it for everyone is that member's
    // job; we waited a grace period longer and end our copy quietly (Tomcat).
    if (stopping_ || !session_access::local(*s)) {
        return;
    }
    std::lock_guard order(session_access::order(*s));
    if (auto b = session_access::take_expired(*s)) {
        counters_->expired_sent.fetch_add(1, std::memory_order_relaxed);
        // Async whatever the options: this runs on the timer thread.
        link_->send({}, std::move(*b), engine::send_options::async, count_failures());
    }
}

void delta_manager::id_gone(const std::string& id) {
    std::lock_guard lock(repl_mutex_);
    // Ended or renamed here: whatever version a copy elsewhere is at, it ended.
    tombstone_locked(id, std::numeric_limits<std::uint64_t>::max());
}

std::chrono::milliseconds delta_manager::expiry_grace() const {
    return 2 * config().access_batch_interval + config().expiry_interval + std::chrono::seconds(1);
}

// ---------------------------------------------------------------------------
// Receiving

void delta_manager::malformed(const member& from, const boost::system::error_code& ec, std::size_t size) {
    counters_->malformed.fetch_add(1, std::memory_order_relaxed);
    const auto reason = static_cast<std::size_t>(ec.value());
    if (ec.category() == managers_category() && reason < counters_->malformed_by_reason.size()) {
        counters_->malformed_by_reason[reason].fetch_add(1, std::memory_order_relaxed);
    }
    // The first one always, later ones at most once a minute.
    if (!malformed_logged_.exchange(true)) {
        log()->warn("context {}: rejected a malformed message of {} bytes from {}: {}", config().context, size,
                    describe(from), ec.message());
        (void)malformed_log_.allow();
    } else if (auto n = malformed_log_.allow()) {
        log()->warn("context {}: rejected a malformed message of {} bytes from {}: {} ({} more since the "
                    "last line)",
                    config().context, size, describe(from), ec.message(), *n);
    }
}

void delta_manager::on_message(const member& from, std::span<const std::uint8_t> payload) {
    if (stopping_) {
        return;
    }
    wire::message m;
    if (auto ec = wire::decode(payload, m)) {
        malformed(from, ec, payload.size());
        return;
    }
    const auto type = wire::type_of(m);
    if (type == wire::msg_type::get_all) {
        auto g = as<wire::get_all_msg>(m);
        if (g.what == wire::get_all_msg::mode::reconcile || g.what == wire::get_all_msg::mode::rejoin) {
            on_get_all_reconcile(from, g);
        }
        bulk_.post([this, from, g] { answer_get_all(from, g); });
        return;
    }
    if (type == wire::msg_type::get_sessions) {
        auto& ids = as<wire::get_sessions_msg>(m).ids;
        if (ids.size() <= inline_answer) {
            answer_get_sessions(from, ids);
        } else {
            bulk_.post([this, from, ids = std::move(ids)] { answer_get_sessions(from, ids); });
        }
        return;
    }
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        // A digest's end queues behind its chunks, unless it ends the transfer itself.
        const bool queueable =
            type == wire::msg_type::created || type == wire::msg_type::delta || type == wire::msg_type::expired ||
            type == wire::msg_type::accessed || type == wire::msg_type::id_changed ||
            type == wire::msg_type::digest ||
            (type == wire::msg_type::transfer_complete &&
             as<wire::transfer_complete_msg>(m).request != transfer_.request);
        if (transferring_ && queueable) {
            queue_.push_back({from, std::move(m), payload.size()});
            return;
        }
        dispatch_locked(from, m, payload.size(), a);
    }
    run(a);
    if (!a.refuse.empty()) {
        // The channel turns this into a NACK for an ack/sync sender.
        throw std::runtime_error(a.refuse);
    }
}

void delta_manager::dispatch_locked(const member& from, wire::message& m, std::size_t bytes, actions& a) {
    switch (wire::type_of(m)) {
    case wire::msg_type::created:
        counters_->created_received.fetch_add(1, std::memory_order_relaxed);
        install_locked(as<wire::created_msg>(m).s, install_mode::if_wins, a);
        break;
    case wire::msg_type::delta: on_delta_locked(from, as<wire::delta_msg>(m), a); break;
    case wire::msg_type::expired: on_expired_locked(from, as<wire::expired_msg>(m), a); break;
    case wire::msg_type::accessed: on_accessed_locked(as<wire::accessed_msg>(m)); break;
    case wire::msg_type::id_changed: on_id_changed_locked(from, as<wire::id_changed_msg>(m), a); break;
    case wire::msg_type::all_data: {
        auto& d = as<wire::all_data_msg>(m);
        if (!transferring_ || d.request != transfer_.request) {
            counters_->stale_transfer_messages.fetch_add(1, std::memory_order_relaxed);
            break;
        }
        if (d.seq == 0) {
            break; // the opening chunk: the source can reach us
        }
        ++transfer_.chunks;
        transfer_.bytes += bytes;
        counters_->transfer_chunks_received.fetch_add(1, std::memory_order_relaxed);
        for (const auto& f : d.sessions) {
            install_locked(f, install_mode::if_wins, a);
            ++transfer_.sessions;
        }
        break;
    }
    case wire::msg_type::transfer_complete: {
        const auto& c = as<wire::transfer_complete_msg>(m);
        if (transferring_ && c.request == transfer_.request) {
            if (c.sessions != transfer_.sessions) {
                log()->warn("context {}: state transfer from {} announced {} sessions, {} arrived",
                            config().context, describe(from), c.sessions, transfer_.sessions);
            }
            finish_transfer_locked(true, {}, a);
        } else if (!digest_complete_locked(from, c.request)) {
            counters_->stale_transfer_messages.fetch_add(1, std::memory_order_relaxed);
        }
        break;
    }
    case wire::msg_type::no_such_context: {
        const auto& n = as<wire::no_such_context_msg>(m);
        if (transferring_ && n.request == transfer_.request) {
            next_source_locked(describe(from) + " has no manager for this context", a);
        }
        break;
    }
    case wire::msg_type::session_data: on_session_data_locked(from, as<wire::session_data_msg>(m), a); break;
    case wire::msg_type::digest: on_digest_locked(from, as<wire::digest_msg>(m), a); break;
    case wire::msg_type::newer_copy: on_newer_copy_locked(from, as<wire::newer_copy_msg>(m), a); break;
    case wire::msg_type::get_all:
    case wire::msg_type::get_sessions: break; // handled before the lock
    }
}

void delta_manager::run(actions& a) {
    for (auto& [to, ids] : a.requests) {
        wire::get_sessions_msg g;
        g.ids = std::move(ids);
        counters_->full_requests_sent.fetch_add(g.ids.size(), std::memory_order_relaxed);
        link_->send({to}, wire::encode(g), engine::send_options::async, count_failures());
    }
    for (auto& [to, b] : a.sends) {
        link_->send({to}, std::move(b), engine::send_options::async, count_failures());
    }
    if (a.get_all) {
        std::uint64_t request = 0;
        member_id source;
        {
            std::lock_guard lock(repl_mutex_);
            request = transfer_.request;
            source = transfer_.source.id;
        }
        wire::get_all_msg g{request, wire::get_all_msg::mode::full};
        // sync: a member without this context answers with a NACK (no listener)
        // at once, instead of leaving us to wait out the timeout.
        link_->send({source}, wire::encode(g), engine::send_options::sync,
                    [this, life = lifetime_, request](engine::send_result r) {
                        if (r.ok()) {
                            return;
                        }
                        std::shared_lock lock(life->mutex);
                        if (life->open) {
                            transfer_send_failed(request, r);
                        }
                    });
    }
    if (a.digests) {
        const auto request = random_request();
        std::uint64_t source_request = 0;
        member_id source;
        {
            std::lock_guard lock(repl_mutex_);
            source = transfer_.source.id;
            source_request = transfer_.request;
        }
        for (const auto& m : link_->members()) {
            if (m.id == source && source_request != 0) {
                continue;
            }
            wire::get_all_msg g{request, wire::get_all_msg::mode::digest};
            link_->send({m.id}, wire::encode(g), engine::send_options::async, count_failures());
        }
    }
    for (auto& [from, g] : a.answer) {
        bulk_.post([this, from = from, g = g] { answer_get_all(from, g); });
    }
    for (const auto& [to, request, mode] : a.reconcile) {
        // ack: a member that is not in our view yet (its rejoin came in
        // before our side re-admitted it) fails the send; we ask again.
        link_->send({to}, wire::encode(wire::get_all_msg{request, mode}), engine::send_options::ack,
                    [this, life = lifetime_, to = to, request = request](engine::send_result r) {
                        if (r.ok() && r.destinations > 0) {
                            return;
                        }
                        std::shared_lock lock(life->mutex);
                        if (life->open) {
                            reconcile_send_failed(to, request);
                        }
                    });
    }
    for (const auto& e : a.events) {
        if (e.what == session_event::kind::destroyed || fire_on_replication()) {
            fire(e);
        }
    }
}

bool delta_manager::tombstoned_locked(const std::string& id) const { return tombstones_.count(id) > 0; }

void delta_manager::tombstone_locked(const std::string& id, std::uint64_t version) {
    const auto t = steady::now();
    auto [it, fresh] = tombstones_.try_emplace(id, tombstone{t, version});
    if (!fresh) {
        it->second.at = t;
        it->second.version = std::max(it->second.version, version);
    }
    // A refreshed one gets a new place in the order; the old place expires
    // nothing (its time no longer matches).
    tombstone_order_.emplace_back(t, id);
    while (tombstones_.size() > tombstone_cap && !tombstone_order_.empty()) {
        tombstones_.erase(tombstone_order_.front().second);
        tombstone_order_.pop_front();
    }
}

void delta_manager::on_delta_locked(const member& from, wire::delta_msg& d, actions& a) {
    counters_->deltas_received.fetch_add(1, std::memory_order_relaxed);
    if (tombstoned_locked(d.id)) {
        counters_->tombstone_drops.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    auto s = find(d.id);
    if (auto it = awaiting_.find(d.id); it != awaiting_.end()) {
        // A copy is on its way. A delta that our copy has already moved past
        // is refused now: once buffered it would be acknowledged unapplied.
        if (s) {
            if (const auto mine = session_access::valid_stamp(*s);
                mine && d.after <= mine->version && !session_access::lineage_has(*s, d.after, d.after_tag)) {
                refuse_stale_locked(from, d, s, a);
                return;
            }
        }
        const auto id = d.id;
        it->second.buffered.emplace_back(from.id, std::move(d));
        if (it->second.answered) {
            drain_locked(id, a);
        }
        return;
    }
    if (!s) {
        // Tribes ignores these (an update lost for good): ask for the whole session.
        counters_->unknown_sessions.fetch_add(1, std::memory_order_relaxed);
        const auto id = d.id;
        await_locked(id, from.id, a, &d);
        return;
    }
    switch (session_access::apply_delta(*s, d, now(), fire_on_replication(), a.events)) {
    case apply_result::applied: counters_->deltas_applied.fetch_add(1, std::memory_order_relaxed); break;
    case apply_result::stale:
    case apply_result::invalid: counters_->deltas_stale.fetch_add(1, std::memory_order_relaxed); break;
    case apply_result::stale_base: refuse_stale_locked(from, d, s, a); break;
    case apply_result::gap: {
        counters_->gaps.fetch_add(1, std::memory_order_relaxed);
        const auto id = d.id;
        await_locked(id, from.id, a, &d);
        break;
    }
    }
}

void delta_manager::refuse_stale_locked(const member& from, const wire::delta_msg& d,
                                        const std::shared_ptr<session>& s, actions& a) {
    // The writer served a copy we have moved past (it was frozen, cut off, or
    // raced another member): applying the delta would undo what we hold.
    // Refuse it, so its request fails, and send our copy, so it stops serving
    // the stale one (newer_copy is installed over an unconfirmed copy).
    counters_->stale_bases_refused.fetch_add(1, std::memory_order_relaxed);
    const auto mine = session_access::valid_stamp(*s);
    auto w = wire::counted_writer::newer_copy();
    if (session_access::add_to(*s, w, now())) {
        counters_->newer_copies_sent.fetch_add(1, std::memory_order_relaxed);
        a.sends.emplace_back(from.id, w.finish());
    }
    a.refuse = std::string(stale_base_refusal) + "session " + d.id + " is at version " +
               std::to_string(mine ? mine->version : 0) + " on " + self_.name + "; the change was built on version " +
               std::to_string(d.before);
    if (auto n = stale_log_.allow()) {
        log()->warn("context {}: refused a change to session {} from {}: built on version {}, this copy is at {} "
                    "({} such since the last line)",
                    config().context, d.id, describe(from), d.before, mine ? mine->version : 0, *n);
    }
}

void delta_manager::await_locked(const std::string& id, const member_id& ask, actions& a,
                                 wire::delta_msg* buffered) {
    auto [it, fresh] = awaiting_.try_emplace(id);
    auto& w = it->second;
    if (buffered != nullptr) {
        w.buffered.emplace_back(ask, std::move(*buffered));
    }
    if (fresh || w.answered) {
        w.asked = ask;
        w.asked_at = steady::now();
        w.answered = false;
        ++w.attempts;
        a.requests[ask].push_back(id);
    }
}

bool delta_manager::install_locked(const wire::full_session& f, install_mode mode, actions& a) {
    if (tombstoned_locked(f.id)) {
        counters_->tombstone_drops.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    bool installed = false;
    auto s = find(f.id);
    if (!s) {
        s = session_access::from_full(f, now());
        installed = store().insert(s);
        if (installed && fire_on_replication()) {
            a.events.push_back({session_event::kind::created, f.id, {}, true, false});
        }
    } else {
        bool diverged = false;
        installed = session_access::install(*s, f, now(), mode, &diverged);
        if (installed && diverged) {
            // Both copies changed while apart (or two members wrote at once):
            // counted where the losing copy is replaced, once per member.
            counters_->conflicts.fetch_add(1, std::memory_order_relaxed);
            log()->warn("context {}: session {} diverged: this member's copy was replaced by the winning copy at "
                        "version {}",
                        config().context, f.id, f.version);
        }
    }
    drain_locked(f.id, a);
    return installed;
}

void delta_manager::drain_locked(const std::string& id, actions& a) {
    auto it = awaiting_.find(id);
    if (it == awaiting_.end()) {
        return;
    }
    auto s = find(id);
    if (!s) {
        return; // still unknown: the copy has not come
    }
    auto& w = it->second;
    std::stable_sort(w.buffered.begin(), w.buffered.end(),
                     [](const auto& x, const auto& y) { return x.second.before < y.second.before; });
    std::vector<std::pair<member_id, wire::delta_msg>> left;
    for (auto& [from, d] : w.buffered) {
        switch (session_access::apply_delta(*s, d, now(), fire_on_replication(), a.events)) {
        case apply_result::applied: counters_->deltas_applied.fetch_add(1, std::memory_order_relaxed); break;
        case apply_result::gap: left.emplace_back(from, std::move(d)); break;
        default: counters_->deltas_stale.fetch_add(1, std::memory_order_relaxed); break;
        }
    }
    if (left.empty()) {
        awaiting_.erase(it);
        repl_cv_.notify_all();
        return;
    }
    w.buffered = std::move(left);
    if (w.answered) {
        // The copy came and a gap remains (the copy was older than a buffered
        // delta): ask whoever sent the earliest one, which has at least that.
        const auto ask = w.buffered.front().first;
        w.answered = false;
        w.asked = ask;
        w.asked_at = steady::now();
        ++w.attempts;
        a.requests[ask].push_back(id);
    }
}

void delta_manager::on_session_data_locked(const member& from, wire::session_data_msg& m, actions& a) {
    for (const auto& f : m.found) {
        counters_->full_copies_received.fetch_add(1, std::memory_order_relaxed);
        if (auto it = awaiting_.find(f.id); it != awaiting_.end()) {
            it->second.answered = true;
        }
        install_locked(f, install_mode::if_wins, a);
    }
    for (const auto& id : m.missing) {
        counters_->full_missing.fetch_add(1, std::memory_order_relaxed);
        if (auto it = awaiting_.find(id); it != awaiting_.end() && it->second.asked == from.id) {
            // The sender no longer has it (expired or renamed meanwhile).
            awaiting_.erase(it);
        }
    }
    repl_cv_.notify_all();
}

void delta_manager::on_expired_locked(const member& from, const wire::expired_msg& e, actions& a) {
    (void)from;
    counters_->expired_received.fetch_add(1, std::memory_order_relaxed);
    tombstone_locked(e.id, e.version);
    drop_locked(e.id, e.invalidated, a);
}

void delta_manager::drop_locked(const std::string& id, bool invalidated, actions& a) {
    awaiting_.erase(id);
    repl_cv_.notify_all();
    auto s = store().erase(id);
    if (!s) {
        return;
    }
    const bool changed = invalidated ? session_access::invalidate(*s) : session_access::expire(*s);
    if (changed) {
        (invalidated ? counters().invalidated : counters().expired).fetch_add(1, std::memory_order_relaxed);
        if (fire_on_replication()) {
            a.events.push_back({session_event::kind::destroyed, id, {}, true, !invalidated});
        }
    }
}

void delta_manager::on_accessed_locked(const wire::accessed_msg& m) {
    const auto t = now();
    counters_->accessed_received.fetch_add(m.entries.size(), std::memory_order_relaxed);
    for (const auto& [id, idle] : m.entries) {
        if (auto s = find(id)) {
            session_access::touch_remote(*s, std::chrono::milliseconds(idle), t);
        }
    }
}

void delta_manager::on_id_changed_locked(const member& from, const wire::id_changed_msg& m, actions& a) {
    counters_->id_changes_received.fetch_add(1, std::memory_order_relaxed);
    if (tombstoned_locked(m.new_id)) {
        counters_->tombstone_drops.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    tombstone_locked(m.old_id, m.after);
    if (awaiting_.erase(m.old_id) > 0) {
        await_locked(m.new_id, from.id, a, nullptr);
        return;
    }
    auto s = find(m.old_id);
    if (!s) {
        if (!find(m.new_id)) {
            await_locked(m.new_id, from.id, a, nullptr);
        }
        return;
    }
    const auto r = session_access::apply_rename_version(*s, m.before, m.after, from.id, now());
    store().rename(s, m.old_id, m.new_id, false);
    if (r == apply_result::gap) {
        counters_->gaps.fetch_add(1, std::memory_order_relaxed);
        await_locked(m.new_id, from.id, a, nullptr);
    }
}

// ---------------------------------------------------------------------------
// State transfer, joiner side

void delta_manager::start_transfer_locked(actions& a) {
    if (transfer_done_ || stopping_) {
        return;
    }
    std::vector<member> candidates;
    for (const auto& m : link_->members()) {
        if (older(m) && tried_.count(m.id) == 0 && m.state == membership::member_state::alive) {
            candidates.push_back(m);
        }
    }
    if (candidates.empty()) {
        if (transferring_) {
            finish_transfer_locked(false, "no other member to ask", a);
        }
        return;
    }
    std::sort(candidates.begin(), candidates.end(), [](const member& x, const member& y) {
        return std::tie(x.incarnation, x.id) < std::tie(y.incarnation, y.id);
    });
    const bool first = !transferring_;
    transferring_ = true;
    transfer_.source = candidates.front();
    transfer_.request = random_request();
    if (first) {
        transfer_.started = steady::now();
        transfer_.sessions = 0;
        transfer_.chunks = 0;
        transfer_.bytes = 0;
    }
    transfer_.state = "running";
    transfer_.retry_at.reset();
    a.get_all = true;
    log()->info("context {}: asking {} for every session", config().context, describe(transfer_.source));
}

void delta_manager::transfer_send_failed(std::uint64_t request, const engine::send_result& r) {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        if (!transferring_ || transfer_.request != request) {
            return;
        }
        const bool no_context = std::any_of(r.failures.begin(), r.failures.end(), [](const auto& f) {
            return f.ec == transport::error::no_listener;
        });
        if (no_context) {
            next_source_locked(describe(transfer_.source) + " has no manager for context '" + config().context +
                                   "'",
                               a);
        } else {
            // Most often the source is known but our stream to it is not up yet:
            // ask it again shortly (the transfer timeout bounds the whole).
            SPDLOG_LOGGER_DEBUG(log(), "context {}: asking {} failed ({}); retrying", config().context,
                                describe(transfer_.source), r.describe());
            transfer_.retry_at = steady::now() + std::chrono::milliseconds(200);
        }
    }
    run(a);
}

void delta_manager::next_source_locked(const std::string& why, actions& a) {
    log()->info("context {}: state transfer: {}; trying another member", config().context, why);
    tried_.insert(transfer_.source.id);
    transfer_.detail = why;
    start_transfer_locked(a);
}

void delta_manager::finish_transfer_locked(bool ok, const std::string& why, actions& a) {
    const auto t = steady::now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - transfer_.started).count();
    if (ok) {
        log()->info("context {}: state transfer from {} done: {} sessions in {} chunks ({} bytes) in {} ms; "
                    "replaying {} queued messages",
                    config().context, describe(transfer_.source), transfer_.sessions, transfer_.chunks,
                    transfer_.bytes, ms, queue_.size());
        transfer_.state = "done";
    } else {
        log()->warn("context {}: state transfer {} after {} ms: {}; received {} sessions in {} chunks from {}, "
                    "no transfer-complete; replaying {} queued messages, fetching the rest as needed",
                    config().context, why == "timed out" ? "timed out" : "failed", ms, why, transfer_.sessions,
                    transfer_.chunks, transfer_.source.name.empty() ? "nobody" : describe(transfer_.source),
                    queue_.size());
        transfer_.state = why == "timed out" ? "timed_out" : "failed";
        transfer_.detail = transfer_.detail.empty() ? why : transfer_.detail + "; " + why;
    }
    transfer_.finished = t;
    transferring_ = false;
    transfer_done_ = true;
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
    a.digests = true;
    repl_cv_.notify_all();
}

void delta_manager::on_member(const member& m) {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        if (m.state == membership::member_state::alive) {
            if (!transfer_done_ && !transferring_ && older(m)) {
                start_transfer_locked(a);
            }
            if (auto r = reconciling_.find(m.id); r != reconciling_.end() && r->second.retry_at) {
                // Asking failed while it was not in our view: ask now.
                r->second.retry_at.reset();
                a.reconcile.emplace_back(m.id, r->second.request, r->second.mode);
            }
            if (departed_.erase(m.id) > 0) {
                // Re-admitted (delta_reconcile.cpp, cases 3 and 4).
                start_reconcile_locked(m, true, wire::get_all_msg::mode::rejoin, a);
            } else if (steady::now() < pause_hold_until_) {
                start_reconcile_locked(m, true, wire::get_all_msg::mode::reconcile, a);
            }
        } else if (m.state == membership::member_state::gone || m.state == membership::member_state::left) {
            departed_[m.id] = {steady::now(), m.name, m.state == membership::member_state::gone};
            update_unverified_locked();
            if (reconciling_.erase(m.id) > 0) {
                counters_->reconciles_abandoned.fetch_add(1, std::memory_order_relaxed);
                update_unverified_locked();
                repl_cv_.notify_all();
            }
            if (transferring_ && transfer_.source.id == m.id) {
                next_source_locked(describe(m) + " left", a);
            }
            // Whatever we asked it for, ask someone else.
            const auto others = link_->members();
            for (auto& [id, w] : awaiting_) {
                if (w.asked != m.id) {
                    continue;
                }
                for (const auto& o : others) {
                    if (o.id != m.id && o.state == membership::member_state::alive) {
                        w.asked = o.id;
                        w.asked_at = steady::now();
                        w.answered = false;
                        a.requests[o.id].push_back(id);
                        break;
                    }
                }
            }
        }
    }
    run(a);
}

void delta_manager::housekeeping() {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        const auto t = steady::now();
        reconcile_housekeeping_locked(t, a);
        if (transferring_ && t - transfer_.started > config().state_transfer_timeout) {
            finish_transfer_locked(false, "timed out", a);
        } else if (transferring_ && transfer_.retry_at && t >= *transfer_.retry_at) {
            transfer_.retry_at.reset();
            transfer_.request = random_request();
            a.get_all = true;
        }
        const auto members = link_->members();
        for (auto it = awaiting_.begin(); it != awaiting_.end();) {
            auto& w = it->second;
            if (t - w.asked_at < request_retry_after) {
                ++it;
                continue;
            }
            if (w.attempts >= request_attempts) {
                counters_->requests_given_up.fetch_add(1, std::memory_order_relaxed);
                log()->warn("context {}: no whole copy of session {} after {} requests; dropping {} "
                            "buffered deltas",
                            config().context, it->first, w.attempts, w.buffered.size());
                it = awaiting_.erase(it);
                repl_cv_.notify_all();
                continue;
            }
            // Ask again: the same member while it is there, else another.
            auto ask = w.asked;
            if (std::none_of(members.begin(), members.end(), [&](const member& m) { return m.id == ask; }) &&
                !members.empty()) {
                ask = members[static_cast<std::size_t>(w.attempts) % members.size()].id;
            }
            w.asked = ask;
            w.asked_at = t;
            w.answered = false;
            ++w.attempts;
            a.requests[ask].push_back(it->first);
            ++it;
        }
        while (!tombstone_order_.empty() && t - tombstone_order_.front().first > tombstone_ttl) {
            const auto& [when, id] = tombstone_order_.front();
            auto found = tombstones_.find(id);
            if (found != tombstones_.end() && found->second.at == when) {
                tombstones_.erase(found);
            }
            tombstone_order_.pop_front();
        }
    }
    run(a);
}

// ---------------------------------------------------------------------------
// Answering

void delta_manager::answer_get_sessions(const member& from, const std::vector<std::string>& ids) {
    const auto t = now();
    const auto limit = std::max<std::size_t>(
        4096, std::min(config().state_transfer_chunk_bytes, link_->max_message() - 1024));
    auto chunk = wire::counted_writer::session_data();
    auto send = [&](const std::vector<std::string>& missing) {
        counters_->full_copies_sent.fetch_add(chunk.count(), std::memory_order_relaxed);
        link_->send({from.id}, chunk.finish(missing), engine::send_options::async, count_failures());
        chunk = wire::counted_writer::session_data();
    };
    std::vector<std::string> missing;
    for (const auto& id : ids) {
        auto s = find(id);
        if (!s) {
            missing.push_back(id);
            continue;
        }
        if (!chunk.empty() && chunk.size() + session_access::wire_size(*s) > limit) {
            send({});
        }
        if (!session_access::add_to(*s, chunk, t)) {
            missing.push_back(id);
        }
    }
    send(missing);
}

void delta_manager::answer_get_all(const member& from, const wire::get_all_msg& g) {
    if (stopping_) {
        link_->send({from.id}, wire::encode(wire::no_such_context_msg{g.request}), engine::send_options::async,
                    nullptr);
        return;
    }
    if (g.what == wire::get_all_msg::mode::full) {
        std::lock_guard lock(repl_mutex_);
        if (transferring_) {
            // Still receiving ours: answer once we have everything (Tribes drops
            // these, so two members starting together could miss each other).
            deferred_.emplace_back(from, g);
            return;
        }
    }
    const auto t0 = steady::now();
    const auto full = g.what == wire::get_all_msg::mode::full;
    // First make sure the joiner is among our destinations: a member that asks
    // may not be connected from our side yet, and everything after the
    // snapshot must reach it.
    const auto give_up = t0 + std::min<std::chrono::milliseconds>(config().state_transfer_timeout,
                                                                  std::chrono::seconds(30));
    for (int attempt = 0;; ++attempt) {
        auto opening = full ? wire::encode(wire::all_data_msg{g.request, 0, {}})
                            : wire::encode(wire::digest_msg{g.request, 0, {}});
        auto waiter = std::make_shared<send_waiter>();
        waiter->expect(from.id);
        link_->send({from.id}, std::move(opening), engine::send_options::sync,
                    [waiter, m = from.id](engine::send_result r) { waiter->done(m, std::move(r)); });
        const bool answered = waiter->wait(link_->wait_limit());
        const auto r = waiter->result();
        const bool ok = answered && r.ok() && r.destinations > 0;
        const std::string why = r.ok() ? "not a destination yet" : r.describe();
        if (ok) {
            break;
        }
        if (stopping_ || steady::now() >= give_up) {
            log()->warn("context {}: could not reach {} to answer its {} request: {}", config().context,
                        describe(from), full ? "state transfer" : "digest", why);
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20 * (attempt + 1), 200)));
    }

    const auto limit = std::max<std::size_t>(
        4096, std::min(config().state_transfer_chunk_bytes, link_->max_message() - 1024));
    auto window = std::make_shared<send_window>();
    std::uint32_t seq = 0;
    std::uint64_t total = 0;
    std::uint64_t bytes = 0;
    auto begin = [&] {
        ++seq;
        auto w = full ? wire::counted_writer::all_data(g.request, seq) : wire::counted_writer::digest(g.request, seq);
        w.reserve(limit + 4096);
        return w;
    };
    auto chunk = begin();
    auto flush = [&]() -> bool {
        if (chunk.empty()) {
            return true;
        }
        auto b = chunk.finish();
        bytes += b.size();
        {
            std::unique_lock lock(window->mutex);
            if (!window->cv.wait_for(lock, link_->wait_limit(),
                                     [&] { return window->in_flight < transfer_window || window->failed; })) {
                window->failed = true;
                window->error = "no acknowledgement for a chunk";
            }
            if (window->failed) {
                return false;
            }
            ++window->in_flight;
        }
        // sync: each chunk is acknowledged once the joiner installed it, which
        // paces us to its speed without filling the queue.
        link_->send({from.id}, std::move(b), engine::send_options::sync, [window](engine::send_result r) {
            std::lock_guard lock(window->mutex);
            --window->in_flight;
            if (!r.ok() && !window->failed) {
                window->failed = true;
                window->error = r.describe();
            }
            window->cv.notify_all();
        });
        chunk = begin();
        return true;
    };
    const auto t = now();
    bool ok = true;
    if (!full) {
        // Tombstones first: what ended here must not be fetched back from us.
        std::vector<wire::digest_entry> ended;
        {
            std::lock_guard lock(repl_mutex_);
            ended.reserve(tombstones_.size());
            for (const auto& [id, ts] : tombstones_) {
                ended.push_back({id, {ts.version, 0, false}, true});
            }
        }
        for (const auto& e : ended) {
            if (!chunk.empty() && chunk.size() + wire::digest_entry_size(e.id.size()) > limit && !(ok = flush())) {
                break;
            }
            chunk.add_digest(e);
            ++total;
        }
    }
    for (std::size_t shard = 0; ok && shard < session_store::shard_count && !stopping_; ++shard) {
        for (const auto& s : store().shard_snapshot(shard)) {
            if (full) {
                const auto size = session_access::wire_size(*s);
                if (size > link_->max_message() - 64) {
                    log()->error("context {}: session {} ({} bytes) exceeds channel.max_message: not "
                                 "transferred to {}",
                                 config().context, s->id(), size, describe(from));
                    continue;
                }
                if (!chunk.empty() && chunk.size() + size > limit && !(ok = flush())) {
                    break;
                }
                if (session_access::add_to(*s, chunk, t)) {
                    ++total;
                }
            } else {
                const auto where = session_access::valid_stamp(*s);
                if (!where) {
                    continue;
                }
                if (!chunk.empty() && chunk.size() + wire::digest_entry_size(wire::max_id) > limit &&
                    !(ok = flush())) {
                    break;
                }
                chunk.add_digest({s->id(), *where, false});
                ++total;
            }
        }
    }
    if (ok) {
        ok = flush();
    }
    {
        std::unique_lock lock(window->mutex);
        window->cv.wait_for(lock, link_->wait_limit(), [&] { return window->in_flight == 0 || window->failed; });
        ok = ok && !window->failed;
    }
    if (!ok) {
        std::string error;
        {
            std::lock_guard lock(window->mutex);
            error = window->error;
        }
        log()->warn("context {}: {} to {} failed after {} sessions: {}", config().context,
                    full ? "state transfer" : "digest", describe(from), total, error);
        return;
    }
    wire::transfer_complete_msg done{g.request, total, seq - 1};
    link_->send({from.id}, wire::encode(done), engine::send_options::async, count_failures());
    if (full) {
        counters_->transfers_answered.fetch_add(1, std::memory_order_relaxed);
        counters_->transfer_sessions_sent.fetch_add(total, std::memory_order_relaxed);
        log()->info("context {}: sent {} sessions in {} chunks ({} bytes) to {} in {} ms", config().context,
                    total, seq - 1, bytes, describe(from),
                    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count());
    } else {
        counters_->digest_entries_sent.fetch_add(total, std::memory_order_relaxed);
    }
}

// ---------------------------------------------------------------------------
// Statistics

void delta_manager::add_stats(nlohmann::json& j) const {
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
    auto& t = j["state_transfer"];
    t["state"] = transfer_.state;
    t["source"] = transfer_.source.name;
    t["sessions"] = transfer_.sessions;
    t["chunks"] = transfer_.chunks;
    t["bytes"] = transfer_.bytes;
    t["queued"] = queue_.size();
    t["detail"] = transfer_.detail;
    if (transfer_.state != "none") {
        const auto end = transferring_ ? steady::now() : transfer_.finished;
        t["duration_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(end - transfer_.started).count();
    }
}

void delta_manager::add_metrics(std::string& out) const {
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
    counter("troupe_session_reconciles_total", c.reconciles_completed.load());
    counter("troupe_session_reconciles_abandoned_total", c.reconciles_abandoned.load());
    counter("troupe_session_reconcile_fetches_total", c.reconcile_fetches.load());
    counter("troupe_session_pauses_detected_total", c.pauses_detected.load());
    counter("troupe_session_unverified_waits_total", c.unverified_waits.load());
    counter("troupe_session_unverified_wait_timeouts_total", c.unverified_wait_timeouts.load());
    counter("troupe_session_minority_refusals_total", c.minority_refusals.load());
}

} // namespace troupe::managers::detail
