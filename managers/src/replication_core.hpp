// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "link.hpp"
#include "manager_base.hpp"
#include "send_waiter.hpp"
#include "session_access.hpp"
#include "wire.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace troupe::managers::detail {

/// "name (address:port)", for log lines.
std::string describe(const membership::member& m);

/// What every replicating manager shares (DESIGN.md, "Replication core"):
/// sending a request's changes and accounting for the answers, access
/// batches, expiry messages, receiving deltas and whole copies, tombstones,
/// the resync of a session with a gap, digests and reconciliation through
/// membership changes, and the catch-up of a member that joins (messages are
/// queued meanwhile and replayed after). A manager type says who receives a
/// session (destinations()) and how a joiner catches up (the catch-up hooks).
///
/// Sending: a request's end turns what changed into CREATED (first time), an
/// ID_CHANGED and/or one DELTA, each one version step, built under the
/// session's order lock and queued on the link before it is released, so that
/// every destination receives one session's messages in version order.
///
/// Receiving (on I/O threads, under repl_mutex_): a delta applies only when its
/// `before` is the replica's version; one from the future (a gap) or for an
/// unknown session is buffered and the sender is asked for the whole session;
/// when the copy comes, the buffered deltas that follow it apply in version
/// order. Nothing is guessed from clocks.
///
/// Reconciling (reconcile.cpp): whenever a member becomes alive again
/// in this node's view, the two exchange digests and each pulls what the
/// other holds newer; see that file for every membership case. A replica
/// refuses a delta built on a copy it has moved past (a NACK under ack/sync)
/// and sends its copy back; the request that made it fails.
///
/// Owns the timer thread (expiry, access batches, retries, the catch-up
/// timeout, pause detection) and a bulk thread (answering transfers and
/// digests). stop() joins both and detaches from the link.
class replication_core : public manager_base {
public:
    replication_core(std::unique_ptr<link> l, manager_config config);
    ~replication_core() override;

    /// Attaches to the link and begins catching up (begin_catch_up_locked).
    void start();
    void stop() override;
    bool await_state_transfer(std::chrono::milliseconds limit) override;

    // ---- for tests
    /// Nothing queued or running on the bulk thread.
    bool bulk_idle() const { return bulk_.idle(); }
    /// Sends the access batch now.
    void flush_access() { send_access_batch(); }
    /// Runs the periodic housekeeping now (retries, catch-up timeout).
    void housekeeping_now() { housekeeping(); }
    /// Still catching up after joining (a state transfer, for the delta manager).
    bool transferring() const;
    std::size_t awaiting() const;
    /// Members whose digest this node still waits for before it serves (a rejoin).
    std::size_t reconciling_blocking() const;
    /// As if the timer thread had not run for `gap` (a SIGSTOP, a long GC pause).
    void simulate_pause(std::chrono::milliseconds gap);

protected:
    end_result replicate(const std::shared_ptr<session>& s, bool replicates, bool ends_use) override;
    void replicate_async(const std::shared_ptr<session>& s, bool replicates, bool ends_use,
                         result_handler done) override;
    void expired_here(const std::shared_ptr<session>& s) override;
    void id_gone(const std::string& id) override;
    std::chrono::milliseconds expiry_grace() const override;
    std::shared_ptr<session> wait_for(std::string_view id, lookup& l) override;
    bool route_in_view(std::string_view route) const override;
    void route_renamed(const std::string& old_id, const std::string& new_id, std::uint64_t version) override;
    bool unverified(std::string_view id) override;
    void add_stats(nlohmann::json& j) const override;
    void add_metrics(std::string& out) const override;

    /// How a replica's NACK of a delta built on a stale copy begins (the sender
    /// recognises it in the failure's detail).
    static constexpr std::string_view stale_base_refusal = "stale base: ";
    /// How long a replica waits for a whole session it asked for before asking again.
    static constexpr std::chrono::seconds request_retry_after{2};
    /// How long an ack/sync request waits for every member before half of
    /// the group suffices (send_waiter): a frozen member does not hold it for
    /// the ack timeout plus verification (about 4 s with the defaults). Not
    /// with on_replication_failure: fail, which asks for every member.
    static constexpr std::chrono::milliseconds laggard_wait{500};

