// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "replication_core.hpp"
#include "worker.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace troupe::managers::detail {

/// `manager.type: backup`: two copies of each session, and where it lives
/// everywhere else. Per session and node, one role:
///  - primary: serves it (made, fetched or promoted here); each request's
///    change goes to the backup only, so a request costs the same messages
///    whatever the cluster's size;
///  - backup: a whole copy kept in step by the primary's deltas, on the member
///    rendezvous hashing names for (id, primary) (placement.hpp): every node
///    agrees, sessions spread evenly, and a membership change moves few;
///  - proxy: the id's location (primary, backup) only, from LOCATIONS batches
///    that primaries send when a session is made, moves, or ends.
///
/// A request on a node that is not the primary fetches the session once
/// (concurrent requests for it on that node wait for the one fetch): from the
/// primary, then the backup, following "moved to" answers; a member that does
/// not answer within fetch_step is skipped. If neither has it, every member is
/// asked, and any copy will do (the best by (acked, version, tag)); if
/// nobody holds it the request starts a new session, and if some member did
/// not answer it fails as unavailable (request_scope::unavailable, HTTP 503),
/// never with a silently empty session. The answerer hands the session over:
/// a request still holding it there cannot commit, and that copy takes changes
/// from the new primary only, which fences a frozen old primary out.
///
/// Membership cases (each tested in backup_manager_test.cpp):
///  - the backup leaves or is removed: its primaries copy each session whole to
///    the next member in its ranking, in bounded batches (restore_copies);
///  - the primary leaves or is removed: its backup promotes itself and copies
///    the session to a new backup; sessions stay readable meanwhile at the
///    backup's (latest acknowledged, under sync) version;
///  - a node that handed a session over and then lost the new primary before
///    it made its copy keeps its own (handed-over) copy; a fetch asking every
///    member finds it, so nothing is promoted twice;
///  - a member joins: it learns locations as sessions move or are made, and
///    fetches what it is asked for; backups move onto it as the sessions they
///    belong to are next served (a whole copy to the new backup, then the
///    old one drops its copy on the location), so the load shifts gradually;
///  - a member is cut off, frozen or paused and comes back: the core's
///    reconciliation compares digests of the copies each holds (not of the
///    ones it does not), and the newer copy wins; the copies it served are
///    demoted (fetched again before they are served);
///  - a member back in a majority while the heal has not reached every
///    member yet (it sees a and b again, not c; c does not see it and still
///    serves its sessions): for 10 s or until all are back, a fetch that
///    found no primary in reach fails (503) before it asks every member, as
///    does one told "moved to" a member out of its view: it takes no copy c
///    never handed over, and fences none that c's next change needs;
///  - the backup of such a demoted copy leaves before a request fetched it:
///    the demoted node fetches it (reacquire_doubted, on a thread of its own)
///    and copies it to a new backup, since nobody else knows its copy is now
///    the only one; if it left while this node was cut off from most members,
///    the same happens once a majority is back and the view has healed;
///  - a backup that does not take a change fails the request under ack/sync
///    (strict_replication): there is no third copy to make it safe. Unless
///    it left the view meanwhile (it died during the request): the step goes
///    again, whole, to the backup chosen now, and the request stands if that
///    one takes it (replication_core::resend);
///  - a member asked for a session that leaves the view before it answers
///    (its connection died with the question queued): the fetch stops
///    waiting for it at once and asks the next copy (ask, wake_waits);
///  - an old backup that missed every notice of its session's move (it was
///    restarting, the batch left with a stopping primary, a failed step made
///    the primary forget it): the copy audit (audit_copies) retires it;
///  - a copy demoted here (a pause, a cut) that no request fetched, whose
///    backup stayed: nobody serves it, and no departure or heal would fetch
///    it. The audit does (post_reacquire, stranded) once it stood unchanged
///    for a round after the doubt ended: every session has a primary again
///    without waiting for its next request. Likewise when its location
///    names a member that left its question unanswered two rounds (a stale
///    location across a heal: that member does not serve it);
///  - a departure's whole copies still unconfirmed when a cut makes this
///    node a minority (a cut's departures arrive one by one): the demoted
///    session watches the backup before that copy (demote's in_step), which
///    holds its last acknowledged step; likewise after a failed whole copy.
class backup_manager final : public replication_core {
public:
    backup_manager(std::unique_ptr<link> l, manager_config config);
    ~backup_manager() override;

    void stop() override;

