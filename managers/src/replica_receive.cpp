// SPDX-License-Identifier: Apache-2.0
#include "replication_core.hpp"

#include <troupe/transport/error.hpp>

#include "lineage.hpp"
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
/// Requests for this many sessions or fewer are answered on the I/O thread.
constexpr std::size_t inline_answer = 16;

} // namespace

// ---------------------------------------------------------------------------
// Receiving

void replication_core::malformed(const member& from, const boost::system::error_code& ec, std::size_t size) {
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

void replication_core::on_message(const member& from, std::span<const std::uint8_t> payload) {
    if (stopping_) {
        return;
    }
    // Woken from a pause, this thread may run first: copies this node served
    // must not refuse the others' changes as if it still served them.
    notice_pause();
    wire::message m;
    if (auto ec = wire::decode(payload, m)) {
        malformed(from, ec, payload.size());
        // Refused, not dropped: an ack/sync sender hears it (NACK), so its
        // request fails instead of standing with no copy taken here (a
        // member of a newer codec during a rolling upgrade, a corrupt frame).
        throw engine::message_refused("malformed session message: " + ec.message());
    }
    const auto type = wire::type_of(m);
    if (type == wire::msg_type::get_all) {
        auto g = std::get<wire::get_all_msg>(m);
        if (g.what == wire::get_all_msg::mode::reconcile || g.what == wire::get_all_msg::mode::rejoin) {
            on_get_all_reconcile(from, g);
        }
        bulk_.post([this, from, g] { answer_get_all(from, g); });
        return;
    }
    if (type > wire::msg_type::newer_copy) {
        own_message(from, m); // a manager type's own (the backup manager's fetches and locations)
        return;
    }
    if (type == wire::msg_type::get_sessions) {
        auto& ids = std::get<wire::get_sessions_msg>(m).ids;
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
        // The catch-up's own messages first; a digest's end queues behind its chunks.
        const bool queueable =
            type == wire::msg_type::created || type == wire::msg_type::delta || type == wire::msg_type::expired ||
            type == wire::msg_type::accessed || type == wire::msg_type::id_changed ||
            type == wire::msg_type::digest || type == wire::msg_type::transfer_complete;
        if (!catch_up_message_locked(from, m, payload.size(), a)) {
            if (catching_up_ && queueable) {
                queue_.push_back({from, std::move(m), payload.size()});
                return;
            }
            dispatch_locked(from, m, payload.size(), a);
        }
    }
    run(a);
    if (!a.refuse.empty()) {
        // The channel turns this into a NACK for an ack/sync sender.
        throw engine::message_refused(a.refuse);
    }
}

void replication_core::dispatch_locked(const member& from, wire::message& m, std::size_t /*bytes*/,
                                       actions& a) {
    switch (wire::type_of(m)) {
    case wire::msg_type::created: {
        counters_->created_received.fetch_add(1, std::memory_order_relaxed);
        const auto& f = std::get<wire::created_msg>(m).s;
        if (auto s = find(f.id)) {
            // Served here (the backup manager's primary): a whole copy from
            // another member would make two primaries; the sender stops.
            if (const auto r = session_access::roles_of(*s); r.primary && r.handed_to == self_.id) {
                refuse_stale_locked(from, f.id, f.version, s, a);
                break;
            }
        }
        if (!install_locked(f, install_mode::if_wins, a)) {
            // Ours wins (the sender served an old copy: it was cut off, or
            // frozen, while the others moved on): refused like a stale delta,
            // so that its request fails instead of being acknowledged here.
            auto s = find(f.id);
            const auto mine = s ? session_access::valid_stamp(*s) : std::nullopt;
            if (mine && !(mine->version == f.version && mine->tag == f.tag) && wins(*mine, f.where())) {
                refuse_stale_locked(from, f.id, f.version, s, a);
            }
        }
        break;
    }
    case wire::msg_type::delta: on_delta_locked(from, std::get<wire::delta_msg>(m), a); break;
    case wire::msg_type::expired: on_expired_locked(from, std::get<wire::expired_msg>(m), a); break;
    case wire::msg_type::accessed: on_accessed_locked(std::get<wire::accessed_msg>(m)); break;
    case wire::msg_type::id_changed: on_id_changed_locked(from, std::get<wire::id_changed_msg>(m), a); break;
    case wire::msg_type::all_data:
    case wire::msg_type::no_such_context:
        // Not taken by the catch-up: an old transfer's, or not for us.
        counters_->stale_transfer_messages.fetch_add(1, std::memory_order_relaxed);
        break;
    case wire::msg_type::transfer_complete:
        if (!digest_complete_locked(from, std::get<wire::transfer_complete_msg>(m).request)) {
            counters_->stale_transfer_messages.fetch_add(1, std::memory_order_relaxed);
        }
        break;
    case wire::msg_type::session_data: on_session_data_locked(from, std::get<wire::session_data_msg>(m), a); break;
    case wire::msg_type::digest: on_digest_locked(from, std::get<wire::digest_msg>(m), a); break;
    case wire::msg_type::newer_copy: on_newer_copy_locked(from, std::get<wire::newer_copy_msg>(m), a); break;
    case wire::msg_type::get_all:
    case wire::msg_type::get_sessions: break; // handled before the lock
    default: break;                           // the manager type's own: not dispatched here
    }
    received_locked(from, m, a);
}

void replication_core::run(actions& a) {
    for (auto& [to, ids] : a.requests) {
        wire::get_sessions_msg g;
        g.ids = std::move(ids);
        counters_->full_requests_sent.fetch_add(g.ids.size(), std::memory_order_relaxed);
        link_->send({to}, wire::encode(g), engine::send_options::async, count_failures());
    }
    for (auto& [to, b] : a.sends) {
        link_->send({to}, std::move(b), engine::send_options::async, count_failures());
    }
    for (auto& f : a.then) {
        f();
    }
    if (a.digests) {
        const auto request = random_request();
        for (const auto& m : link_->members()) {
            if (m.id == a.digest_skip) {
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

bool replication_core::tombstoned_locked(const std::string& id) const { return tombstones_.count(id) > 0; }

void replication_core::tombstone_locked(const std::string& id, std::uint64_t version, bool route, std::string to) {
    const auto t = steady_now();
    route = route && !to.empty(); // a rename that does not say where to is an end
    auto [it, fresh] = tombstones_.try_emplace(id, tombstone{t, version, route, route ? std::move(to) : std::string{}});
    if (!fresh) {
        auto& ts = it->second;
        ts.at = t;
        if (version >= ts.version && route) {
            ts.to = std::move(to); // the latest rename
        }
        ts.version = std::max(ts.version, version);
        ts.route = ts.route && route; // an end for good stays one
        if (!ts.route) {
            ts.to.clear();
        }
    }
    // A refreshed one gets a new place in the order; the old place expires
    // nothing (its time no longer matches).
    tombstone_order_.emplace_back(t, id);
    while (tombstones_.size() > tombstone_cap && !tombstone_order_.empty()) {
        tombstones_.erase(tombstone_order_.front().second);
        tombstone_order_.pop_front();
    }
}

bool replication_core::dead_locked(const std::string& id, std::uint64_t version) {
    const auto it = tombstones_.find(id);
    if (it == tombstones_.end()) {
        return false;
    }
    if (it->second.route && version > it->second.version) {
        lift_route_locked(id, version);
        return false;
    }
    return true;
}

void replication_core::lift_route_locked(const std::string& id, std::uint64_t version) {
    const auto it = tombstones_.find(id);
    if (it == tombstones_.end() || !it->second.route || version <= it->second.version) {
        return;
    }
    // The id came back (x.a -> x.b -> x.a): its old rename no longer leads
    // anywhere, here or for a request that carries it.
    tombstones_.erase(it); // its place in tombstone_order_ expires nothing
    forget_alias(id);
}

void replication_core::on_delta_locked(const member& from, wire::delta_msg& d, actions& a) {
    counters_->deltas_received.fetch_add(1, std::memory_order_relaxed);
    if (dead_locked(d.id, d.after)) {
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
                refuse_stale_locked(from, d.id, d.before, s, a);
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
    if (const auto to = session_access::roles_of(*s).handed_to; !to.is_nil() && to != from.id) {
        // A fetch gave this copy to another member (the backup manager): the
        // old primary, frozen or slow meanwhile, must not change it any more.
        refuse_stale_locked(from, d.id, d.before, s, a);
        return;
    }
    switch (session_access::apply_delta(*s, d, now(), fire_on_replication(), a.events)) {
    case apply_result::applied: counters_->deltas_applied.fetch_add(1, std::memory_order_relaxed); break;
    case apply_result::stale:
    case apply_result::invalid: counters_->deltas_stale.fetch_add(1, std::memory_order_relaxed); break;
    case apply_result::stale_base: refuse_stale_locked(from, d.id, d.before, s, a); break;
    case apply_result::gap: {
        counters_->gaps.fetch_add(1, std::memory_order_relaxed);
        const auto id = d.id;
        await_locked(id, from.id, a, &d);
        break;
    }
    }
}

void replication_core::refuse_stale_locked(const member& from, const std::string& id, std::uint64_t base,
                                           const std::shared_ptr<session>& s, actions& a) {
    // The writer served a copy we have moved past (it was frozen, cut off, or
    // raced another member): applying the delta would undo what we hold.
    // Refuse it, so its request fails, and send our copy, so it stops serving
    // the stale one (newer_copy is installed over a copy whose last step was not acknowledged).
    counters_->stale_bases_refused.fetch_add(1, std::memory_order_relaxed);
    const auto mine = session_access::valid_stamp(*s);
    auto w = wire::counted_writer::newer_copy();
    if (session_access::add_to(*s, w, now())) {
        counters_->newer_copies_sent.fetch_add(1, std::memory_order_relaxed);
        a.sends.emplace_back(from.id, w.finish());
    }
    a.refuse = std::string(stale_base_refusal) + "session " + id + " is at version " +
               std::to_string(mine ? mine->version : 0) + " on " + self_.name + "; the change was built on version " +
               std::to_string(base);
    if (auto n = stale_log_.allow()) {
        log()->warn("context {}: refused a change to session {} from {}: built on version {}, this copy is at {} "
                    "({} such since the last line)",
                    config().context, id, describe(from), base, mine ? mine->version : 0, *n);
    }
}

void replication_core::await_locked(const std::string& id, const member_id& ask, actions& a,
                                 wire::delta_msg* buffered) {
    auto [it, fresh] = awaiting_.try_emplace(id);
    auto& w = it->second;
    if (buffered != nullptr) {
        w.buffered.emplace_back(ask, std::move(*buffered));
    }
    if (fresh || w.answered) {
        w.asked = ask;
        w.asked_at = steady_now();
        w.answered = false;
        ++w.attempts;
        a.requests[ask].push_back(id);
    }
}

bool replication_core::install_locked(const wire::full_session& f, install_mode mode, actions& a) {
    if (dead_locked(f.id, f.version)) {
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

void replication_core::drain_locked(const std::string& id, actions& a) {
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
        w.asked_at = steady_now();
        ++w.attempts;
        a.requests[ask].push_back(id);
    }
}

void replication_core::on_session_data_locked(const member& from, wire::session_data_msg& m, actions& a) {
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

void replication_core::on_expired_locked(const member& from, const wire::expired_msg& e, actions& a) {
    (void)from;
    counters_->expired_received.fetch_add(1, std::memory_order_relaxed);
    tombstone_locked(e.id, e.version);
    drop_locked(e.id, e.invalidated, a);
}

void replication_core::drop_locked(const std::string& id, bool invalidated, actions& a) {
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

void replication_core::on_accessed_locked(const wire::accessed_msg& m) {
    const auto t = now();
    counters_->accessed_received.fetch_add(m.entries.size(), std::memory_order_relaxed);
    for (const auto& [id, idle] : m.entries) {
        if (auto s = find(id)) {
            session_access::touch_remote(*s, std::chrono::milliseconds(idle), t);
        }
    }
}

void replication_core::on_id_changed_locked(const member& from, const wire::id_changed_msg& m, actions& a) {
    counters_->id_changes_received.fetch_add(1, std::memory_order_relaxed);
    if (dead_locked(m.new_id, m.after)) {
        counters_->tombstone_drops.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    const bool route = same_but_route(m.old_id, m.new_id);
    tombstone_locked(m.old_id, m.after, route, route ? m.new_id : std::string{});
    // A route rewrite elsewhere: a request carrying the old id that lands
    // here finds the session under its new one (a copy holder's alias).
    renamed_elsewhere(m.old_id, m.new_id);
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

void replication_core::on_member(const member& m) {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        // Alive again, or gone: either way not a laggard of the current view.
        laggards_->remove(m.id);
        if (m.state == membership::member_state::alive) {
            if (auto r = reconciling_.find(m.id); r != reconciling_.end() && r->second.retry_at) {
                // Asking failed while it was not in our view: ask now.
                r->second.retry_at.reset();
                a.reconcile.emplace_back(m.id, r->second.request, r->second.mode);
            }
            if (departed_.erase(m.id) > 0) {
                // Re-admitted (delta_reconcile.cpp, cases 3 and 4).
                start_reconcile_locked(m, true, wire::get_all_msg::mode::rejoin, a);
            } else if (steady_now() < pause_hold_until_) {
                start_reconcile_locked(m, true, wire::get_all_msg::mode::reconcile, a);
            }
            member_alive_locked(m, a);
        } else if (m.state == membership::member_state::gone || m.state == membership::member_state::left) {
            departed_[m.id] = {steady_now(), m.name, m.state == membership::member_state::gone};
            update_unverified_locked();
            if (reconciling_.erase(m.id) > 0) {
                counters_->reconciles_abandoned.fetch_add(1, std::memory_order_relaxed);
                update_unverified_locked();
                repl_cv_.notify_all();
            }
            // The catch-up first (a new source, or its end replaying the queue),
            // so that what it asks of the departed member is asked elsewhere below.
            member_departed_locked(m, a);
            // Whatever we asked it for, ask someone else.
            const auto others = link_->members();
            for (auto& [id, w] : awaiting_) {
                if (w.asked != m.id) {
                    continue;
                }
                for (const auto& o : others) {
                    if (o.id != m.id && o.state == membership::member_state::alive) {
                        w.asked = o.id;
                        w.asked_at = steady_now();
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

void replication_core::housekeeping() {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        const auto t = steady_now();
        reconcile_housekeeping_locked(t, a);
        if (discovering_ && link_->discovered()) {
            discovered_locked(a); // the link's event is on its way: no need to wait for it
        }
        if (!discovering_) {
            catch_up_housekeeping_locked(t, a);
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

} // namespace troupe::managers::detail
