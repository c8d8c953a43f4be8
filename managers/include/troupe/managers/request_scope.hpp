// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/engine/send_result.hpp>
#include <troupe/managers/async_completion.hpp>
#include <troupe/managers/error.hpp>
#include <troupe/managers/session_handle.hpp>

#include <boost/system/error_code.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace troupe::managers {

/// Outcome of ending a request scope.
struct end_result {
    bool replicated = false;                 ///< something (create, delta, id change, expire) was sent
    std::optional<engine::send_result> send; ///< with ack/sync options: what the sends achieved
    /// errc::replication_failed when the change does not stand: a send
    /// failed and on_replication_failure = fail, or, whatever the policy, the
    /// change was refused (the session changed elsewhere meanwhile, a newer
    /// copy replaced this one, this node is on the minority side of a cut).
    /// The end() form throws it; end(ec) and the asynchronous forms pass it
    /// on. Else empty.
    boost::system::error_code error;
    std::string detail; ///< why, in words, when `error` is set (also logged)
    /// The request route-rewrote the session's id and failed: the rename was
    /// taken back, the session has the id the request came with again, and
    /// the response must not set the new one (request_scope::id_changed()
    /// told it before the end).
    bool rename_undone = false;
};

/// Completion of request_scope::end_async(): runs exactly once.
using end_handler = std::function<void(boost::system::error_code, end_result)>;

class session_manager;

namespace detail {
class manager_base;
}

/// The valve: what one HTTP request did to its session. Made by
/// session_manager::begin_request() or async_begin_request(); end(),
/// end_async() or async_end() turn what the request changed into one delta
/// and replicate it with the configured send options.
///
/// A scope destroyed (or assigned over) without an end is ended without
/// waiting: its changes go out all the same, but no destructor blocks for the
/// members' answers, and a failure is only logged and counted
/// (on_replication_failure cannot reach a response any more).
///
/// @par Thread safety
/// One scope per request, used by one thread at a time; many scopes (on one
/// session too) may live at once, on any threads.
class request_scope {
public:
    request_scope(request_scope&&) noexcept;
    request_scope& operator=(request_scope&&) noexcept;
    ~request_scope();

    /// The request's session: nullptr when it has none and `create` is false,
    /// and always when unavailable() or skipped(). Creating one is lazy: a
    /// request that never asks creates nothing. Valid until the scope ends.
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
    /// True when the begin failed with errc::session_unavailable: the cookie
    /// names a session that exists in the cluster but could not be had in
    /// time. session() then returns nullptr even with `create`: answer 503
    /// rather than start an empty session in its place.
    bool unavailable() const noexcept;
    /// Whether this request's path replicates (false for filtered static files).
    bool replicates() const noexcept;

    /// Ends the request, for thread-per-request servers. With ack/sync options
    /// it blocks until the members answered (the transport's ack timeout bounds
    /// it); on a troupe I/O thread it does not wait, and fails. Idempotent:
    /// later calls return (or throw) what the first did.
    /// @throws session_error errc::replication_failed when the change does
    /// not stand (see end_result::error).
    end_result end();
    /// end() that reports the failure in `ec` instead of throwing.
    end_result end(boost::system::error_code& ec);
    /// Ends the request without blocking, with a plain callback: `done` runs
    /// exactly once with what end(ec) would give, either inside this call
    /// when there is nothing to wait for (async options, nothing changed), or
    /// on a channel I/O thread when every member answered or failed. Keep it
    /// short there. Prefer async_end(), which never completes inside the call.
    /// A second end after this one gives an empty end_result.
    void end_async(end_handler done);

    /// Ends the request without blocking, in Asio's style: the completion
    /// signature is `void(boost::system::error_code, end_result)` and `token`
    /// any completion token: a callback (on `system_executor`'s threads unless
    /// bound with `boost::asio::bind_executor`), `boost::asio::use_future`, or
    /// `boost::asio::use_awaitable` in a C++20 coroutine (which throws
    /// boost::system::system_error on an error). The request is ended here,
    /// before this returns, whatever the token (a lazy one may start waiting
    /// later: the scope need not live until then). The handler runs on its
    /// associated executor, never inside this call, and that executor counts
    /// as having work until then. It completes at once when there is nothing
    /// to wait for, else when every member answered or the transport's ack
    /// timeout passed. Stop the manager and the channel (which completes every
    /// pending end) before destroying the handler's io_context, and destroy
    /// (or run out) the io_context before destroying the manager: a handler
    /// still queued there may hold a scope, whose end needs the manager.
    ///
    ///     auto result = co_await scope.async_end(boost::asio::use_awaitable);
    template <typename CompletionToken>
    auto async_end(CompletionToken&& token) {
        auto slot = std::make_shared<detail::completion_slot<boost::system::error_code, end_result>>();
        end_into(slot);
        return detail::complete_from<void(boost::system::error_code, end_result)>(
            std::move(slot), std::forward<CompletionToken>(token));
    }

    struct state; ///< the managers' (managers/src)

private:
    friend class detail::manager_base;
    explicit request_scope(std::unique_ptr<state> s);
    void end_unwaited() noexcept;
    /// Ends the request; the result goes to `slot`, now or later.
    void end_into(std::shared_ptr<detail::completion_slot<boost::system::error_code, end_result>> slot);
    std::unique_ptr<state> state_;
};

} // namespace troupe::managers
