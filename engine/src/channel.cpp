// SPDX-License-Identifier: Apache-2.0
#include <troupe/engine/channel.hpp>
#include <troupe/membership/failure_detector.hpp>
#include <troupe/membership/dns_discovery.hpp>
#include <troupe/membership/multicast_discovery.hpp>
#include <troupe/transport/error.hpp>
#include <troupe/transport/io_thread.hpp>
#include <troupe/transport/peer_sender.hpp>
#include <troupe/transport/probe.hpp>
#include <troupe/transport/receiver.hpp>

#include "log.hpp"
#include "rate_limit.hpp"
#include "stats_interceptor.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <string_view>
#include <thread>
#include <sched.h>
#include <unistd.h>

namespace troupe::engine {

namespace asio = boost::asio;
using boost::system::error_code;
using membership::member;
using membership::member_id;
using membership::member_state;
using transport::peer_sender;

namespace {

/// A stream to a member found by discovery that has been gone this long is
/// closed: it stops retrying a place where nobody will answer again.
constexpr auto forget_after = std::chrono::seconds(60);

std::uint64_t wall_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

const std::shared_ptr<spdlog::logger>& log() {
    static const auto logger = engine_log();
    return logger;
}

/// How long a blocking ack/sync send reads (or watches) for its acks before it
/// sleeps on its condition variable: a loopback round trip fits, and a caller
/// that reads its own acks saves the I/O thread's wake-up and the futex
/// wake-up of the caller after it (5-10 µs each on a small VM) on every lone
/// sync send.
constexpr auto spin_limit = std::chrono::microseconds(50);

/// Callers polling right now, process-wide: only one polls at a time, so that
/// many concurrent senders sleep instead of burning the CPUs their acks need.
std::atomic<int> spinning{0};

/// Makes the calling thread the poller if no other blocking ack/sync send is in
/// flight in this process; undone on destruction. Every such send counts for its
/// whole duration on purpose: overlapping senders are better served by sleeping
/// while the I/O thread reads their pipelined acks (16 callers: 127k sends/s,
/// p99 ~200 µs) than by taking turns at polling (104-119k, p99 270-470 µs).
class poller_slot {
public:
    explicit poller_slot(bool wanted)
        : held_(wanted && spinning.fetch_add(1, std::memory_order_relaxed) == 0), counted_(wanted) {}
    ~poller_slot() {
        if (counted_) {
            spinning.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    poller_slot(const poller_slot&) = delete;
    poller_slot& operator=(const poller_slot&) = delete;
    bool held() const noexcept { return held_; }

private:
    bool held_;
    bool counted_;
};

/// One send waiting for its destinations: completes exactly once, either by
/// waking the blocked caller or by posting the async handler.
struct pending_send {
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t remaining = 0;
    std::atomic<bool> finished{false}; ///< remaining reached 0 (read without the mutex)
    std::vector<bool> done;
    send_result result;
    std::vector<member> members;
    send_handler handler; ///< async form only
    send_progress progress; ///< async form only, optional
    asio::io_context* io = nullptr;
    std::function<void(const send_result&)> on_sent;
    /// Streams whose acks the blocking caller reads itself (peer_sender direct
    /// reads), in the order of `members`.
    std::vector<std::shared_ptr<transport::peer_sender>> readers;

    void complete(std::size_t index, const error_code& ec, std::string_view detail) {
        std::unique_lock lock(mutex);
        if (done[index]) {
            return;
        }
        done[index] = true;
        if (ec) {
            result.failures.push_back(member_failure{members[index], ec, std::string(detail)});
        }
        const bool last = --remaining == 0;
        if (progress) {
            // Before the merged result: a caller hears of every member first.
            send_result one;
            one.destinations = 1;
            if (ec) {
                one.failures.push_back(result.failures.back());
            }
            const auto who = members[index];
            lock.unlock();
            progress(who, one);
            lock.lock();
        }
        if (last) {
            finished.store(true, std::memory_order_release);
            finish(lock);
        }
    }

    bool acked(std::size_t index) {
        std::lock_guard lock(mutex);
        return done[index];
    }

    /// The poller's wait: reads its acks from the streams in direct mode (an
    /// I/O thread reads the others) for up to spin_limit, yielding the CPU
    /// between looks; then hands reading back to the I/O threads.
    void poll_for_acks() {
        const auto until = std::chrono::steady_clock::now() + spin_limit;
        while (!finished.load(std::memory_order_acquire)) {
            // Yield first: the frames went out a moment ago, and on a busy CPU
            // the receivers run now instead of after a read that finds nothing.
            sched_yield();
            for (std::size_t i = 0; i < readers.size(); ++i) {
                if (!acked(i)) { // a read that finds nothing still costs a syscall
                    readers[i]->read_acks_here();
                }
            }
            if (finished.load(std::memory_order_acquire)) {
                return;
            }
            if (std::chrono::steady_clock::now() >= until) {
                for (const auto& r : readers) {
                    r->hand_reading_back();
                }
                return;
            }
        }
    }

    void finish(std::unique_lock<std::mutex>& lock) {
        if (handler) {
            auto h = std::move(handler);
            auto r = result;
            lock.unlock();
            if (on_sent) {
                on_sent(r);
            }
            asio::post(*io, [h = std::move(h), r = std::move(r)]() mutable { h(std::move(r)); });
        } else {
            // After the unlock: a caller woken while we still held the mutex
            // would only block on it again (two more context switches).
            lock.unlock();
            cv.notify_all();
        }
    }
};

} // namespace

struct channel::impl {
    struct target {
        member m;
        std::shared_ptr<peer_sender> sender;
    };
    using target_list = std::vector<target>;

    struct peer_slot {
        std::shared_ptr<peer_sender> sender;
        bool is_static = false;
        std::optional<member_id> current; ///< the member last seen at this endpoint
        /// When its member went or left; a stream found by discovery is forgotten
        /// after `forget_after` (static ones are kept and retried for ever).
        std::optional<std::chrono::steady_clock::time_point> gone_since;
    };

    /// Work decided under `mutex` and done after releasing it (I/O, listeners).
    struct after_unlock {
        std::vector<member> changes;
        std::vector<std::shared_ptr<peer_sender>> start;
        std::vector<std::shared_ptr<peer_sender>> drop;
        std::vector<std::shared_ptr<peer_sender>> reset;
        std::vector<std::pair<std::shared_ptr<peer_sender>, std::uint64_t>> park; ///< and its connects
        std::vector<std::shared_ptr<peer_sender>> kick;
        std::vector<member> verify;
        bool announce = false;
    };

    explicit impl(conf::cluster_config cfg)
        : config(std::move(cfg))
        , events(asio::make_strand(io))
        , detector_timer(events)
        , stats(std::make_shared<stats_interceptor>()) {}