    struct replication_counters {
        std::atomic<std::uint64_t> created_sent{0}, deltas_sent{0}, expired_sent{0}, id_changes_sent{0};
        std::atomic<std::uint64_t> accessed_sent{0}, access_batches_sent{0};
        std::atomic<std::uint64_t> created_received{0}, deltas_received{0}, deltas_applied{0};
        std::atomic<std::uint64_t> deltas_stale{0}, gaps{0}, unknown_sessions{0}, conflicts{0};
        std::atomic<std::uint64_t> stale_bases_refused{0}, newer_copies_sent{0}, newer_copies_received{0};
        std::atomic<std::uint64_t> newer_copies_installed{0}, requests_refused{0};
        std::atomic<std::uint64_t> reconciles_started{0}, reconciles_completed{0}, reconciles_abandoned{0};
        std::atomic<std::uint64_t> reconcile_fetches{0}, tombstones_applied{0};
        std::atomic<std::uint64_t> pauses_detected{0}, unverified_waits{0}, unverified_wait_timeouts{0};
        std::atomic<std::uint64_t> minority_refusals{0}, laggards_skipped{0}, laggard_resyncs{0};
        std::atomic<std::uint64_t> departure_resends{0}, departure_resends_failed{0};
        std::atomic<std::uint64_t> tombstone_drops{0}, expired_received{0}, id_changes_received{0};
        std::atomic<std::uint64_t> accessed_received{0};
        std::atomic<std::uint64_t> full_requests_sent{0}, full_copies_received{0}, full_missing{0};
        std::atomic<std::uint64_t> full_copies_sent{0}, requests_given_up{0};
        std::atomic<std::uint64_t> transfers_answered{0}, transfer_sessions_sent{0}, transfer_chunks_received{0};
        std::atomic<std::uint64_t> digest_entries_sent{0}, digest_entries_received{0};
        /// Payload bytes of digest chunks, of whole copies answering GET_SESSIONS,
        /// and of state transfer chunks (what reconciliation and joins cost).
        std::atomic<std::uint64_t> digest_bytes_sent{0}, full_copy_bytes_sent{0}, transfer_bytes_sent{0};
        std::atomic<std::uint64_t> async_send_failures{0}, stale_transfer_messages{0};
        std::atomic<std::uint64_t> malformed{0};
        std::array<std::atomic<std::uint64_t>, 8> malformed_by_reason{};
    };

    /// A session this replica asked a member for, and the deltas that wait for it.
    struct awaited {
        std::vector<std::pair<membership::member_id, wire::delta_msg>> buffered;
        membership::member_id asked;
        std::chrono::steady_clock::time_point asked_at;
        int attempts = 0;
        bool answered = false; ///< the copy came; what is buffered still has a gap
    };

    /// A digest exchange with one member (reconcile.cpp).
    struct reconcile_peer {
        std::uint64_t request = 0; ///< of our GET_ALL(digest) to it
        std::chrono::steady_clock::time_point started;
        bool blocking = false;     ///< requests wait for it (a rejoin, a pause, a healed partition)
        wire::get_all_msg::mode mode = wire::get_all_msg::mode::digest;
        /// Asking failed (the member is not in our view yet): ask again then.
        std::optional<std::chrono::steady_clock::time_point> retry_at;
        std::uint64_t entries = 0;
        std::uint64_t fetches = 0;
    };

    /// What a tombstone remembers: when (for its expiry) and the version the id ended at.
    struct tombstone {
        std::chrono::steady_clock::time_point at;
        std::uint64_t version = 0;
        /// Renamed away by a route rewrite: the id may come back (x.a -> x.b
        /// -> x.a), and a message past `version` is about that new life.
        bool route = false;
        /// With `route`: the new id. Digests carry it, so that a member that
        /// missed the rename (cut off, joining) learns the alias too.
        std::string to;
    };

