// SPDX-License-Identifier: Apache-2.0
#include <troupe/engine/admin_server.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/system/system_error.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using troupe::engine::admin_server;
using troupe::engine::http_reply;
using namespace std::chrono_literals;

using response = http::response<http::string_body>;

// Every client operation gives up after this long, so a server bug fails a test instead of
// hanging it.
constexpr auto client_timeout = 5s;

/// An io_context run by two threads for as long as this object lives. The destructor joins
/// them, so a failed REQUIRE cannot leave a joinable std::thread behind.
class io_runner {
public:
    io_runner() {
        for (int i = 0; i < 2; ++i) {
            threads_.emplace_back([this] { io_.run(); });
        }
    }

    io_runner(const io_runner&) = delete;
    io_runner& operator=(const io_runner&) = delete;

    ~io_runner() {
        work_.reset();
        io_.stop();
        for (auto& t : threads_) {
            t.join();
        }
    }

    net::io_context& io() { return io_; }

private:
    net::io_context io_;
    net::executor_work_guard<net::io_context::executor_type> work_{io_.get_executor()};
    std::vector<std::thread> threads_;
};

/// An admin_server on 127.0.0.1, port 0, on an io_runner. The server is destroyed (and so
/// stopped) while the I/O threads still run, as the admin_server contract asks.
class server_fixture {
public:
    server_fixture() : server_(runner_.io(), "127.0.0.1", 0) {}

    admin_server& server() { return server_; }

    std::uint16_t port() const { return server_.port(); }

private:
    io_runner runner_;
    admin_server server_;
};

/// A blocking HTTP client on one connection. Each step runs asynchronously on a private
/// io_context bounded by run_for(), so no step can wait forever.
class test_client {
public:
    test_client() : stream_(io_) {}

    beast::error_code connect(std::uint16_t port) {
        const tcp::endpoint endpoint{net::ip::make_address("127.0.0.1"), port};
        return run_bounded([&](auto handler) { stream_.async_connect(endpoint, handler); });
    }

    beast::error_code send(http::verb verb,
                           const std::string& target,
                           bool keep_alive = true,
                           std::string body = {}) {
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, "127.0.0.1");
        req.keep_alive(keep_alive);
        req.body() = std::move(body);
        req.prepare_payload();
        return run_bounded([&](auto handler) { http::async_write(stream_, req, handler); });
    }

    beast::error_code send_raw(const std::string& bytes) {
        return run_bounded(
            [&](auto handler) { net::async_write(stream_, net::buffer(bytes), handler); });
    }

    beast::error_code receive(response& res) {
        res = {};
        return run_bounded([&](auto handler) { http::async_read(stream_, buffer_, res, handler); });
    }

    /// send() then receive(); fails the test on any error.
    response get(const std::string& target, bool keep_alive = true) {
        response res;
        REQUIRE_FALSE(send(http::verb::get, target, keep_alive));
        REQUIRE_FALSE(receive(res));
        return res;
    }

    /// Reads until the server closes; returns the error that ended the read.
    beast::error_code read_until_closed() {
        std::array<char, 256> scratch{};
        for (int i = 0; i < 100; ++i) {
            const auto ec = run_bounded(
                [&](auto handler) { stream_.async_read_some(net::buffer(scratch), handler); });
            if (ec) {
                return ec;
            }
        }
        return net::error::message_size; // the server kept talking: not closed
    }

private:
    template <class Start>
    beast::error_code run_bounded(Start&& start) {
        // Shared with the handler, which may outlive this call if it is cancelled late.
        auto result = std::make_shared<std::optional<beast::error_code>>();
        start([result](beast::error_code ec, auto&&...) { *result = ec; });
        io_.restart();
        io_.run_for(client_timeout);
        if (!result->has_value()) {
            stream_.socket().cancel();
            io_.restart();
            io_.run_for(1s);
            return net::error::timed_out;
        }
        return **result;
    }

    net::io_context io_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
};

http_reply json_reply(std::string body) {
    http_reply reply;
    reply.body = std::move(body);
    return reply;
}

} // namespace

TEST_CASE("admin_server answers a registered route with its status, body and content type",
          "[engine]") {
    server_fixture fx;
    fx.server().add_route("/members", [] { return json_reply(R"([{"name":"a"}])"); });
    fx.server().add_route("/metrics", [] {
        return http_reply{200, "text/plain; version=0.0.4", "troupe_up 1\n"};
    });
    fx.server().add_route("/busy", [] { return http_reply{503, "text/plain", "later"}; });
    fx.server().start();
    REQUIRE(fx.port() != 0);

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));

    auto res = client.get("/members");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == "application/json");
    CHECK(res.body() == R"([{"name":"a"}])");

    res = client.get("/metrics");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == "text/plain; version=0.0.4");
    CHECK(res.body() == "troupe_up 1\n");

    res = client.get("/busy");
    CHECK(res.result_int() == 503);
    CHECK(res.body() == "later");
}

