// SPDX-License-Identifier: Apache-2.0
#include "backup_manager.hpp"

#include "lineage.hpp"
#include "log.hpp"
#include "placement.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <thread>

namespace troupe::managers::detail {

namespace {

using membership::member;
using membership::member_id;
using steady = std::chrono::steady_clock;
using reply = wire::fetch_reply_msg;

const char* outcome_name(reply::outcome o) {
    switch (o) {
    case reply::outcome::found: return "found";
    case reply::outcome::moved: return "moved";
    case reply::outcome::busy: return "busy";
    case reply::outcome::missing: return "missing";
    }
    return "?";
}

/// Runs its function when it goes out of scope, also when a task throws (the
/// worker swallows it): a task's counters and flags are released however it
/// ends, or restoring() would stay true for good.
class release {
public:
    explicit release(std::function<void()> f)
        : f_(std::move(f)) {}
    ~release() { f_(); }
    release(const release&) = delete;
    release& operator=(const release&) = delete;

private:
    std::function<void()> f_;
};

/// A LOCATIONS message is sent in chunks of at most this size.
constexpr std::size_t locations_chunk_bytes = 64 * 1024;
/// Fetch latencies kept for the percentiles in /stats.
constexpr std::size_t latency_ring = 1024;
/// Members asked one after the other before every member is asked.
constexpr int max_hops = 16;
/// How long a fetcher waits before asking a member that is fetching the same session itself.
constexpr auto busy_pause = std::chrono::milliseconds(50);
/// A fetch round looks again at the view at least this often while it waits.
constexpr auto round_slice = std::chrono::milliseconds(100);

} // namespace

backup_manager::backup_manager(std::unique_ptr<link> l, manager_config config)
    : replication_core(std::move(l), std::move(config))
    , reacquirer_("troupe-reacq-" + this->config().context)
    , auditor_("troupe-audit-" + this->config().context) {
    // Registered before start() starts the timer thread.
    timers().every(this->config().access_batch_interval, [this] { send_locations(); });
    reacquirer_.start();
    // Its own thread: a round walks the whole store, and on the timer thread
    // a long one would read as a pause of this process (note_tick).
    if (this->config().copy_audit_interval.count() > 0) {
        auditor_.every(this->config().copy_audit_interval, [this] { audit_copies(); });
    }
    auditor_.start();
}

backup_manager::~backup_manager() { stop(); }

void backup_manager::stop() {
    if (!stopping_) {
        send_locations(); // the moves of the last batch interval: the old backups drop their copies
    }
    replication_core::stop(); // wakes the fetches (wake_waits) before joining the wait threads
    wake_waits();
    reacquirer_.stop();
    auditor_.stop();
}

void backup_manager::wake_waits() {
    // Fetches waiting for answers look again: at stopping_, or at the view
    // (a member that left will not answer).
    std::lock_guard lock(rounds_mutex_);
    for (auto& [request, r] : rounds_) {
        std::lock_guard rl(r->mutex);
        r->cv.notify_all();
    }
}

bool backup_manager::member_now(const member_id& m) const {
    const auto members = link_->members();
    return std::any_of(members.begin(), members.end(), [&](const member& x) { return x.id == m; });
}

std::vector<member_id> backup_manager::destinations(const session& s) const {
    const auto members = link_->members();
    if (const auto* b = placement::backup(s.id(), self_.id, members)) {
        return {b->id};
    }
    return {}; // alone: "every member" is nobody
}

// ---------------------------------------------------------------------------
// Sending: a new backup gets the whole session; its location follows once it
// stands.

bool backup_manager::needs_whole_copy(session& s, const std::vector<member_id>& to) {
    if (to.empty()) {
        return false;
    }
    const auto r = session_access::roles_of(s);
    if (r.primary && r.handed_to.is_nil()) {
        session_access::make_primary(s, self_.id); // made here: changes from others are refused
    }
    if (r.copy_at == to.front()) {
        return false;
    }
    // The old backup is told when this copy stands: the one in step, or the
    // one a failed step left behind (its copy is older than the new one).
    // (After a pause took the session back here: where its backup was then.)
    const auto previous = !r.copy_at.is_nil() ? r.copy_at : !r.was_copy_at.is_nil() ? r.was_copy_at : r.doubted_backup;
    stats_->whole_copies.fetch_add(1, std::memory_order_relaxed);
    wire::location_entry e;
    e.id = s.id();
    e.primary = self_.id;
    e.backup = to.front();
    auto key = e.id; // the right side of `=` is evaluated first: it moves e
    // copy_at and its unconfirmed_ entry together, under outbox_mutex_: a
    // demotion in between (own_copies_doubted_locked) would take the
    // unconfirmed target for the backup in step.
    std::lock_guard lock(outbox_mutex_);
    if (r.primary && !session_access::roles_of(s).primary) {
        return false; // demoted since: this request is superseded, and the copy is no longer ours to move
    }
    session_access::set_copy_at(s, to.front());
    // Called under the order lock, before the step's version is taken: the
    // whole copy goes with the next one.
    unconfirmed_[std::move(key)] = {std::move(e), previous, s.version() + 1};
    return true;
}

void backup_manager::replicated(const std::shared_ptr<session>& s, std::uint64_t step, bool ok) {
    const auto id = s->id();
    const auto version = s->version();
    const bool valid = s->valid();
    std::unique_lock lock(outbox_mutex_);
    auto it = unconfirmed_.find(id);
    // A step sent before the pending whole copy went to the old backup: its
    // answer says nothing of the new one (which answer_check relies on).
    const bool before_copy = it != unconfirmed_.end() && step < it->second.step;
    if (!ok) {
        if (!before_copy) {
            // The backup may not hold this step: the next change goes whole.
            // Under outbox_mutex_, before the entry goes: answer_check reads
            // both under it. A failed whole copy leaves the backup before it
            // as the one holding the last acknowledged step.
            if (it != unconfirmed_.end()) {
                session_access::whole_copy_failed(*s, it->second.previous);
                unconfirmed_.erase(it);
            } else {
                session_access::set_copy_at(*s, {});
            }
        }
        return;
    }
    if (auto r = renamed_from_.find(id); r != renamed_from_.end()) {
        // The rename stands at the backup: the old ids end for the others.
        std::move(r->second.begin(), r->second.end(), std::back_inserter(outbox_));
        renamed_from_.erase(r);
    }
    if (!valid) {
        // Invalidated here: the proxies forget it, handed-over copies end.
        wire::location_entry e;
        e.id = id;
        e.primary = self_.id;
        e.version = version;
        e.gone = true;
        outbox_.push_back(std::move(e));
        return;
    }
    if (it != unconfirmed_.end() && !before_copy) {
        // Only now: a member that drops its copy on this location may do so
        // because the new backup holds the session (at least that step).
        it->second.entry.version = std::min(version, std::max(step, it->second.step));
        auto entry = it->second.entry;
        const auto previous = it->second.previous;
        outbox_.push_back(std::move(it->second.entry));
        unconfirmed_.erase(it);
        // Demoted while the copy was on its way (a pause): the previous
        // backup drops its copy on this location, so the new one is the
        // backup to watch.
        session_access::copy_confirmed(*s, previous, entry.backup);
        lock.unlock();
        if (!previous.is_nil() && previous != entry.backup && previous != self_.id && member_now(previous)) {
            // The old backup hears it at once, not with the next batch: until
            // then it still takes itself for the backup, and were this node to
            // leave, it would promote its older copy beside the new backup.
            wire::locations_msg moved;
            moved.entries.push_back(std::move(entry));
            stats_->locations_sent.fetch_add(1, std::memory_order_relaxed);
            link_->send({previous}, wire::encode(moved), engine::send_options::async, count_failures());
        }
    }
}

void backup_manager::queue_location(wire::location_entry e) {
    std::lock_guard lock(outbox_mutex_);
    outbox_.push_back(std::move(e));
}

void backup_manager::send_locations() {
    std::vector<wire::location_entry> entries;
    {
        std::lock_guard lock(outbox_mutex_);
        entries.swap(outbox_);
    }
    send_location_chunks({}, std::move(entries));
}

void backup_manager::send_location_chunks(const std::vector<member_id>& to, std::vector<wire::location_entry> entries) {
    if (entries.empty() || stopping_) {
        return;
    }
    wire::locations_msg m;
    std::size_t bytes = 0;
    auto flush = [&] {
        if (m.entries.empty()) {
            return;
        }
        stats_->locations_sent.fetch_add(m.entries.size(), std::memory_order_relaxed);
        link_->send(to, wire::encode(m), engine::send_options::async, count_failures());
        m.entries.clear();
        bytes = 0;
    };
    for (auto& e : entries) {
        bytes += wire::location_entry_size(e.id.size(), e.to.size());
        m.entries.push_back(std::move(e));
        if (bytes >= locations_chunk_bytes) {
            flush();
        }
    }
    flush();
}

// ---------------------------------------------------------------------------
// The copy audit (audit_copies, answer_check): a stale copy is asked about,
// and the primary's answer retires it.

void backup_manager::audit_copies() {
    // Not while this node's copies are in doubt (a pause, a heal, a minority):
    // reconciliation settles them first, and an answer then might be stale.
    if (stopping_ || unverified_.load(std::memory_order_acquire) || minority_.load(std::memory_order_acquire)) {
        return;
    }
    std::lock_guard audit(audit_mutex_);
    const auto round = ++audit_round_;
    stats_->audit_rounds.fetch_add(1, std::memory_order_relaxed);
    if (const auto epoch = membership_epoch_.load(std::memory_order_relaxed); epoch != audit_epoch_) {
        audit_epoch_ = epoch; // a join or departure may have moved any backup
        audit_asked_.clear();
    }
    struct held {
        std::string id;
        std::uint64_t version;
        member_id handed_to;
        member_id doubted; ///< served here until a pause or a cut demoted it: the backup it watches
    };
    std::vector<held> ask;
    std::unordered_map<std::string, std::uint64_t> seen;
    for (std::size_t shard = 0; shard < session_store::shard_count && !stopping_; ++shard) {
        for (auto& s : store().shard_snapshot(shard)) {
            const auto stamp = session_access::valid_stamp(*s);
            if (!stamp) {
                continue;
            }
            const auto r = session_access::roles_of(*s);
            if (r.primary) {
                // Served here: nothing to ask. (One left with a single copy by
                // a failed step is not copied again here: on a member cut off
                // before it notices, that unacknowledged step would outrank
                // the copy the others promoted, and the heal would leave the
                // session without a primary. Its next request copies it.)
                continue;
            }
            auto id = s->id();
            const auto last = audit_seen_.find(id);
            const bool unchanged = last != audit_seen_.end() && last->second == stamp->version;
            seen.emplace(id, stamp->version);
            if (!unchanged) {
                continue; // changed since the last round: in step, or on its way
            }
            ask.push_back({std::move(id), stamp->version, r.handed_to, r.doubted_backup});
        }
    }
    audit_seen_.swap(seen);
    // Copies no longer held (dropped, ended, served here now) are forgotten.
    for (auto it = audit_asked_.begin(); it != audit_asked_.end();) {
        it = audit_seen_.count(it->first) > 0 ? std::next(it) : audit_asked_.erase(it);
    }
    {
        std::lock_guard lock(repl_mutex_);
        for (auto it = open_questions_.begin(); it != open_questions_.end();) {
            const auto held = audit_seen_.find(it->first);
            it = held != audit_seen_.end() && held->second == it->second.version ? std::next(it)
                                                                                 : open_questions_.erase(it);
        }
    }
    if (ask.empty()) {
        return;
    }
    std::map<member_id, std::vector<std::pair<std::string, std::uint64_t>>> by_primary;
    std::vector<std::string> stranded;
    std::size_t asked_now = 0;
    std::unordered_map<std::string, std::uint64_t> pending_tries;
    {
        std::lock_guard lock(repl_mutex_);
        for (auto& h : ask) {
            auto primary = h.handed_to;
            if (primary.is_nil()) {
                if (auto it = locations_.find(h.id); it != locations_.end()) {
                    primary = it->second.primary;
                }
            }
            if (primary.is_nil() || primary == self_.id) {
                // No other primary known. A copy a pause or a cut demoted
                // here, untouched for a round since this node's doubt ended:
                // nobody serves it (a request elsewhere would have fetched it
                // and told us), so it is fetched as a request here would
                // (from whoever serves it now, else this copy) rather than
                // left without a primary until its next request. Else its
                // departure or a fetch settles it. (Also one whose watched
                // backup left: restore_copies or majority_regained_locked
                // fetch those once, and one that fetch missed would wait.)
                if (!h.doubted.is_nil() && stranded.size() < audit_batch) {
                    stranded.push_back(std::move(h.id));
                }
                continue;
            }
            std::uint64_t tries = 0;
            if (auto asked = audit_asked_.find(h.id);
                asked != audit_asked_.end() && asked->second.version == h.version && asked->second.primary == primary) {
                // Asked already and nothing changed: again after
                // audit_retry_rounds (the answer may have been declined or
                // lost), then twice as long each time, up to 32 times as
                // long (an in-step backup gets no answer at all).
                tries = asked->second.tries;
                if (!h.doubted.is_nil()) {
                    // Demoted here, and the member its location names did
                    // not answer: had it served the session, newer, it would
                    // have; had a request elsewhere fetched it, the fetch's
                    // hand-over would be known here. Fetched as a stranded
                    // one (the fetch asks that member first), not left
                    // without a primary until its next request. An equal
                    // copy served there moves here: churn, never a loss.
                    if (round - asked->second.round >= stranded_after_rounds && stranded.size() < audit_batch) {
                        stranded.push_back(std::move(h.id));
                    }
                    continue;
                }
                if (round - asked->second.round < (audit_retry_rounds << std::min<std::uint64_t>(tries - 1, 5))) {
                    continue;
                }
            }
            ++tries;
            pending_tries[h.id] = tries;
            if (asked_now == audit_batch) {
                break; // the rest next round
            }
            ++asked_now;
            open_questions_[h.id] = {h.version, primary};
            by_primary[primary].emplace_back(std::move(h.id), h.version);
        }
    }
    for (auto& asked_of : by_primary) {
        const auto primary = asked_of.first; // not a structured binding: clang 14 cannot capture one
        auto& entries = asked_of.second;
        if (!member_now(primary)) {
            continue; // gone: restore_copies promotes or re-copies; asked again next round
        }
        wire::backup_check_msg m;
        std::size_t bytes = 0;
        auto flush = [&] {
            if (m.entries.empty()) {
                return;
            }
            stats_->audit_asked.fetch_add(m.entries.size(), std::memory_order_relaxed);
            link_->send({primary}, wire::encode(m), engine::send_options::async, count_failures());
            m.entries.clear();
            bytes = 0;
        };
        for (auto& [id, version] : entries) {
            audit_asked_[id] = {version, primary, round, pending_tries[id]};
            bytes += wire::backup_check_entry_size(id.size());
            m.entries.emplace_back(std::move(id), version);
            if (bytes >= locations_chunk_bytes) {
                flush();
            }
        }
        flush();
    }
    if (!stranded.empty()) {
        post_reacquire(std::move(stranded), steady::now(), reacquire_cause::stranded);
    }
}

void backup_manager::answer_check(const member& from, const wire::backup_check_msg& m) {
    // Not while this node's own roles are in doubt: the asker keeps its copy
    // and asks again later. (A backup that just left, before restore_copies
    // replaced it, is not named: only members in the view are.)
    if (unverified_.load(std::memory_order_acquire) || minority_.load(std::memory_order_acquire)) {
        return;
    }
    const auto members = link_->members();
    const auto in_view = [&members](const member_id& id) {
        return std::any_of(members.begin(), members.end(), [&](const member& x) { return x.id == id; });
    };
    std::vector<wire::location_entry> answer;
    struct not_served_here {
        std::string id;
        std::uint64_t version;                   ///< the asker's
        std::optional<std::uint64_t> mine;       ///< this node's (handed-over) copy's
    };
    std::vector<not_served_here> not_served;
    for (const auto& [id, version] : m.entries) {
        auto s = find(id);
        std::optional<wire::stamp> stamp;
        session_access::roles r;
        bool confirmed = false;
        if (s) {
            // Under the order lock, as a fetch's hand-over and a request's
            // step are, and under outbox_mutex_: a failed whole copy clears
            // copy_at before it erases its unconfirmed_ entry, so a copy_at
            // read with no entry pending names a backup that took the copy.
            std::lock_guard order(session_access::order(*s));
            std::lock_guard lock(outbox_mutex_);
            stamp = session_access::valid_stamp(*s);
            r = stamp ? session_access::roles_of(*s) : session_access::roles{};
            confirmed = unconfirmed_.count(id) == 0;
        }
        if (!stamp || !r.primary) {
            not_served.push_back({id, version, stamp ? std::optional(stamp->version) : std::nullopt});
            continue;
        }
        // Served here, with a backup other than the asker in step and in the
        // view, at least as new as the asker's copy: two members hold as much
        // as it. (As new: the backup a restore replaced, back after a cut or
        // a freeze, has its old copy brought up to the primary's by the
        // reconciliation, an equal third copy; the asker drops it on this
        // answer, see on_locations.)
        if (r.copy_at.is_nil() || r.copy_at == from.id || !confirmed || !in_view(r.copy_at) ||
            stamp->version < version) {
            continue;
        }
        answer.push_back({id, self_.id, r.copy_at, stamp->version, false});
    }
    if (!not_served.empty()) {
        // Handed over from here (a fetch), or moved on since: the location
        // this node holds, the very entry the asker missed, when its members
        // are in the view. A hand-over's (no backup yet) only while this node
        // keeps the handed-over copy, as new as the location: it stays until
        // the new primary's backup holds more.
        std::lock_guard lock(repl_mutex_);
        for (auto& n : not_served) {
            const auto it = locations_.find(n.id);
            if (it == locations_.end()) {
                continue;
            }
            const auto& known = it->second;
            if (known.primary.is_nil() || known.primary == from.id || known.backup == from.id ||
                known.version <= n.version || !in_view(known.primary)) {
                continue;
            }
            if (known.backup.is_nil() ? n.mine.value_or(0) < known.version : !in_view(known.backup)) {
                continue;
            }
            answer.push_back({std::move(n.id), known.primary, known.backup, known.version, false});
        }
    }
    stats_->audit_answered.fetch_add(answer.size(), std::memory_order_relaxed);
    send_location_chunks({from.id}, std::move(answer));
}

void backup_manager::expired_here(const std::shared_ptr<session>& s) {
    // Only the primary ends a session for the others; a backup's or a
    // handed-over copy that expires here ends quietly (the primary serves it
    // and may have kept it alive).
    if (!session_access::roles_of(*s).primary) {
        return;
    }
    replication_core::expired_here(s);
    wire::location_entry e;
    e.id = s->id();
    e.primary = self_.id;
    e.version = s->version();
    e.gone = true;
    queue_location(std::move(e));
}

void backup_manager::id_gone(const std::string& id) {
    replication_core::id_gone(id);
    {
        std::lock_guard lock(repl_mutex_);
        locations_.erase(id);
    }
    // Ended (invalidated, expired) before its rename stood: the id it had
    // before ends for the others now.
    std::lock_guard lock(outbox_mutex_);
    if (auto it = renamed_from_.find(id); it != renamed_from_.end()) {
        std::move(it->second.begin(), it->second.end(), std::back_inserter(outbox_));
        renamed_from_.erase(it);
    }
}

void backup_manager::pend_old_id_end(const std::string& old_id, const std::string& new_id, std::uint64_t version,
                                     bool route) {
    // The proxies forget the old id, and a copy handed over under it (the
    // backup's before a fetch) ends: nobody would ever send it a newer
    // location. The new backup gets the rename itself (id_changed); the end
    // goes out once that stands (replicated()). A route rewrite's old id may
    // come back (a later rewrite to its route): it ends only up to `version`,
    // and leads to the new id meanwhile.
    wire::location_entry e;
    e.id = old_id;
    e.primary = self_.id;
    e.version = version;
    e.gone = true;
    e.renamed = route;
    if (route) {
        e.to = new_id;
    }
    std::vector<wire::location_entry> ends{std::move(e)};
    std::lock_guard lock(outbox_mutex_);
    if (auto it = renamed_from_.find(old_id); it != renamed_from_.end()) {
        // Renamed again before its last rename stood (x.a -> x.b -> x.c): x.a
        // ends with this rename too. Unless this rename takes it back (a
        // failed request's rewrite undone, x.a -> x.b -> x.a): x.a lives on.
        for (auto& earlier : it->second) {
            if (earlier.id != new_id) {
                ends.push_back(std::move(earlier));
            }
        }
        renamed_from_.erase(it);
    }
    if (renamed_from_.size() >= max_renames_pending && renamed_from_.count(new_id) == 0) {
        std::move(ends.begin(), ends.end(), std::back_inserter(outbox_)); // at once rather than never
        return;
    }
    auto& pending = renamed_from_[new_id];
    std::move(ends.begin(), ends.end(), std::back_inserter(pending));
}

void backup_manager::renamed_here(const std::string& old_id, const std::string& new_id, std::uint64_t version) {
    pend_old_id_end(old_id, new_id, version, false);
}

void backup_manager::route_renamed(const std::string& old_id, const std::string& new_id, std::uint64_t version) {
    replication_core::route_renamed(old_id, new_id, version);
    {
        std::lock_guard lock(repl_mutex_);
        locations_.erase(old_id);
    }
    pend_old_id_end(old_id, new_id, version, true);
}

// ---------------------------------------------------------------------------
// Receiving

void backup_manager::own_message(const member& from, wire::message& m) {
    switch (wire::type_of(m)) {
    case wire::msg_type::fetch: answer_fetch(from, std::get<wire::fetch_msg>(m)); break;
    case wire::msg_type::fetch_reply: on_fetch_reply(from, std::get<wire::fetch_reply_msg>(m)); break;
    case wire::msg_type::backup_check: answer_check(from, std::get<wire::backup_check_msg>(m)); break;
    case wire::msg_type::locations: {
        actions a;
        {
            std::lock_guard lock(repl_mutex_);
            on_locations(from, std::get<wire::locations_msg>(m));
        }
        run(a);
        break;
    }
    default: replication_core::own_message(from, m); break;
    }
}

void backup_manager::received_locked(const member& from, const wire::message& m, actions& a) {
    (void)a;
    // A whole copy or a change from a session's primary: when this copy is
    // now exactly the sender's, it is the sender's backup (whatever fetch
    // fenced it before: the sender took the session since). Otherwise the
    // message lost (a stale primary's, refused or older) and nothing changes.
    auto from_primary = [&](const std::string& id, std::uint64_t version, std::uint64_t tag) {
        auto s = find(id);
        const auto mine = s ? session_access::valid_stamp(*s) : std::nullopt;
        if (!mine || mine->version != version || (tag != 0 && mine->tag != tag)) {
            return;
        }
        if (session_access::roles_of(*s).primary) {
            return; // served here (the same copy came back): not demoted by an old message
        }
        session_access::make_backup(*s);
        locations_[id] = {from.id, self_.id, version};
    };
    switch (wire::type_of(m)) {
    case wire::msg_type::created: {
        const auto& f = std::get<wire::created_msg>(m).s;
        from_primary(f.id, f.version, f.tag);
        break;
    }
    case wire::msg_type::delta: {
        const auto& d = std::get<wire::delta_msg>(m);
        from_primary(d.id, d.after, d.after_tag);
        break;
    }
    case wire::msg_type::id_changed: {
        const auto& c = std::get<wire::id_changed_msg>(m);
        locations_.erase(c.old_id);
        from_primary(c.new_id, c.after, 0);
        break;
    }
    case wire::msg_type::expired: locations_.erase(std::get<wire::expired_msg>(m).id); break;
    default: break;
    }
}

void backup_manager::on_locations(const member& from, const wire::locations_msg& m) {
    for (const auto& e : m.entries) {
        stats_->locations_received.fetch_add(1, std::memory_order_relaxed);
        auto s = find(e.id);
        const auto mine = s ? session_access::valid_stamp(*s) : std::nullopt;
        const auto r = s ? session_access::roles_of(*s) : session_access::roles{};
        if (e.gone) {
            if (auto it = locations_.find(e.id); it != locations_.end() && it->second.version > e.version) {
                continue; // an older end: the id came back since (x.a -> x.b -> x.a)
            }
            locations_.erase(e.id);
            if (e.renamed) {
                // A proxy too leads the old id to the new one (it fetches it).
                renamed_elsewhere(e.id, e.to);
            }
            if (mine && !r.primary && mine->version <= e.version) {
                tombstone_locked(e.id, e.version, e.renamed, e.to);
                awaiting_.erase(e.id);
                store().erase(e.id);
                stats_->copies_dropped.fetch_add(1, std::memory_order_relaxed);
            }
            continue;
        }
        lift_route_locked(e.id, e.version);
        auto& known = locations_[e.id];
        if (mine && !r.primary && r.handed_to.is_nil() && known.primary == from.id && e.primary != from.id) {
            // From the primary this copy backs: the session moved (a fetch).
            // This copy no longer backs anyone until the new primary sends
            // its own; above all it is not promoted if the old one dies.
            session_access::hand_over(*s, e.primary);
        }
        if (known.version <= e.version) {
            known = {e.primary, e.backup, e.version};
        }
        if (!mine || e.primary == self_.id || e.backup == self_.id) {
            continue;
        }
        if (mine.value_or(wire::stamp{}).version > e.version) {
            continue; // an older location (they arrive from many members in any order)
        }
        if (mine->version == e.version) {
            // As new as this copy: it retires it only from the member this
            // node's audit asked about that very version, naming itself
            // primary and a backup (answer_check's answer, or its notice of
            // the same state). Safe because every whole copy and every
            // change steps the version: a location at this version cannot
            // predate this node becoming a backup in step, which would have
            // moved its copy past it. Nothing else at an equal version does
            // (a welcome's entry may name no backup, or one unconfirmed).
            const auto q = open_questions_.find(e.id);
            if (r.primary || e.backup.is_nil() || q == open_questions_.end() || q->second.version != e.version ||
                q->second.primary != from.id || e.primary != from.id) {
                continue;
            }
            open_questions_.erase(q);
        }
        // Another member serves it and its backup holds it: this copy (an old
        // backup's, a handed-over one, or ours if our backup handed it over
        // while we were frozen) is no longer needed. A request still holding
        // it here cannot commit (handed over).
        {
            std::lock_guard order(session_access::order(*s));
            session_access::hand_over(*s, e.primary);
        }
        awaiting_.erase(e.id);
        store().erase_if_same(e.id, s.get());
        stats_->copies_dropped.fetch_add(1, std::memory_order_relaxed);
    }
}

// ---------------------------------------------------------------------------
// Fetching: answering

void backup_manager::answer_fetch(const member& from, const wire::fetch_msg& m) {
    stats_->fetches_answered.fetch_add(1, std::memory_order_relaxed);
    reply r;
    r.request = m.request;
    r.what = reply::outcome::missing;
    // A route-rewritten id (its client did not get the new cookie): answered
    // for the new id, as begin_request finds it; the fetcher takes the
    // session under that id.
    std::string id = m.id;
    auto s = find(id);
    if (!s) {
        if (auto to = alias_of(id)) {
            if (auto renamed = find(*to)) {
                id = std::move(*to);
                s = std::move(renamed);
            } else {
                std::lock_guard lock(repl_mutex_);
                if (locations_.count(id) == 0 && locations_.count(*to) > 0) {
                    id = std::move(*to); // answered with where the new id lives
                }
            }
        }
    }
    std::optional<wire::stamp> stamp;
    session_access::roles roles;
    if (s) {
        // Roles are read and acted on under the session's order lock: two
        // fetchers racing for the same session (or a fetch racing a request
        // here) see one hand-over, never two copies both handed out as found.
        // Not under repl_mutex_: on_locations takes this order lock under it.
        std::lock_guard order(session_access::order(*s));
        stamp = session_access::valid_stamp(*s);
        roles = stamp ? session_access::roles_of(*s) : session_access::roles{};
        if (stamp && (minority_.load(std::memory_order_acquire) ||
                      (!roles.primary && unverified_.load(std::memory_order_acquire)))) {
            // This node is reconciling (a healed cut, a pause) or cut off from
            // most members: its copy may be one the others moved past while it
            // was away. The fetcher asks again shortly; it takes no other copy
            // meanwhile (this one may be the newest). A copy that is primary
            // here was fetched or kept after the pause was noticed (every
            // primary is demoted then: own_copies_doubted_locked), so it is
            // handed over as usual; nothing is while this node sees fewer
            // than half of the members (the others may have taken its
            // sessions over: it is demoted then too).
            r.what = reply::outcome::busy;
        } else if (stamp && (roles.primary || m.any)) {
            // The primary hands its session over; any other copy only when the
            // fetcher asks every member (it found no primary): it takes the
            // best of them, and every copy it asked is fenced, so one primary
            // results.
            r.session.push_back(session_access::to_full(*s, now()));
            session_access::hand_over(*s, from.id);
            if (roles.primary && !roles.copy_at.is_nil() && roles.copy_at != from.id) {
                // Our backup learns first (the same stream order as its deltas)
                // that it no longer backs a primary here: were we to die now, it
                // must not promote its copy while the fetcher serves the session.
                wire::locations_msg moved;
                moved.entries.push_back({id, from.id, {}, r.session.front().version, false});
                stats_->locations_sent.fetch_add(1, std::memory_order_relaxed);
                link_->send({roles.copy_at}, wire::encode(moved), engine::send_options::async, count_failures());
            }
            r.what = reply::outcome::found;
        }
    }
    if (r.what == reply::outcome::found) {
        stats_->handed_over.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(repl_mutex_);
        locations_[id] = {from.id, {}, r.session.front().version};
    } else if (stamp && r.what != reply::outcome::busy) {
        // A backup's or a handed-over copy: where the session went, if known.
        member_id hint = roles.handed_to;
        if (hint.is_nil() || hint == self_.id) {
            std::lock_guard lock(repl_mutex_);
            if (auto it = locations_.find(id); it != locations_.end()) {
                hint = it->second.primary;
            }
        }
        if (!hint.is_nil() && hint != self_.id && hint != from.id && member_now(hint)) {
            r.what = reply::outcome::moved;
            r.to = hint;
        }
    } else if (!stamp) {
        bool busy = false;
        {
            std::lock_guard lock(flights_mutex_);
            busy = flights_.count(id) > 0;
        }
        if (busy) {
            r.what = reply::outcome::busy;
        } else {
            std::lock_guard lock(repl_mutex_);
            if (auto it = locations_.find(id); it != locations_.end() && it->second.primary != self_.id &&
                                                  it->second.primary != from.id && !m.any) {
                r.what = reply::outcome::moved;
                r.to = it->second.primary;
            }
        }
        if (r.what == reply::outcome::moved && !member_now(r.to)) {
            r.what = reply::outcome::missing;
            r.to = {};
        }
    }
    link_->send({from.id}, wire::encode(r), engine::send_options::async, count_failures());
}

void backup_manager::on_fetch_reply(const member& from, wire::fetch_reply_msg& m) {
    std::shared_ptr<round> r;
    {
        std::lock_guard lock(rounds_mutex_);
        auto it = rounds_.find(m.request);
        if (it == rounds_.end()) {
            return; // a round that gave up; its copy was handed over and comes back by a later fetch
        }
        r = it->second;
    }
    std::lock_guard lock(r->mutex);
    r->replies.emplace_back(from.id, std::move(m));
    r->cv.notify_all();
}

// ---------------------------------------------------------------------------
// Fetching: asking

std::shared_ptr<backup_manager::round> backup_manager::ask(const std::vector<member_id>& to, const std::string& id,
                                                           bool any, steady::time_point until,
                                                           const std::set<member_id>& silent) {
    auto r = std::make_shared<round>();
    r->asked = to;
    const auto request = random_request();
    {
        std::lock_guard lock(rounds_mutex_);
        rounds_[request] = r;
    }
    const auto payload = wire::encode(wire::fetch_msg{request, id, any});
    for (const auto& m : to) {
        link_->send({m}, payload, engine::send_options::async, [r, m](const engine::send_result& res) {
            if (!res.ok()) {
                std::lock_guard lock(r->mutex);
                r->unreachable.insert(m);
                r->cv.notify_all();
            }
        });
    }
    {
        std::unique_lock lock(r->mutex);
        const auto expected = static_cast<std::size_t>(std::count_if(
            to.begin(), to.end(), [&](const member_id& m) { return silent.count(m) == 0; }));
        const auto settled = [&] {
            // A member that left the view will not answer (member_departed_locked
            // wakes us): waiting for it would hold the request for the whole
            // step, up to fetch_limit when every member was asked.
            // Each asked member counts once: one that left the view may still
            // answer (its reply was on the way).
            const auto members = link_->members();
            std::size_t settled_members = 0;
            for (const auto& m : r->asked) {
                const bool replied = std::any_of(r->replies.begin(), r->replies.end(),
                                                 [&](const auto& x) { return x.first == m; });
                const bool in_view = std::any_of(members.begin(), members.end(),
                                                 [&](const member& x) { return x.id == m; });
                if (!replied && !in_view) {
                    r->unreachable.insert(m);
                }
                settled_members += replied || r->unreachable.count(m) > 0 ? 1 : 0;
            }
            if (stopping_ || settled_members >= r->asked.size()) {
                return true;
            }
            const bool found = std::any_of(r->replies.begin(), r->replies.end(), [](const auto& x) {
                return x.second.what == reply::outcome::found;
            });
            return found && r->replies.size() >= expected;
        };
        // In slices: a departure noticed between a look and the wait (or a
        // wake-up lost to it) costs a slice, not the step.
        while (!settled() && steady::now() < until) {
            r->cv.wait_until(lock, std::min(until, steady::now() + round_slice));
        }
    }
    std::lock_guard lock(rounds_mutex_);
    rounds_.erase(request);
    return r;
}

std::shared_ptr<session> backup_manager::take(const wire::full_session& f, bool& unavailable) {
    actions a;
    std::shared_ptr<session> s;
    bool ended = false;
    {
        std::lock_guard lock(repl_mutex_);
        install_locked(f, install_mode::if_wins, a);
        ended = ended_for_good_locked(f.id);
        s = find(f.id);
        if (s && session_access::valid_stamp(*s)) {
            session_access::make_primary(*s, self_.id);
            locations_[f.id] = {self_.id, {}, f.version};
        } else {
            s.reset();
        }
    }
    run(a);
    // Refused by a newer copy here or a route tombstone (a rename this node
    // heard of): the session exists, so the request fails rather than making
    // a new one. An id that ended for good (invalidated, rotated away) starts
    // anew.
    unavailable = s == nullptr && !ended;
    return s;
}

std::shared_ptr<session> backup_manager::wait_for(std::string_view id, lookup& l) {
    auto s = replication_core::wait_for(id, l);
    if (l.would_wait || stopping_ || (s && session_access::roles_of(*s).primary)) {
        return s;
    }
    if (!l.may_wait) {
        l.would_wait = true; // a fetch asks other members
        return nullptr;
    }
    return fetch(std::string(id), l.unavailable);
}

std::shared_ptr<session> backup_manager::find_moved(const std::string& id, lookup& l) {
    {
        std::lock_guard lock(repl_mutex_);
        if (locations_.count(id) == 0) {
            return nullptr;
        }
    }
    if (!l.may_wait) {
        l.would_wait = true;
        return nullptr;
    }
    bool unavailable = false;
    return fetch(id, unavailable, true);
}

bool backup_manager::known_past_locked(const std::string& id, std::uint64_t version) const {
    const auto it = locations_.find(id);
    return it != locations_.end() && it->second.version > version;
}

bool backup_manager::unverified(std::string_view id) {
    if (replication_core::unverified(id)) {
        return true;
    }
    auto s = find(id);
    return s && !session_access::roles_of(*s).primary;
}

std::shared_ptr<session> backup_manager::fetch(const std::string& id, bool& unavailable, bool hops_only) {
    if (link_->on_io_thread()) {
        unavailable = true; // cannot wait for answers on the thread that receives them
        return nullptr;
    }
    std::shared_ptr<flight> f;
    bool leader = false;
    {
        std::lock_guard lock(flights_mutex_);
        auto [it, fresh] = flights_.try_emplace(id);
        if (fresh) {
            it->second = std::make_shared<flight>();
            leader = true;
        }
        f = it->second;
    }
    if (!leader) {
        stats_->fetch_waiters.fetch_add(1, std::memory_order_relaxed);
        std::unique_lock lock(f->mutex);
        if (!f->cv.wait_for(lock, fetch_limit + std::chrono::seconds(1), [&] { return f->done; })) {
            unavailable = true;
            return nullptr;
        }
        unavailable = f->unavailable;
        return f->result;
    }
    stats_->fetches.fetch_add(1, std::memory_order_relaxed);
    const auto started = steady::now();
    bool missing = false;
    auto s = run_fetch(id, missing, hops_only);
    note_latency(steady::now() - started);
    log()->debug("context {}: fetch of {}: {} after {} ms", config().context, id,
                 s ? "found" : missing ? "unavailable" : "none: a new session",
                 std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count());
    if (s) {
        stats_->fetch_found.fetch_add(1, std::memory_order_relaxed);
    } else if (missing) {
        stats_->fetch_unavailable.fetch_add(1, std::memory_order_relaxed);
    } else {
        stats_->fetch_new.fetch_add(1, std::memory_order_relaxed);
    }
    {
        std::lock_guard lock(flights_mutex_);
        flights_.erase(id);
    }
    {
        std::lock_guard lock(f->mutex);
        f->done = true;
        f->result = s;
        f->unavailable = missing;
    }
    f->cv.notify_all();
    unavailable = missing;
    return s;
}

std::shared_ptr<session> backup_manager::run_fetch(const std::string& id, bool& unavailable, bool hops_only) {
    if (minority_.load(std::memory_order_acquire)) {
        // Cut off from most of the cluster: the copies in reach (our own
        // included) may be old ones the others have moved past.
        unavailable = true;
        return nullptr;
    }
    const auto deadline = steady::now() + fetch_limit;
    std::deque<member_id> queue;
    {
        std::lock_guard lock(repl_mutex_);
        if (auto it = locations_.find(id); it != locations_.end()) {
            queue.push_back(it->second.primary);
            queue.push_back(it->second.backup);
        }
    }
    if (auto s = find(id)) {
        if (const auto to = session_access::roles_of(*s).handed_to; !to.is_nil()) {
            queue.push_front(to);
        }
    }
    std::set<member_id> silent; // asked and did not answer in time
    std::map<member_id, int> asked;
    int hops = 0;
    // "Moved to" a member outside our view, which the answerer sees alive:
    // the views disagree (a heal still in progress), and the copies in
    // reach may not be the session's. Nothing is taken then.
    bool beyond_view = false;
    // 1. The members it is known to live on, one at a time, following "moved".
    while (!queue.empty() && hops < max_hops && steady::now() < deadline && !stopping_) {
        const auto m = queue.front();
        queue.pop_front();
        if (m.is_nil() || m == self_.id || silent.count(m) > 0 || asked[m] >= 3 || !member_now(m)) {
            continue;
        }
        ++asked[m];
        ++hops;
        stats_->fetch_hops.fetch_add(1, std::memory_order_relaxed);
        const auto asked_at = steady::now();
        const auto r = ask({m}, id, false, std::min(asked_at + fetch_step, deadline));
        std::lock_guard lock(r->mutex);
        log()->debug("context {}: fetch of {}: member {} answered {} after {} ms", config().context, id, m.str(),
                     r->replies.empty() ? (!r->unreachable.empty() ? "nothing (unreachable)" : "nothing (timeout)")
                                        : outcome_name(r->replies.front().second.what),
                     std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - asked_at).count());
        if (r->replies.empty()) {
            silent.insert(m);
            stats_->fetch_timeouts.fetch_add(r->unreachable.empty() ? 1 : 0, std::memory_order_relaxed);
            continue;
        }
        auto& answer = r->replies.front().second;
        switch (answer.what) {
        case reply::outcome::found: return take(answer.session.front(), unavailable);
        case reply::outcome::moved:
            beyond_view = beyond_view || (!answer.to.is_nil() && answer.to != self_.id && !member_now(answer.to));
            queue.push_front(answer.to);
            break;
        case reply::outcome::busy:
            std::this_thread::sleep_for(busy_pause);
            queue.push_front(m);
            break;
        case reply::outcome::missing: break;
        }
    }
    // While the view is still healing after this node was in a minority, a
    // member out of our view may be serving the session in the others' view,
    // asked and fenced by nobody; so may the member a "moved to" named that we
    // do not see. No copy in reach may be taken then, and asking every member
    // would fence their copies for nothing (the real primary's next change
    // would be refused at its backup): the request fails at once.
    std::size_t known = 0;
    bool healing = false;
    {
        std::lock_guard lock(repl_mutex_);
        known = cluster_size_locked().known;
        healing = healing_locked();
    }
    if (healing || beyond_view || hops_only) {
        log()->debug("context {}: fetch of {}: unavailable ({})", config().context, id,
                     healing ? "the view is healing" : beyond_view ? "moved beyond this view" : "hops only");
        unavailable = true;
        return nullptr;
    }
    // 2. Every member, any copy: the best wins. Our own copy counts too.
    std::vector<member_id> everyone;
    for (const auto& m : link_->members()) {
        everyone.push_back(m.id);
    }
    std::optional<wire::full_session> best;
    if (auto s = find(id); s && session_access::valid_stamp(*s)) {
        best = session_access::to_full(*s, now());
    }
    bool complete = true;
    bool busy = false;
    std::size_t heard = 0;
    if (!everyone.empty()) {
        stats_->fetches_broadcast.fetch_add(1, std::memory_order_relaxed);
        const auto until = std::max(deadline, steady::now() + fetch_step);
        const auto r = ask(everyone, id, true, until, silent);
        std::lock_guard lock(r->mutex);
        for (auto& [m, answer] : r->replies) {
            if (answer.what == reply::outcome::found) {
                auto& f = answer.session.front();
                if (!best || wins(f.where(), best->where())) {
                    best = std::move(f);
                }
            } else if (answer.what == reply::outcome::busy) {
                complete = false;
                busy = true;
            }
        }
        complete = complete && r->replies.size() >= everyone.size();
        heard = r->replies.size();
    }
    // Every acknowledged version is on two members (primary and backup), so
    // the best copy is known only when at most one member besides this node
    // did not answer, counting those that failed recently (a view that is
    // still filling up after a heal lacks members that served the session
    // meanwhile: this node's own old copy would look best).
    const bool too_few = known > heard + 2;
    log()->debug("context {}: fetch of {}: every member asked: {} of {} answered, {} failed, best {}{}{}",
                 config().context, id, heard, everyone.size(), everyone.size() - heard, best ? "found" : "none",
                 busy ? ", one busy" : "", too_few ? ", too few" : "");
    // A member that answered busy is reconciling: its copy may be the newest
    // (it served the session before a pause): no other copy is taken over it.
    if (best && !busy && !too_few) {
        return take(*best, unavailable);
    }
    // Nobody holds it: a new session, as users expect. Someone did not answer
    // or answered busy, too few members answered, or this node is still
    // reconciling with members it had lost (a healed partition, a pause: its
    // view may lack the members that hold it): the session may exist, so the
    // request fails instead.
    unavailable = !complete || too_few || unverified_.load(std::memory_order_acquire);
    return nullptr;
}

