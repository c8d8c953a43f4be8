// SPDX-License-Identifier: Apache-2.0
// troupe-ctl: asks a running node's admin endpoint for its members or its stats,
// or whether it is healthy (the container image's health check).
#include "format.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace troupe::ctl {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

// For the whole exchange (resolve, connect, request, reply), not per step.
constexpr auto request_timeout = std::chrono::seconds(5);

constexpr std::string_view usage_line =
    "usage: troupe-ctl --admin HOST:PORT members|stats|health [--json]";

constexpr std::string_view help_text = R"(
Asks a troupe node's admin endpoint (HTTP) and prints the answer.

commands:
  members             the members this node sees: name, endpoint, state, self, id
  stats               the node's counters, one "key.path  value" line each
  health              GET /healthz: exit 0 when it answers 200, else 1. Works on the
                      admin endpoint and on troupe-httpd's HTTP port, whose /healthz
                      answers 503 until the node serves (the container health check)

options:
  --admin HOST:PORT   the node's admin endpoint (also --admin=HOST:PORT)
  --json              print the node's JSON instead of a table
  -h, --help          show this help

exit status: 0 ok, 1 the node could not be reached or answered badly, 2 usage error
)";

/// A mistake on the command line: exit status 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The node could not be reached or answered badly: exit status 1.
struct fetch_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct options {
    std::string admin;
    std::string command;
    bool json = false;
    bool help = false;
};

struct admin_endpoint {
    std::string host;
    std::string port;
    std::string text; // as the user wrote it, for messages
};

options parse_args(int argc, char** argv) {
    options opts;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            opts.help = true;
        } else if (arg == "--json") {
            opts.json = true;
        } else if (arg == "--admin") {
            if (i + 1 >= argc) {
                throw usage_error("--admin needs HOST:PORT");
            }
            opts.admin = argv[++i];
        } else if (arg.starts_with("--admin=")) {
            opts.admin = arg.substr(std::string_view("--admin=").size());
        } else if (arg.starts_with("-")) {
            throw usage_error("unknown option '" + std::string(arg) + "'");
        } else if (!opts.command.empty()) {
            throw usage_error("unexpected argument '" + std::string(arg) + "'");
        } else {
            opts.command = arg;
        }
    }
    if (opts.help) {
        return opts;
    }
    if (opts.command.empty()) {
        throw usage_error("missing command (members, stats or health)");
    }
    if (opts.command == "health" && opts.json) {
        throw usage_error("--json: health prints the node's /healthz answer as it is");
    }
    if (opts.command != "members" && opts.command != "stats" && opts.command != "health") {
        throw usage_error("unknown command '" + opts.command + "' (members, stats or health)");
    }
    if (opts.admin.empty()) {
        throw usage_error("missing --admin HOST:PORT");
    }
    return opts;
}

admin_endpoint parse_endpoint(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) {
        throw usage_error("--admin: expected HOST:PORT, got '" + text + "'");
    }
    std::string host = text.substr(0, colon);
    std::string port = text.substr(colon + 1);
    // An IPv6 literal carries its own colons and comes in brackets: [::1]:9000.
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty()) {
        throw usage_error("--admin: missing host in '" + text + "'");
    }
    const bool digits_only = !port.empty() && port.size() <= 5 &&
                             port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits_only || std::stoul(port) == 0 || std::stoul(port) > 65535) {
        throw usage_error("--admin: bad port in '" + text + "' (expected 1-65535)");
    }
    return {std::move(host), std::move(port), text};
}

/// One GET over a fresh connection. The steps are asynchronous only so that a single
/// run_for() can bound the whole exchange; nothing runs concurrently.
class http_get {
public:
    http_get(const admin_endpoint& where, const std::string& target)
        : where_(where)
        , resolver_(io_)
        , stream_(io_)
        , request_(http::verb::get, target, 11) {
        request_.set(http::field::host, where.text);
        request_.set(http::field::user_agent, "troupe-ctl");
        request_.set(http::field::accept, "application/json");
        request_.keep_alive(false);
    }