TEST_CASE("admin_server ignores the query string when routing", "[engine]") {
    server_fixture fx;
    fx.server().add_route("/members", [] { return json_reply("[]"); });
    fx.server().start();

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));
    const auto res = client.get("/members?x=1&verbose");
    CHECK(res.result() == http::status::ok);
    CHECK(res.body() == "[]");
}

TEST_CASE("admin_server answers 404 naming the path for an unknown path", "[engine]") {
    server_fixture fx;
    fx.server().add_route("/members", [] { return json_reply("[]"); });
    fx.server().start();

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));
    const auto res = client.get("/nope?q=1");
    CHECK(res.result() == http::status::not_found);
    CHECK(res[http::field::content_type] == "application/json");
    CHECK(nlohmann::json::parse(res.body()) ==
          nlohmann::json{{"error", "not found"}, {"path", "/nope"}});
}

TEST_CASE("admin_server answers 405 to methods other than GET", "[engine]") {
    server_fixture fx;
    std::atomic<int> calls{0};
    fx.server().add_route("/members", [&calls] {
        ++calls;
        return json_reply("[]");
    });
    fx.server().start();

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));
    REQUIRE_FALSE(client.send(http::verb::post, "/members", true, R"({"x":1})"));
    response res;
    REQUIRE_FALSE(client.receive(res));
    CHECK(res.result() == http::status::method_not_allowed);
    CHECK(res[http::field::allow] == "GET");
    CHECK(calls.load() == 0);

    // The connection survives a 405.
    CHECK(client.get("/members").result() == http::status::ok);
}

TEST_CASE("admin_server rejects garbage with 400 or a close and keeps serving", "[engine]") {
    server_fixture fx;
    fx.server().add_route("/members", [] { return json_reply("[]"); });
    fx.server().start();

    {
        test_client client;
        REQUIRE_FALSE(client.connect(fx.port()));
        REQUIRE_FALSE(client.send_raw(std::string("\x01\x02\xff garbage\r\n\r\n", 15)));
        response res;
        const auto ec = client.receive(res);
        CHECK(ec != net::error::timed_out);
        if (!ec) {
            CHECK(res.result() == http::status::bad_request);
            CHECK_FALSE(res.keep_alive());
            CHECK(client.read_until_closed() != net::error::timed_out);
        }
    }

    test_client next;
    REQUIRE_FALSE(next.connect(fx.port()));
    CHECK(next.get("/members").result() == http::status::ok);
}

TEST_CASE("admin_server refuses a request body over 8 KiB", "[engine]") {
    server_fixture fx;
    fx.server().add_route("/members", [] { return json_reply("[]"); });
    fx.server().start();

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));
    // The server may close before it has read everything, so the write itself may fail.
    const auto write_ec = client.send(http::verb::get, "/members", true, std::string(10000, 'x'));
    response res;
    const auto ec = client.receive(res);
    CHECK(ec != net::error::timed_out);
    if (!write_ec && !ec) {
        CHECK(res.result() == http::status::payload_too_large);
        CHECK_FALSE(res.keep_alive());
    }
}

TEST_CASE("admin_server turns an exception in a route into a 500 with its message", "[engine]") {
    server_fixture fx;
    fx.server().add_route("/stats",
                          []() -> http_reply { throw std::runtime_error("stats unavailable"); });
    fx.server().add_route("/odd", []() -> http_reply { throw 42; });
    fx.server().start();

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));
    auto res = client.get("/stats");
    CHECK(res.result() == http::status::internal_server_error);
    const auto body = nlohmann::json::parse(res.body());
    CHECK(body.at("message") == "stats unavailable");
    CHECK(body.at("path") == "/stats");

    res = client.get("/odd");
    CHECK(res.result() == http::status::internal_server_error);
    CHECK(nlohmann::json::parse(res.body()).at("message") == "unknown exception");
}

TEST_CASE("admin_server logs a failing route once as a warning on troupe.engine", "[engine]") {
    auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
    auto logger = std::make_shared<spdlog::logger>("troupe.engine", ring);
    logger->set_level(spdlog::level::warn);
    spdlog::drop("troupe.engine");
    spdlog::register_logger(logger);

    {
        server_fixture fx;
        fx.server().add_route("/stats",
                              []() -> http_reply { throw std::runtime_error("disk on fire"); });
        fx.server().start();
        test_client client;
        REQUIRE_FALSE(client.connect(fx.port()));
        CHECK(client.get("/stats").result() == http::status::internal_server_error);
    }
    spdlog::drop("troupe.engine");

    const auto lines = ring->last_formatted();
    int warnings = 0;
    for (const auto& line : lines) {
        if (line.find("/stats") != std::string::npos &&
            line.find("disk on fire") != std::string::npos) {
            ++warnings;
            CHECK(line.find("warn") != std::string::npos);
        }
    }
    CHECK(warnings == 1);
}