void backup_manager::note_latency(steady::duration d) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    std::lock_guard lock(stats_->latency_mutex);
    auto& ring = stats_->latency_us;
    const auto v = static_cast<std::uint32_t>(std::clamp<std::int64_t>(us, 0, UINT32_MAX));
    if (ring.size() < latency_ring) {
        ring.push_back(v);
    } else {
        ring[stats_->latency_next] = v;
    }
    stats_->latency_next = (stats_->latency_next + 1) % latency_ring;
}

// ---------------------------------------------------------------------------
// Membership

void backup_manager::begin_catch_up_locked(actions& a) {
    // Nothing to receive before serving: sessions are fetched when asked for
    // and locations come as sessions move. (The core's discovery wait, which
    // ran before this, keeps requests from starting sessions too early.)
    (void)a;
}

bool backup_manager::catch_up_message_locked(const member&, wire::message&, std::size_t, actions&) { return false; }

void backup_manager::member_alive_locked(const member& m, actions& a) {
    // A member that joins or comes back learns where the sessions served here
    // live (not their data), in bounded chunks off the receive path: a request
    // for one of them there asks its primary first instead of every member.
    // Then it takes the backups rendezvous hashing now gives it, gradually.
    membership_epoch_.fetch_add(1, std::memory_order_relaxed);
    restores_running_.fetch_add(1);
    a.then.push_back([this, to = m.id] {
        bulk_.post([this, to] {
            const release done{[this] { restores_running_.fetch_sub(1); }};
            welcome(to);
        });
    });
}

