// SPDX-License-Identifier: Apache-2.0
// Delta managers on real channels (127.0.0.1, static membership): several
// contexts share one channel, and a joiner whose context the oldest member
// lacks is told so at once (the channel's no-listener NACK) instead of
// waiting out state_transfer_timeout.
#include <troupe/managers/manager.hpp>

#include "wait_until.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <thread>

#include <unistd.h>

using namespace troupe;
using namespace troupe::managers;
using namespace std::chrono_literals;

namespace {

conf::cluster_config node(const std::string& name, std::vector<conf::host_port> statics) {
    conf::cluster_config c;
    c.cluster.name = "unit-managers-" + std::to_string(::getpid());
    c.cluster.node = name;
    c.receiver.address = "127.0.0.1";
    c.receiver.port = 0;
    c.admin.enabled = false;
    c.membership.multicast.enabled = false;
    c.membership.static_members = std::move(statics);
    return c;
}

manager_config context(const std::string& name) {
    manager_config c;
    c.context = name;
    c.expiry_interval = 0ms;
    c.state_transfer_timeout = 30s;
    return c;
}

std::string create(session_manager& m, const std::string& value) {
    auto r = m.begin_request("", "/");
    r.session(true)->set("v", value);
    return r.session_id();
}

} // namespace

TEST_CASE("several contexts share one channel and stay apart", "[managers][channel]") {
    engine::channel a(node("a", {}));
    a.start();
    // The joiner asks an older member, and age is the start time in ms with the
    // random id breaking ties: B must start in a later millisecond than A.
    std::this_thread::sleep_for(2ms);
    engine::channel b(node("b", {{"127.0.0.1", a.port()}}));
    b.start();
    REQUIRE(test::wait_until([&] { return a.members().size() == 1 && b.members().size() == 1; }));

    auto ax = make_manager(a, context("x"));
    const auto in_x = create(*ax, "x1");
    auto bx = make_manager(b, context("x")); // joins: receives x's sessions
    CHECK(bx->find(in_x) != nullptr);
    CHECK(nlohmann::json::parse(bx->stats_json())["state_transfer"]["state"] == "done");

    // B has a context A lacks: A's channel answers "no listener" at once.
    auto by = make_manager(b, context("y"));
    const auto st = nlohmann::json::parse(by->stats_json())["state_transfer"];
    CHECK(st["state"] == "failed");
    CHECK_THAT(st["detail"].get<std::string>(), Catch::Contains("has no manager for context 'y'"));

    auto ay = make_manager(a, context("y"));
    const auto in_y = create(*by, "y1");
    REQUIRE(test::wait_until([&] { return ay->find(in_y) != nullptr; }));
    const auto more_x = create(*bx, "x2");
    REQUIRE(test::wait_until([&] { return ax->find(more_x) != nullptr; }));
    CHECK(ax->find(in_y) == nullptr);
    CHECK(bx->find(in_y) == nullptr);
    CHECK(ay->find(in_x) == nullptr);
    CHECK(ax->size() == 2);
    CHECK(ay->size() == 1);
    for (auto* m : {ax.get(), bx.get(), ay.get(), by.get()}) {
        m->stop();
    }
}

TEST_CASE("async_make_manager: a joiner receives the sessions without holding the caller's thread",
          "[managers][channel][async]") {
    engine::channel a(node("a", {}));
    a.start();
    std::this_thread::sleep_for(2ms); // B starts in a later millisecond: A is older
    engine::channel b(node("b", {{"127.0.0.1", a.port()}}));
    b.start();
    REQUIRE(test::wait_until([&] { return a.members().size() == 1 && b.members().size() == 1; }));
    auto ax = make_manager(a, context("x"));
    const auto id = create(*ax, "x1");

    boost::asio::io_context io;
    std::unique_ptr<session_manager> bx;
    boost::system::error_code ec;
    bool returned = false;
    bool inside = false;
    async_make_manager(b, context("x"),
                       boost::asio::bind_executor(io, [&](boost::system::error_code e,
                                                          std::unique_ptr<session_manager> m) {
                           inside = !returned;
                           ec = e;
                           bx = std::move(m);
                       }));
    returned = true;
    io.run(); // until the handler ran: its work is counted
    CHECK_FALSE(inside);
    REQUIRE_FALSE(ec);
    REQUIRE(bx);
    CHECK(bx->find(id) != nullptr); // the transfer was over before it completed
    bx->stop();
    ax->stop();
}

TEST_CASE("make_manager's three forms refuse invalid settings with errc::invalid_config",
          "[managers][channel][errors]") {
    engine::channel a(node("a", {}));
    manager_config bad = context("x");
    bad.type = "nonsense";
    bad.state_transfer_timeout = 0ms;
    CHECK(validate(bad).size() == 2);
    try {
        (void)make_manager(a, bad);
        FAIL("no exception");
    } catch (const session_error& e) {
        CHECK(e.code() == errc::invalid_config);
        CHECK_THAT(e.what(), Catch::Contains("manager.type") && Catch::Contains("manager.state_transfer_timeout"));
    }
    boost::system::error_code ec;
    CHECK(make_manager(a, bad, ec) == nullptr);
    CHECK(ec == errc::invalid_config);
    auto made = async_make_manager(a, bad, boost::asio::use_future);
    try {
        (void)made.get();
        FAIL("no exception");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == errc::invalid_config);
    }
}
