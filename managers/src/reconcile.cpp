// SPDX-License-Identifier: Apache-2.0
// Reconciliation: every replicating manager's sessions stay correct through every
// membership change. The cases, and what follows each (DESIGN.md):
//
//  1. First join (a new member id, no sessions): the joiner's catch-up (the
//     delta manager's state transfer) and its digests afterwards
//     (end_catch_up_locked). The others need not wait.
//  2. Restart: a new incarnation is a new member id: as 1.
//  3. Re-admission after removal: a member we had seen leave (gone/left) is
//     alive again. Its copies and ours may both be stale (it was frozen, cut
//     off, or we were). We ask for its digest with mode `rejoin`: it learns
//     it was removed, treats its copies as unverified and asks for ours. Both
//     sides are `blocking`: a request for a session waits until the other's
//     digest is in and the session's copy, if the other holds a winning one,
//     has arrived.
//  4. Partition heal: each side removed the other: 3 on both sides at once.
//  5. The frozen one never noticed (a SIGSTOP shorter than its own failure
//     detection): the others' `rejoin` tells it. Before that message can
//     arrive, its own timer thread notices the pause (no housekeeping run for
//     longer than pause_threshold): it reconciles with every member in view,
//     blocking, and if it sees nobody it holds requests a while for members
//     to reappear (pause_hold).
//  6. Missed messages without any membership change: a version gap asks for
//     the whole session (replica_receive.cpp).
//  7. A writer that served a stale copy anyway (in flight when it froze):
//     replicas refuse its delta and send their copy back (refuse_stale_locked).
//     A request whose copy is replaced by a newer one while it runs fails.
//  8. The cut-off side of a partition, before the view heals: it sees fewer
//     than half of the members it knew (by node name, removed in the last
//     minority_window; clean stops do not count), so it may be the side the
//     users failed away from. Its requests wait for the others to reappear
//     (bounded) and its sync writes are not acknowledged. At exactly half
//     (2-2 of four, 3-3 of six) the half holding the first name in sort
//     order goes on, the other waits. Two-node clusters have no majority to
//     ask: each side goes on.
//  9. A member that stops cleanly (left): nothing to reconcile; its sessions
//     are on every other member already.
//
// A digest lists every session's stamp (lineage.hpp) and the tombstones of
// ids that ended; each side pulls the copies the other holds that win, and
// drops what the other saw end. A member that replaces its copy by one that
// does not descend from it counts a conflict and logs the session id.
#include "replication_core.hpp"

#include "lineage.hpp"
#include "log.hpp"

#include <set>

namespace troupe::managers::detail {

namespace {

using membership::member;
using membership::member_id;
using steady = std::chrono::steady_clock;

/// No housekeeping run for this long (it runs every 200 ms): the process was
/// paused (SIGSTOP, a VM or GC pause) long enough for the others to remove it.
constexpr auto pause_threshold = std::chrono::milliseconds(1000);
/// After a pause with nobody in view, requests wait this long for members to reappear.
constexpr auto pause_hold = std::chrono::seconds(3);
/// A request waits at most this long for its session to be vouched for.
constexpr auto unverified_wait = std::chrono::seconds(3);
/// A digest that has not ended by then is given up (its member is slow or gone).
constexpr auto digest_timeout = std::chrono::seconds(10);
/// Departed members are remembered this long (a re-admission comes within seconds).
constexpr auto departed_ttl = std::chrono::minutes(10);
/// A member removed this recently still counts towards the cluster's size when
/// this node asks whether it sees a majority. Past it, a node left alone (its
/// peers crashed for good) serves again: availability over a partition that
/// outlasts it.
constexpr auto minority_window = std::chrono::seconds(60);
/// After a heal, members re-admit each other one by one within a few
/// heartbeats; a member still missing after this long is taken as gone.
constexpr auto healing_window = std::chrono::seconds(10);

bool alive(const member& m) { return m.state == membership::member_state::alive; }

std::string_view mode_name(wire::get_all_msg::mode m) {
    switch (m) {
    case wire::get_all_msg::mode::full: return "full";
    case wire::get_all_msg::mode::digest: return "digest";
    case wire::get_all_msg::mode::reconcile: return "reconcile";
    case wire::get_all_msg::mode::rejoin: return "rejoin";
    }
    return "?";
}

} // namespace

std::size_t replication_core::reconciling_blocking() const {
    std::lock_guard lock(repl_mutex_);
    return static_cast<std::size_t>(
        std::count_if(reconciling_.begin(), reconciling_.end(), [](const auto& r) { return r.second.blocking; }));
}

void replication_core::note_tick() {
    last_tick_.store(steady::now().time_since_epoch().count(), std::memory_order_relaxed);
}

std::chrono::milliseconds replication_core::tick_gap() const {
    const auto last = steady::time_point(steady::duration(last_tick_.load(std::memory_order_relaxed)));
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - last);
}