void backup_manager::member_departed_locked(const member& m, actions& a) {
    membership_epoch_.fetch_add(1, std::memory_order_relaxed);
    restores_running_.fetch_add(1);
    a.then.push_back([this, gone = m.id, since = steady::now()] {
        wake_waits(); // fetches waiting for its answer stop waiting
        bulk_.post([this, gone, since] {
            const release done{[this] { restores_running_.fetch_sub(1); }};
            restore_copies(gone, since);
        });
    });
}

void backup_manager::catch_up_housekeeping_locked(steady::time_point, actions&) {}

void backup_manager::own_copies_doubted_locked(actions& a) {
    // While this node was frozen or cut off, the others may have fetched its
    // sessions from their backups and moved on. Still primary here, it would
    // serve its old copies without asking, refuse the new primary's changes
    // at its backups and answer fetches with them: two primaries, and the
    // acknowledged changes of one are lost. Every copy served here becomes a
    // plain copy: the next request fetches the session (from this very copy
    // when nobody moved past it), so one primary remains.
    //
    // Each remembers the backup whose loss would leave this copy alone
    // (doubted_backup: restore_copies and majority_regained_locked fetch it
    // again when that member is gone). While a whole copy to a new backup is
    // unconfirmed (a departure's restore still in flight), that is the backup
    // before it, not the new one. Under outbox_mutex_ with the session's own
    // lock inside it, the order replicated() takes them in.
    (void)a;
    std::uint64_t demoted = 0;
    std::lock_guard lock(outbox_mutex_);
    for (std::size_t shard = 0; shard < session_store::shard_count; ++shard) {
        for (const auto& s : store().shard_snapshot(shard)) {
            const auto pending = unconfirmed_.find(s->id());
            const auto in_step = pending != unconfirmed_.end() ? pending->second.previous : member_id{};
            demoted += session_access::demote(*s, in_step) ? 1 : 0;
        }
    }
    stats_->demotions.fetch_add(demoted, std::memory_order_relaxed);
    if (demoted > 0) {
        log()->info("context {}: {} sessions served here are fetched again before they are served (another "
                    "member may serve them now)",
                    config().context, demoted);
    }
}