    conf::cluster_config config;
    asio::io_context io;
    asio::strand<asio::io_context::executor_type> events;
    asio::steady_timer detector_timer;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::vector<std::thread> threads;
    std::mutex threads_mutex;
    std::condition_variable threads_cv;
    std::size_t threads_alive = 0;

    member self;
    transport::local_identity identity;
    std::shared_ptr<transport::receiver> receiver;
    std::shared_ptr<stats_interceptor> stats;
    std::vector<std::shared_ptr<interceptor>> layers; ///< top first; stats is the last
    std::atomic<std::uint64_t> next_id{1};
    /// An async message to several members is encoded here once, and each
    /// member's stream queues a slice of the same block (see dispatch).
    std::mutex arena_mutex;
    transport::frame_arena arena;
    std::atomic<bool> running{false};
    bool stopped = false;
    std::chrono::steady_clock::time_point started_at;

    mutable std::mutex mutex; // peers, table, member listeners, targets
    std::map<std::string, peer_slot> peers; ///< by endpoint "host:port"
    std::optional<membership::failure_detector> detector;
    std::unique_ptr<membership::discovery> discovery;
    /// membership.dns: the endpoints its latest answer listed, and those of
    /// membership.static (kept whatever DNS says). Guarded by `mutex`.
    std::unique_ptr<membership::dns_discovery> dns;
    std::set<std::string> dns_listed;
    std::set<std::string> static_listed;
    std::uint64_t dns_added = 0;
    std::uint64_t dns_dropped = 0;
    std::vector<member_listener> member_listeners;
    /// Read without `mutex` by senders (std::atomic_load), replaced whole under it.
    std::shared_ptr<const target_list> targets = std::make_shared<target_list>();

    /// Initial discovery (see channel::discovered). Guarded by `mutex`.
    struct first_look {
        bool done = false;
        std::set<std::string> dialling; ///< endpoints whose first attempt has not ended
        bool dns_pending = false;       ///< membership.dns has not answered yet
        /// Members heard until then are waited for; set by start() (never
        /// ends before: a dial-back racing start() must not end discovery).
        std::chrono::steady_clock::time_point listen_until = std::chrono::steady_clock::time_point::max();
        /// The bound, whatever is still pending.
        std::chrono::steady_clock::time_point give_up_at = std::chrono::steady_clock::time_point::max();
        std::vector<std::function<void()>> handlers;
    } first;

    mutable std::shared_mutex listeners_mutex;
    std::map<std::string, std::shared_ptr<message_listener>, std::less<>> listeners;
    /// Changes with every add/remove, to a value no channel in the process had
    /// before: an I/O thread's cached lookup (see find_listener) is valid while
    /// it is unchanged.
    std::atomic<std::uint64_t> listeners_version{0};

    void listeners_changed_locked() {
        static std::atomic<std::uint64_t> versions{0};
        listeners_version.store(versions.fetch_add(1) + 1, std::memory_order_release);
    }

    /// The listener for `context`, or null. Messages come in runs for one context:
    /// each I/O thread remembers its last lookup and skips the lock and the map
    /// while nothing changed. The cache holds the listener, so it stays alive for
    /// the call even if removed meanwhile (as a copy taken under the lock did); a
    /// removed listener is released by the thread's next lookup or its exit.
    message_listener* find_listener(std::string_view context) {
        struct cache {
            std::uint64_t version = 0;
            std::string context;
            std::shared_ptr<message_listener> listener;
        };
        thread_local cache last;
        const auto version = listeners_version.load(std::memory_order_acquire);
        if (version == 0 || last.version != version || last.context != context) {
            std::shared_lock lock(listeners_mutex);
            auto it = listeners.find(context);
            last.listener = it != listeners.end() ? it->second : nullptr;
            last.context.assign(context);
            last.version = listeners_version.load(std::memory_order_relaxed);
        }
        return last.listener.get();
    }

    rate_limit no_listener_log{std::chrono::seconds(1)};
    rate_limit listener_failure_log{std::chrono::seconds(1)};

    // ---- membership bookkeeping (callers hold `mutex`)

    void rebuild_targets_locked() {
        auto list = std::make_shared<target_list>();
        for (const auto& m : detector->table().sendable()) {
            auto it = peers.find(m.endpoint());
            if (it != peers.end() && it->second.current == m.id) {
                list->push_back(target{m, it->second.sender});
            }
        }
        std::atomic_store(&targets, std::shared_ptr<const target_list>(std::move(list)));
    }

    void emit(std::vector<member> changes) {
        if (changes.empty()) {
            return;
        }
        for (const auto& m : changes) {
            if (m.state == member_state::gone) {
                log()->warn("member {} ({}) removed: {}", m.name, m.endpoint(), m.reason);
            } else {
                log()->info("member {} ({}) is {}: {}", m.name, m.endpoint(), membership::to_string(m.state),
                            m.reason);
            }
        }
        // One strand for every member event: listeners see them in one order.
        asio::post(events, [this, changes = std::move(changes)] {
            std::vector<member_listener> listeners_copy;
            {
                std::lock_guard lock(mutex);
                listeners_copy = member_listeners;
            }
            for (const auto& m : changes) {
                for (auto& layer : layers) {
                    layer->on_member_event(m, m.state);
                }
                for (auto& l : listeners_copy) {
                    try {
                        l(m);
                    } catch (const std::exception& e) {
                        log()->error("member listener threw: {}", e.what());
                    }
                }
            }
        });
    }

    /// Turns the detector's decisions into work: streams to open, queues to drop,
    /// verifications to run, events to announce.
    void apply_locked(membership::detector_actions&& a, after_unlock& w) {
        for (const auto& [host, port] : a.connect) {
            if (auto s = add_peer_locked(host, port, false)) {
                w.start.push_back(std::move(s));
            } else if (auto it = peers.find(host + ":" + std::to_string(port));
                       it != peers.end() && !in_first_attempt_locked(it->first)) {
                w.kick.push_back(it->second.sender); // heard again: dial now, not after backoff
            }
        }
        for (const auto& m : a.changes) {
            if (m.state != member_state::gone && m.state != member_state::left) {
                continue;
            }
            auto it = peers.find(m.endpoint());
            if (it == peers.end() || it->second.current != m.id) {
                continue;
            }
            // A frozen member that resumes, or a healed partition, is readmitted
            // by a new handshake.
            w.drop.push_back(it->second.sender);
            const auto heard = detector->info(m.id);
            if (!it->second.is_static && heard && heard->heartbeats) {
                // Heard by multicast: its heartbeats say when it is back, and
                // each one dials while it is not connected (peer_sender::park
                // says why not before).
                w.park.emplace_back(it->second.sender, it->second.sender->stats().connects.load());
            } else if (m.state == member_state::gone) {
                // No heartbeats to hear (static, or known by its HELLO only):
                // the stream keeps redialling (capped backoff). Declared dead
                // while its connection may still look fine (a frozen peer we
                // were writing to): start over.
                w.reset.push_back(it->second.sender);
            }
            it->second.gone_since = std::chrono::steady_clock::now();
        }
        for (const auto& m : a.changes) {
            if (m.state == member_state::alive) {
                if (auto it = peers.find(m.endpoint()); it != peers.end()) {
                    it->second.gone_since.reset();
                    // Alive (again): a stream parked by a removal that raced
                    // its comeback must dial.
                    w.kick.push_back(it->second.sender);
                }
            }
        }
        w.changes.insert(w.changes.end(), a.changes.begin(), a.changes.end());
        w.verify.insert(w.verify.end(), a.verify.begin(), a.verify.end());
        w.announce = w.announce || a.answer_heartbeat;
        if (!a.changes.empty()) {
            rebuild_targets_locked();
        }
    }

