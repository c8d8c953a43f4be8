// SPDX-License-Identifier: Apache-2.0
#pragma once

// The channel's private state, shared by the files that make up the channel:
//   channel.cpp             life cycle (start, stop), listeners and delivery
//   channel_send.cpp        sends, and the aggregation of each send's acks
//   channel_membership.cpp  the glue between streams, discovery and the failure detector
//   channel_stats.cpp       /members, /stats and /metrics output
// Only those include it: nothing here is part of the public API.
#include <troupe/engine/channel.hpp>
#include <troupe/membership/discovery.hpp>
#include <troupe/membership/dns_discovery.hpp>
#include <troupe/membership/failure_detector.hpp>
#include <troupe/membership/heartbeat.hpp>
#include <troupe/transport/frame.hpp>
#include <troupe/transport/frame_arena.hpp>
#include <troupe/transport/peer_sender.hpp>
#include <troupe/transport/receiver.hpp>

#include "log.hpp"
#include "rate_limit.hpp"
#include "stats_interceptor.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace troupe::engine {

// The names every part of the channel uses (this header is theirs alone).
namespace asio = boost::asio;
using boost::system::error_code;
using membership::member;
using membership::member_id;
using membership::member_state;
using transport::peer_sender;

namespace detail {

/// The engine's logger, looked up once (engine_log() looks the registry up on
/// every call).
inline const std::shared_ptr<spdlog::logger>& log() {
    static const auto logger = engine_log();
    return logger;
}

/// One send waiting for its destinations (channel_send.cpp).
struct pending_send;

} // namespace detail

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

    rate_limit no_listener_log{std::chrono::seconds(1)};
    rate_limit listener_failure_log{std::chrono::seconds(1)};

    // ---- listeners and delivery (channel.cpp)

    void listeners_changed_locked();

    /// The listener for `context`, or null. Messages come in runs for one context:
    /// each I/O thread remembers its last lookup and skips the lock and the map
    /// while nothing changed. The cache holds the listener, so it stays alive for
    /// the call even if removed meanwhile (as a copy taken under the lock did); a
    /// removed listener is released by the thread's next lookup or its exit.
    message_listener* find_listener(std::string_view context);

    transport::delivery_result deliver(const member& from, const transport::data_view& d);

    // ---- membership bookkeeping (channel_membership.cpp; callers of the
    // _locked ones hold `mutex`)

    void rebuild_targets_locked();
    void emit(std::vector<member> changes);

    /// Turns the detector's decisions into work: streams to open, queues to drop,
    /// verifications to run, events to announce.
    void apply_locked(membership::detector_actions&& a, after_unlock& w);
    void finish(after_unlock& w);

    /// Feeds one observation to the detector and acts on what it decides.
    /// Defined in channel_membership.cpp, its only user.
    template <typename Observe>
    void observe(Observe&& fn);

    void start_probe(const member& m);
    void arm_detector_timer();

    /// A DNS answer (membership.dns): each address, at the members' port, is
    /// dialled and verified like a static member. An endpoint no longer listed
    /// is dropped once verified absent: at once if nobody answered there or
    /// its member is gone; a member alive there stays until the failure
    /// detector removes it (then it is forgotten as any member found by
    /// discovery). An endpoint also in membership.static stays static.
    void on_dns_answer(const std::vector<std::string>& addresses);

    void forget_long_gone();
    std::shared_ptr<peer_sender> add_peer_locked(const std::string& host, std::uint16_t port,
                                                 bool is_static);
    void on_peer_up(const std::string& endpoint, const transport::peer_info& info);
    void on_peer_down(const std::string& endpoint, const std::string& reason, bool was_up);

    // ---- initial discovery (channel_membership.cpp, which says why)

    void begin_first_look_locked();

    /// A kick restarts a dial in flight (to drop a SYN lost in a dead route);
    /// a first attempt is fresh, and restarting it would hold discovery up.
    bool in_first_attempt_locked(const std::string& endpoint) const;

    void first_attempt_ended(const std::string& endpoint);

    /// Called on every attempt's end and every detector tick.
    void check_discovered();

    // ---- what the streams, the receiver and discovery report (channel_membership.cpp)

    void on_send_failed(const member_id& id, const std::string& reason);
    void on_heartbeat(const membership::heartbeat& hb);
    std::shared_ptr<const member> on_inbound_hello(const transport::peer_info& info);
    void on_inbound_bye(const transport::peer_info& info, const std::string& reason);

    // ---- stats (channel_stats.cpp)

    /// GET /stats "membership": discovery counters, detector counters, and per
    /// member state, heartbeat age and suspicions.
    nlohmann::json membership_json() const;

    // ---- sends (channel_send.cpp)

    /// Destinations for a send, and a failure for each requested id we cannot send to.
    /// Sending to everyone shares the current list instead of copying it.
    std::shared_ptr<const target_list> resolve(std::span<const member_id> to,
                                               send_result& result) const;

    /// @param caller_reads the (blocking) caller reads its own acks: see pending_send::poll_for_acks.
    std::shared_ptr<detail::pending_send> dispatch(std::span<const member_id> to,
                                                   std::span<const std::byte> payload,
                                                   std::uint32_t options,
                                                   std::string_view context,
                                                   send_handler handler,
                                                   send_result& immediate,
                                                   bool caller_reads = false,
                                                   send_progress progress = {});
};

} // namespace troupe::engine