void backup_manager::answer_full(const member& from, const wire::get_all_msg& g) {
    // A state transfer is the delta manager's; this context keeps no full set.
    (void)stream_answer(from, g, [](chunk_writer&, const std::function<bool(std::size_t)>&) { return true; });
}

void backup_manager::restore_copies(member_id gone, steady::time_point since) {
    stats_->restore_runs.fetch_add(1, std::memory_order_relaxed);
    if (minority_.load(std::memory_order_acquire)) {
        // Cut off from most members: `gone` is most likely alive on the other
        // side, serving its sessions. Promoting its backups here would make a
        // second primary; the heal reconciles instead.
        log()->info("context {}: a member left while this node sees fewer than half of the cluster: no copies "
                    "are moved until the others reappear",
                    config().context);
        return;
    }
    // What needs a copy: our primaries whose backup was on `gone`, and the
    // backups whose primary was (promoted here first). And the sessions
    // served here until a pause demoted them (own_copies_doubted_locked)
    // whose backup was on `gone`: nobody else knows this copy is now the
    // only one, and nobody would restore it until a request fetched it.
    std::vector<std::shared_ptr<session>> due;
    std::vector<std::string> doubted;
    for (std::size_t shard = 0; shard < session_store::shard_count && !stopping_; ++shard) {
        for (auto& s : store().shard_snapshot(shard)) {
            if (!session_access::valid_stamp(*s)) {
                continue;
            }
            const auto r = session_access::roles_of(*s);
            if (r.primary) {
                if (r.copy_at == gone || r.copy_at.is_nil()) {
                    due.push_back(std::move(s));
                }
                continue;
            }
            if (!r.handed_to.is_nil()) {
                continue; // handed over: see the class comment
            }
            if (r.doubted_backup == gone) {
                doubted.push_back(s->id());
                continue;
            }
            std::lock_guard lock(repl_mutex_);
            auto it = locations_.find(s->id());
            if (it != locations_.end() && it->second.primary == gone) {
                session_access::make_primary(*s, self_.id);
                it->second.primary = self_.id;
                stats_->promotions.fetch_add(1, std::memory_order_relaxed);
                due.push_back(std::move(s));
            }
        }
    }
    if (!doubted.empty()) {
        post_reacquire(std::move(doubted), since, reacquire_cause::backup_gone);
    }
    if (due.empty()) {
        return;
    }
    const auto [restored, not_restored] = copy_whole(due, std::chrono::milliseconds(0));
    stats_->restored.fetch_add(restored, std::memory_order_relaxed);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - since).count();
    stats_->last_restore_ms.store(ms, std::memory_order_relaxed);
    log()->info("context {}: a member left: {} sessions have their second copy again after {} ms{}", config().context,
                restored, ms,
                not_restored ? " (" + std::to_string(not_restored) + " not acknowledged: no copy was taken)" : std::string());
}

