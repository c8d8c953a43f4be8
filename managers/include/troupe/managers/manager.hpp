// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/engine/channel.hpp>
#include <troupe/engine/send_options.hpp>
#include <troupe/engine/send_result.hpp>
#include <troupe/managers/cookie.hpp>
#include <troupe/managers/session.hpp>
#include <troupe/managers/session_handle.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::managers {

/// Settings of one session manager (one application context). A plain
/// aggregate, checked by make_manager() (std::invalid_argument says what).
struct manager_config {
    std::string type = "delta";   ///< "standard" (no replication) | "delta" (every member holds every session)
    std::string context = "app";  ///< channel context: several applications share one channel
    /// The session cookie, for the HTTP front: session_id_from_cookie() and
    /// set_cookie_value() (cookie.hpp) read and write it.
    cookie_settings cookie;
    /// Paths (full match, ECMAScript) whose requests replicate nothing; their
    /// changes go out with the session's next replicating request. Empty: none.
    std::string filter = R"(.*\.(gif|jpg|jpeg|png|ico|css|js|txt|html?)$|^/static/.*)";
    /// Requests that neither create nor touch a session (health checks,
    /// monitoring, bots): a path matching this (full match, ECMAScript; empty:
    /// none), or a request carrying any of these header fields (names compared
    /// case-insensitively; see request_info::has_header).
    std::string skip_paths;
    std::vector<std::string> skip_headers;
    /// Route rewrite on failover (Tomcat's JvmRouteBinderValve): a request whose
    /// session id ends in the route (`.<node>`) of a member no longer in this
    /// member's view is served here, and its first change gives the id this
    /// member's route; request_scope::id_changed() then tells the front to set
    /// the cookie again, so the balancer sticks here from now on. A request
    /// that changes nothing renames nothing. The old id stays an alias of the
    /// new one for route_alias_time.
    bool route_rewrite = true;
    std::chrono::milliseconds route_alias_time{10000};
    std::chrono::seconds max_inactive{1800}; ///< of new sessions; zero or negative: never expire
    std::uint32_t send_options = engine::send_options::async; ///< of deltas: async 8, ack 2, sync 6
    /// What end() does when an ack/sync replication fails: `log` logs it (and
    /// counts it); `fail` also returns the failure in end_result::error.
    enum class on_failure { log, fail } on_replication_failure = on_failure::log;
    bool notify_listeners_on_replication = true; ///< replicas fire listeners too
    bool expire_sessions_on_shutdown = false;    ///< stop() expires this node's sessions everywhere
    std::chrono::milliseconds state_transfer_timeout{60000}; ///< how long a joiner waits for all sessions
    std::size_t state_transfer_chunk_bytes = 1 << 20;        ///< all-data chunks are at most this big
    std::chrono::milliseconds access_batch_interval{1000};   ///< access times go out batched this often
    std::chrono::milliseconds expiry_interval{1000}; ///< how often expiry runs; 0: only expire_now()
    /// The wall clock for creation, access and expiry; empty: system_clock::now.
    /// Unit tests inject a manual clock.
    std::function<wall_clock::time_point()> now;
};

/// What begin_request() looks at in an HTTP request.
struct request_info {
    std::string_view cookie_id; ///< the session id from the request's cookie ("" if none)
    std::string_view path;      ///< decides filtering (manager_config::filter, skip_paths)
    /// Whether the request carries a header field of this name (HTTP names are
    /// case-insensitive); asked only when manager_config::skip_headers is set.
    /// Empty: the request carries none.
    std::function<bool(std::string_view name)> has_header;
};

/// What a session event listener is told.
struct session_event {
    enum class kind { created, destroyed, attribute_added, attribute_replaced, attribute_removed } what;
    std::string session_id;
    std::string attribute;   ///< attribute events only
    bool replicated = false; ///< caused by a message from another member
    bool expired = false;    ///< destroyed: by expiry (else invalidated)
};

/// Called synchronously where the event happens: on the request's thread for
/// local changes, on a channel I/O thread for replicated ones, on the manager's
/// timer thread for expiry. Must not block for long; exceptions are logged and
/// swallowed.
using session_listener = std::function<void(const session_event&)>;

/// Outcome of request_scope::end().
struct end_result {
    bool replicated = false;                 ///< something (create, delta, id change, expire) was sent
    std::optional<engine::send_result> send; ///< with ack/sync options: what the sends achieved
    std::string error; ///< non-empty when on_replication_failure = fail and a send failed
    /// The request route-rewrote the session's id and failed: the rename was
    /// taken back, the session has the id the request came with again, and
    /// the response must not set the new one (request_scope::id_changed()
    /// told it before the end).
    bool rename_undone = false;
};

