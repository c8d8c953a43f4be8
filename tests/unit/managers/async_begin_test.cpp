// SPDX-License-Identifier: Apache-2.0
// session_manager::async_begin_request and async_make_manager: every
// completion token, never inside the initiating call, a wait never on the
// caller's thread; and the typed errors (errc, session_error) of every form.
#include "delta_cluster.hpp"

#include <troupe/managers/manager.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/serialization/split_member.hpp>

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
using boost::system::error_code;

TEST_CASE("async_begin_request with a callback: the session at hand, never inside the call, on the bound executor",
          "[managers][async]") {
    delta_cluster c;
    auto& a = c.add("a");
    const auto id = create(a, "user", "ann");
    asio::io_context io;
    bool returned = false;
    bool inside = false;
    std::optional<std::string> user;
    std::thread::id ran_on;
    a.async_begin_request({id, "/", {}}, asio::bind_executor(io, [&](error_code ec, request_scope scope) {
        inside = !returned;
        ran_on = std::this_thread::get_id();
        REQUIRE_FALSE(ec);
        REQUIRE(scope.session() != nullptr);
        user = scope.session()->get<std::string>("user");
    }));
    returned = true;
    CHECK_FALSE(user); // posted to io, not run here
    CHECK(io.run() == 1);
    CHECK_FALSE(inside);
    CHECK(ran_on == std::this_thread::get_id());
    CHECK(user == "ann");
    CHECK(stats(a)["async_waits"] == 0); // at hand: no wait thread involved
}

TEST_CASE("async_begin_request with use_future: a new session, then the same one again", "[managers][async]") {
    delta_cluster c;
    auto& a = c.add("a");
    std::future<request_scope> first = a.async_begin_request({"", "/", {}}, asio::use_future);
    auto r = first.get();
    r.session(true)->set("n", 1);
    const auto id = r.session_id();
    r.end();
    auto again = a.async_begin_request({id, "/", {}}, asio::use_future).get();
    REQUIRE(again.session() != nullptr);
    CHECK(again.session()->get<int>("n") == 1);
}

TEST_CASE("async_begin_request and async_end with use_awaitable in a coroutine", "[managers][async]") {
    auto c = delta_cluster([](manager_config& cfg) { cfg.send_options = engine::send_options::sync; });
    auto& a = c.add("a");
    auto& b = c.add("b");
    pumper p(c.bus); // answers the sync sends
    asio::io_context io;
    std::string id;
    std::optional<end_result> ended;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto scope = co_await a.async_begin_request({"", "/", {}}, asio::use_awaitable);
            scope.session(true)->set("k", std::string("v"));
            id = scope.session_id();
            ended = co_await scope.async_end(asio::use_awaitable);
        },
        asio::detached);
    io.run();
    REQUIRE(ended);
    CHECK(ended->replicated);
    REQUIRE(b.find(id) != nullptr);
    CHECK(b.find(id)->get("k"));
}

TEST_CASE("async_begin_request for a session still on its way waits on a manager thread, not the caller's",
          "[managers][async]") {
    delta_cluster c;
    auto& a = c.add("a");
    const auto id = create(a, "user", "ann");
    REQUIRE(c.pump());
    auto& b = c.add("b", false); // its state transfer waits for the bus
    REQUIRE(b.transferring());
    std::promise<std::pair<error_code, std::optional<std::string>>> got;
    std::atomic<bool> called{false};
    std::thread::id ran_on;
    // A callback without an executor of its own: it runs on system_executor's
    // threads (no Catch assertion there: Catch is not thread-safe).
    b.async_begin_request({id, "/", {}}, [&](error_code ec, request_scope scope) {
        called = true;
        ran_on = std::this_thread::get_id();
        auto user = scope.session() ? scope.session()->get<std::string>("user") : std::nullopt;
        scope.end(); // here, not on the way out after set_value: the test may be destroying b by then
        got.set_value({ec, std::move(user)});
    });
    // The call returned at once although the session is not here yet.
    CHECK_FALSE(called.load());
    CHECK(stats(b)["async_waits"] == 1);
    REQUIRE(c.pump()); // the transfer completes: the wait ends
    auto result = got.get_future();
    REQUIRE(result.wait_for(10s) == std::future_status::ready);
    const auto [ec, user] = result.get();
    CHECK_FALSE(ec);
    CHECK(user == "ann");
    CHECK(ran_on != std::this_thread::get_id());
}