    /// Work decided under repl_mutex_ and done after releasing it.
    struct actions {
        std::map<membership::member_id, std::vector<std::string>> requests; ///< GET_SESSIONS per member
        std::vector<session_event> events;
        std::vector<std::pair<membership::member_id, wire::buffer>> sends; ///< async, no result needed
        /// Ask every other member (but digest_skip) for a digest: the end of a catch-up.
        bool digests = false;
        membership::member_id digest_skip;
        /// A manager type's own sends, run after the lock is released.
        std::vector<std::function<void()>> then;
        std::vector<std::pair<membership::member, wire::get_all_msg>> answer; ///< deferred GET_ALLs
        /// GET_ALL(digest-like) to send: member, request, mode.
        std::vector<std::tuple<membership::member_id, std::uint64_t, wire::get_all_msg::mode>> reconcile;
        /// Set when the message must be refused: the NACK's text for an ack/sync sender.
        std::string refuse;
    };

    struct queued {
        membership::member from;
        wire::message msg;
        std::size_t bytes = 0;
    };

    // ---- what a manager type decides (all called under repl_mutex_ unless said)
    /// The members that receive `s`'s changes, access times and end; empty:
    /// every member. Called with or without the session's order lock, never
    /// under repl_mutex_.
    virtual std::vector<membership::member_id> destinations(const session& s) const = 0;
    /// Once the link's initial discovery is done (at start, or when it ends):
    /// sets catching_up_ if this member must first receive what the others
    /// hold; messages are queued until end_catch_up_locked.
    virtual void begin_catch_up_locked(actions& a) = 0;
    /// A message that belongs to the catch-up (a state transfer's chunk, its
    /// end, a refusal): @return true if taken.
    virtual bool catch_up_message_locked(const membership::member& from, wire::message& m, std::size_t bytes,
                                         actions& a) = 0;
    /// A member became alive in the view (after the core's own handling).
    virtual void member_alive_locked(const membership::member& m, actions& a) = 0;
    /// A member left or was removed (after the core's own handling).
    virtual void member_departed_locked(const membership::member& m, actions& a) = 0;
    /// Every 200 ms on the timer thread (catch-up timeouts and retries).
    virtual void catch_up_housekeeping_locked(std::chrono::steady_clock::time_point t, actions& a) = 0;
    /// Answers a GET_ALL(full) on the bulk thread (stream_answer helps).
    virtual void answer_full(const membership::member& from, const wire::get_all_msg& g) = 0;
    /// The catch-up's part of /stats (under repl_mutex_).
    virtual void add_catch_up_stats_locked(nlohmann::json& j) const = 0;

    // ---- hooks a manager type may take (defaults: the delta manager's)
    /// Under the session's order lock, before its changes are taken: true if
    /// `to` must get the whole session (it holds no copy in step).
    virtual bool needs_whole_copy(session& s, const std::vector<membership::member_id>& to) {
        (void)s, (void)to;
        return false;
    }
    /// A request's replication ended: `ok` when it stands (acknowledged as the
    /// options ask, or queued under async). Not under any lock.
    virtual void replicated(const std::shared_ptr<session>& s, std::uint64_t step, bool ok) {
        (void)s, (void)step, (void)ok;
    }
    /// Every destination must take a change for the request to stand: no
    /// early rule, and a failed send fails it whatever on_replication_failure says.
    virtual bool strict_replication() const { return false; }
    /// A message of a type the core does not handle (not under repl_mutex_).
    virtual void own_message(const membership::member& from, wire::message& m) {
        (void)from, (void)m;
        counters_->stale_transfer_messages.fetch_add(1, std::memory_order_relaxed);
    }
    /// After the core handled a message from `from` (under repl_mutex_).
    virtual void received_locked(const membership::member& from, const wire::message& m, actions& a) {
        (void)from, (void)m, (void)a;
    }
    /// Every member holds every session: a digest entry for an id this node
    /// does not hold is fetched. False: only copies held are compared.
    virtual bool holds_every_session() const { return true; }
    /// This node may have been replaced while it was away (it noticed a pause,
    /// or a member tells it that it had been removed): whatever it served may
    /// be served elsewhere now. Under repl_mutex_, before any request or
    /// message is handled after the pause is noticed.
    virtual void own_copies_doubted_locked(actions& a) { (void)a; }
    /// This node sees a majority again after a minority. Under repl_mutex_.
    virtual void majority_regained_locked() {}