    void finish(after_unlock& w) {
        for (auto& s : w.start) {
            s->start();
        }
        for (auto& s : w.drop) {
            s->drop_queued(transport::error::member_gone);
        }
        for (auto& s : w.reset) {
            s->reset("member removed by the failure detector");
        }
        for (auto& [s, connects] : w.park) {
            s->park("member removed by the failure detector", connects);
        }
        for (auto& s : w.kick) {
            if (!s->connected()) {
                s->reconnect_now();
            }
        }
        for (const auto& m : w.verify) {
            start_probe(m);
        }
        if (w.announce && discovery) {
            discovery->announce();
        }
        emit(std::move(w.changes));
    }

    /// Feeds one observation to the detector and acts on what it decides.
    template <typename Observe>
    void observe(Observe&& fn) {
        after_unlock w;
        {
            std::lock_guard lock(mutex);
            if (!running || !detector) {
                return;
            }
            apply_locked(fn(*detector, membership::failure_detector::clock::now()), w);
        }
        finish(w);
    }

    void start_probe(const member& m) {
        const auto t0 = std::chrono::steady_clock::now();
        log()->info("verifying {} ({}) over TCP: {}", m.name, m.endpoint(), m.reason);
        transport::async_probe(io, identity, m.host, m.port, m.id, config.membership.failure_detector.verify_timeout,
                               [this, id = m.id, t0](bool alive, const std::string& reason) {
                                   observe([&](auto& d, auto now) {
                                       return d.verified(id, alive, reason, now - t0, now);
                                   });
                               });
    }

    void arm_detector_timer() {
        // Ten checks per heartbeat period: silence is noticed within 10% of it.
        const auto period = std::clamp(config.membership.multicast.frequency / 10,
                                       std::chrono::milliseconds(10), std::chrono::milliseconds(100));
        detector_timer.expires_after(period);
        detector_timer.async_wait([this](const error_code& ec) {
            if (ec || !running) {
                return;
            }
            observe([](auto& d, auto now) { return d.tick(now); });
            check_discovered();
            forget_long_gone();
            arm_detector_timer();
        });
    }

    /// GET /stats "membership": discovery counters, detector counters, and per
    /// member state, heartbeat age and suspicions.
    nlohmann::json membership_json() const {
        nlohmann::json j;
        j["discovery"] = discovery ? std::string(discovery->name()) : "static";
        if (dns) {
            auto& o = j["dns"];
            o["name"] = config.membership.dns.name;
            for (const auto& [name, n] : dns->counters()) {
                o[name.substr(4)] = n; // "dns_lookups" -> dns.lookups
            }
            std::lock_guard lock(mutex);
            o["added"] = dns_added;
            o["dropped"] = dns_dropped;
            o["listed"] = dns_listed.size();
        }
        j["heartbeats_rejected"] = nlohmann::json::object();
        if (discovery) {
            for (const auto& [name, n] : discovery->counters()) {
                const std::string prefix = "heartbeats_rejected.";
                if (name.rfind(prefix, 0) == 0) {
                    j["heartbeats_rejected"][name.substr(prefix.size())] = n;
                } else {
                    j[name] = n;
                }
            }
        }
        const auto now = membership::failure_detector::clock::now();
        std::lock_guard lock(mutex);
        const auto& st = detector->stats();
        j["suspicions"] = st.suspicions;
        j["false_suspicions_avoided"] = st.false_suspicions_avoided;
        j["removals"] = st.removals;
        nlohmann::json list = nlohmann::json::array();
        for (const auto& e : detector->table().all()) {
            nlohmann::json row{{"name", e.m.name},
                               {"endpoint", e.m.endpoint()},
                               {"state", std::string(membership::to_string(e.m.state))},
                               {"reason", e.m.reason}};
            if (auto inf = detector->info(e.m.id)) {
                row["suspicions"] = inf->suspicions;
                row["heartbeats"] = inf->heartbeats;
                row["last_heartbeat_age_ms"] =
                    inf->heartbeats
                        ? std::chrono::duration_cast<std::chrono::milliseconds>(now - inf->last_heard).count()
                        : -1;
            }
            list.push_back(std::move(row));
        }
        j["members"] = std::move(list);
        return j;
    }

    /// A DNS answer (membership.dns): each address, at the members' port, is
    /// dialled and verified like a static member. An endpoint no longer listed
    /// is dropped once verified absent: at once if nobody answered there or
    /// its member is gone; a member alive there stays until the failure
    /// detector removes it (then it is forgotten as any member found by
    /// discovery). An endpoint also in membership.static stays static.
    void on_dns_answer(const std::vector<std::string>& addresses) {
        const auto port = config.membership.dns.port != 0 ? config.membership.dns.port : self.port;
        std::vector<std::shared_ptr<peer_sender>> fresh;
        std::vector<std::shared_ptr<peer_sender>> dropped;
        {
            std::lock_guard lock(mutex);
            if (!running) {
                return;
            }
            std::set<std::string> listed;
            for (const auto& address : addresses) {
                listed.insert(address + ":" + std::to_string(port));
                if (auto s = add_peer_locked(address, port, true)) {
                    ++dns_added;
                    fresh.push_back(std::move(s));
                }
            }
            for (const auto& endpoint : dns_listed) {
                if (listed.count(endpoint) > 0 || static_listed.count(endpoint) > 0) {
                    continue;
                }
                auto it = peers.find(endpoint);
                if (it == peers.end()) {
                    continue;
                }
                it->second.is_static = false;
                const bool alive = it->second.current && !it->second.gone_since;
                if (!alive) {
                    ++dns_dropped;
                    log()->info("membership.dns: {} no longer listed and no member alive there: dropped", endpoint);
                    dropped.push_back(it->second.sender);
                    first.dialling.erase(endpoint);
                    peers.erase(it);
                }
            }
            dns_listed = std::move(listed);
            first.dns_pending = false;
        }
        for (auto& s : fresh) {
            s->start();
        }
        for (auto& s : dropped) {
            s->stop(transport::error::member_gone);
        }
        check_discovered();
    }

