// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/engine/channel.hpp>
#include <troupe/managers/async_completion.hpp>
#include <troupe/managers/error.hpp>
#include <troupe/managers/manager_config.hpp>
#include <troupe/managers/request_scope.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::managers {

/// Completion of session_manager::begin_request_async(): runs exactly once.
using begin_handler = std::function<void(boost::system::error_code, request_scope)>;

/// A session manager: the sessions of one context, their request scopes,
/// listeners, expiry and (for `delta` and `backup`) replication. Made by name
/// with make_manager() or async_make_manager().
///
/// Owns a timer thread (expiry, batched access times), for the replicating
/// types a worker thread answering state transfers, and, started on demand,
/// the threads asynchronous begins wait on. stop() (or the destructor) joins
/// them and detaches from the channel. The channel must outlive the manager.
///
/// @par Thread safety
/// Every member function may be called from any thread; the begins and
/// request scopes from many threads at once.
class session_manager {
public:
    /// Stops the manager (see stop()) and joins its threads.
    virtual ~session_manager();
    session_manager(const session_manager&) = delete;
    session_manager& operator=(const session_manager&) = delete;

    /// Starts the request's scope, for thread-per-request servers: it may
    /// block. `request.cookie_id` is the session id from the request's cookie
    /// (may be empty or unknown); `request.path` decides whether it
    /// replicates. While this member is still receiving the cluster's sessions
    /// (state transfer, reconciliation after a pause or partition), a request
    /// for a session not yet here waits for it (bounded by
    /// state_transfer_timeout, or a few seconds); the backup manager fetches
    /// a session held elsewhere (bounded by the fetch timeout).
    /// @throws session_error errc::session_unavailable (the session exists
    /// but could not be had: answer 503) or errc::stopped.
    request_scope begin_request(const request_info& request) {
        boost::system::error_code ec;
        auto scope = begin_request(request, ec);
        if (ec) {
            throw session_error(ec, begin_failure(request, ec));
        }
        return scope;
    }
    /// begin_request() that reports a failure in `ec` instead of throwing. The
    /// scope is usable either way: after errc::session_unavailable its
    /// unavailable() is true and its session() nullptr; after errc::stopped it
    /// has no session.
    virtual request_scope begin_request(const request_info& request, boost::system::error_code& ec) = 0;
    /// begin_request() for a request that carries no header skip_headers names.
    request_scope begin_request(std::string_view cookie_id, std::string_view path) {
        return begin_request(request_info{cookie_id, path, {}});
    }

    /// Starts the request's scope without blocking, with a plain callback:
    /// `done` runs exactly once with what begin_request(request, ec) would
    /// give, inside this call when the session is at hand (the usual case),
    /// else on one of the manager's wait threads once it came or the wait
    /// gave up. Prefer async_begin_request(), which never completes inside the
    /// call. `request` is read before this returns.
    void begin_request_async(const request_info& request, begin_handler done) {
        auto slot = std::make_shared<begin_slot>();
        begin_into(request, slot);
        detail::call_when_done(slot, std::move(done));
    }

    /// Starts the request's scope in Asio's style: the completion signature
    /// is `void(boost::system::error_code, request_scope)`, and `token` any
    /// completion token (a callback, `use_future`, `use_awaitable`). The
    /// lookup starts here, before this returns, whatever the token; `request`
    /// (its views) is not read afterwards. When the session is at hand the
    /// result is ready at once and the handler is posted to its associated
    /// executor: no thread hop, no blocking. A session that must be waited
    /// for (see begin_request()) is waited for on a manager thread, never on
    /// the caller's. The handler never runs inside this call; errors as
    /// begin_request(request, ec)'s (use_awaitable throws them as
    /// boost::system::system_error).
    ///
    ///     boost::system::error_code ec;
    ///     auto scope = co_await manager.async_begin_request(
    ///         {cookie_id, path, {}}, boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    template <typename CompletionToken>
    auto async_begin_request(const request_info& request, CompletionToken&& token) {
        auto slot = std::make_shared<begin_slot>();
        begin_into(request, slot);
        return detail::complete_from<void(boost::system::error_code, request_scope)>(
            std::move(slot), std::forward<CompletionToken>(token));
    }

