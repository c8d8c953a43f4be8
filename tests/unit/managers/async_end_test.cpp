// SPDX-License-Identifier: Apache-2.0
// request_scope::async_end: every completion token (callback, use_future,
// use_awaitable), on the handler's executor, never inside the initiating call.
#include "delta_cluster.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/io_context_strand.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <thread>

using namespace troupe;
using namespace troupe::managers;
using namespace troupe::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

delta_cluster sync_pair() {
    return delta_cluster([](manager_config& cfg) { cfg.send_options = engine::send_options::sync; });
}

} // namespace

TEST_CASE("async_end with a callback: never inside the call, on the bound executor, once the members answered",
          "[managers][async]") {
    auto c = sync_pair();
    auto& a = c.add("a");
    auto& b = c.add("b");
    asio::io_context io;
    std::optional<end_result> result;
    std::thread::id ran_on;
    std::string id;
    {
        auto r = a.begin_request("", "/");
        r.session(true)->set("k", 1);
        id = r.session_id();
        r.async_end(asio::bind_executor(io, [&](boost::system::error_code, end_result e) {
            result = std::move(e);
            ran_on = std::this_thread::get_id();
        }));
        CHECK_FALSE(result); // the bus holds the send: nothing answered yet
    }
    c.bus.deliver_queued(); // the members answer: the completion is posted to io
    CHECK_FALSE(result);    // posted, not run on the bus's thread
    io.run();               // returns once the handler ran (its work was tracked)
    REQUIRE(result);
    CHECK(result->replicated);
    REQUIRE(result->send);
    CHECK(result->send->ok());
    CHECK(ran_on == std::this_thread::get_id());
    CHECK(b.find(id) != nullptr);
}

TEST_CASE("async_end never completes inside the initiating call, even with nothing to wait for",
          "[managers][async]") {
    auto c = sync_pair();
    auto& a = c.add("a");
    asio::io_context io;
    int calls = 0;
    {
        auto r = a.begin_request("", "/"); // no session: end_async would complete at once
        r.async_end(asio::bind_executor(io, [&](boost::system::error_code, end_result e) {
            ++calls;
            CHECK_FALSE(e.replicated);
        }));
        CHECK(calls == 0);
    }
    CHECK(calls == 0);
    CHECK(io.run() == 1);
    CHECK(calls == 1);
}

TEST_CASE("async_end with use_future", "[managers][async]") {
    auto c = sync_pair();
    auto& a = c.add("a");
    c.add("b");
    pumper p(c.bus); // the members answer on a thread of their own
    auto r = a.begin_request("", "/");
    r.session(true)->set("k", std::string("v"));
    std::future<end_result> done = r.async_end(asio::use_future);
    REQUIRE(done.wait_for(30s) == std::future_status::ready);
    const auto e = done.get();
    CHECK(e.replicated);
    REQUIRE(e.send);
    CHECK(e.send->ok());
}

TEST_CASE("async_end with use_awaitable in a C++20 coroutine, completing on the coroutine's executor, "
          "also when the scope is gone before the awaitable is awaited",
          "[managers][async]") {
    // use_awaitable in Boost 1.74 starts the operation only when awaited:
    // async_end must have ended the request before that.
    const bool lazy = GENERATE(false, true);
    CAPTURE(lazy);
    auto c = sync_pair();
    auto& a = c.add("a");
    auto& b = c.add("b");
    // The io_context outlives the pumper: the bus's thread may still be inside
    // a post() to it when io.run() returns (stop the senders, then the context).
    asio::io_context io;
    pumper p(c.bus);
    std::optional<end_result> result;
    std::string id;
    std::thread::id resumed_on;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            if (lazy) {
                auto op = [&] {
                    auto r = a.begin_request("", "/");
                    r.session(true)->set("n", 1);
                    id = r.session_id();
                    return r.async_end(asio::use_awaitable);
                }(); // the scope is destroyed here
                result = co_await std::move(op);
            } else {
                auto r = a.begin_request("", "/");
                r.session(true)->set("n", 7);
                id = r.session_id();
                result = co_await r.async_end(asio::use_awaitable);
            }
            resumed_on = std::this_thread::get_id();
        },
        asio::detached);
    io.run();
    REQUIRE(result);
    CHECK(result->replicated);
    REQUIRE(result->send);
    CHECK(result->send->ok());
    CHECK(resumed_on == std::this_thread::get_id());
    REQUIRE(b.find(id) != nullptr);
}

TEST_CASE("async_end completes through a strand, new-style and old-style", "[managers][async]") {
    auto c = sync_pair();
    auto& a = c.add("a");
    c.add("b");
    // The io_context outlives the pumper: the bus's thread may still be inside
    // a post() to it when io.run() returns (stop the senders, then the context).
    asio::io_context io;
    pumper p(c.bus);
    auto strand = asio::make_strand(io);
    asio::io_context::strand old_strand(io);
    int in_strand = 0;
    int in_old_strand = 0;
    for (int i = 0; i < 2; ++i) {
        auto r = a.begin_request("", "/");
        r.session(true)->set("n", i);
        if (i == 0) {
            r.async_end(asio::bind_executor(strand, [&](boost::system::error_code, end_result e) {
                CHECK(e.replicated);
                in_strand += strand.running_in_this_thread() ? 1 : 0;
            }));
        } else {
            r.async_end(asio::bind_executor(old_strand, [&](boost::system::error_code, end_result e) {
                CHECK(e.replicated);
                in_old_strand += old_strand.running_in_this_thread() ? 1 : 0;
            }));
        }
    }
    io.run();
    CHECK(in_strand == 1);
    CHECK(in_old_strand == 1);
}