    void forget_long_gone() {
        std::vector<std::shared_ptr<peer_sender>> forgotten;
        {
            std::lock_guard lock(mutex);
            const auto now = std::chrono::steady_clock::now();
            for (auto it = peers.begin(); it != peers.end();) {
                if (!it->second.is_static && it->second.gone_since && now - *it->second.gone_since > forget_after) {
                    forgotten.push_back(it->second.sender);
                    it = peers.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto& s : forgotten) {
            s->stop(transport::error::member_gone);
        }
    }

    std::shared_ptr<peer_sender> add_peer_locked(const std::string& host, std::uint16_t port,
                                                 bool is_static) {
        const std::string endpoint = host + ":" + std::to_string(port);
        if (auto it = peers.find(endpoint); it != peers.end()) {
            it->second.is_static = it->second.is_static || is_static;
            return nullptr;
        }
        if (host == self.host && port == self.port) {
            return nullptr;
        }
        peer_sender::callbacks cb;
        cb.up = [this, endpoint](const transport::peer_info& info) { on_peer_up(endpoint, info); };
        cb.down = [this, endpoint](const error_code&, const std::string& reason, bool was_up) {
            on_peer_down(endpoint, reason, was_up);
        };
        cb.self = [this, endpoint] {
            {
                std::lock_guard lock(mutex);
                peers.erase(endpoint);
            }
            first_attempt_ended(endpoint);
        };
        auto sender = std::make_shared<peer_sender>(io, config.sender, config.channel.max_message,
                                                    config.membership.failure_detector.ping_interval,
                                                    identity, host, port, std::move(cb));
        peers.emplace(endpoint, peer_slot{sender, is_static, std::nullopt, std::nullopt});
        if (!first.done) {
            first.dialling.insert(endpoint);
        }
        return sender;
    }

    void on_peer_up(const std::string& endpoint, const transport::peer_info& info) {
        observe([&](auto& d, auto now) {
            membership::detector_actions none;
            auto it = peers.find(endpoint);
            if (it == peers.end()) {
                return none;
            }
            member m;
            m.id = info.id;
            m.incarnation = info.incarnation;
            m.name = info.node;
            // The endpoint we dialled is the one we can reach it at.
            m.host = it->second.sender->host();
            m.port = it->second.sender->port();
            it->second.current = info.id;
            return d.connected(m, now);
        });
        first_attempt_ended(endpoint); // after the member's event was posted
    }

    void on_peer_down(const std::string& endpoint, const std::string& reason, bool was_up) {
        if (!was_up) {
            first_attempt_ended(endpoint);
            return; // a failed attempt: verification, not each retry, decides
        }
        observe([&](auto& d, auto now) {
            auto it = peers.find(endpoint);
            if (it == peers.end() || !it->second.current) {
                return membership::detector_actions{};
            }
            return d.disconnected(*it->second.current, reason, now);
        });
    }

    // ---- initial discovery
    // A node that sees no other member right after start may simply not have
    // heard them yet; a replicating manager that took that for "first of the
    // cluster" would serve requests without the sessions (and make new ones
    // for ids it does not know). So discovery counts as done only once every
    // static member, and every member heard in the first two heartbeat
    // periods, has been dialled once — reached (its alive event posted first)
    // or not — or `sender.connect_timeout` and a margin passed beyond that.

    void begin_first_look_locked() {
        const auto t = std::chrono::steady_clock::now();
        const auto listen = config.membership.multicast.enabled ? 2 * config.membership.multicast.frequency
                                                                : std::chrono::milliseconds(0);
        first.listen_until = t + listen;
        first.give_up_at = first.listen_until + config.sender.connect_timeout + std::chrono::milliseconds(500);
    }

    /// A kick restarts a dial in flight (to drop a SYN lost in a dead route);
    /// a first attempt is fresh, and restarting it would hold discovery up.
    bool in_first_attempt_locked(const std::string& endpoint) const {
        return !first.done && first.dialling.count(endpoint) > 0;
    }

    void first_attempt_ended(const std::string& endpoint) {
        {
            std::lock_guard lock(mutex);
            if (first.done) {
                return;
            }
            first.dialling.erase(endpoint);
        }
        check_discovered();
    }

    /// Called on every attempt's end and every detector tick.
    void check_discovered() {
        std::vector<std::function<void()>> ready;
        {
            std::lock_guard lock(mutex);
            if (first.done || !running) {
                return;
            }
            const auto t = std::chrono::steady_clock::now();
            const bool bounded = t >= first.give_up_at;
            if (!bounded && (t < first.listen_until || !first.dialling.empty() || first.dns_pending)) {
                return;
            }
            first.done = true;
            ready = std::move(first.handlers);
            first.handlers.clear();
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - started_at).count();
            if (first.dns_pending) {
                log()->warn("initial discovery ended by its bound after {} ms; no DNS answer yet for {}", ms,
                            config.membership.dns.name);
            } else if (first.dialling.empty()) {
                log()->info("initial discovery done in {} ms: {} other member(s)",
                            ms, detector ? detector->table().sendable().size() : 0);
            } else {
                std::string pending;
                for (const auto& e : first.dialling) {
                    pending += (pending.empty() ? "" : ", ") + e;
                }
                log()->warn("initial discovery ended by its bound after {} ms; no answer yet from {}", ms, pending);
            }
            first.dialling.clear();
            first.dns_pending = false;
        }
        // On the member-event strand: after the events of the members found.
        asio::post(events, [ready = std::move(ready)] {
            for (const auto& h : ready) {
                h();
            }
        });
    }

    void on_send_failed(const member_id& id, const std::string& reason) {
        observe([&](auto& d, auto now) { return d.send_failed(id, reason, now); });
    }

    void on_heartbeat(const membership::heartbeat& hb) {
        observe([&](auto& d, auto now) { return d.heard(hb, now); });
    }

    std::shared_ptr<const member> on_inbound_hello(const transport::peer_info& info) {
        auto m = std::make_shared<member>();
        m->id = info.id;
        m->incarnation = info.incarnation;
        m->name = info.node;
        m->host = info.host;
        m->port = info.port;
        std::shared_ptr<peer_sender> fresh;
        std::shared_ptr<peer_sender> kick;
        {
            std::lock_guard lock(mutex);
            if (running && info.port != 0) {
                // A node that lists us but that we do not list: dial it back, so
                // static lists need not be symmetric.
                fresh = add_peer_locked(info.host, info.port, false);
                if (!fresh) {
                    // Known, and it just reached us: if our side is down (a healed
                    // partition), dial now instead of waiting out the backoff.
                    if (auto it = peers.find(m->endpoint());
                        it != peers.end() && !in_first_attempt_locked(it->first)) {
                        kick = it->second.sender;
                    }
                }
            }
        }
        if (fresh) {
            fresh->start();
        }
        if (kick && !kick->connected()) {
            kick->reconnect_now();
        }
        return m;
    }

    void on_inbound_bye(const transport::peer_info& info, const std::string& reason) {
        if (reason == "probe") {
            return; // a peer verifying us
        }
        if (reason != "leaving") {
            log()->info("{} ({}:{}) said BYE: {}", info.node, info.host, info.port, reason);
            return;
        }
        observe([&](auto& d, auto now) { return d.leaving(info.id, "said BYE (clean stop)", now); });
    }

    transport::delivery_result deliver(const member& from, const transport::data_view& d) {
        incoming_message msg{from, d.context,
                             std::span<const std::byte>(reinterpret_cast<const std::byte*>(d.payload.data()),
                                                        d.payload.size()),
                             d.options, d.id};
        for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
            if (!(*it)->on_receive(msg)) {
                return {};
            }
        }
        message_listener* const listener = find_listener(d.context);
        if (listener == nullptr) {
            stats->count_no_listener();
            if (auto n = no_listener_log.allow()) {
                log()->warn("message from {} for context '{}' has no listener ({} such since the "
                            "last line)",
                            from.name, d.context, *n);
            }
            return {transport::ack_status::no_listener,
                    "no listener for context '" + std::string(d.context) + "' on " + self.name};
        }
        try {
            (*listener)(msg);
        } catch (const message_refused& e) {
            return {transport::ack_status::listener_failed, e.what()};
        } catch (const std::exception& e) {
            stats->count_listener_failure();
            if (auto n = listener_failure_log.allow()) {
                log()->warn("listener for '{}' threw on a message from {}: {} ({} such since the "
                            "last line)",
                            d.context, from.name, e.what(), *n);
            }
            return {transport::ack_status::listener_failed, e.what()};
        } catch (...) {
            stats->count_listener_failure();
            return {transport::ack_status::listener_failed, "unknown exception"};
        }
        return {};
    }

