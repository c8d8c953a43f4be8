// SPDX-License-Identifier: Apache-2.0
// Several real member processes on 127.0.0.1 exchanging messages.
#include "cluster_fixture.hpp"
#include "../support/process_state.hpp"
#include "../support/wait_until.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <fstream>
#include <thread>

using troupe::test::peer;
using troupe::test::scratch;
using troupe::test::static_list;

namespace {

/// Three peers in a full mesh: b and c list a; a learns them when they dial in.
struct trio {
    scratch s;
    std::optional<peer> a, b, c;

    explicit trio(const std::string& extra = "", std::vector<std::string> b_flags = {}) {
        a.emplace(s.write_config("a", extra));
        b.emplace(s.write_config("b", extra), std::vector<std::string>{"membership.static=" + static_list({&*a})},
                  b_flags);
        c.emplace(s.write_config("c", extra),
                  std::vector<std::string>{"membership.static=" + static_list({&*a, &*b})});
        for (auto* p : {&*a, &*b, &*c}) {
            REQUIRE(p->cmd("wait-members 2 15000")["members"] == 2);
        }
    }
};

void send_garbage(std::uint16_t port, const std::vector<std::uint8_t>& bytes) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    boost::asio::write(s, boost::asio::buffer(bytes));
    boost::system::error_code ec;
    char sink[1024];
    for (int i = 0; i < 100 && !ec; ++i) {
        s.read_some(boost::asio::buffer(sink), ec); // until the node closes it
    }
    CHECK(ec);
}

