// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/engine/send_options.hpp>
#include <troupe/managers/cookie.hpp>
#include <troupe/managers/session.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::managers {

/// Settings of one session manager (one application context). A plain
/// aggregate, checked by make_manager() (errc::invalid_config, whose detail
/// lists every problem) and by validate().
struct manager_config {
    /// "standard" (no replication) | "delta" (every member holds every
    /// session) | "backup" (a primary and one backup per session).
    std::string type = "delta";
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
    /// counts it); `fail` also fails the end with errc::replication_failed.
    enum class on_failure { log, fail } on_replication_failure = on_failure::log;
    bool notify_listeners_on_replication = true; ///< replicas fire listeners too
    bool expire_sessions_on_shutdown = false;    ///< stop() expires this node's sessions everywhere
    std::chrono::milliseconds state_transfer_timeout{60000}; ///< how long a joiner waits for all sessions
    std::size_t state_transfer_chunk_bytes = 1 << 20;        ///< all-data chunks are at most this big
    std::chrono::milliseconds access_batch_interval{1000};   ///< access times go out batched this often
    std::chrono::milliseconds expiry_interval{1000}; ///< how often expiry runs; 0: only expire_now()
    /// The backup manager's copy audit: how often each member checks the
    /// copies it holds but does not serve (stale ones retired, stranded ones
    /// served again); 0: only when asked (unit tests). Unused by `delta`.
    std::chrono::milliseconds copy_audit_interval{4000};
    /// The wall clock for creation, access and expiry; empty: system_clock::now.
    /// Unit tests inject a manual clock.
    std::function<wall_clock::time_point()> now;
    /// The monotonic clock for what housekeeping decides by time: a state
    /// transfer's timeout, reconciliation retries, the hold after a pause, the
    /// healing window; empty: steady_clock::now. Unit tests inject a manual
    /// clock and run housekeeping themselves. A thread that blocks (a request
    /// waiting for a session) still bounds its wait by the real clock, and a
    /// freeze of this process is still measured on it.
    std::function<std::chrono::steady_clock::time_point()> steady_now;
};

/// The `manager:` section of a cluster file (conf::load_file) as a
/// manager_config: every key maps onto the field of the same meaning. Values
/// the cluster file's validation accepted are valid here too.
manager_config manager_config_from(const conf::manager_section& section);

/// What begin_request() looks at in an HTTP request. Read only inside the
/// begin call (async_begin_request() included: it copies the cookie id before
/// it returns), so the views may point into the request.
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
    /// What happened.
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

} // namespace troupe::managers
