// SPDX-License-Identifier: Apache-2.0
#include "session_app.hpp"

#include <troupe/managers/attribute_codec.hpp>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

namespace troupe::httpd {

namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

// Files are read whole into the response: this is a demo server's static
// route, not a file server.
constexpr std::uintmax_t max_static_file = 1024 * 1024;
constexpr std::string_view builtin_page = R"(<!doctype html>
<html><head><meta charset="utf-8"><title>troupe-httpd</title></head>
<body><h1>troupe-httpd</h1>
<p>A static page: it is served without a session and replicates nothing.</p>
<p><a href="/counter">/counter</a> counts in your session; <a href="/session">/session</a> shows it.</p>
</body></html>
)";

std::string dump(const json& j) {
    // Attribute values and paths come from outside: invalid UTF-8 must not throw.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

response json_response(http::status status, const json& body) {
    response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = dump(body);
    return res;
}

response error(http::status status, std::string_view message) {
    return json_response(status, json{{"error", message}});
}

std::int64_t epoch_ms(managers::wall_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

std::string_view content_type(const std::filesystem::path& file) {
    static const std::pair<std::string_view, std::string_view> types[] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".ico", "image/x-icon"},
        {".svg", "image/svg+xml"},
    };
    const auto ext = file.extension().string();
    for (const auto& [e, type] : types) {
        if (ext == e) {
            return type;
        }
    }
    return "application/octet-stream";
}

std::string_view route_name(session_app::route r) {
    switch (r) {
    case session_app::route::counter:
        return "counter";
    case session_app::route::session:
        return "session";
    case session_app::route::static_files:
        return "static";
    case session_app::route::healthz:
        return "healthz";
    case session_app::route::metrics:
        return "metrics";
    default:
        return "other";
    }
}

} // namespace

response starting_response(const std::string& node) {
    auto res = json_response(http::status::service_unavailable,
                             json{{"ok", false},
                                  {"node", node},
                                  {"state", "starting"},
                                  {"detail", "receiving the cluster's sessions (state transfer)"}});
    res.set(http::field::retry_after, "1");
    return res;
}

std::string cookie_value(const request& req, std::string_view name) {
    // One Cookie field is the rule; several (HTTP/2 splits them) are read as one
    // joined by "; " (RFC 9113 8.2.3), so the first occurrence of the name decides.
    const auto [first, last] = req.equal_range(http::field::cookie);
    if (first == last) {
        return {};
    }
    if (std::next(first) == last) {
        return std::string(managers::session_id_from_cookie({first->value().data(), first->value().size()}, name));
    }
    std::string joined;
    for (auto it = first; it != last; ++it) {
        joined.append(joined.empty() ? "" : "; ").append(it->value().data(), it->value().size());
    }
    return std::string(managers::session_id_from_cookie(joined, name));
}

std::optional<std::string> safe_path(std::string_view raw) {
    std::string decoded;
    decoded.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            decoded += raw[i];
            continue;
        }
        if (i + 2 >= raw.size()) {
            return std::nullopt;
        }
        const int hi = hex_value(raw[i + 1]);
        const int lo = hex_value(raw[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        decoded += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    if (decoded.find('\0') != std::string::npos || decoded.find('\\') != std::string::npos) {
        return std::nullopt;
    }
    std::string_view rest = decoded;
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        if (rest.substr(0, slash) == "..") {
            return std::nullopt;
        }
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    }
    return decoded;
}

session_app::session_app(managers::session_manager& manager,
                         engine::channel& channel,
                         app_options options)
    : manager_(manager)
    , channel_(channel)
    , options_(std::move(options)) {
    if (options_.static_dir) {
        std::error_code ec;
        auto root = std::filesystem::canonical(*options_.static_dir, ec);
        if (ec || !std::filesystem::is_directory(root)) {
            throw std::invalid_argument("--static " + options_.static_dir->string() +
                                        ": not a directory" + (ec ? ": " + ec.message() : ""));
        }
        static_root_ = std::move(root);
    }
}

void session_app::count_status(status_counts& counts, route r, unsigned status) {
    if (status < first_status || status >= first_status + statuses) {
        return;
    }
    counts[static_cast<std::size_t>(r) * statuses + (status - first_status)].fetch_add(
        1, std::memory_order_relaxed);
}

void session_app::count_rejected(unsigned status) {
    count(route::other, status);
}