TEST_CASE("a stopped manager: every begin fails with errc::stopped", "[managers][errors]") {
    delta_cluster c;
    auto& a = c.add("a");
    a.stop();
    SECTION("the throwing form") {
        try {
            (void)a.begin_request("", "/");
            FAIL("no exception");
        } catch (const session_error& e) {
            CHECK(e.code() == errc::stopped);
        }
    }
    SECTION("the error_code form") {
        error_code ec;
        auto r = a.begin_request({"", "/", {}}, ec);
        CHECK(ec == errc::stopped);
        CHECK(r.session(true) == nullptr);
        CHECK_NOTHROW(r.end());
    }
    SECTION("the asynchronous form") {
        error_code ec;
        auto r = a.async_begin_request({"", "/", {}}, asio::use_future);
        try {
            (void)r.get();
        } catch (const boost::system::system_error& e) {
            ec = e.code();
        }
        CHECK(ec == errc::stopped);
    }
}

TEST_CASE("the troupe.session category names every code", "[managers][errors]") {
    for (auto e : {errc::replication_failed, errc::session_unavailable, errc::decode_failed, errc::encode_failed,
                   errc::stopped, errc::invalid_config}) {
        const error_code ec = e;
        CHECK(std::string(ec.category().name()) == "troupe.session");
        CHECK_FALSE(ec.message().empty());
        CHECK(ec.message() != "unknown troupe.session error");
    }
    CHECK(error_code(errc::stopped) != error_code(error::truncated)); // two categories
    const session_error e(errc::session_unavailable, "session x");
    CHECK(e.code() == errc::session_unavailable);
    CHECK_THAT(e.what(), Catch::Contains("session x"));
    const boost::system::system_error& as_system = e;
    CHECK(as_system.code() == errc::session_unavailable);
}

namespace {

/// A value whose save fails inside Boost.Serialization.
struct unsavable {
    template <typename Archive>
    void save(Archive&, unsigned) const {
        throw boost::archive::archive_exception(boost::archive::archive_exception::other_exception, "refused");
    }
    template <typename Archive>
    void load(Archive&, unsigned) {}
    BOOST_SERIALIZATION_SPLIT_MEMBER()
};

} // namespace

TROUPE_ATTRIBUTE_TYPE(unsavable, "test.unsavable/1");

TEST_CASE("attribute errors are session_errors with their own codes", "[managers][errors]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto r = a.begin_request("", "/");
    auto* s = r.session(true);
    s->set("n", std::string("text"));
    try {
        (void)s->get<int>("n");
        FAIL("no exception");
    } catch (const session_error& e) { // attribute_error is one
        CHECK(e.code() == errc::decode_failed);
        CHECK_THAT(e.what(), Catch::Contains("attribute 'n'"));
    }
    try {
        s->set("bad", unsavable{});
        FAIL("no exception");
    } catch (const attribute_error& e) {
        CHECK(e.code() == errc::encode_failed);
        CHECK(e.name() == "bad");
    }
    CHECK_FALSE(s->contains("bad")); // nothing stored
    CHECK(s->get<std::string>("n") == "text");
}

TEST_CASE("stop() while an asynchronous begin waits: it completes with errc::stopped and no session",
          "[managers][async][errors]") {
    delta_cluster c;
    auto& a = c.add("a");
    const auto id = create(a, "user", "ann");
    REQUIRE(c.pump());
    auto& b = c.add("b", false); // in transfer: the begin waits
    REQUIRE(b.transferring());
    std::promise<std::pair<error_code, bool>> got;
    b.async_begin_request({id, "/", {}}, [&](error_code ec, request_scope scope) {
        got.set_value({ec, scope.session(true) != nullptr});
    });
    b.stop(); // wakes the wait, joins the wait thread: the handler has its answer
    auto result = got.get_future();
    REQUIRE(result.wait_for(10s) == std::future_status::ready);
    const auto [ec, has_session] = result.get();
    CHECK(ec == errc::stopped);
    CHECK_FALSE(has_session); // never an empty session in place of one that exists
}