void replication_core::simulate_pause(std::chrono::milliseconds gap) {
    last_tick_.store((steady::now() - gap).time_since_epoch().count(), std::memory_order_relaxed);
}

void replication_core::start_reconcile_locked(const member& m, bool blocking, wire::get_all_msg::mode mode,
                                           actions& a) {
    if (stopping_ || m.id == self_.id) {
        return;
    }
    auto [it, fresh] = reconciling_.try_emplace(m.id);
    auto& r = it->second;
    if (!fresh) {
        // One digest per member at a time; a rejoin makes a running one blocking.
        r.blocking = r.blocking || blocking;
        if (mode == wire::get_all_msg::mode::rejoin && r.mode != mode) {
            // We had removed it, but a digest exchange it started was already
            // running: it must still hear "I had removed you", or it keeps
            // serving its copies as primary (it was the side cut off). Asked
            // again under a new request; the old answer is ignored.
            r.mode = mode;
            r.request = random_request();
            r.started = steady_now();
            a.reconcile.emplace_back(m.id, r.request, mode);
            log()->info("context {}: reconciling with {} ({}, requests wait for it)", config().context, describe(m),
                        mode_name(mode));
        }
        update_unverified_locked();
        return;
    }
    r.request = random_request();
    r.started = steady_now();
    r.blocking = blocking;
    r.mode = mode;
    counters_->reconciles_started.fetch_add(1, std::memory_order_relaxed);
    a.reconcile.emplace_back(m.id, r.request, mode);
    update_unverified_locked();
    log()->info("context {}: reconciling with {} ({}{})", config().context, describe(m), mode_name(mode),
                blocking ? ", requests wait for it" : "");
}

void replication_core::on_get_all_reconcile(const member& from, const wire::get_all_msg& g) {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        if (g.what == wire::get_all_msg::mode::rejoin) {
            // "I had removed you": our copies may be stale (we were frozen or
            // cut off and may not know it); vouch for none until we have theirs.
            log()->warn("context {}: {} had removed this node: reconciling before serving", config().context,
                        describe(from));
            own_copies_doubted_locked(a);
            start_reconcile_locked(from, true, wire::get_all_msg::mode::digest, a);
        } else {
            start_reconcile_locked(from, false, wire::get_all_msg::mode::digest, a);
        }
    }
    run(a);
}

void replication_core::reconcile_send_failed(const member_id& to, std::uint64_t request) {
    std::lock_guard lock(repl_mutex_);
    auto it = reconciling_.find(to);
    if (it != reconciling_.end() && it->second.request == request) {
        it->second.retry_at = steady_now() + std::chrono::milliseconds(200);
    }
}