/// Whether one sync send from `from` to `to` succeeds within 50 tries 100 ms apart
/// (a reconnect after a freeze takes a moment).
bool sync_resumes(peer& from, const std::string& to) {
    for (int i = 0; i < 50; ++i) {
        if (from.cmd("send 1 64 sync " + to)["ok"] == 1) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

} // namespace

TEST_CASE("10,000 async messages from each of three nodes arrive exactly once and in order",
          "[integration]") {
    trio t;
    for (auto* p : {&*t.a, &*t.b, &*t.c}) {
        const auto r = p->cmd("send 10000 128 async");
        CHECK(r["failed"] == 0);
    }
    for (auto* rx : {&*t.a, &*t.b, &*t.c}) {
        for (auto* tx : {&*t.a, &*t.b, &*t.c}) {
            if (rx == tx) {
                continue;
            }
            const auto got = rx->received_from(tx->name(), 10000);
            INFO(rx->name() << " from " << tx->name() << ": " << got.dump());
            CHECK(got["count"] == 10000);
            CHECK(got["last"] == 9999);
            CHECK(got["order_errors"] == 0);
            CHECK(got["duplicates"] == 0);
        }
    }
}

TEST_CASE("sync sends fail with a NACK for exactly the messages whose listener throws",
          "[integration]") {
    trio t("", {"--throw-odd"});
    const auto r = t.a->cmd("send 500 64 sync b");
    CHECK(r["ok"] == 250);
    CHECK(r["failed"] == 250);
    CHECK(r["kinds"]["remote listener failed"] == 250);
    CHECK(r["failed_by_member"]["b"] == 250);
    for (const auto& seq : r["failed_seqs"]) {
        CHECK(seq.get<int>() % 2 == 1);
    }
    CHECK_THAT(r["first_error"].get<std::string>(), Catch::Contains("odd sequence number 1"));
    // `ack` only promises validation, so the listener's failure does not reach it.
    CHECK(t.a->cmd("send 100 64 ack b")["ok"] == 100);
}

TEST_CASE("a frozen receiver makes ack and sync sends fail naming it and traffic resumes after SIGCONT",
          "[integration]") {
    // The first sends time out; the failure detector then verifies the frozen
    // member, finds it unresponsive and removes it, so later sends fail at once.
    trio t("sender:\n  ack_timeout: 500ms\n");
    t.b->process().signal(SIGSTOP);
    // kill() only queues the signal: wait until the kernel reports b stopped.
    REQUIRE(troupe::test::wait_until([&] { return troupe::test::process_state(t.b->process().pid()) == 'T'; }));
    const auto r = t.a->cmd("send 4 64 sync b");
    INFO("a's reply: " << r.dump());
    CHECK(r["failed"] == 4);
    CHECK(r["failed_by_member"]["b"] == 4);
    CHECK_THAT(r["first_error"].get<std::string>(), Catch::Contains("b (127.0.0.1:"));
    const auto r2 = t.a->cmd("send 2 64 ack b");
    CHECK(r2["failed"] == 2);
    // Others are not held up by the frozen one.
    CHECK(t.a->cmd("send 20 64 sync c")["ok"] == 20);
    t.b->process().signal(SIGCONT);
    const auto back = t.a->cmd("wait-members 2 15000")["members"];
    INFO("a's membership: " << t.a->cmd("stats")["membership"].dump());
    REQUIRE(back == 2);
    CHECK(sync_resumes(*t.a, "b"));
    CHECK(t.a->cmd("send 50 64 sync b")["ok"] == 50);
}

TEST_CASE("a frozen sender's connection is closed after receiver.idle_timeout and comes back after SIGCONT",
          "[integration]") {
    // To its receiver, a frozen sender looks like a vanished host: silence, no FIN.
    scratch s;
    const std::string extra = "membership:\n  failure_detector:\n    ping_interval: 200ms\n";
    peer b(s.write_config("b", extra), {"receiver.idle_timeout=2s"});
    peer a(s.write_config("a", extra), {"receiver.idle_timeout=2s", "membership.static=" + static_list({&b})});
    REQUIRE(a.cmd("wait-members 1 15000")["members"] == 1);
    REQUIRE(b.cmd("wait-members 1 15000")["members"] == 1);
    CHECK(a.cmd("send 10 64 sync b")["ok"] == 10);
    // PINGs (every 200ms) keep the quiet connection open meanwhile.
    std::this_thread::sleep_for(std::chrono::seconds(4));
    CHECK(b.cmd("stats")["receiver"]["idle_timeouts"] == 0);

    a.process().signal(SIGSTOP);
    REQUIRE(troupe::test::wait_until([&] { return troupe::test::process_state(a.process().pid()) == 'T'; }));
    CHECK(troupe::test::wait_until(
        [&] { return b.cmd("stats")["receiver"]["idle_timeouts"].get<int>() >= 1; },
        std::chrono::seconds(15)));
    a.process().signal(SIGCONT);
    REQUIRE(a.cmd("wait-members 1 15000")["members"] == 1);
    CHECK(sync_resumes(a, "b"));
    CHECK(a.cmd("send 50 64 sync b")["ok"] == 50);
}

TEST_CASE("a killed and restarted receiver is reconnected and receives later messages",
          "[integration]") {
    trio t;
    const auto port = t.c->port();
    const auto config = t.s.write_config("c");
    t.c->process().signal(SIGKILL);
    t.c->process().wait(std::chrono::seconds(10));
    t.c.reset();
    CHECK(t.a->cmd("send 10 64 async")["sent"] == 10);
    t.c.emplace(config, std::vector<std::string>{"receiver.port=" + std::to_string(port),
                                                 "membership.static=" + static_list({&*t.a, &*t.b})});
    REQUIRE(t.a->cmd("wait-members 2 15000")["members"] == 2);
    const auto r = t.a->cmd("send 20 64 sync c");
    CHECK(r["ok"] == 20);
    const auto got = t.c->received_from("a", 20);
    CHECK(got["count"] == 20); // nothing queued for the old incarnation reached the new one
    CHECK(got["order_errors"] == 0);
}

TEST_CASE("garbage and an oversize length close only that connection while the node keeps serving",
          "[integration]") {
    trio t;
    send_garbage(t.a->port(), {'h', 'e', 'l', 'l', 'o', '\n'});
    // A valid header that claims a 2 GiB HELLO.
    send_garbage(t.a->port(), {'T', 'R', 'U', 'P', 1, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff});
    // A truncated header, then the client goes away.
    {
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket s(io);
        s.connect({boost::asio::ip::make_address("127.0.0.1"), t.a->port()});
        boost::asio::write(s, boost::asio::buffer(std::string("TRU")));
    }
    const auto stats = t.a->cmd("stats");
    CHECK(stats["receiver"]["bad_frames"] == 2);
    CHECK(t.b->cmd("send 100 64 sync")["ok"] == 100);
    CHECK(t.a->cmd("send 100 64 sync")["ok"] == 100);
    CHECK(t.a->received_from("b", 100)["count"] == 100);
}

TEST_CASE("a node with another cluster name or a wrong secret is refused", "[integration]") {
    scratch s;
    const std::string secret = "cluster:\n  secret: correct-horse-battery-staple\n";
    peer a(s.write_config("a") + "", {"cluster.secret=correct-horse-battery-staple"});
    SECTION("wrong cluster name") {
        peer x(s.write_config("x"), {"cluster.name=elsewhere", "membership.static=" + static_list({&a})});
        CHECK(x.cmd("wait-members 1 1500")["members"] == 0);
        CHECK(a.cmd("stats")["receiver"]["handshake_refused"].get<int>() >= 1);
    }
    SECTION("wrong secret") {
        peer x(s.write_config("x"),
               {"cluster.secret=wrong-horse-battery-staple", "membership.static=" + static_list({&a})});
        CHECK(x.cmd("wait-members 1 1500")["members"] == 0);
        CHECK(a.cmd("stats")["receiver"]["auth_failures"].get<int>() >= 1);
        CHECK(a.cmd("wait-members 1 100")["members"] == 0);
    }
    SECTION("right secret joins") {
        peer x(s.write_config("x"),
               {"cluster.secret=correct-horse-battery-staple", "membership.static=" + static_list({&a})});
        CHECK(x.cmd("wait-members 1 10000")["members"] == 1);
        CHECK(x.cmd("send 10 64 sync")["ok"] == 10);
    }
}