    void on_message(const membership::member& from, std::span<const std::uint8_t> payload);
    void on_member(const membership::member& m);
    void on_discovered();
    void discovered_locked(actions& a);
    void dispatch_locked(const membership::member& from, wire::message& m, std::size_t bytes, actions& a);
    void run(actions& a);

    void on_delta_locked(const membership::member& from, wire::delta_msg& d, actions& a);
    void on_expired_locked(const membership::member& from, const wire::expired_msg& e, actions& a);
    void on_accessed_locked(const wire::accessed_msg& m);
    void on_id_changed_locked(const membership::member& from, const wire::id_changed_msg& m, actions& a);
    void on_session_data_locked(const membership::member& from, wire::session_data_msg& m, actions& a);
    void on_digest_locked(const membership::member& from, const wire::digest_msg& m, actions& a);
    void on_digest_entry_locked(const membership::member& from, const wire::digest_entry& e, actions& a);
    void on_newer_copy_locked(const membership::member& from, const wire::newer_copy_msg& m, actions& a);
    bool install_locked(const wire::full_session& f, install_mode mode, actions& a);
    /// Refuses a delta built on an older copy than ours: our copy goes back to the writer.
    void refuse_stale_locked(const membership::member& from, const std::string& id, std::uint64_t base,
                             const std::shared_ptr<session>& s, actions& a);
    void drain_locked(const std::string& id, actions& a);
    void await_locked(const std::string& id, const membership::member_id& ask, actions& a,
                      wire::delta_msg* buffered);
    bool tombstoned_locked(const std::string& id) const;
    void tombstone_locked(const std::string& id, std::uint64_t version, bool route = false, std::string to = {});
    /// Whether `id` ended for good here (invalidated, expired, rotated away;
    /// not a route rewrite's end, after which it may come back).
    bool ended_for_good_locked(const std::string& id) const {
        const auto it = tombstones_.find(id);
        return it != tombstones_.end() && !it->second.route;
    }
    /// `id` lives at `version`: a route tombstone (and alias) of it from
    /// before is over.
    void lift_route_locked(const std::string& id, std::uint64_t version);
    /// Whether `id` is known here to live past `version` without a copy held
    /// here (a backup manager's location): an end at `version` is an old one.
    virtual bool known_past_locked(const std::string& id, std::uint64_t version) const {
        (void)id, (void)version;
        return false;
    }
    /// Whether a message about `id` at `version` is about an ended id: a
    /// tombstone blocks it, except a route rewrite's below `version` (which
    /// the id coming back lifts).
    bool dead_locked(const std::string& id, std::uint64_t version);
    /// Ends our copy because another member ended the id at `version` or later.
    void drop_locked(const std::string& id, bool invalidated, actions& a);

    // ---- reconciliation (reconcile.cpp)
    void start_reconcile_locked(const membership::member& m, bool blocking, wire::get_all_msg::mode mode,
                                actions& a);
    void on_get_all_reconcile(const membership::member& from, const wire::get_all_msg& g);
    void reconcile_send_failed(const membership::member_id& to, std::uint64_t request);
    bool digest_complete_locked(const membership::member& from, std::uint64_t request);
    void reconcile_housekeeping_locked(std::chrono::steady_clock::time_point t, actions& a);
    /// The timer thread did not run for a while: the others may have removed us.
    void note_pause_locked(std::chrono::milliseconds gap, actions& a);
    /// Notices a pause the timer thread has not seen yet (a request or a
    /// message ran first after SIGCONT).
    void notice_pause();
    bool unverified_locked(const std::string& id) const;
    bool minority_locked() const;
    /// Back in a majority for less than healing_window while members that
    /// failed meanwhile are still out of view: the view may still be
    /// healing, and one of those may be serving sessions on the others' side
    /// (in their view, not ours). A fetch then needs every member but us.
    bool healing_locked() const;
    /// Members by name: in view (alive, self included), and known (also those
    /// that failed in the last minority_window).
    struct cluster_size {
        std::size_t in_view = 0;
        std::size_t known = 0;
        std::string in_view_first_name; ///< the first name in sort order, in view
        std::string first_name;         ///< ... of all known
    };
    cluster_size cluster_size_locked() const;
    void update_unverified_locked();
    std::chrono::milliseconds tick_gap() const;
    void note_tick();