void backup_manager::post_reacquire(std::vector<std::string> ids, steady::time_point since, reacquire_cause cause) {
    const bool stranded = cause == reacquire_cause::stranded;
    if (stranded && audit_fetching_.exchange(true)) {
        return; // the last audit round's fetch is still queued or running
    }
    const auto finished = [this, stranded] {
        if (stranded) {
            audit_fetching_.store(false);
        }
        restores_running_.fetch_sub(1);
    };
    restores_running_.fetch_add(1);
    const bool posted = reacquirer_.post([this, ids = std::move(ids), since, stranded, finished] {
        const release done{finished};
        const auto [copied, missed] =
            reacquire_doubted(ids, stranded ? stats_->audit_fetched : stats_->reacquired);
        if (!stranded) {
            stats_->restored.fetch_add(copied, std::memory_order_relaxed);
        }
        log()->info("context {}: {} sessions demoted here (a pause or a cut) {} have their second copy again after "
                    "{} ms{}",
                    config().context, copied, stranded ? "that nobody served again" : "whose backup is gone",
                    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - since).count(),
                    missed ? " (" + std::to_string(missed) +
                                 (stranded ? " left to the next round)" : " left to their next request)")
                           : std::string());
    });
    if (!posted) {
        finished();
    }
}

void backup_manager::majority_regained_locked() {
    // A backup that left while this node was cut off from most members was
    // not restored then (restore_copies does nothing in a minority): the
    // sessions demoted here whose backup is not back are fetched again.
    std::vector<std::string> ids;
    const auto members = link_->members();
    for (std::size_t shard = 0; shard < session_store::shard_count; ++shard) {
        for (const auto& s : store().shard_snapshot(shard)) {
            const auto r = session_access::roles_of(*s);
            if (!r.primary && r.handed_to.is_nil() && !r.doubted_backup.is_nil() &&
                std::none_of(members.begin(), members.end(),
                             [&](const member& m) { return m.id == r.doubted_backup; })) {
                ids.push_back(s->id());
            }
        }
    }
    if (!ids.empty()) {
        post_reacquire(std::move(ids), steady::now(), reacquire_cause::backup_gone);
    }
}

