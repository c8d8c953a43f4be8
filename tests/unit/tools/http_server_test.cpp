// SPDX-License-Identifier: Apache-2.0
// The Beast server with asynchronous handlers, over real sockets on 127.0.0.1.
#include "http_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace http = boost::beast::http;
namespace net = boost::asio;
using troupe::httpd::request;
using troupe::httpd::responder;
using troupe::httpd::response;

namespace {

response text(std::string body) {
    response res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain");
    res.body() = std::move(body);
    return res;
}

/// Answers /now at once, /later from another thread after a pause, /drop never
/// (it drops its responder), /twice twice, /throw by throwing.
struct async_app {
    std::mutex mutex;
    std::vector<std::thread> threads;

    void handle(const request& req, responder respond) {
        const std::string target(req.target());
        if (target == "/now") {
            respond(text("now"));
        } else if (target == "/later") {
            std::lock_guard lock(mutex);
            threads.emplace_back([respond] {
                std::this_thread::sleep_for(30ms);
                respond(text("later"));
            });
        } else if (target == "/drop") {
            // the last copy goes here, unanswered
        } else if (target == "/twice") {
            respond(text("first"));
            respond(text("second"));
        } else {
            throw std::runtime_error("no route");
        }
    }

    ~async_app() {
        for (auto& t : threads) {
            t.join();
        }
    }
};

struct client {
    net::io_context io;
    net::ip::tcp::socket socket{io};
    boost::beast::flat_buffer buffer;

    explicit client(std::uint16_t port) {
        socket.connect({net::ip::make_address("127.0.0.1"), port});
    }

    void send(const std::string& target) {
        http::request<http::empty_body> req{http::verb::get, target, 11};
        req.set(http::field::host, "127.0.0.1");
        http::write(socket, req);
    }

    http::response<http::string_body> read() {
        http::response<http::string_body> res;
        http::read(socket, buffer, res);
        return res;
    }
};

} // namespace

TEST_CASE("http_server: a handler may answer later, from another thread, and answers stay in order",
          "[tools][http]") {
    async_app app;
    troupe::httpd::server_options options;
    options.port = 0;
    options.threads = 1; // one thread: /later must not hold it while it waits
    troupe::httpd::http_server server(
        options, [&app](const request& req, responder respond) { app.handle(req, std::move(respond)); });
    server.start();

    client slow(server.port());
    client fast(server.port());
    slow.send("/later");
    fast.send("/now");
    // Served while /later is pending on the only server thread.
    CHECK(fast.read().body() == "now");
    CHECK(slow.read().body() == "later");

    // Pipelined on one connection: answered in request order.
    slow.send("/later");
    slow.send("/now");
    CHECK(slow.read().body() == "later");
    CHECK(slow.read().body() == "now");
    server.stop();
}

TEST_CASE("http_server: a dropped responder answers 500, a second answer and a throw are harmless",
          "[tools][http]") {
    async_app app;
    troupe::httpd::server_options options;
    options.port = 0;
    troupe::httpd::http_server server(
        options, [&app](const request& req, responder respond) { app.handle(req, std::move(respond)); });
    server.start();
    client c(server.port());
    c.send("/drop");
    CHECK(c.read().result() == http::status::internal_server_error);
    c.send("/twice");
    CHECK(c.read().body() == "first");
    c.send("/throw");
    CHECK(c.read().result() == http::status::internal_server_error);
    c.send("/now"); // the connection still serves
    const auto res = c.read();
    CHECK(res.body() == "now");
    CHECK(res.keep_alive());
    server.stop();
}

TEST_CASE("http_server: a responder copy may outlive the server, answered or not",
          "[tools][http]") {
    // Regression: the last reference to a connection, dropped after the server
    // is gone, must not touch the server's destroyed io_context (ASan found it).
    std::optional<responder> kept_answered;
    std::optional<responder> kept_late;
    std::atomic<bool> late_seen{false};
    {
        troupe::httpd::server_options options;
        options.port = 0;
        options.threads = 1;
        options.write_timeout = 200ms; // bounds stop() while /late goes unanswered
        troupe::httpd::http_server server(options, [&](const request& req, responder respond) {
            if (req.target() == "/late") {
                kept_late = respond; // never answered before the server stops
                late_seen.store(true);
                return;
            }
            kept_answered = respond;
            respond(text("kept"));
        });
        server.start();
        client c(server.port());
        c.send("/now");
        CHECK(c.read().body() == "kept");
        client waiting(server.port());
        waiting.send("/late");
        for (int i = 0; i < 500 && !late_seen.load(); ++i) { // bounded: 5 s
            std::this_thread::sleep_for(10ms);
        }
        REQUIRE(late_seen.load());
        server.stop();
    }
    REQUIRE(kept_answered.has_value());
    REQUIRE(kept_late.has_value());
    (*kept_late)(text("too late")); // ignored: nothing runs it any more
    kept_answered.reset();
    kept_late.reset();
}