    /// Catching up ends: queued messages and deferred GET_ALLs are replayed,
    /// and (if `compare_digests`) every member but `source` is asked for a digest.
    void end_catch_up_locked(const membership::member_id& source, actions& a, bool compare_digests = true);
    /// Streams an answer to `from`: an opening chunk until it is reachable,
    /// then chunks of at most the transfer chunk size from `fill` (which
    /// returns false once a flush failed), a window of them in flight, then
    /// TRANSFER_COMPLETE. `fill(add, flush)`: `add(size)` before an item
    /// makes room; @return the number of items, or nullopt if it failed.
    using chunk_writer = wire::counted_writer;
    std::optional<std::uint64_t> stream_answer(
        const membership::member& from, const wire::get_all_msg& g,
        const std::function<bool(chunk_writer& chunk, const std::function<bool(std::size_t)>& room)>& fill);
    /// The largest chunk of a transfer or digest.
    std::size_t chunk_limit() const;

    void answer_get_all(const membership::member& from, const wire::get_all_msg& g);
    void answer_get_sessions(const membership::member& from, const std::vector<std::string>& ids);
    void send_access_batch();
    void housekeeping();
    void note_access(const std::shared_ptr<session>& s);
    void malformed(const membership::member& from, const boost::system::error_code& ec, std::size_t size);
    link::done_handler count_failures();
    /// Queues what the request changed (one message per version step) on the
    /// link; each send reports to `waiter` if given.
    struct sent_changes {
        std::size_t messages = 0; ///< 0: nothing to send (an access, or superseded)
        std::uint64_t version = 0;
        std::uint64_t tag = 0;
        bool superseded = false;   ///< a newer copy replaced the session during the request
        bool client_change = true; ///< see outgoing::client_change
    };
    /// With `again_of` (resend), only while the copy still holds that failed
    /// step; a request's change is then claimed again (mark_changed).
    sent_changes send_changes(const std::shared_ptr<session>& s, bool replicates, bool ends_use,
                              const std::shared_ptr<send_waiter>& waiter, const sent_changes* again_of = nullptr);
    /// Under strict replication (the backup manager: one destination, no
    /// third copy), a step whose every failure is a destination no longer in
    /// the view (the backup died or was removed during the request) is sent
    /// once more, to the destinations chosen now (a new backup, whole): the
    /// request stands if they take it. Failing it instead would leave its
    /// change on this node, and on the new backup once restore_copies copies
    /// the session: a refused request whose change the next one sees.
    /// Not in a minority (account() refuses those anyway), not twice.
    bool departed_only(const engine::send_result& merged) const;
    /// The resend of `failed` (departed_only), reporting to `waiter`; nothing
    /// when nothing went (the copy moved on, or it was handed over).
    std::optional<sent_changes> resend(const std::shared_ptr<session>& s, const sent_changes& failed,
                                       const std::shared_ptr<send_waiter>& waiter);
    /// replicate_async's resend, on the timer thread (not the I/O thread that
    /// heard the failure, under the lifetime lock): `done` hears the resend's
    /// result, or the failure when nothing was resent or the manager stops.
    /// @return false when it could not be posted (stopping): account inline.
    bool resend_later(const std::shared_ptr<session>& s, const sent_changes& failed, engine::send_result merged,
                      result_handler done);
    /// An asynchronous end's completion once `w` settles: accounts for the
    /// answers and delivers to `done`; with `may_resend`, a step that failed
    /// only by departures goes again first (resend_later).
    std::function<void(engine::send_result)> on_settled(const std::shared_ptr<session>& s, send_waiter* w,
                                                        result_handler done, bool may_resend);
    /// The request's changes were dropped: its session was replaced meanwhile.
    void superseded(end_result& result, const std::string& id);
    /// Counts and logs a failed replication; sets end_result::error under `fail`,
    /// and always when a replica refused the change as built on a stale copy.
    /// A request that stands acknowledges its step (version, tag) in the
    /// copy's stamp when it carries the request's changes (`client_change`);
    /// a failed one leaves it unacknowledged (lineage.hpp).
    void account(end_result& result, const std::shared_ptr<session>& s, std::uint64_t version, std::uint64_t tag,
                 bool client_change, engine::send_result merged, bool skipped);
    /// A waiter for one request's ack/sync replication (send_waiter.hpp).
    std::shared_ptr<send_waiter> make_waiter(const std::shared_ptr<session>& s);
    /// The timer's check of the asynchronous waiters that have not settled.
    void settle_lingering();
    bool older(const membership::member& m) const;
    std::uint64_t random_request() const;