    // ---- for tests
    struct role_counts {
        std::size_t primary = 0, backup = 0, handed_over = 0, proxy = 0, single_copy = 0;
    };
    role_counts roles() const;
    /// Sends the pending location batch now.
    void flush_locations() { send_locations(); }
    /// Fetches started here (single-flight: concurrent requests share one).
    std::uint64_t fetches() const { return stats_->fetches.load(); }
    /// Sessions copied to a new backup after a member left (not yet all done: false).
    bool restoring() const { return restores_running_.load() > 0; }
    /// One round of the copy audit (the timer runs it every copy_audit_interval).
    void audit_now() { audit_copies(); }

    /// How long one member may take to answer a fetch before the next is asked.
    static constexpr std::chrono::milliseconds fetch_step{1000};
    /// The whole fetch, every step included.
    static constexpr std::chrono::milliseconds fetch_limit{4000};
    /// Sessions copied at once when restoring two copies after a member left.
    static constexpr std::size_t restore_batch = 1024;
    /// Between rebalancing batches: a joiner takes its share gradually.
    static constexpr std::chrono::milliseconds rebalance_pause{50};
    /// Fetching again the sessions a pause demoted whose backup left, in all.
    static constexpr std::chrono::milliseconds reacquire_limit{10000};
    /// How long reacquire_doubted waits for this node to be able to fetch
    /// (reconciled, and the view no longer healing: healing_window is 10 s).
    static constexpr std::chrono::milliseconds reacquire_wait{15000};
    /// A copy asked about that nothing changed is asked again after this
    /// many rounds, then twice as long each time (the answer may have been
    /// declined or lost).
    static constexpr std::uint64_t audit_retry_rounds = 8;
    /// A copy demoted here whose location names another member, asked about
    /// and unanswered this many rounds later, is fetched back: that member
    /// does not serve it (a location gone stale across a heal).
    static constexpr std::uint64_t stranded_after_rounds = 2;
    /// Copies asked about per round at most.
    static constexpr std::size_t audit_batch = 16384;

protected:
    std::string_view type_name() const noexcept override { return "backup"; }
    std::string_view role_name(const session& s) const override;
    std::vector<membership::member_id> destinations(const session& s) const override;
    void begin_catch_up_locked(actions& a) override;
    bool catch_up_message_locked(const membership::member& from, wire::message& m, std::size_t bytes,
                                 actions& a) override;
    void member_alive_locked(const membership::member& m, actions& a) override;
    void member_departed_locked(const membership::member& m, actions& a) override;
    void catch_up_housekeeping_locked(std::chrono::steady_clock::time_point t, actions& a) override;
    void answer_full(const membership::member& from, const wire::get_all_msg& g) override;
    void add_catch_up_stats_locked(nlohmann::json& j) const override;

    bool needs_whole_copy(session& s, const std::vector<membership::member_id>& to) override;
    void replicated(const std::shared_ptr<session>& s, std::uint64_t step, bool ok) override;
    bool strict_replication() const override { return true; }
    void own_message(const membership::member& from, wire::message& m) override;
    void received_locked(const membership::member& from, const wire::message& m, actions& a) override;
    bool holds_every_session() const override { return false; }
    void own_copies_doubted_locked(actions& a) override;
    void majority_regained_locked() override;

    std::shared_ptr<session> wait_for(std::string_view id, lookup& l) override;
    void wake_waits() override;
    bool unverified(std::string_view id) override;
    bool known_past_locked(const std::string& id, std::uint64_t version) const override;
    std::shared_ptr<session> find_moved(const std::string& id, lookup& l) override;
    void expired_here(const std::shared_ptr<session>& s) override;
    void renamed_here(const std::string& old_id, const std::string& new_id, std::uint64_t version) override;
    /// Queues the old id's end, sent once the rename to `new_id` stands at the backup.
    void pend_old_id_end(const std::string& old_id, const std::string& new_id, std::uint64_t version, bool route);
    void route_renamed(const std::string& old_id, const std::string& new_id, std::uint64_t version) override;
    void id_gone(const std::string& id) override;
    void add_stats(nlohmann::json& j) const override;
    void add_metrics(std::string& out) const override;

private:
    struct location {
        membership::member_id primary;
        membership::member_id backup;
        std::uint64_t version = 0; ///< of the copy it was learnt with: an older one does not replace it
    };

    /// One fetch of one id on this node; the requests that want it wait on it.
    struct flight {
        std::mutex mutex;
        std::condition_variable cv;
        bool done = false;
        std::shared_ptr<session> result;
        bool unavailable = false;
    };

