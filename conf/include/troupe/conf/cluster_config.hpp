// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace troupe::conf {

/// Every duration in the config: milliseconds are the finest unit a file can write.
using duration = std::chrono::milliseconds;

/// host:port as written in the cluster file (resolved later, by the transport).
struct host_port {
    std::string host;       ///< name or address, as written
    std::uint16_t port = 0; ///< TCP port

    /// Field by field: the same name and port (no resolution).
    friend bool operator==(const host_port&, const host_port&) = default;
};

/// What a send does when a member's queue holds `sender.queue_limit` bytes:
/// `block` waits up to `sender.block_timeout` for room (never on an I/O thread,
/// where it fails at once), `fail` fails at once with transport::error::queue_full.
enum class queue_full_policy { block, fail };

/// Tribes' option bits, kept for familiarity: async 8, ack 2, sync 6 (= ack | 4).
namespace send_option_bits {
inline constexpr std::uint32_t use_ack = 2;          ///< wait for the receiver's ACK
inline constexpr std::uint32_t synchronized_ack = 4; ///< ACK after the listener returned; needs use_ack
inline constexpr std::uint32_t asynchronous = 8;     ///< return once queued
} // namespace send_option_bits

/// `cluster.*`: who this node is and which group it joins.
struct cluster_section {
    std::string name = "troupe";   ///< nodes of other clusters are refused at HELLO
    std::string node;              ///< this node's name (the session-id route suffix); default: host name
    std::string secret;            ///< shared secret; empty = no authentication
};

/// `receiver.*`: the TCP listener members connect to, and the node's I/O threads.
struct receiver_section {
    std::string address = "127.0.0.1"; ///< loopback by default: production names its interface
    std::uint16_t port = 4000;         ///< 0 = any free port
    std::uint32_t auto_bind = 100;     ///< try port .. port+auto_bind-1
    std::uint32_t threads = 1;         ///< I/O threads running the node's io_context
    std::uint32_t reader_threads = 64; ///< member connections read by a thread of their own; 0 = none
    /// A member connection that sends nothing this long is closed (0 = never).
    /// Peers PING idle connections, so only a vanished host or a hung peer is silent.
    duration idle_timeout{30000};
};

/// UDP multicast heartbeats (Tribes' McastService). Safe by default: on the
/// receiver's loopback address the TTL is forced to 0, so nothing leaves the host.
struct multicast_section {
    bool enabled = true;                ///< false: static members and DNS only
    std::string address = "228.0.0.4"; ///< an IPv4 multicast group
    std::uint16_t port = 45564;         ///< the group's UDP port
    std::string interface;   ///< IPv4 address of the interface; empty = receiver.address
    std::uint32_t ttl = 1;   ///< 0..255; forced to 0 on a loopback interface
    duration frequency{500}; ///< one heartbeat this often
    duration drop_time{3000}; ///< silent this long: suspected, then verified over TCP
};

/// Confirms suspicions over TCP before anyone is removed (Tribes' TcpFailureDetector).
struct failure_detector_section {
    duration ping_interval{1000}; ///< PING on idle member connections (and static members)
    duration verify_timeout{1000}; ///< connect + HELLO + PING/PONG must complete within this
};

/// Members from DNS (container platforms: a Kubernetes headless service, a
/// Compose service name, Consul DNS). Each A/AAAA record of `name` is a
/// candidate, dialled and verified over TCP like a static member; a record
/// that disappears is dropped once its member is not alive.
struct dns_section {
    std::string name;               ///< empty: DNS discovery is off
    std::uint16_t port = 0;         ///< the members' receiver port; 0 = this node's receiver.port
    duration interval{5000};        ///< resolved this often
};

/// `membership.*`: how members are found (static list, DNS, multicast) and judged.
struct membership_section {
    std::vector<host_port> static_members; ///< key `membership.static`; may list this node too
    dns_section dns;                            ///< `membership.dns`
    multicast_section multicast;                ///< `membership.multicast`
    failure_detector_section failure_detector; ///< `membership.failure_detector`
    /// Small key/value payload carried in every heartbeat (key `membership.payload`, a map).
    std::vector<std::pair<std::string, std::string>> payload;
};

/// `sender.*`: the ordered outbound stream to each member.
struct sender_section {
    duration connect_timeout{1000};  ///< TCP connect + HELLO
    duration ack_timeout{3000};      ///< ack/sync sends fail after this
    std::uint64_t queue_limit = 4ull << 20; ///< queued bytes per member
    queue_full_policy on_queue_full = queue_full_policy::block; ///< when queue_limit is reached
    duration block_timeout{1000};    ///< with `block`: how long a send waits for room
    duration reconnect_backoff_max{1000}; ///< reconnect delay doubles up to this
    /// After a write of async frames empties a member's queue, wait this many µs
    /// for more before the next write (0 = write every message at once).
    std::uint32_t linger_us = 300;
};

