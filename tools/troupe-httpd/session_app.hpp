// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "http_server.hpp"

#include <troupe/engine/channel.hpp>
#include <troupe/managers/manager.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::httpd {

struct app_options {
    std::string node; ///< cluster.node, echoed by /counter
    managers::cookie_settings cookie; ///< manager.cookie* of the cluster file
    /// Files served under /static/; nullopt: a built-in page (/static/ and /static/index.html).
    std::optional<std::filesystem::path> static_dir;
};

/// troupe-httpd's application: the routes of the contract, run through the
/// session manager's request scope (begin_request before, end() after).
///
///   GET /counter   increments "counter" in the session (created if need be)
///   GET /session   the session as JSON, 404 without one
///   GET /static/…  files; the manager's filter makes them replicate nothing
///   GET /healthz   liveness; GET /metrics: Prometheus text
///
/// @par Thread safety
/// handle() is called by many HTTP threads at once; it never blocks on replication.
class session_app {
public:
    session_app(managers::session_manager& manager, engine::channel& channel, app_options options);

    /// The http_server's request handler. Session routes respond from the
    /// request scope's end_async() completion: with ack/sync options that is
    /// when the members answered, and no HTTP thread waits for it.
    void handle(const request& req, responder respond);
    /// The http_server's reject observer: counts requests refused before routing.
    void count_rejected(unsigned status);

    /// The server whose connection counts /metrics reports (optional).
    void set_server(const http_server* server) { server_ = server; }

    /// Prometheus text: channel metrics, manager stats, HTTP counters.
    std::string metrics_text() const;

    /// Routes, as the label of troupe_http_requests_total.
    enum class route : std::uint8_t {
        counter,
        session,
        static_files,
        healthz,
        metrics,
        other,
        count
    };

private:
    response counter(const request& req, managers::request_scope& scope);
    response session_json(const request& req, managers::request_scope& scope);
    response static_file(const request& req, std::string_view path);
    void with_session(const request& req, std::string_view path, route r, responder respond);
    void serve(const request& req, std::string_view path, route r, boost::system::error_code begun,
               managers::request_scope scope, responder respond);
    void count(route r, unsigned status) { count_status(*counts_, r, status); }
    std::string http_metrics() const;

    static constexpr unsigned first_status = 100;
    static constexpr unsigned statuses = 500; // 100..599
    using status_counts =
        std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(route::count) * statuses>;
    static void count_status(status_counts& counts, route r, unsigned status);

    managers::session_manager& manager_;
    engine::channel& channel_;
    const app_options options_;
    std::optional<std::filesystem::path> static_root_; // canonical static_dir
    const http_server* server_ = nullptr;

    // Shared with replication completions, which may outlive this object.
    std::shared_ptr<status_counts> counts_ = std::make_shared<status_counts>();
};

/// What every request gets while troupe-httpd is still starting (the manager
/// receives the cluster's sessions): 503 with Retry-After, /healthz included.
response starting_response(const std::string& node);

/// The session id a request's Cookie headers carry under `name`, or "" (also for
/// an id with characters or a length no session id has).
std::string cookie_value(const request& req, std::string_view name);

/// Percent-decodes a path; nullopt for a bad escape, a NUL or a '\\', or a ".."
/// segment (path traversal).
std::optional<std::string> safe_path(std::string_view raw);

} // namespace troupe::httpd