    /// Adds a listener for session events (created, destroyed, attribute
    /// changes); listeners are never removed. Any thread, at any time.
    virtual void add_listener(session_listener listener) = 0;
    /// This member's copy of session `id` (read-only), or nullptr.
    virtual std::shared_ptr<session> find(std::string_view id) const = 0;
    /// Sessions held here (primaries and copies).
    virtual std::size_t size() const = 0;
    /// The ids of the sessions held here, in no particular order (a snapshot).
    virtual std::vector<std::string> session_ids() const = 0;
    /// Expires sessions idle past their max inactive interval now (the timer
    /// does it every expiry_interval). @return how many expired.
    virtual std::size_t expire_now() = 0;
    /// Waits until the initial state transfer is over (done, timed out, or none
    /// needed). Blocks: not on an event loop's thread. @return true if it is over.
    virtual bool await_state_transfer(std::chrono::milliseconds limit) = 0;
    /// Stops timers and workers and detaches from the channel; idempotent.
    /// Begins after it fail with errc::stopped. With
    /// expire_sessions_on_shutdown, expires this node's sessions everywhere
    /// first.
    virtual void stop() = 0;
    /// The settings the manager was made with (immutable).
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
    using begin_slot = detail::completion_slot<boost::system::error_code, request_scope>;
    session_manager() = default;
    /// Begins the request; the result goes to `slot`, at once when the
    /// session is at hand, else from a wait thread.
    virtual void begin_into(const request_info& request, std::shared_ptr<begin_slot> slot) = 0;

private:
    static std::string begin_failure(const request_info& request, boost::system::error_code ec);
};

/// Makes and starts a manager of `config.type` on `channel` (started first),
/// for programs that may block while starting: a replicating manager that
/// finds older members waits for their sessions, up to
/// state_transfer_timeout, as Tomcat's DeltaManager does, so that the node
/// serves no request without them (on a troupe I/O thread it does not wait).
/// @throws session_error errc::invalid_config (the detail lists every problem
/// and the valid types).
std::unique_ptr<session_manager> make_manager(engine::channel& channel, manager_config config);
/// make_manager() that reports invalid settings in `ec` (and returns nullptr).
std::unique_ptr<session_manager> make_manager(engine::channel& channel, manager_config config,
                                              boost::system::error_code& ec);
/// The callback form of async_make_manager(): `done` runs exactly once, inside
/// this call for invalid settings or when there is nothing to wait for, else
/// on a manager thread when the state transfer is over.
void make_manager_async(engine::channel& channel, manager_config config,
                        std::function<void(boost::system::error_code, std::unique_ptr<session_manager>)> done);

/// Makes and starts a manager without blocking: the completion signature is
/// `void(boost::system::error_code, std::unique_ptr<session_manager>)`, and it
/// completes (on the token's associated executor, never inside this call)
/// once the state transfer make_manager() would wait for is over. Invalid
/// settings complete with errc::invalid_config and no manager.
///
///     auto manager = co_await troupe::managers::async_make_manager(channel, config, use_awaitable);
template <typename CompletionToken>
auto async_make_manager(engine::channel& channel, manager_config config, CompletionToken&& token) {
    using result_type = std::unique_ptr<session_manager>;
    auto slot = std::make_shared<detail::completion_slot<boost::system::error_code, result_type>>();
    make_manager_async(channel, std::move(config), [slot](boost::system::error_code ec, result_type m) {
        slot->complete(ec, std::move(m));
    });
    return detail::complete_from<void(boost::system::error_code, result_type)>(std::move(slot),
                                                                                std::forward<CompletionToken>(token));
}

/// Problems in `config`, one message each ("filter: ...", "type: ..."); empty if valid.
std::vector<std::string> validate(const manager_config& config);

} // namespace troupe::managers