bool backup_manager::still_doubted(const std::string& id) {
    const auto s = find(id);
    if (!s || !session_access::valid_stamp(*s)) {
        return false;
    }
    // (Not locations_: after a heal it may name a member that no longer
    // serves the session; the fetch asks it first anyway.)
    const auto r = session_access::roles_of(*s);
    return !r.primary && r.handed_to.is_nil();
}

backup_manager::copy_counts backup_manager::reacquire_doubted(const std::vector<std::string>& ids,
                                                               std::atomic<std::uint64_t>& fetched) {
    // Each is fetched as a request here would fetch it: from whoever serves
    // it now if another member took it over during the pause, else this very
    // copy, which then is primary again and gets a new backup. A fetch needs
    // this node's reconciliation done and its view healed (it fails as
    // "unavailable" before), so it waits for that first, on its own thread.
    const auto ready_by = steady::now() + reacquire_wait;
    auto can_fetch = [this] {
        std::lock_guard lock(repl_mutex_);
        return !unverified_.load(std::memory_order_acquire) && !healing_locked();
    };
    while (!can_fetch() && steady::now() < ready_by && !stopping_) {
        std::this_thread::sleep_for(busy_pause);
    }
    const auto deadline = steady::now() + reacquire_limit;
    std::vector<std::shared_ptr<session>> due;
    copy_counts n;
    std::size_t k = 0;
    for (; k < ids.size() && steady::now() < deadline && !stopping_; ++k) {
        if (!still_doubted(ids[k])) {
            continue; // served again since it was queued (here, or fetched by another member)
        }
        bool unavailable = false;
        auto s = fetch(ids[k], unavailable);
        if (s && session_access::roles_of(*s).primary) {
            due.push_back(std::move(s));
        } else if (unavailable) {
            ++n.missed; // its next request fetches it again
        }
        // else: nobody holds it any more (ended meanwhile)
    }
    n.missed += ids.size() - k;
    fetched.fetch_add(due.size(), std::memory_order_relaxed);
    const auto copied = copy_whole(due, std::chrono::milliseconds(0));
    n.copied += copied.copied;
    n.missed += copied.missed;
    return n;
}