/// `channel.*`: limits of the channel as a whole.
struct channel_section {
    std::uint64_t max_message = 16ull << 20; ///< largest payload accepted or sent
    duration stop_timeout{5000};             ///< stop() flushes queued messages this long
};

/// `admin.*`: the HTTP admin endpoint (engine::admin_server) of troupe-node and troupe-httpd.
struct admin_section {
    bool enabled = true;               ///< false: no admin endpoint
    std::string address = "127.0.0.1"; ///< loopback by default, like every listener
    std::uint16_t port = 0; ///< 0 = any free port (reported in the "ready" line)
};

/// The HTTP front of troupe-httpd (ignored by troupe-node).
struct http_section {
    std::string address = "127.0.0.1"; ///< loopback by default, like every listener
    std::uint16_t port = 8080;         ///< 0 = any free port (reported in the "ready" line)
    std::uint32_t threads = 2;         ///< threads running the HTTP server's own io_context
};

/// statsd lines over UDP, beside /metrics (troupe-httpd and troupe-node send them).
struct statsd_section {
    std::string address;           ///< IPv4 address of the statsd server; empty: statsd is off
    std::uint16_t port = 8125;     ///< its UDP port
    std::string prefix = "troupe"; ///< before every name: `troupe.requests:3|c`
    duration interval{10000};      ///< how often counters, gauges and timings are sent
};

/// `metrics.*`: exports beside GET /metrics.
struct metrics_section {
    statsd_section statsd; ///< `metrics.statsd`
};

/// What a failed ack/sync replication does to the request (Tribes has no such choice).
/// `log`: count and log it, the request succeeds; `fail`: the request's end reports
/// the failure (managers::errc::replication_failed).
enum class replication_failure_policy { log, fail };

/// The session manager of one application context (troupe-httpd maps it onto
/// troupe::managers::manager_config; conf does not depend on managers).
struct manager_section {
    std::string type = "delta";          ///< delta (every member holds every session) | backup | standard
    std::string context = "app";        ///< channel context: applications sharing a channel differ
    std::string cookie = "TROUPE_SESSION"; ///< session cookie name (an RFC 6265 token)
    bool cookie_secure = false;          ///< add Secure to the cookie (HTTPS behind a proxy)
    std::string cookie_path = "/";       ///< the cookie's Path
    std::string cookie_same_site = "lax"; ///< the cookie's SameSite: lax, strict or none (needs cookie_secure)
    duration cookie_max_age{0};          ///< the cookie's Max-Age (whole seconds); 0: none, it ends with the browser
    /// Paths that replicate nothing (static files): an ECMAScript std::regex that
    /// must match the whole path. Empty: every path replicates.
    std::string filter = R"(.*\.(gif|jpg|jpeg|png|ico|css|js|txt|html?)$|^/static/.*)";
    /// Requests that neither create nor touch a session (health checks,
    /// monitoring, bots): paths matching this ECMAScript regex (whole path;
    /// empty: none), or carrying any of these header fields.
    std::string skip_paths;                ///< see above: the path regex
    std::vector<std::string> skip_headers; ///< see above: header field names
    /// A request whose session id names the route of a node no longer in
    /// this node's view (failover) is served here and its id is given this
    /// node's route (the cookie follows).
    bool route_rewrite = true;
    duration max_inactive{30 * 60 * 1000}; ///< idle sessions expire after this (whole seconds; 0 = never)
    std::uint32_t send_options = send_option_bits::asynchronous; ///< how each request's delta goes out
    /// What a failed ack/sync replication does to the request.
    replication_failure_policy on_replication_failure = replication_failure_policy::log;
    bool notify_listeners_on_replication = true; ///< replicas fire session listeners too
    bool expire_sessions_on_shutdown = false;    ///< a clean stop expires this node's sessions everywhere
    duration state_transfer_timeout{60000};      ///< a joiner waits this long for all sessions
};

/// `logging.*`: the tools' log output (the library itself never sets sinks or levels).
struct logging_section {
    std::string level = "info"; ///< trace, debug, info, warn, error, critical, off
    std::string file;           ///< empty = stderr
};

/// The whole cluster file. Plain aggregates: a config built in code goes through
/// the same validate() as one read from a file.
///
/// @par Thread safety
/// Plain values (as every section above): distinct objects: safe. Shared objects:
/// safe to read from many threads; not while any thread writes.
struct cluster_config {
    cluster_section cluster;       ///< `cluster`
    receiver_section receiver;     ///< `receiver`
    membership_section membership; ///< `membership`
    sender_section sender;         ///< `sender`
    channel_section channel;       ///< `channel`
    admin_section admin;           ///< `admin`
    http_section http;             ///< `http`
    manager_section manager;       ///< `manager`
    metrics_section metrics;       ///< `metrics`
    logging_section logging;       ///< `logging`
};

} // namespace troupe::conf