void session_app::handle(const request& req, responder respond) {
    const auto target = std::string_view(req.target().data(), req.target().size());
    if (target.empty() || target.front() != '/') {
        // Absolute-form ("http://host/x") and authority-form are for proxies.
        count(route::other, 400);
        respond(error(http::status::bad_request, "the request target must be a path"));
        return;
    }
    const auto path = target.substr(0, target.find_first_of("?#"));

    route r = route::other;
    if (path == "/counter") {
        r = route::counter;
    } else if (path == "/session") {
        r = route::session;
    } else if (path == "/static" || path.substr(0, 8) == "/static/") {
        r = route::static_files;
    } else if (path == "/healthz") {
        r = route::healthz;
    } else if (path == "/metrics") {
        r = route::metrics;
    }

    response res;
    if (r == route::other) {
        res = json_response(http::status::not_found, json{{"error", "not found"}, {"path", path}});
    } else if (req.method() != http::verb::get) {
        res = json_response(
            http::status::method_not_allowed,
            json{{"error", "method not allowed"}, {"method", std::string(req.method_string())}});
        res.set(http::field::allow, "GET");
    } else if (r == route::healthz) {
        res = json_response(http::status::ok, json{{"ok", true}, {"node", options_.node}});
    } else if (r == route::metrics) {
        // Operational routes stay outside the valve: a scraper never touches sessions.
        res = response{http::status::ok, 11};
        res.set(http::field::content_type, "text/plain; version=0.0.4");
        res.body() = metrics_text();
    } else {
        with_session(req, path, r, std::move(respond));
        return;
    }
    count(r, res.result_int());
    respond(std::move(res));
}

void session_app::with_session(const request& req, std::string_view path, route r, responder respond) {
    const auto cookie = cookie_value(req, options_.cookie.name);
    managers::request_info info{cookie, path, [&req](std::string_view name) {
                                    // Beast compares field names case-insensitively.
                                    return req.find(boost::beast::string_view(name.data(), name.size())) != req.end();
                                }};
    // Never blocks this server thread: a session that must be waited for (a
    // state transfer, a fetch from another member) is waited for on one of
    // the manager's threads, and the request goes on from there. `req` and
    // `path` (a view into it) stay valid until the response is written.
    manager_.begin_request_async(info, [this, &req, path, r, respond = std::move(respond)](
                                           boost::system::error_code ec, managers::request_scope scope) mutable {
        serve(req, path, r, ec, std::move(scope), std::move(respond));
    });
}

void session_app::serve(const request& req, std::string_view path, route r, boost::system::error_code begun,
                        managers::request_scope scope, responder respond) {
    response res;
    try {
        // The backup manager could not fetch the cookie's session in time: it
        // exists somewhere, so an empty new one in its place would lose it.
        // (A stopped manager: the node is shutting down.)
        const bool needs_session = r == route::counter || r == route::session;
        if (begun == managers::errc::stopped && needs_session) {
            res = json_response(http::status::service_unavailable,
                                json{{"error", "stopping"}, {"detail", "this node is shutting down; retry"}});
        } else if (begun == managers::errc::session_unavailable && needs_session) {
            res = json_response(http::status::service_unavailable,
                                json{{"error", "session unavailable"},
                                     {"detail", "the members holding this session did not answer in time; retry"}});
        } else {
            switch (r) {
            case route::counter:
                res = counter(req, scope);
                break;
            case route::session:
                res = session_json(req, scope);
                break;
            default:
                res = static_file(req, path);
                break;
            }
        }
    } catch (const managers::attribute_error& e) {
        res = error(http::status::internal_server_error, e.what());
    } catch (const std::exception& e) {
        spdlog::error("{}: {}", path, e.what());
        res = error(http::status::internal_server_error, "internal error");
    }
    // The id to send back: a new session's, one rotated or route-rewritten
    // during the request, or the one a cookie's old id (an alias) led to.
    std::string set_cookie;
    if (const auto id = scope.session_id(); scope.id_changed() && !id.empty()) {
        set_cookie = managers::set_cookie_value(id, options_.cookie);
    }
    // With ack/sync options this completes on a channel I/O thread once the
    // members answered; the response waits for it, no HTTP thread does.
    scope.end_async([counts = counts_, r, res = std::move(res), set_cookie = std::move(set_cookie),
                     respond = std::move(respond)](boost::system::error_code ec,
                                                                   managers::end_result ended) mutable {
        if (ec) {
            // on_replication_failure: fail. The change is on this node only; the
            // client must not believe it is safe.
            res = json_response(http::status::service_unavailable,
                                json{{"error", "replication failed"}, {"detail", ended.detail}});
        }
        // A failed request's route rewrite is taken back (the session has the
        // id the client sent again): the client keeps its cookie.
        if (!set_cookie.empty() && !ended.rename_undone) {
            res.set(http::field::set_cookie, set_cookie);
        }
        count_status(*counts, r, res.result_int());
        respond(std::move(res));
    });
}