bool replication_core::digest_complete_locked(const member& from, std::uint64_t request) {
    auto it = reconciling_.find(from.id);
    if (it == reconciling_.end() || it->second.request != request) {
        return false;
    }
    const auto& r = it->second;
    counters_->reconciles_completed.fetch_add(1, std::memory_order_relaxed);
    log()->info("context {}: digest of {} in: {} entries, {} copies to fetch, in {} ms", config().context,
                describe(from), r.entries, r.fetches,
                std::chrono::duration_cast<std::chrono::milliseconds>(steady_now() - r.started).count());
    reconciling_.erase(it);
    update_unverified_locked();
    repl_cv_.notify_all();
    return true;
}

void replication_core::on_digest_locked(const member& from, const wire::digest_msg& m, actions& a) {
    counters_->digest_entries_received.fetch_add(m.entries.size(), std::memory_order_relaxed);
    auto r = reconciling_.find(from.id);
    const bool ours = r != reconciling_.end() && r->second.request == m.request;
    for (const auto& e : m.entries) {
        const auto asked = awaiting_.size();
        on_digest_entry_locked(from, e, a);
        if (ours) {
            ++r->second.entries;
            r->second.fetches += awaiting_.size() - std::min(asked, awaiting_.size());
        }
    }
}

void replication_core::on_digest_entry_locked(const member& from, const wire::digest_entry& e, actions& a) {
    if (e.tombstone) {
        // The id ended (or was renamed) there at e.where.version: a copy of
        // ours at that version or before ends too, and none may come back.
        auto s = find(e.id);
        if (s) {
            const auto mine = session_access::valid_stamp(*s);
            if (mine && mine->version > e.where.version) {
                return; // ours moved on after that end: impossible unless renamed back; keep it
            }
        }
        // A route rewrite's (e.route) stood: one whose request failed was
        // taken back where it was made (rename_failed), and so was its
        // tombstone. The id may come back past this version.
        if (!s && known_past_locked(e.id, e.where.version)) {
            return; // it came back since (x.a -> x.b -> x.a): the member that sent this missed it
        }
        if (!tombstoned_locked(e.id)) {
            tombstone_locked(e.id, e.where.version, e.route, e.to);
            if (e.route) {
                // Learned now (this member was cut off or joined since): a
                // request that still carries the old id finds the session.
                renamed_elsewhere(e.id, e.to);
            }
        }
        if (s) {
            counters_->tombstones_applied.fetch_add(1, std::memory_order_relaxed);
            drop_locked(e.id, true, a);
        }
        return;
    }
    if (dead_locked(e.id, e.where.version) || awaiting_.count(e.id) > 0) {
        return; // ended here (our digest tells them), or a copy is on its way
    }
    auto s = find(e.id);
    const auto mine = s ? session_access::valid_stamp(*s) : std::nullopt;
    if (!mine) {
        if (!s && holds_every_session()) {
            counters_->reconcile_fetches.fetch_add(1, std::memory_order_relaxed);
            await_locked(e.id, from.id, a, nullptr);
        }
        return;
    }
    if (mine->version == e.where.version && mine->tag == e.where.tag) {
        return; // the same copy
    }
    if (wins(e.where, *mine)) {
        counters_->reconcile_fetches.fetch_add(1, std::memory_order_relaxed);
        await_locked(e.id, from.id, a, nullptr);
        return;
    }
    // Ours wins: they fetch it from us (and count the conflict if theirs
    // diverged, when they replace it).
}