    // ---- sends

    /// Destinations for a send, and a failure for each requested id we cannot send to.
    /// Sending to everyone shares the current list instead of copying it.
    std::shared_ptr<const target_list> resolve(std::span<const member_id> to, send_result& result) const {
        auto all = std::atomic_load(&targets); // no lock on the per-send path
        if (to.empty()) {
            return all;
        }
        auto picked = std::make_shared<target_list>();
        auto& out = *picked;
        out.reserve(to.size());
        for (const auto& id : to) {
            auto it = std::find_if(all->begin(), all->end(), [&](const target& t) { return t.m.id == id; });
            if (it != all->end()) {
                out.push_back(*it);
                continue;
            }
            member m;
            m.id = id;
            {
                std::lock_guard lock(mutex);
                if (auto e = detector->table().find(id)) {
                    m = e->m;
                }
            }
            const bool known = !m.name.empty();
            result.failures.push_back(member_failure{
                m, known ? transport::error::member_gone : transport::error::not_a_member,
                known ? "member is " + std::string(membership::to_string(m.state))
                      : "no member with id " + id.str()});
        }
        return picked;
    }

    /// @param caller_reads the (blocking) caller reads its own acks: see pending_send::poll_for_acks.
    std::shared_ptr<pending_send> dispatch(std::span<const member_id> to,
                                           std::span<const std::byte> payload,
                                           std::uint32_t options, std::string_view context,
                                           send_handler handler, send_result& immediate,
                                           bool caller_reads = false, send_progress progress = {}) {
        if ((options & send_options::sync & ~send_options::ack) != 0) {
            options |= send_options::ack; // "processed" implies "received"
        }
        if (!running) {
            immediate.failures.push_back(member_failure{self, transport::error::stopped, "channel is not running"});
            return nullptr;
        }
        const auto dests_ptr = resolve(to, immediate);
        const auto& dests = *dests_ptr;
        immediate.destinations = dests.size() + immediate.failures.size();
        if (payload.size() > config.channel.max_message || context.size() > 255) {
            for (const auto& t : dests) {
                immediate.failures.push_back(member_failure{
                    t.m, transport::error::message_too_large,
                    context.size() > 255 ? "context name longer than 255 bytes"
                                         : std::to_string(payload.size()) + " bytes > channel.max_message"});
            }
            return nullptr;
        }
        if (dests.empty()) {
            return nullptr; // nobody to send to (no members, or none of those asked for)
        }
        outgoing_message om{context, payload, options, dests.size()};
        for (auto& layer : layers) {
            layer->on_send(om);
        }
        const auto id = next_id.fetch_add(1, std::memory_order_relaxed);
        const std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(payload.data()),
                                                  payload.size()};
        if (!send_options::wants_ack(options)) {
            if (dests.size() == 1) {
                // Encoded straight into the member's own arena: one copy, one lock.
                if (auto ec = dests.front().sender->enqueue_data(id, options, context, bytes)) {
                    immediate.failures.push_back(member_failure{dests.front().m, ec, ec.message()});
                }
                return nullptr;
            }
            // Encoded (copied) once for every member. Only sends to several
            // members share blocks: a block stays alive while any member's queue
            // holds a slice of it, so a stalled member pins the blocks of the
            // traffic it shares, not other members' private traffic.
            transport::frame_slice frame;
            {
                std::lock_guard lock(arena_mutex);
                frame = arena.append_data(id, options, context, bytes);
            }
            for (const auto& t : dests) {
                if (auto ec = t.sender->enqueue_shared(frame)) {
                    immediate.failures.push_back(member_failure{t.m, ec, ec.message()});
                }
            }
            return nullptr;
        }
        auto frame = std::make_shared<transport::buffer>();
        transport::append_data(*frame, id, options, context, bytes);
        auto op = std::make_shared<pending_send>();
        op->remaining = dests.size();
        op->done.assign(dests.size(), false);
        op->result = immediate;
        op->io = &io;
        op->handler = std::move(handler);
        op->progress = std::move(progress);
        if (op->handler) {
            op->on_sent = [this, ctx = std::string(context), size = payload.size(), options,
                           n = dests.size()](const send_result& r) {
                outgoing_message m{ctx, {}, options, n};
                (void)size;
                for (auto& layer : layers) {
                    layer->on_sent(m, r);
                }
            };
        }
        for (const auto& t : dests) {
            op->members.push_back(t.m);
            if (caller_reads) {
                op->readers.push_back(t.sender);
            }
        }
        for (std::size_t i = 0; i < dests.size(); ++i) {
            auto ec = dests[i].sender->enqueue(
                frame, id, [this, op, i, who = dests[i].m.id](const error_code& e, std::string_view detail) {
                    op->complete(i, e, detail);
                    if (e == transport::error::ack_timeout || e == transport::error::connection_lost) {
                        // A failed send is a suspicion: the detector verifies the member.
                        asio::post(events, [this, who, why = e.message()] { on_send_failed(who, why); });
                    }
                },
                caller_reads);
            if (ec) {
                op->complete(i, ec, ec.message());
            }
        }
        return op;
    }
};

channel::channel(conf::cluster_config config) : impl_(std::make_unique<impl>(std::move(config))) {
    auto& c = impl_->config;
    impl_->self.id = member_id::random();
    impl_->self.incarnation = wall_ms();
    impl_->self.name = c.cluster.node;
    if (impl_->self.name.empty()) {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        impl_->self.name = host;
    }
    impl_->self.host = c.receiver.address;
    impl_->detector.emplace(impl_->self.id, c.membership.multicast.drop_time);
    impl_->layers.push_back(impl_->stats);
}

channel::~channel() { stop(); }

void channel::add_interceptor(std::shared_ptr<interceptor> layer) {
    if (impl_->running) {
        throw std::logic_error("troupe::engine::channel::add_interceptor after start()");
    }
    // The stats layer stays at the bottom, nearest the wire.
    impl_->layers.insert(impl_->layers.end() - 1, std::move(layer));
}

void channel::start() {
    auto& d = *impl_;
    if (d.running || d.stopped) {
        throw std::logic_error("troupe::engine::channel::start: already started");
    }
    transport::receiver::callbacks rcb;
    rcb.deliver = [&d](const member& from, const transport::data_view& data) { return d.deliver(from, data); };
    rcb.hello = [&d](const transport::peer_info& info) { return d.on_inbound_hello(info); };
    rcb.bye = [&d](const transport::peer_info& info, const std::string& reason) { d.on_inbound_bye(info, reason); };
    d.receiver = std::make_shared<transport::receiver>(d.io, d.config, std::move(rcb));
    const auto port = d.receiver->bind();
    d.self.port = port;
    d.identity = transport::local_identity{d.self.id, d.self.incarnation, d.config.cluster.name,
                                           d.self.name, d.self.host, port, d.config.cluster.secret};
    d.receiver->start(d.identity);
    if (d.config.membership.multicast.enabled) {
        // Made before any I/O thread runs: their handlers read `discovery`.
        membership::heartbeat me;
        me.cluster = d.config.cluster.name;
        me.id = d.self.id;
        me.incarnation = d.self.incarnation;
        me.host = d.self.host;
        me.port = port;
        me.node = d.self.name;
        me.payload = d.config.membership.payload;
        d.discovery = std::make_unique<membership::multicast_discovery>(d.io, d.config, std::move(me));
    }
    if (!d.config.membership.dns.name.empty()) {
        d.dns = std::make_unique<membership::dns_discovery>(d.io, d.config.membership.dns);
    }
    d.started_at = std::chrono::steady_clock::now();
    d.work.emplace(d.io.get_executor());
    const auto n = std::max<std::uint32_t>(1, d.config.receiver.threads);
    d.threads_alive = n;
    for (std::uint32_t i = 0; i < n; ++i) {
        d.threads.emplace_back([&d] {
            transport::mark_io_thread();
            for (;;) {
                try {
                    d.io.run();
                    break;
                } catch (const std::exception& e) {
                    // A handler must not throw; if one does, log it and keep serving.
                    log()->error("I/O handler threw: {}", e.what());
                }
            }
            std::lock_guard lock(d.threads_mutex);
            --d.threads_alive;
            d.threads_cv.notify_all();
        });
    }
    d.running = true;
    std::vector<std::shared_ptr<peer_sender>> fresh;
    {
        std::lock_guard lock(d.mutex);
        d.begin_first_look_locked();
        d.first.dns_pending = d.dns != nullptr;
        for (const auto& hp : d.config.membership.static_members) {
            d.static_listed.insert(hp.host + ":" + std::to_string(hp.port));
            if (hp.port == port && (hp.host == d.self.host || hp.host == "localhost")) {
                continue; // this node itself, in a list shared by all nodes
            }
            if (auto s = d.add_peer_locked(hp.host, hp.port, true)) {
                fresh.push_back(std::move(s));
            }
        }
    }
    for (auto& s : fresh) {
        s->start();
    }
    if (d.discovery) {
        d.discovery->start([&d](const membership::heartbeat& hb) { d.on_heartbeat(hb); });
    }
    if (d.dns) {
        d.dns->start([&d](const std::vector<std::string>& addresses) { d.on_dns_answer(addresses); });
    }
    asio::post(d.events, [&d] { d.arm_detector_timer(); });
    d.check_discovered(); // nothing to wait for: no static member, no multicast
    log()->info("node {} ({}) started on {}:{} in cluster '{}'", d.self.name, d.self.id.str(),
                d.self.host, port, d.config.cluster.name);
}

void channel::stop() {
    auto& d = *impl_;
    if (!d.running.exchange(false)) {
        return;
    }
    d.stopped = true;
    std::vector<std::shared_ptr<peer_sender>> senders;
    {
        std::lock_guard lock(d.mutex);
        for (auto& [endpoint, slot] : d.peers) {
            senders.push_back(slot.sender);
        }
    }
    asio::post(d.events, [&d] { d.detector_timer.cancel(); });
    if (d.discovery) {
        d.discovery->stop(true); // a "leaving" heartbeat: peers drop us at once
    }
    if (d.dns) {
        d.dns->stop();
    }
    // BYE on every stream after what was queued, all within one stop_timeout.
    const auto deadline = std::chrono::steady_clock::now() + d.config.channel.stop_timeout;
    for (auto& s : senders) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        s->close_gracefully("leaving", std::max(left, std::chrono::milliseconds(0)));
    }
    d.receiver->stop();
    d.work.reset();
    {
        std::unique_lock lock(d.threads_mutex);
        if (!d.threads_cv.wait_for(lock, std::chrono::seconds(2), [&] { return d.threads_alive == 0; })) {
            d.io.stop(); // something still waits on a socket: do not hang the caller
        }
    }
    for (auto& t : d.threads) {
        if (t.joinable()) {
            t.join();
        }
    }
    d.threads.clear();
    {
        std::lock_guard lock(d.mutex);
        d.peers.clear();
        std::atomic_store(&d.targets, std::shared_ptr<const impl::target_list>(std::make_shared<impl::target_list>()));
    }
    log()->info("node {} stopped", d.self.name);
}

void channel::add_listener(std::string context, message_listener listener) {
    std::unique_lock lock(impl_->listeners_mutex);
    impl_->listeners[std::move(context)] = std::make_shared<message_listener>(std::move(listener));
    impl_->listeners_changed_locked();
}

void channel::remove_listener(const std::string& context) {
    std::unique_lock lock(impl_->listeners_mutex);
    impl_->listeners.erase(context);
    impl_->listeners_changed_locked();
}

bool channel::discovered() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->first.done;
}