response session_app::counter(const request& /*req*/, managers::request_scope& scope) {
    if (scope.skipped()) {
        // manager.skip_paths / skip_headers: answered without a session.
        return json_response(http::status::ok, json{{"counter", nullptr}, {"skipped", true}, {"node", options_.node}});
    }
    auto* s = scope.session(true);
    if (s == nullptr) {
        return error(http::status::internal_server_error, "no session could be created");
    }
    std::int64_t value = 0;
    s->modify<std::int64_t>("counter", [&value](std::int64_t& v) { value = ++v; });
    return json_response(http::status::ok,
                         json{{"counter", value}, {"session", s->id()}, {"node", options_.node}});
}

response session_app::session_json(const request& /*req*/, managers::request_scope& scope) {
    if (scope.skipped()) {
        // manager.skip_paths / skip_headers: the session was not looked up.
        return json_response(http::status::ok, json{{"skipped", true}, {"node", options_.node}});
    }
    auto* s = scope.session(false);
    if (s == nullptr) {
        return error(http::status::not_found, "no session");
    }
    json attributes = json::object();
    for (const auto& [name, a] : s->underlying()->attributes()) {
        try {
            if (a.type == "string") {
                attributes[name] = managers::decode_attribute<std::string>(name, a);
                continue;
            }
            if (a.type == "i64") {
                attributes[name] = managers::decode_attribute<std::int64_t>(name, a);
                continue;
            }
            if (a.type == "u64") {
                attributes[name] = managers::decode_attribute<std::uint64_t>(name, a);
                continue;
            }
        } catch (const managers::attribute_error&) {
            // Shown by type and size below, like any value this page cannot print.
        }
        attributes[name] = json{{"type", a.type}, {"bytes", a.bytes.size()}};
    }
    return json_response(http::status::ok, json{{"id", s->id()},
                                                {"created", epoch_ms(s->created())},
                                                {"accessed", epoch_ms(s->last_accessed())},
                                                {"version", s->version()},
                                                {"attributes", attributes}});
}

response session_app::static_file(const request& /*req*/, std::string_view path) {
    const auto decoded = safe_path(path);
    if (!decoded) {
        return error(http::status::bad_request, "bad path");
    }
    std::string relative = decoded->size() > 8 ? decoded->substr(8) : std::string();
    if (relative.empty() || relative.back() == '/') {
        relative += "index.html";
    }
    if (!static_root_) {
        if (relative != "index.html") {
            return json_response(http::status::not_found,
                                 json{{"error", "not found"}, {"path", *decoded}});
        }
        response res{http::status::ok, 11};
        res.set(http::field::content_type, "text/html; charset=utf-8");
        res.body() = std::string(builtin_page);
        return res;
    }
    std::error_code ec;
    const auto file = std::filesystem::weakly_canonical(*static_root_ / relative, ec);
    // Also refuses a symbolic link pointing out of the directory.
    const auto [root_end, unused] =
        std::mismatch(static_root_->begin(), static_root_->end(), file.begin(), file.end());
    (void)unused;
    if (ec || root_end != static_root_->end() || !std::filesystem::is_regular_file(file, ec)) {
        return json_response(http::status::not_found,
                             json{{"error", "not found"}, {"path", *decoded}});
    }
    const auto size = std::filesystem::file_size(file, ec);
    if (ec || size > max_static_file) {
        return error(http::status::forbidden, "file too large to serve (over 1 MiB)");
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in) {
        return error(http::status::internal_server_error, "cannot read the file");
    }
    response res{http::status::ok, 11};
    const auto type = content_type(file);
    res.set(http::field::content_type, boost::beast::string_view(type.data(), type.size()));
    res.body() = std::move(body).str();
    return res;
}

std::string session_app::http_metrics() const {
    std::string out =
        "# HELP troupe_http_requests_total HTTP requests answered, by route and status.\n"
        "# TYPE troupe_http_requests_total counter\n";
    for (std::size_t r = 0; r < static_cast<std::size_t>(route::count); ++r) {
        for (unsigned s = 0; s < statuses; ++s) {
            const auto n = (*counts_)[r * statuses + s].load(std::memory_order_relaxed);
            if (n == 0) {
                continue;
            }
            out += "troupe_http_requests_total{route=\"";
            out += route_name(static_cast<route>(r));
            out += "\",status=\"" + std::to_string(first_status + s) + "\"} " + std::to_string(n) +
                   "\n";
        }
    }
    if (server_ != nullptr) {
        out += "# TYPE troupe_http_connections_accepted_total counter\n"
               "troupe_http_connections_accepted_total " +
               std::to_string(server_->accepted_connections()) +
               "\n# TYPE troupe_http_connections_open gauge\ntroupe_http_connections_open " +
               std::to_string(server_->open_connections()) + "\n";
    }
    return out;
}

std::string session_app::metrics_text() const {
    // The manager labels its own series with its context (troupe_sessions{context="app"}).
    return channel_.metrics_text() + manager_.metrics_text() + http_metrics();
}

} // namespace troupe::httpd