backup_manager::copy_counts backup_manager::copy_whole(const std::vector<std::shared_ptr<session>>& due,
                                                       std::chrono::milliseconds pause) {
    // In batches: each copy acknowledged (under ack/sync) before the next batch.
    struct pending {
        std::mutex mutex;
        std::condition_variable cv;
        std::size_t left = 0;
        std::size_t failed = 0;
    };
    copy_counts n;
    for (std::size_t i = 0; i < due.size() && !stopping_; i += restore_batch) {
        if (i > 0 && pause.count() > 0) {
            std::this_thread::sleep_for(pause);
        }
        auto p = std::make_shared<pending>();
        const auto end = std::min(due.size(), i + restore_batch);
        p->left = end - i;
        for (std::size_t k = i; k < end; ++k) {
            // The copy's step (a whole copy, one version more) carries no
            // request's change, so it never raises the copy's acked
            // (lineage.hpp): if this node is on the losing side of a cut it
            // has not noticed yet, the step cannot outrank what the others
            // acknowledged.
            auto copied = std::make_shared<end_slot>();
            copied->on_complete([p](std::tuple<boost::system::error_code, end_result> t) {
                const auto& r = std::get<1>(t);
                const bool failed = r.error || (r.send && !r.send->ok());
                std::lock_guard lock(p->mutex);
                p->failed += failed ? 1 : 0;
                --p->left;
                p->cv.notify_all();
            });
            replicate_async(due[k], false, false, std::move(copied));
        }
        std::unique_lock lock(p->mutex);
        p->cv.wait_for(lock, link_->wait_limit(), [&] { return p->left == 0; });
        // Unanswered ones count as not copied: the next departure, join or
        // request tries them again.
        const auto missed = std::min(end - i, p->failed + p->left);
        n.copied += end - i - missed;
        n.missed += missed;
    }
    return n;
}