    /// The answers to one FETCH round (one member, or every member).
    struct round {
        std::mutex mutex;
        std::condition_variable cv;
        std::vector<membership::member_id> asked;
        std::vector<std::pair<membership::member_id, wire::fetch_reply_msg>> replies;
        /// Asked members that will not answer: the send failed, or the member
        /// left the view while we waited (an async send to a member that dies
        /// is queued, then dropped, and its handler has already said "sent").
        std::set<membership::member_id> unreachable;
    };


    struct backup_counters {
        std::atomic<std::uint64_t> fetches{0}, fetch_found{0}, fetch_new{0}, fetch_unavailable{0};
        std::atomic<std::uint64_t> fetch_timeouts{0}, fetch_hops{0}, fetch_waiters{0}, fetches_broadcast{0};
        std::atomic<std::uint64_t> fetches_answered{0}, handed_over{0};
        std::atomic<std::uint64_t> whole_copies{0}, promotions{0}, demotions{0}, restored{0}, restore_runs{0},
            reacquired{0};
        std::atomic<std::uint64_t> locations_sent{0}, locations_received{0}, copies_dropped{0}, location_catch_ups{0}, rebalanced{0},
            welcomes_skipped{0};
        std::atomic<std::uint64_t> audit_rounds{0}, audit_asked{0}, audit_answered{0}, audit_fetched{0};
        std::atomic<std::int64_t> last_restore_ms{-1};
        mutable std::mutex latency_mutex;
        std::vector<std::uint32_t> latency_us; ///< the last fetches' latencies (a ring)
        std::size_t latency_next = 0;
    };

    /// `hops_only`: only from the members the session is known to live on
    /// (never every member's copies); not found there counts as unavailable.
    std::shared_ptr<session> fetch(const std::string& id, bool& unavailable, bool hops_only = false);
    std::shared_ptr<session> run_fetch(const std::string& id, bool& unavailable, bool hops_only);
    /// Sends FETCH to `to` and waits until each answered or `until`; or,
    /// once one answer holds the session, until all but `silent` (members
    /// that did not answer this fetch before) answered.
    std::shared_ptr<round> ask(const std::vector<membership::member_id>& to, const std::string& id, bool any,
                               std::chrono::steady_clock::time_point until,
                               const std::set<membership::member_id>& silent = {});
    /// Installs a fetched copy as primary here. @return null, `unavailable` set, if refused.
    std::shared_ptr<session> take(const wire::full_session& f, bool& unavailable);
    void answer_fetch(const membership::member& from, const wire::fetch_msg& m);
    void on_fetch_reply(const membership::member& from, wire::fetch_reply_msg& m);
    void on_locations(const membership::member& from, const wire::locations_msg& m);
    /// Copies every session whose second copy was on `gone` to a new backup.
    void restore_copies(membership::member_id gone, std::chrono::steady_clock::time_point since);
    struct copy_counts {
        std::size_t copied = 0; ///< acknowledged by the new backup
        std::size_t missed = 0; ///< failed or not answered within the wait limit
    };
    /// Each session's whole copy to its backup (one step more), in batches of
    /// restore_batch, each acknowledged before the next, `pause` between them.
    copy_counts copy_whole(const std::vector<std::shared_ptr<session>>& due, std::chrono::milliseconds pause);
    /// Fetches sessions demoted by a pause whose backup left (restore_copies),
    /// then copies those now primary here to their new backup; within
    /// reacquire_limit once this node may fetch (the rest wait for their
    /// next request). On the reacquirer_ thread.
    copy_counts reacquire_doubted(const std::vector<std::string>& ids, std::atomic<std::uint64_t>& fetched);
    /// Still a copy neither served here again nor handed over to a member
    /// that fetched it since it was queued: reacquire_doubted fetches only
    /// these.
    bool still_doubted(const std::string& id);
    /// Why copies demoted here are fetched back: their watched backup left
    /// (a departure, or the majority regained), or the audit found them
    /// served nowhere (stranded: one such task at a time; counted apart).
    enum class reacquire_cause { backup_gone, stranded };
    /// Posts reacquire_doubted(ids) to reacquirer_ and logs what it did.
    void post_reacquire(std::vector<std::string> ids, std::chrono::steady_clock::time_point since,
                        reacquire_cause cause);
    /// The copy audit, a safety net under the location messages (which go
    /// once, unacknowledged): an old backup whose move notice was lost (its
    /// holder was restarting, the batch was sent while its sender stopped,
    /// or a failed step made the primary forget it) would keep a stale copy
    /// for good. Each round, for the copies held here but not served that
    /// did not change since the last round, the member taken for their
    /// primary (the location's, or the one a fetch handed it to) gets one
    /// BACKUP_CHECK; answer_check() answers with a LOCATIONS entry, which
    /// retires the copy. (A primary a failed step left with one copy waits
    /// for its next request: copied again from here, an unacknowledged step
    /// on a member cut off unnoticed would outrank the copy the others
    /// promoted.) A copy demoted here that no member serves (no other
    /// primary known) is fetched back instead (post_reacquire, stranded).
    void audit_copies();
    /// A BACKUP_CHECK: for each session served here whose backup is another
    /// member, in step (no failed step since, its whole copy confirmed),
    /// and at least as new as the asker's copy, the location (self, backup,
    /// version); on_locations() at the asker then drops its copy, which two
    /// members now hold (an equal one only on this very answer). For one
    /// not served here, the location this
    /// node knows (a hand-over's, or a later one) when newer than the
    /// asker's copy. Nothing for the others: the asker keeps its copy.
    void answer_check(const membership::member& from, const wire::backup_check_msg& m);
    void queue_location(wire::location_entry e);
    void send_locations();
    /// `entries` as LOCATIONS messages of at most locations_chunk_bytes each
    /// (to every member when `to` is empty).
    void send_location_chunks(const std::vector<membership::member_id>& to, std::vector<wire::location_entry> entries);
    /// A member that joined or came back: where every session served here
    /// lives, then the backups it now takes (bulk thread).
    void welcome(membership::member_id joiner);
    bool member_now(const membership::member_id& m) const;
    void note_latency(std::chrono::steady_clock::duration d);