void channel::on_discovered(std::function<void()> handler) {
    auto& d = *impl_;
    {
        std::lock_guard lock(d.mutex);
        if (!d.first.done) {
            d.first.handlers.push_back(std::move(handler));
            return;
        }
    }
    asio::post(d.events, std::move(handler));
}

void channel::add_member_listener(member_listener listener) {
    std::lock_guard lock(impl_->mutex);
    impl_->member_listeners.push_back(std::move(listener));
}

send_result channel::send(std::span<const member_id> to, std::span<const std::byte> payload,
                          std::uint32_t options, std::string_view context) {
    auto& d = *impl_;
    send_result result;
    if (send_options::wants_ack(options) && transport::on_io_thread()) {
        // The thread that would read the ack is the one we would block.
        result.failures.push_back(member_failure{
            d.self, make_error_code(boost::system::errc::operation_would_block),
            "blocking send() with ack/sync called on a troupe I/O thread; use async_send()"});
        return result;
    }
    // One blocking caller at a time reads its own acks; the others sleep.
    const poller_slot poller(send_options::wants_ack(options));
    auto op = d.dispatch(to, payload, options, context, nullptr, result, poller.held());
    if (op) {
        if (poller.held()) {
            op->poll_for_acks();
            op->readers.clear(); // they hold the op through its ack handlers
        }
        std::unique_lock lock(op->mutex);
        // The transport fails every frame by ack_timeout; the extra margin only
        // guards against a bug leaving a caller blocked forever.
        const auto limit = d.config.sender.ack_timeout * 2 + std::chrono::seconds(1);
        if (!op->cv.wait_for(lock, limit, [&] { return op->remaining == 0; })) {
            for (std::size_t i = 0; i < op->done.size(); ++i) {
                if (!op->done[i]) {
                    op->done[i] = true;
                    op->result.failures.push_back(member_failure{op->members[i], transport::error::ack_timeout,
                                                                 "no completion from the transport"});
                }
            }
            op->remaining = 0;
        }
        result = op->result;
    }
    outgoing_message om{context, payload, options, result.destinations};
    for (auto& layer : d.layers) {
        layer->on_sent(om, result);
    }
    return result;
}