    /// @return the reply body of a 200 answer.
    /// @throws fetch_error on any failure, with a message naming the endpoint.
    std::string run() {
        resolver_.async_resolve(
            where_.host, where_.port,
            [this](beast::error_code ec, const tcp::resolver::results_type& results) {
                on_resolve(ec, results);
            });
        io_.run_for(request_timeout);
        if (!finished_) {
            throw fetch_error(connected_ ? "no answer from " + where_.text + " within 5 s"
                                         : "cannot reach " + where_.text + ": timed out");
        }
        if (!error_.empty()) {
            throw fetch_error(error_);
        }
        if (response_.result() != http::status::ok) {
            std::string message =
                where_.text + " answered " + std::to_string(response_.result_int()) + " " +
                std::string(response_.reason()) + " for " + std::string(request_.target());
            if (!response_.body().empty()) {
                message += ": " + response_.body();
            }
            throw fetch_error(message);
        }
        return std::move(response_.body());
    }

private:
    void fail(std::string message) {
        error_ = std::move(message);
        finished_ = true;
    }

    void on_resolve(beast::error_code ec, const tcp::resolver::results_type& results) {
        if (ec) {
            fail("cannot resolve " + where_.host + ": " + ec.message());
            return;
        }
        stream_.async_connect(
            results, [this](beast::error_code connect_ec, const tcp::endpoint& /*endpoint*/) {
                on_connect(connect_ec);
            });
    }

    void on_connect(beast::error_code ec) {
        if (ec) {
            fail("cannot reach " + where_.text + ": " + ec.message());
            return;
        }
        connected_ = true;
        http::async_write(stream_, request_,
                          [this](beast::error_code write_ec, std::size_t) { on_write(write_ec); });
    }

    void on_write(beast::error_code ec) {
        if (ec) {
            fail("lost connection to " + where_.text + ": " + ec.message());
            return;
        }
        http::async_read(stream_, buffer_, response_,
                         [this](beast::error_code read_ec, std::size_t) { on_read(read_ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec) {
            fail("bad reply from " + where_.text + ": " + ec.message());
            return;
        }
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        finished_ = true;
    }

    const admin_endpoint& where_;
    net::io_context io_;
    tcp::resolver resolver_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    http::request<http::empty_body> request_;
    http::response<http::string_body> response_;
    bool connected_ = false;
    bool finished_ = false;
    std::string error_;
};

nlohmann::json parse_reply(const std::string& body, const admin_endpoint& where) {
    try {
        return nlohmann::json::parse(body);
    } catch (const nlohmann::json::parse_error& e) {
        throw fetch_error(where.text + " sent invalid JSON: " + e.what());
    }
}

std::string to_json_line(const nlohmann::json& doc) {
    return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

int run(const options& opts) {
    const admin_endpoint where = parse_endpoint(opts.admin);
    const std::string target = opts.command == "health" ? "/healthz" : "/" + opts.command;
    http_get get(where, target);
    if (opts.command == "health") {
        // run() has thrown unless the answer was a 200; its body says which node.
        const std::string body = get.run();
        std::cout << body << (body.ends_with('\n') ? "" : "\n");
        std::cout.flush();
        return std::cout ? exit_ok : exit_failure;
    }
    const nlohmann::json doc = parse_reply(get.run(), where);

    if (opts.command == "members") {
        if (!doc.is_array()) {
            throw fetch_error(where.text + " answered " + target +
                              " with something other "
                              "than a JSON array");
        }
        std::cout << (opts.json ? to_json_line(doc) : format_members(doc));
    } else {
        if (!doc.is_object()) {
            throw fetch_error(where.text + " answered " + target +
                              " with something other "
                              "than a JSON object");
        }
        std::cout << (opts.json ? to_json_line(doc) : format_stats(doc));
    }
    std::cout.flush();
    return std::cout ? exit_ok : exit_failure;
}

} // namespace

} // namespace troupe::ctl

int main(int argc, char** argv) {
    using namespace troupe::ctl;
    try {
        const options opts = parse_args(argc, argv);
        if (opts.help) {
            std::cout << usage_line << '\n' << help_text;
            return exit_ok;
        }
        return run(opts);
    } catch (const usage_error& e) {
        std::cerr << "troupe-ctl: " << e.what() << '\n'
                  << usage_line << "\nTry 'troupe-ctl --help' for more.\n";
        return exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "troupe-ctl: " << e.what() << '\n';
        return exit_failure;
    }
}