void replication_core::on_newer_copy_locked(const member& from, const wire::newer_copy_msg& m, actions& a) {
    for (const auto& f : m.sessions) {
        counters_->newer_copies_received.fetch_add(1, std::memory_order_relaxed);
        // Our last step was refused: their copy replaces ours unless ours
        // still wins after all (another member took our step first).
        if (install_locked(f, install_mode::adopt, a)) {
            counters_->newer_copies_installed.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        // Ours wins: it goes back, so that the refuser ends at the same copy
        // (two members wrote at once, and a third took ours first).
        auto s = find(f.id);
        const auto mine = s ? session_access::valid_stamp(*s) : std::nullopt;
        if (mine && !(mine->version == f.version && mine->tag == f.tag) && wins(*mine, f.where())) {
            auto w = wire::counted_writer::newer_copy();
            if (session_access::add_to(*s, w, now())) {
                counters_->newer_copies_sent.fetch_add(1, std::memory_order_relaxed);
                a.sends.emplace_back(from.id, w.finish());
            }
        }
    }
    repl_cv_.notify_all();
}

void replication_core::note_pause_locked(std::chrono::milliseconds gap, actions& a) {
    counters_->pauses_detected.fetch_add(1, std::memory_order_relaxed);
    const auto members = link_->members();
    log()->warn("context {}: this process did not run for {} ms (stopped, or a VM or GC pause): the others may "
                "have removed it; reconciling with {} member(s) before serving",
                config().context, gap.count(), members.size());
    pause_hold_until_ = steady_now() + pause_hold;
    own_copies_doubted_locked(a);
    for (const auto& m : members) {
        if (m.state == membership::member_state::alive) {
            start_reconcile_locked(m, true, wire::get_all_msg::mode::reconcile, a);
        }
    }
    update_unverified_locked();
}

replication_core::cluster_size replication_core::cluster_size_locked() const {
    std::set<std::string> seen{self_.name};
    for (const auto& m : link_->members()) {
        if (alive(m)) {
            seen.insert(m.name);
        }
    }
    cluster_size n;
    n.in_view = seen.size();
    n.in_view_first_name = *seen.begin();
    const auto t = steady_now();
    for (const auto& [id, d] : departed_) {
        if (d.failed && t - d.at < minority_window) {
            seen.insert(d.name); // a restarted member with the same name counts once
        }
    }
    n.known = seen.size();
    n.first_name = *seen.begin();
    return n;
}

bool replication_core::minority_locked() const {
    const auto n = cluster_size_locked();
    const auto reachable = n.in_view;
    if (reachable * 2 == n.known && n.known > 2) {
        // Exactly half (a 2-2 split of four): both sides would go on and
        // diverge. The half holding the member whose name sorts first goes
        // on; the other half waits, as a minority does. Two-node clusters
        // keep going on both sides (case 8).
        return n.in_view_first_name != n.first_name;
    }
    return reachable * 2 < n.known;
}

void replication_core::update_unverified_locked() {
    const bool blocking =
        std::any_of(reconciling_.begin(), reconciling_.end(), [](const auto& r) { return r.second.blocking; });
    const bool minority = minority_locked();
    if (minority != minority_.exchange(minority, std::memory_order_acq_rel)) {
        log()->warn("context {}: {}", config().context,
                    minority ? "this node sees fewer than half of the cluster's members (or half, without the first by name): "
                               "requests wait for the "
                               "others and sync changes are refused until they reappear"
                             : "a majority of the cluster's members is in view again");
        if (minority) {
            // Cut off from most members: they may take over what is served
            // here (the backup manager's primaries), so none is served again
            // without asking first, also after the heal.
            actions unused;
            own_copies_doubted_locked(unused);
        } else {
            majority_since_ = steady_now();
            majority_regained_locked();
        }
    }
    unverified_.store(blocking || minority || steady_now() < pause_hold_until_, std::memory_order_release);
}

bool replication_core::healing_locked() const {
    if (minority_.load(std::memory_order_acquire) || steady_now() - majority_since_ >= healing_window) {
        return false;
    }
    const auto n = cluster_size_locked();
    return n.known > n.in_view;
}

bool replication_core::unverified_locked(const std::string& id) const {
    for (const auto& [m, r] : reconciling_) {
        if (r.blocking) {
            return true; // a digest is still coming: any id may be in it
        }
    }
    if (minority_.load(std::memory_order_relaxed)) {
        return true; // the others may be serving it: wait for them to reappear
    }
    if (steady_now() < pause_hold_until_ && link_->members().empty()) {
        return true; // paused and alone: the others may be about to reappear
    }
    return awaiting_.count(id) > 0;
}

void replication_core::notice_pause() {
    if (tick_gap() <= pause_threshold) {
        return;
    }
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        if (tick_gap() > pause_threshold) {
            note_pause_locked(tick_gap(), a);
            note_tick();
        }
    }
    run(a);
}