void channel::async_send(std::span<const member_id> to, std::span<const std::byte> payload,
                         std::uint32_t options, std::string_view context, send_handler handler) {
    async_send(to, payload, options, context, std::move(handler), nullptr);
}

void channel::async_send(std::span<const member_id> to, std::span<const std::byte> payload,
                         std::uint32_t options, std::string_view context, send_handler handler,
                         send_progress progress) {
    auto& d = *impl_;
    send_result result;
    auto op = d.dispatch(to, payload, options, context, handler, result, false, std::move(progress));
    if (!op) {
        outgoing_message om{context, payload, options, result.destinations};
        for (auto& layer : d.layers) {
            layer->on_sent(om, result);
        }
        if (handler) { // no wake-up of an I/O thread for nobody
            asio::post(d.io, [h = std::move(handler), r = std::move(result)]() mutable { h(std::move(r)); });
        }
    }
}

const member& channel::self() const noexcept { return impl_->self; }

std::vector<member> channel::members() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->detector->table().sendable();
}

std::vector<member> channel::all_members() const {
    std::vector<member> out{impl_->self};
    std::lock_guard lock(impl_->mutex);
    for (const auto& e : impl_->detector->table().all()) {
        out.push_back(e.m);
    }
    return out;
}

std::uint16_t channel::port() const noexcept { return impl_->self.port; }

const conf::cluster_config& channel::config() const noexcept { return impl_->config; }

asio::io_context& channel::io_context() noexcept { return impl_->io; }

std::string channel::members_json() const {
    auto& d = *impl_;
    const auto now = std::chrono::steady_clock::now();
    nlohmann::json arr = nlohmann::json::array();
    auto row = [](const member& m, bool self, std::int64_t since_ms) {
        return nlohmann::json{{"name", m.name},
                              {"endpoint", m.endpoint()},
                              {"state", std::string(membership::to_string(m.state))},
                              {"self", self},
                              {"id", m.id.str()},
                              {"incarnation", m.incarnation},
                              {"since_ms", since_ms},
                              {"reason", m.reason}};
    };
    arr.push_back(row(d.self, true,
                      std::chrono::duration_cast<std::chrono::milliseconds>(now - d.started_at).count()));
    std::lock_guard lock(d.mutex);
    for (const auto& e : d.detector->table().all()) {
        arr.push_back(row(e.m, false,
                          std::chrono::duration_cast<std::chrono::milliseconds>(now - e.since).count()));
    }
    return arr.dump();
}

namespace {

nlohmann::json peer_json(const std::string& endpoint, const peer_sender& s) {
    const auto& st = s.stats();
    nlohmann::json buckets = nlohmann::json::object();
    for (std::size_t i = 0; i < transport::ack_latency_bounds_us.size(); ++i) {
        const auto bound = transport::ack_latency_bounds_us[i];
        buckets[bound == UINT64_MAX ? std::string("+Inf") : std::to_string(bound)] =
            st.ack_latency_buckets[i].load();
    }
    return {{"endpoint", endpoint},
            {"connected", s.connected()},
            {"queue_bytes", s.queued_bytes()},
            {"frames_out", st.frames_out.load()},
            {"bytes_out", st.bytes_out.load()},
            {"writes", st.writes.load()},
            {"acks", st.acks.load()},
            {"nacks", st.nacks.load()},
            {"ack_timeouts", st.ack_timeouts.load()},
            {"connection_losses", st.connection_losses.load()},
            {"possibly_lost", st.possibly_lost.load()},
            {"dropped", st.dropped.load()},
            {"queue_full", st.queue_full.load()},
            {"connects", st.connects.load()},
            {"connect_failures", st.connect_failures.load()},
            {"handshake_failures", st.handshake_failures.load()},
            {"pings", st.pings.load()},
            {"caller_read_acks", st.caller_read_acks.load()},
            {"direct_entries", st.direct_entries.load()},
            {"ack_latency_us", {{"sum", st.ack_latency_sum_us.load()}, {"buckets", buckets}}}};
}

} // namespace