void backup_manager::welcome(member_id joiner) {
    // One walk over the store: where every session served here lives (for
    // the joiner's locations), and which of them rendezvous hashing now backs
    // on the joiner (their copy moves there). Not while cut off from most
    // members: the heal reconciles first; the next join or request moves them.
    // Nothing at all while this node's own copies are in doubt (it rejoins
    // after the others removed it, or reconciles after a pause): what it
    // calls its primaries may be served elsewhere now, and a stale location
    // would make the joiner drop a copy it needs. The joiner then asks every
    // member for those sessions; the next join moves backups.
    if (unverified_.load(std::memory_order_acquire)) {
        stats_->welcomes_skipped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    const bool rebalance = !minority_.load(std::memory_order_acquire);
    std::vector<wire::location_entry> entries;
    std::vector<std::shared_ptr<session>> due;
    for (std::size_t shard = 0; shard < session_store::shard_count && !stopping_; ++shard) {
        for (auto& s : store().shard_snapshot(shard)) {
            const auto stamp = session_access::valid_stamp(*s);
            const auto r = stamp ? session_access::roles_of(*s) : session_access::roles{};
            if (!stamp || !r.primary) {
                continue;
            }
            entries.push_back({s->id(), self_.id, r.copy_at, stamp->version, false});
            if (rebalance && r.copy_at != joiner) {
                if (const auto to = destinations(*s); !to.empty() && to.front() == joiner) {
                    due.push_back(std::move(s));
                }
            }
        }
    }
    stats_->location_catch_ups.fetch_add(1, std::memory_order_relaxed);
    send_location_chunks({joiner}, std::move(entries));
    if (due.empty()) {
        return;
    }
    // Gradually, in paced batches; the old backup drops its copy when the new
    // location reaches it.
    const auto n = copy_whole(due, rebalance_pause);
    stats_->rebalanced.fetch_add(n.copied, std::memory_order_relaxed);
    log()->info("context {}: a member joined: {} backups moved to it{}", config().context, n.copied,
                n.missed ? " (" + std::to_string(n.missed) + " not acknowledged: no copy was taken)" : std::string());
    send_locations(); // the old backups drop their copies
}

// ---------------------------------------------------------------------------
// Statistics

backup_manager::role_counts backup_manager::roles() const {
    role_counts c;
    const bool others = !link_->members().empty();
    for (std::size_t shard = 0; shard < session_store::shard_count; ++shard) {
        for (const auto& s : store().shard_snapshot(shard)) {
            if (!session_access::valid_stamp(*s)) {
                continue;
            }
            const auto r = session_access::roles_of(*s);
            if (r.primary) {
                ++c.primary;
                c.single_copy += others && r.copy_at.is_nil() ? 1 : 0;
            } else if (!r.handed_to.is_nil()) {
                ++c.handed_over;
            } else {
                ++c.backup;
            }
        }
    }
    std::lock_guard lock(repl_mutex_);
    for (const auto& [id, where] : locations_) {
        if (where.primary != self_.id && where.backup != self_.id && !find(id)) {
            ++c.proxy;
        }
    }
    return c;
}

void backup_manager::add_catch_up_stats_locked(nlohmann::json& j) const {
    auto& t = j["state_transfer"];
    t["state"] = discovering_ ? "discovering" : "none";
    t["detail"] = "the backup manager fetches sessions when asked for them";
    t["queued"] = queue_.size();
}

std::string_view backup_manager::role_name(const session& s) const {
    const auto r = session_access::roles_of(s);
    return r.primary ? "primary" : r.handed_to.is_nil() ? "backup" : "handed_over";
}

void backup_manager::add_stats(nlohmann::json& j) const {
    replication_core::add_stats(j);
    const auto c = roles();
    const auto& s = *stats_;
    auto& b = j["backup"];
    b["roles"] = {{"primary", c.primary}, {"backup", c.backup}, {"handed_over", c.handed_over}, {"proxy", c.proxy}};
    b["single_copy"] = c.single_copy;
    b["fetches"] = {{"started", s.fetches.load()},        {"found", s.fetch_found.load()},
                    {"new", s.fetch_new.load()},          {"unavailable", s.fetch_unavailable.load()},
                    {"timeouts", s.fetch_timeouts.load()}, {"hops", s.fetch_hops.load()},
                    {"waited", s.fetch_waiters.load()},   {"asked_everyone", s.fetches_broadcast.load()},
                    {"answered", s.fetches_answered.load()}};
    {
        std::lock_guard lock(s.latency_mutex);
        auto v = s.latency_us;
        if (!v.empty()) {
            std::sort(v.begin(), v.end());
            b["fetches"]["latency_p50_us"] = v[v.size() / 2];
            b["fetches"]["latency_p99_us"] = v[std::min(v.size() - 1, v.size() * 99 / 100)];
        }
    }
    b["relocations"] = s.handed_over.load();
    b["whole_copies"] = s.whole_copies.load();
    b["promotions"] = s.promotions.load();
    b["demotions"] = s.demotions.load();
    b["reacquired"] = s.reacquired.load();
    b["re_replicated"] = s.restored.load();
    b["restores"] = s.restore_runs.load();
    b["restore_last_ms"] = s.last_restore_ms.load();
    b["locations_sent"] = s.locations_sent.load();
    b["locations_received"] = s.locations_received.load();
    b["location_catch_ups"] = s.location_catch_ups.load();
    b["rebalanced"] = s.rebalanced.load();
    b["welcomes_skipped"] = s.welcomes_skipped.load();
    b["copies_dropped"] = s.copies_dropped.load();
    b["audit"] = {{"rounds", s.audit_rounds.load()},
                  {"asked", s.audit_asked.load()},
                  {"answered", s.audit_answered.load()},
                  {"fetched", s.audit_fetched.load()}};
}

void backup_manager::add_metrics(std::string& out) const {
    replication_core::add_metrics(out);
    const auto c = roles();
    const auto& s = *stats_;
    auto line = [&out](std::string_view name, std::string_view labels, std::uint64_t v) {
        out += name;
        out += labels;
        out += ' ';
        out += std::to_string(v);
        out += '\n';
    };
    out += "# TYPE troupe_backup_sessions gauge\n";
    line("troupe_backup_sessions", "{role=\"primary\"}", c.primary);
    line("troupe_backup_sessions", "{role=\"backup\"}", c.backup);
    line("troupe_backup_sessions", "{role=\"handed_over\"}", c.handed_over);
    line("troupe_backup_sessions", "{role=\"proxy\"}", c.proxy);
    out += "# TYPE troupe_backup_single_copy_sessions gauge\n";
    line("troupe_backup_single_copy_sessions", "", c.single_copy);
    out += "# TYPE troupe_backup_fetches_total counter\n";
    line("troupe_backup_fetches_total", "{outcome=\"found\"}", s.fetch_found.load());
    line("troupe_backup_fetches_total", "{outcome=\"new\"}", s.fetch_new.load());
    line("troupe_backup_fetches_total", "{outcome=\"unavailable\"}", s.fetch_unavailable.load());
    out += "# TYPE troupe_backup_relocations_total counter\n";
    line("troupe_backup_relocations_total", "", s.handed_over.load());
    out += "# TYPE troupe_backup_re_replicated_total counter\n";
    line("troupe_backup_re_replicated_total", "", s.restored.load());
    out += "# TYPE troupe_backup_promotions_total counter\n";
    line("troupe_backup_promotions_total", "", s.promotions.load());
    out += "# TYPE troupe_backup_demotions_total counter\n";
    line("troupe_backup_demotions_total", "", s.demotions.load());
    out += "# TYPE troupe_backup_reacquired_total counter\n";
    line("troupe_backup_reacquired_total", "", s.reacquired.load());
    out += "# TYPE troupe_backup_copies_dropped_total counter\n";
    line("troupe_backup_copies_dropped_total", "", s.copies_dropped.load());
    out += "# TYPE troupe_backup_audit_total counter\n";
    line("troupe_backup_audit_total", "{what=\"asked\"}", s.audit_asked.load());
    line("troupe_backup_audit_total", "{what=\"answered\"}", s.audit_answered.load());
    line("troupe_backup_audit_total", "{what=\"fetched\"}", s.audit_fetched.load());
    out += "# TYPE troupe_backup_restore_last_seconds gauge\n";
    const auto ms = s.last_restore_ms.load();
    out += "troupe_backup_restore_last_seconds " + (ms < 0 ? std::string("NaN") : std::to_string(ms / 1000.0)) + "\n";
}

} // namespace troupe::managers::detail