    /// Lets send handlers that call back into the manager know it is still there.
    struct lifetime {
        std::shared_mutex mutex;
        bool open = true;
    };

    std::unique_ptr<link> link_;
    membership::member self_;
    std::shared_ptr<lifetime> lifetime_ = std::make_shared<lifetime>();
    std::shared_ptr<replication_counters> counters_ = std::make_shared<replication_counters>();
    worker bulk_;
    std::atomic<bool> stopping_{false};

    mutable std::mutex repl_mutex_; // everything below, until access_mutex_
    std::condition_variable repl_cv_;
    bool catching_up_ = false;
    /// Catching up from nobody yet: the link's initial discovery still runs,
    /// so no member in view may only mean "not heard yet" (on_discovered).
    bool discovering_ = false;
    std::chrono::steady_clock::time_point catch_up_started_;
    std::vector<queued> queue_;
    std::vector<std::pair<membership::member, wire::get_all_msg>> deferred_;
    std::unordered_map<std::string, awaited> awaiting_;
    std::unordered_map<std::string, tombstone> tombstones_;
    std::map<membership::member_id, reconcile_peer> reconciling_;
    /// A member seen leave: one that comes back is a re-admission.
    struct departure {
        std::chrono::steady_clock::time_point at;
        std::string name;
        bool failed = false; ///< removed (gone), not a clean stop (left)
    };
    std::map<membership::member_id, departure> departed_;
    /// This node sees fewer than half of the members it knew a moment ago
    /// (reconcile.cpp): it may be the cut-off side, so it neither serves
    /// before the others reappear nor acknowledges a sync write.
    std::atomic<bool> minority_{false};
    /// After a pause with nobody in view: wait this long for members to show up.
    std::chrono::steady_clock::time_point pause_hold_until_{};
    std::chrono::steady_clock::time_point majority_since_{}; ///< when minority_ last turned false
    /// Any blocking reconciliation or pause hold: the request path's fast check.
    std::atomic<bool> unverified_{false};
    std::atomic<std::int64_t> last_tick_{0}; ///< steady_clock ticks of the last housekeeping run
    std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> tombstone_order_;

    /// Members a request skipped that have not answered since (send_waiter.hpp).
    std::shared_ptr<laggard_set> laggards_ = std::make_shared<laggard_set>();
    std::mutex lingering_mutex_;
    std::vector<std::shared_ptr<send_waiter>> lingering_;

    std::mutex access_mutex_;
    std::unordered_set<std::string> accessed_;

    detail::rate_limit malformed_log_{std::chrono::seconds(60)};
    detail::rate_limit async_failure_log_{std::chrono::seconds(5)};
    detail::rate_limit stale_log_{std::chrono::seconds(5)};
    detail::rate_limit unverified_log_{std::chrono::seconds(5)};
    std::atomic<bool> malformed_logged_{false};
};

} // namespace troupe::managers::detail