TEST_CASE("admin_server serves several requests on one keep-alive connection", "[engine]") {
    server_fixture fx;
    std::atomic<int> calls{0};
    fx.server().add_route("/stats", [&calls] {
        return json_reply(R"({"n":)" + std::to_string(++calls) + "}");
    });
    fx.server().start();

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));
    for (int i = 1; i <= 3; ++i) {
        const auto res = client.get("/stats");
        CHECK(res.result() == http::status::ok);
        CHECK(res.keep_alive());
        CHECK(res.body() == R"({"n":)" + std::to_string(i) + "}");
    }
}

TEST_CASE("admin_server closes the connection after answering Connection: close", "[engine]") {
    server_fixture fx;
    fx.server().add_route("/members", [] { return json_reply("[]"); });
    fx.server().start();

    test_client client;
    REQUIRE_FALSE(client.connect(fx.port()));
    const auto res = client.get("/members", false);
    CHECK(res.result() == http::status::ok);
    CHECK_FALSE(res.keep_alive());
    CHECK(client.read_until_closed() == net::error::eof);
}

TEST_CASE("admin_server answers concurrent clients", "[engine]") {
    server_fixture fx;
    std::atomic<int> calls{0};
    fx.server().add_route("/members", [&calls] {
        ++calls;
        return json_reply("[]");
    });
    fx.server().start();

    constexpr int clients = 4;
    constexpr int requests = 5;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&fx, &ok] {
            // Catch2 assertions are not thread-safe; count here and check on the main thread.
            test_client client;
            if (client.connect(fx.port())) {
                return;
            }
            for (int r = 0; r < requests; ++r) {
                response res;
                if (client.send(http::verb::get, "/members") || client.receive(res) ||
                    res.result() != http::status::ok) {
                    return;
                }
                ++ok;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(ok.load() == clients * requests);
    CHECK(calls.load() == clients * requests);
}

TEST_CASE("admin_server stop() closes open connections and the port refuses afterwards",
          "[engine]") {
    server_fixture fx;
    fx.server().add_route("/members", [] { return json_reply("[]"); });
    fx.server().start();
    const auto port = fx.port();

    test_client open;
    REQUIRE_FALSE(open.connect(port));
    // One answered request proves the server has a session for this connection.
    REQUIRE(open.get("/members").result() == http::status::ok);

    fx.server().stop();
    fx.server().stop(); // idempotent

    const auto ec = open.read_until_closed();
    CHECK(ec != net::error::timed_out);
    CHECK(ec != net::error::message_size);

    test_client late;
    CHECK(late.connect(port) == net::error::connection_refused);
}

TEST_CASE("admin_server destroyed with a connection open closes it", "[engine]") {
    io_runner runner;
    test_client open;
    {
        admin_server server(runner.io(), "127.0.0.1", 0);
        server.add_route("/members", [] { return json_reply("[]"); });
        server.start();
        REQUIRE_FALSE(open.connect(server.port()));
        REQUIRE(open.get("/members").result() == http::status::ok);
    }
    const auto ec = open.read_until_closed();
    CHECK(ec != net::error::timed_out);
    CHECK(ec != net::error::message_size);
}

TEST_CASE("admin_server stop() before start() is harmless and start() afterwards throws",
          "[engine]") {
    net::io_context io;
    admin_server server(io, "127.0.0.1", 0);
    server.stop();
    server.stop();
    CHECK(server.port() == 0);
    CHECK_THROWS_AS(server.start(), std::logic_error);
}

TEST_CASE("admin_server start() names address and port when the bind fails", "[engine]") {
    server_fixture fx;
    fx.server().start();
    const auto port = fx.port();

    net::io_context io;
    admin_server second(io, "127.0.0.1", port);
    try {
        second.start();
        FAIL("start() on a taken port did not throw");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == net::error::address_in_use);
        CHECK_THAT(e.what(), Catch::Contains("127.0.0.1:" + std::to_string(port)));
    }
}

TEST_CASE("admin_server refuses routes added after start()", "[engine]") {
    server_fixture fx;
    fx.server().start();
    CHECK_THROWS_AS(fx.server().add_route("/late", [] { return json_reply("{}"); }),
                    std::logic_error);
    CHECK_THROWS_AS(fx.server().start(), std::logic_error);
}