    std::shared_ptr<backup_counters> stats_ = std::make_shared<backup_counters>();
    /// Runs reacquire_doubted: its fetches block, and must not hold up the
    /// core's bulk thread, which answers the other members' digests.
    worker reacquirer_;
    /// Runs audit_copies every copy_audit_interval (none when 0).
    worker auditor_;

    // Under repl_mutex_ (the core's).
    std::unordered_map<std::string, location> locations_;

    std::mutex flights_mutex_;
    std::unordered_map<std::string, std::shared_ptr<flight>> flights_;

    std::mutex rounds_mutex_;
    std::unordered_map<std::uint64_t, std::shared_ptr<round>> rounds_;

    std::mutex outbox_mutex_;
    /// Moves and new sessions whose copy is not confirmed yet, by id.
    struct pending_move {
        wire::location_entry entry;
        membership::member_id previous; ///< the backup before (nil: none known), told at once when it stands
        /// The step (version) that carries the whole copy: an earlier step's
        /// answer (to the old backup) neither confirms nor fails it.
        std::uint64_t step = 0;
    };
    std::unordered_map<std::string, pending_move> unconfirmed_;
    std::vector<wire::location_entry> outbox_;
    /// The old ids' ends, by new id, of a session renamed here (several when
    /// it was renamed again before a rename stood): queued once the rename's
    /// step stands (replicated ok), not before, or the backup might drop its
    /// copy before the rename reaches it.
    std::unordered_map<std::string, std::vector<wire::location_entry>> renamed_from_;
    /// Renames whose step never stood stay until their next success or the
    /// session's end; past this many sessions an old id's end goes at once.
    static constexpr std::size_t max_renames_pending = 100000;

    std::atomic<int> restores_running_{0};

    /// Membership changes seen (joins, departures): the audit asks again.
    std::atomic<std::uint64_t> membership_epoch_{0};
    /// An audit round's fetch of stranded copies (audit_copies) is queued or
    /// running on reacquirer_: the next rounds queue none.
    std::atomic<bool> audit_fetching_{false};
    std::mutex audit_mutex_; ///< one audit round at a time; guards the five below
    std::uint64_t audit_epoch_ = 0;
    std::uint64_t audit_round_ = 0;
    /// Copies held but not served, or served with no copy in step, at the
    /// last round: id → version.
    std::unordered_map<std::string, std::uint64_t> audit_seen_;
    struct asked {
        std::uint64_t version = 0;
        membership::member_id primary; ///< whom
        std::uint64_t round = 0;       ///< when
        std::uint64_t tries = 0;       ///< how often at this version (the wait doubles)
    };
    std::unordered_map<std::string, asked> audit_asked_;
    /// Under repl_mutex_ (on_locations reads it): each copy the audit asked
    /// about, id → the version it held then and the member asked. A LOCATIONS
    /// entry from that member at that very version is its answer, which
    /// retires the copy; any other entry must be newer than the copy.
    struct question {
        std::uint64_t version = 0;
        membership::member_id primary;
    };
    std::unordered_map<std::string, question> open_questions_;
};

} // namespace troupe::managers::detail