/// Completion of request_scope::end_async(): runs exactly once with the outcome.
using end_handler = std::function<void(end_result)>;

class session_manager;

namespace detail {
class manager_base;

/// Where request_scope::async_end() meets its completion: the request is
/// ended at once, the handler arrives when the token starts waiting (later,
/// for a lazy token); whichever comes second runs the handler's poster.
class end_slot {
public:
    void complete(end_result result) {
        std::function<void(end_result)> waiter;
        {
            std::lock_guard lock(mutex_);
            if (!waiter_) {
                result_ = std::move(result);
                return;
            }
            waiter = std::move(waiter_);
        }
        waiter(std::move(result));
    }

    void on_complete(std::function<void(end_result)> waiter) {
        std::optional<end_result> ready;
        {
            std::lock_guard lock(mutex_);
            if (!result_) {
                waiter_ = std::move(waiter);
                return;
            }
            ready = std::move(result_);
        }
        waiter(std::move(*ready));
    }

private:
    std::mutex mutex_;
    std::optional<end_result> result_;
    std::function<void(end_result)> waiter_;
};
} // namespace detail

/// The valve: what one HTTP request did to its session. Made by
/// session_manager::begin_request(); end(), end_async() or async_end() turn
/// what the request changed into one delta and replicate it with the
/// configured send options. A scope destroyed (or assigned over) without one
/// of them is ended without waiting: its changes go out all the same, but no
/// destructor blocks for the members' answers, and a failure is only logged
/// and counted (on_replication_failure cannot reach a response any more).
///
/// @par Thread safety
/// One scope per request, used by one thread at a time; many scopes (on one
/// session too) may live at once.
class request_scope {
public:
    request_scope(request_scope&&) noexcept;
    request_scope& operator=(request_scope&&) noexcept;
    ~request_scope();

    /// The request's session: nullptr when it has none and `create` is false.
    /// Creating one is lazy: a request that never asks creates nothing.
    session_handle* session(bool create = false);
    /// The session id to send back in the cookie ("" if none; new after
    /// rotate_id() or when the request created its session).
    std::string session_id() const;
    /// True when the cookie must be (re)set: a new session, a rotated id, a
    /// route rewrite, or a cookie that named an alias of the session's id.
    bool id_changed() const;
    /// True when the manager skipped this request (skip_paths, skip_headers):
    /// session() is nullptr and nothing was created or touched.
    bool skipped() const noexcept;
    /// Gives the session a new id (e.g. after login). The old id stops working
    /// at once; the change is replicated when the request ends. No-op without a
    /// session.
    void rotate_id();
    /// True when the cookie names a session that exists in the cluster but
    /// could not be had in time (the backup manager's fetch got no answer from
    /// the members that may hold it). session() then returns nullptr even with
    /// `create`: answer 503 (Service Unavailable) rather than start an empty
    /// session in its place.
    bool unavailable() const noexcept;
    /// Whether this request's path replicates (false for filtered static files).
    bool replicates() const noexcept;
    /// Ends the request; idempotent (later calls return the first result). With
    /// ack/sync options it blocks until the members answered; it must not run
    /// on a troupe I/O thread (there it does not wait, and says so in `error`).
    end_result end();
    /// Ends the request without blocking, for servers that answer asynchronously
    /// (a Beast server's handler should not hold one of its few threads for a
    /// round trip). `done` runs exactly once with what end() would return: at
    /// once on this thread when there is nothing to wait for (async options,
    /// nothing changed), else on a channel I/O thread when every member answered
    /// or failed (the transport's ack timeout bounds the wait). Keep `done`
    /// short there: post the response to your own executor. Safe on any thread.
    /// A second end()/end_async() after this one returns an empty end_result.
    void end_async(end_handler done);