std::string channel::stats_json() const {
    auto& d = *impl_;
    nlohmann::json j;
    j["node"] = d.self.name;
    j["id"] = d.self.id.str();
    j["cluster"] = d.config.cluster.name;
    j["port"] = d.self.port;
    j["uptime_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - d.started_at)
                         .count();
    j["channel"] = d.stats->to_json();
    if (d.receiver) {
        const auto& r = d.receiver->stats();
        j["receiver"] = {{"accepted", r.accepted.load()},       {"open", r.open.load()},
                         {"reader_threads", r.reader_threads.load()},
                         {"frames_in", r.frames_in.load()},     {"bytes_in", r.bytes_in.load()},
                         {"data_in", r.data_in.load()},         {"acks_out", r.acks_out.load()},
                         {"nacks_out", r.nacks_out.load()},     {"bad_frames", r.bad_frames.load()},
                         {"handshake_refused", r.handshake_refused.load()},
                         {"auth_failures", r.auth_failures.load()},
                         {"handshake_timeouts", r.handshake_timeouts.load()},
                         {"idle_timeouts", r.idle_timeouts.load()}};
    }
    nlohmann::json peers = nlohmann::json::array();
    std::map<std::string, int> states;
    {
        std::lock_guard lock(d.mutex);
        for (const auto& [endpoint, slot] : d.peers) {
            auto p = peer_json(endpoint, *slot.sender);
            if (slot.current) {
                if (auto e = d.detector->table().find(*slot.current)) {
                    p["name"] = e->m.name;
                    p["state"] = std::string(membership::to_string(e->m.state));
                }
            }
            peers.push_back(std::move(p));
        }
        for (const auto& e : d.detector->table().all()) {
            ++states[std::string(membership::to_string(e.m.state))];
        }
    }
    j["peers"] = std::move(peers);
    j["members"] = states;
    j["membership"] = d.membership_json();
    return j.dump();
}

std::string channel::metrics_text() const {
    auto& d = *impl_;
    std::ostringstream out;
    out << d.stats->to_metrics();
    if (d.receiver) {
        const auto& r = d.receiver->stats();
        auto counter = [&](const char* name, std::uint64_t v) {
            out << "# TYPE " << name << " counter\n" << name << " " << v << "\n";
        };
        counter("troupe_receiver_connections_accepted_total", r.accepted.load());
        out << "# TYPE troupe_receiver_connections_open gauge\ntroupe_receiver_connections_open "
            << r.open.load() << "\n";
        out << "# TYPE troupe_receiver_reader_threads gauge\ntroupe_receiver_reader_threads "
            << r.reader_threads.load() << "\n";
        counter("troupe_receiver_frames_total", r.frames_in.load());
        counter("troupe_receiver_bytes_total", r.bytes_in.load());
        counter("troupe_receiver_bad_frames_total", r.bad_frames.load());
        counter("troupe_receiver_handshake_refused_total", r.handshake_refused.load());
        counter("troupe_receiver_auth_failures_total", r.auth_failures.load());
        counter("troupe_receiver_handshake_timeouts_total", r.handshake_timeouts.load());
        counter("troupe_receiver_idle_timeouts_total", r.idle_timeouts.load());
        counter("troupe_receiver_acks_total", r.acks_out.load());
        counter("troupe_receiver_nacks_total", r.nacks_out.load());
    }
    {
        const auto mj = d.membership_json();
        out << "# TYPE troupe_membership_suspicions_total counter\ntroupe_membership_suspicions_total "
            << mj["suspicions"] << "\n";
        out << "# TYPE troupe_membership_false_suspicions_avoided_total counter\n"
            << "troupe_membership_false_suspicions_avoided_total " << mj["false_suspicions_avoided"] << "\n";
        out << "# TYPE troupe_membership_removals_total counter\n";
        for (const auto& [reason, n] : mj["removals"].items()) {
            out << "troupe_membership_removals_total{reason=\"" << reason << "\"} " << n << "\n";
        }
        if (mj.contains("dns")) {
            const auto& o = mj["dns"];
            out << "# TYPE troupe_membership_dns_lookups_total counter\ntroupe_membership_dns_lookups_total "
                << o["lookups"] << "\n";
            out << "# TYPE troupe_membership_dns_failures_total counter\ntroupe_membership_dns_failures_total "
                << o["failures"] << "\n";
            out << "# TYPE troupe_membership_dns_addresses gauge\ntroupe_membership_dns_addresses " << o["addresses"]
                << "\n";
        }
        for (const char* key : {"heartbeats_sent", "heartbeats_received"}) {
            if (mj.contains(key)) {
                out << "# TYPE troupe_membership_" << key << "_total counter\ntroupe_membership_" << key
                    << "_total " << mj[key] << "\n";
            }
        }
        out << "# TYPE troupe_membership_heartbeats_rejected_total counter\n";
        for (const auto& [reason, n] : mj["heartbeats_rejected"].items()) {
            out << "troupe_membership_heartbeats_rejected_total{reason=\"" << reason << "\"} " << n << "\n";
        }
        out << "# TYPE troupe_membership_last_heartbeat_age_ms gauge\n";
        for (const auto& m : mj["members"]) {
            if (m.value("last_heartbeat_age_ms", -1) >= 0) {
                out << "troupe_membership_last_heartbeat_age_ms{member=\"" << m["name"].get<std::string>()
                    << "\"} " << m["last_heartbeat_age_ms"] << "\n";
            }
        }
    }
    std::lock_guard lock(d.mutex);
    std::map<std::string, int> states{{"alive", 0}, {"suspect", 0}, {"gone", 0}, {"left", 0}};
    for (const auto& e : d.detector->table().all()) {
        ++states[std::string(membership::to_string(e.m.state))];
    }
    out << "# TYPE troupe_members gauge\n";
    for (const auto& [state, n] : states) {
        out << "troupe_members{state=\"" << state << "\"} " << n << "\n";
    }
    const char* per_peer[][2] = {{"troupe_peer_frames_out_total", "counter"},
                                 {"troupe_peer_bytes_out_total", "counter"},
                                 {"troupe_peer_queue_bytes", "gauge"},
                                 {"troupe_peer_ack_timeouts_total", "counter"},
                                 {"troupe_peer_nacks_total", "counter"},
                                 {"troupe_peer_dropped_total", "counter"},
                                 {"troupe_peer_queue_full_total", "counter"}};
    for (const auto& [name, type] : per_peer) {
        out << "# TYPE " << name << " " << type << "\n";
        for (const auto& [endpoint, slot] : d.peers) {
            const auto& st = slot.sender->stats();
            std::uint64_t v = 0;
            const std::string n(name);
            if (n == "troupe_peer_frames_out_total") v = st.frames_out.load();
            else if (n == "troupe_peer_bytes_out_total") v = st.bytes_out.load();
            else if (n == "troupe_peer_queue_bytes") v = slot.sender->queued_bytes();
            else if (n == "troupe_peer_ack_timeouts_total") v = st.ack_timeouts.load();
            else if (n == "troupe_peer_nacks_total") v = st.nacks.load();
            else if (n == "troupe_peer_dropped_total") v = st.dropped.load();
            else v = st.queue_full.load();
            out << name << "{peer=\"" << endpoint << "\"} " << v << "\n";
        }
    }
    out << "# TYPE troupe_peer_ack_latency_us histogram\n";
    for (const auto& [endpoint, slot] : d.peers) {
        const auto& st = slot.sender->stats();
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < transport::ack_latency_bounds_us.size(); ++i) {
            cumulative += st.ack_latency_buckets[i].load();
            const auto bound = transport::ack_latency_bounds_us[i];
            out << "troupe_peer_ack_latency_us_bucket{peer=\"" << endpoint << "\",le=\""
                << (bound == UINT64_MAX ? std::string("+Inf") : std::to_string(bound)) << "\"} "
                << cumulative << "\n";
        }
        out << "troupe_peer_ack_latency_us_sum{peer=\"" << endpoint << "\"} "
            << st.ack_latency_sum_us.load() << "\n";
        out << "troupe_peer_ack_latency_us_count{peer=\"" << endpoint << "\"} " << cumulative << "\n";
    }
    return out.str();
}

} // namespace troupe::engine