bool replication_core::unverified(std::string_view id) {
    notice_pause(); // the request thread may run before the timer thread noticed it
    if (!unverified_.load(std::memory_order_acquire)) {
        return false;
    }
    std::lock_guard lock(repl_mutex_);
    return unverified_locked(std::string(id));
}

void replication_core::reconcile_housekeeping_locked(steady::time_point t, actions& a) {
    if (const auto gap = tick_gap(); gap > pause_threshold) {
        note_pause_locked(gap, a);
    }
    note_tick();
    for (auto it = reconciling_.begin(); it != reconciling_.end();) {
        if (it->second.retry_at && t >= *it->second.retry_at && t - it->second.started <= digest_timeout) {
            it->second.retry_at.reset();
            a.reconcile.emplace_back(it->first, it->second.request, it->second.mode);
        }
        if (t - it->second.started > digest_timeout) {
            counters_->reconciles_abandoned.fetch_add(1, std::memory_order_relaxed);
            log()->warn("context {}: no whole digest from member {} after {} s; reconciling with it is given up",
                        config().context, it->first.str(),
                        std::chrono::duration_cast<std::chrono::seconds>(digest_timeout).count());
            it = reconciling_.erase(it);
            repl_cv_.notify_all();
        } else {
            ++it;
        }
    }
    for (auto it = departed_.begin(); it != departed_.end();) {
        it = t - it->second.at > departed_ttl ? departed_.erase(it) : std::next(it);
    }
    update_unverified_locked();
    if (!unverified_.load(std::memory_order_relaxed)) {
        repl_cv_.notify_all();
    }
}

std::shared_ptr<session> replication_core::wait_for(std::string_view id, lookup& l) {
    // A copy either comes or the request goes on without it (l.unavailable
    // stays false).
    std::unique_lock lock(repl_mutex_);
    const std::string key(id);
    steady::time_point deadline;
    const bool unverified = unverified_locked(key);
    if (catching_up_) {
        deadline = catch_up_started_ + config().state_transfer_timeout;
    } else if (unverified) {
        deadline = steady_now() + unverified_wait;
    } else if (awaiting_.count(key) > 0) {
        deadline = steady_now() + request_retry_after;
    } else {
        return find(key);
    }
    if (!l.may_wait) {
        l.would_wait = true;
        return nullptr;
    }
    if (unverified) {
        counters_->unverified_waits.fetch_add(1, std::memory_order_relaxed);
    }
    const auto ready = [&] {
        return stopping_ || ((!catching_up_ || find(key) != nullptr) && !unverified_locked(key));
    };
    // A catch-up's bound follows its current phase: discovery ends by
    // beginning the transfer, whose timeout counts from then.
    const auto limit = [&] { return catching_up_ ? catch_up_started_ + config().state_transfer_timeout : deadline; };
    // The bound is on the manager's clock; the wait is real (real_deadline),
    // computed again only when the bound moves.
    bool settled = true;
    auto bound = limit();
    auto until = real_deadline(bound);
    while (!ready()) {
        if (limit() != bound) {
            bound = limit();
            until = real_deadline(bound);
        }
        if (repl_cv_.wait_until(lock, until) == std::cv_status::timeout && limit() == bound) {
            settled = ready();
            break;
        }
    }
    if (!settled && unverified) {
        counters_->unverified_wait_timeouts.fetch_add(1, std::memory_order_relaxed);
        if (auto n = unverified_log_.allow()) {
            log()->warn("context {}: served session {} before it was reconciled: waited {} ms ({} such since the "
                        "last line)",
                        config().context, key,
                        std::chrono::duration_cast<std::chrono::milliseconds>(unverified_wait).count(), *n);
        }
    }
    return find(key);
}

} // namespace troupe::managers::detail