    /// Ends the request without blocking, in Asio's style: the completion
    /// signature is `void(end_result)` and `token` is a completion token: a
    /// callback (on `system_executor`'s threads unless bound with
    /// `boost::asio::bind_executor`), `boost::asio::use_future`, or
    /// `boost::asio::use_awaitable` in a C++20 coroutine. The request is ended
    /// here, before this returns, whatever the token (a lazy one such as
    /// use_awaitable may start waiting later: the scope need not live until
    /// then). The handler runs on its associated executor, never inside this
    /// call, and that executor counts as having work until then (its
    /// io_context does not run out); it is moved out and destroyed there.
    /// When it completes is end_async()'s: at once when there is nothing to
    /// wait for, else when every member answered or the transport's ack
    /// timeout passed. Stop the manager and the channel (which completes
    /// every pending end) before destroying the handler's io_context.
    ///
    ///     auto result = co_await scope.async_end(boost::asio::use_awaitable);
    ///
    /// @par Thread safety
    /// As end_async(): safe on any thread, the scope used by one at a time.
    template <typename CompletionToken>
    auto async_end(CompletionToken&& token) {
        auto slot = std::make_shared<detail::end_slot>();
        end_async([slot](end_result result) { slot->complete(std::move(result)); });
        return boost::asio::async_initiate<CompletionToken, void(end_result)>(
            [slot](auto handler) {
                using handler_type = decltype(handler);
                // Keeps the handler's executor busy until the completion is posted there.
                auto work = boost::asio::make_work_guard(handler);
                // std::function copies; handlers may only move.
                auto shared = std::make_shared<handler_type>(std::move(handler));
                slot->on_complete([shared, work](end_result result) mutable {
                    auto executor = work.get_executor();
                    // post, never dispatch: not inside the initiating call, and
                    // not on a troupe I/O thread unless that is the executor.
                    boost::asio::post(executor, [shared = std::move(shared), work = std::move(work),
                                                 result = std::move(result)]() mutable {
                        // Moved out, so that it is destroyed here, on its executor.
                        handler_type h = std::move(*shared);
                        shared.reset();
                        work.reset();
                        std::move(h)(std::move(result));
                    });
                });
            },
            token);
    }

private:
    friend class detail::manager_base;
    struct state;
    explicit request_scope(std::unique_ptr<state> s);
    void end_unwaited() noexcept;
    std::unique_ptr<state> state_;
};

/// A session manager: the sessions of one context, their request scopes,
/// listeners, expiry and (for `delta`) replication. Made by name with
/// make_manager().
///
/// Owns a timer thread (expiry, batched access times) and, for `delta`, a
/// worker thread answering state transfers; stop() (or the destructor) joins
/// them and detaches from the channel. The channel must outlive the manager.
///
/// @par Thread safety
/// Every member function may be called from any thread; begin_request() and
/// request scopes from many threads at once.
class session_manager {
public:
    virtual ~session_manager();
    session_manager(const session_manager&) = delete;
    session_manager& operator=(const session_manager&) = delete;

    /// Starts the request's scope. `cookie_id` is the session id from the request
    /// cookie (may be empty or unknown); `path` decides whether it replicates.
    /// While this member is still receiving the cluster's sessions (state
    /// transfer), a request for a session not yet here waits for it (bounded by
    /// state_transfer_timeout).
    virtual request_scope begin_request(const request_info& request) = 0;
    /// begin_request() for a request that carries no header skip_headers names.
    request_scope begin_request(std::string_view cookie_id, std::string_view path) {
        return begin_request(request_info{cookie_id, path, {}});
    }

    virtual void add_listener(session_listener listener) = 0;
    virtual std::shared_ptr<session> find(std::string_view id) const = 0;
    virtual std::size_t size() const = 0;
    virtual std::vector<std::string> session_ids() const = 0;
    /// Expires sessions idle past their max inactive interval now (the timer
    /// does it every expiry_interval). @return how many expired.
    virtual std::size_t expire_now() = 0;
    /// Waits until the initial state transfer is over (done, timed out, or none
    /// needed). @return true if it is over.
    virtual bool await_state_transfer(std::chrono::milliseconds limit) = 0;
    /// Stops timers and workers and detaches from the channel; idempotent. With
    /// expire_sessions_on_shutdown, expires this node's sessions everywhere first.
    virtual void stop() = 0;
    virtual const manager_config& config() const noexcept = 0;
    /// Counters as JSON text (for /stats and troupe-ctl).
    virtual std::string stats_json() const = 0;
    /// Counters in the Prometheus text format (for /metrics).
    virtual std::string metrics_text() const = 0;
    /// The copies this member holds, as JSON text, for checks and
    /// troubleshooting (troupe-httpd's admin /copies): {"copies": [{"id",
    /// "role", "version", "acked"}, ...], "truncated": bool}, at most `limit`
    /// entries, in no particular order. Roles: "primary", "backup" or
    /// "handed_over" under the backup manager, "copy" otherwise.
    virtual std::string copies_json(std::size_t limit) const = 0;

protected:
    session_manager() = default;
};

/// Makes and starts a manager: "standard" or "delta" (for `delta` it registers
/// the context's listener on `channel`, and when older members exist, waits
/// for their sessions up to state_transfer_timeout, as Tomcat's DeltaManager).
/// The channel should be started first.
/// @throws std::invalid_argument for an unknown type (the message lists the
/// valid ones) or invalid settings.
std::unique_ptr<session_manager> make_manager(engine::channel& channel, manager_config config);

/// Problems in `config`, one message each ("filter: ...", "type: ..."); empty if valid.
std::vector<std::string> validate(const manager_config& config);

} // namespace troupe::managers
