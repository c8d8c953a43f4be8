// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/peer_sender.hpp>

#include "transport_fixture.hpp"
#include "wait_until.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <span>
#include <thread>

using namespace troupe;
using namespace troupe::transport;
using troupe::test::wait_until;

namespace {

std::shared_ptr<peer_sender> make_sender(boost::asio::io_context& io, const conf::cluster_config& c,
                                         std::uint16_t port) {
    peer_sender::callbacks cb;
    auto s = std::make_shared<peer_sender>(io, c.sender, c.channel.max_message,
                                           c.membership.failure_detector.ping_interval,
                                           test::identity(c, 0, "tx"), "127.0.0.1", port, cb);
    s->start();
    return s;
}

/// A listener verdict: "bad" fails with the reason "boom", anything else is fine.
delivery_result fail_bad(const std::string& payload) {
    return payload == "bad" ? delivery_result{ack_status::listener_failed, "boom"} : delivery_result{};
}

std::uint16_t unused_port() {
    // Bind and release: nothing listens there afterwards.
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

} // namespace

TEST_CASE("peer_sender delivers frames in order", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    test::io_runner tx;
    auto s = make_sender(tx.io, c, rx.port());
    for (int i = 0; i < 2000; ++i) {
        REQUIRE_FALSE(s->enqueue(test::data_frame(i, 8, std::to_string(i)), i, nullptr));
    }
    REQUIRE(wait_until([&] { return rx.count() == 2000; }));
    const auto got = rx.snapshot();
    for (int i = 0; i < 2000; ++i) {
        REQUIRE(got[i] == std::to_string(i));
    }
    // Coalescing: fewer writes than frames.
    CHECK(s->stats().writes.load() < s->stats().frames_out.load());
    s->stop(error::stopped);
}

namespace {
std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
} // namespace

TEST_CASE("a lingering writer turns a trickle of async frames into few writes, and ack frames and a "
          "graceful close do not wait for it",
          "[transport]") {
    auto c = test::loopback_config();
    c.sender.linger_us = 100000; // 100 ms: a whole trickle fits in one or two lingers
    test::recording_receiver rx(c);
    test::io_runner tx;
    auto s = make_sender(tx.io, c, rx.port());
    REQUIRE(wait_until([&] { return s->connected(); }));

    // One message a millisecond: without lingering, each would be a write of its own.
    const int trickle = 50;
    for (int i = 0; i < trickle; ++i) {
        const auto text = "t" + std::to_string(i);
        REQUIRE_FALSE(s->enqueue_data(i, 8, "test", bytes_of(text)));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // An ack frame ends the linger at once and leaves after what was queued.
    std::promise<boost::system::error_code> acked;
    REQUIRE_FALSE(s->enqueue(test::data_frame(1000, 2, "ack"), 1000,
                             [&](const boost::system::error_code& ec, std::string_view) { acked.set_value(ec); }));
    auto f = acked.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK_FALSE(f.get());
    const auto writes = s->stats().writes.load();
    CHECK(writes <= 10);
    INFO("writes: " << writes);

    // More async frames, then a graceful close: BYE flushes them, lingering or not.
    for (int i = 0; i < 5; ++i) {
        REQUIRE_FALSE(s->enqueue_data(2000 + i, 8, "test", bytes_of("c" + std::to_string(i))));
    }
    s->close_gracefully("leaving", std::chrono::seconds(10));
    REQUIRE(wait_until([&] { return rx.count() == trickle + 1 + 5; }));
    const auto got = rx.snapshot();
    for (int i = 0; i < trickle; ++i) {
        REQUIRE(got[i] == "t" + std::to_string(i));
    }
    CHECK(got[trickle] == "ack");
    CHECK(got[trickle + 5] == "c4");
}

TEST_CASE("frames encoded once and queued to two streams arrive whole and in order at both, between "
          "each stream's own async and ack frames",
          "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx1(c);
    test::recording_receiver rx2(c);
    test::io_runner tx;
    auto s1 = make_sender(tx.io, c, rx1.port());
    auto s2 = make_sender(tx.io, c, rx2.port());
    // Small blocks: the run moves to a new block every few frames, and blocks
    // are taken back and refilled while the streams still write others.
    frame_arena shared(2048, 2);
    std::vector<std::string> want1, want2;
    std::atomic<int> acked{0};
    const int n = 3000;
    for (int i = 0; i < n; ++i) {
        const auto text = "s" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 300), 'x');
        const auto slice = shared.append_data(i, 8, "test", bytes_of(text));
        REQUIRE_FALSE(s1->enqueue_shared(slice));
        REQUIRE_FALSE(s2->enqueue_shared(slice));
        want1.push_back(text);
        want2.push_back(text);
        if (i % 7 == 0) { // a frame for one member only, from its own arena
            const auto own = "o" + std::to_string(i);
            REQUIRE_FALSE(s1->enqueue_data(n + i, 8, "test", bytes_of(own)));
            want1.push_back(own);
        }
        if (i % 11 == 0) { // a slice for s2 alone: s1's run must not swallow it
            const auto solo = "x" + std::to_string(i);
            REQUIRE_FALSE(s2->enqueue_shared(shared.append_data(3 * n + i, 8, "test", bytes_of(solo))));
            want2.push_back(solo);
        }
        if (i % 13 == 0) { // an ack frame breaks the run
            const auto ack = "a" + std::to_string(i);
            REQUIRE_FALSE(s2->enqueue(test::data_frame(2 * n + i, 2, ack), 2 * n + i,
                                      [&](const boost::system::error_code& ec, std::string_view) {
                                          if (!ec) {
                                              ++acked;
                                          }
                                      }));
            want2.push_back(ack);
        }
    }
    REQUIRE(wait_until([&] { return rx1.count() == want1.size() && rx2.count() == want2.size(); }));
    CHECK(rx1.snapshot() == want1);
    CHECK(rx2.snapshot() == want2);
    REQUIRE(wait_until([&] { return acked.load() == (n + 12) / 13; }));
    // Every byte counted in left the count again.
    REQUIRE(wait_until([&] { return s1->queued_bytes() == 0 && s2->queued_bytes() == 0; }));
    s1->stop(error::stopped);
    s2->stop(error::stopped);
}

TEST_CASE("peer_sender keeps order across a reconnect", "[transport]") {
    auto c = test::loopback_config();
    const auto same_member = membership::member_id::random();
    auto rx = std::make_unique<test::recording_receiver>(c, same_member);
    const auto port = rx->port();
    test::io_runner tx;
    auto s = make_sender(tx.io, c, port);
    for (int i = 0; i < 300; ++i) {
        REQUIRE_FALSE(s->enqueue(test::data_frame(i, 8, std::to_string(i)), i, nullptr));
    }
    REQUIRE(wait_until([&] { return rx->count() == 300; }));
    rx.reset(); // the peer goes away
    REQUIRE(wait_until([&] { return !s->connected(); }));
    for (int i = 300; i < 600; ++i) {
        REQUIRE_FALSE(s->enqueue(test::data_frame(i, 8, std::to_string(i)), i, nullptr));
    }
    auto c2 = test::loopback_config(port);
    // The same member back on the same port, as after a network blip.
    rx = std::make_unique<test::recording_receiver>(c2, same_member);
    REQUIRE(wait_until([&] { return rx->count() == 300; }));
    const auto got = rx->snapshot();
    for (int i = 0; i < 300; ++i) {
        REQUIRE(got[i] == std::to_string(300 + i));
    }
    s->stop(error::stopped);
}

TEST_CASE("a connection that breaks during a write leaves none of its bytes counted", "[transport]") {
    auto c = test::loopback_config();
    c.sender.queue_limit = 64 << 20;
    test::recording_receiver rx(c);
    // The receiver's only I/O thread holds on to the first message: nothing is
    // read any more, the sender's socket fills, and its write stays in flight.
    std::atomic<bool> hold{true};
    rx.verdict = [&](const std::string&) {
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (hold.load() && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return delivery_result{};
    };
    test::io_runner tx;
    auto s = make_sender(tx.io, c, rx.port());
    REQUIRE(wait_until([&] { return s->connected(); }));
    const std::string big(256 * 1024, 'b');
    for (int i = 0; i < 64; ++i) {
        REQUIRE_FALSE(s->enqueue_data(i, 8, "test", bytes_of(big)));
    }
    REQUIRE(wait_until([&] { return rx.count() >= 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the socket fills
    // The connection fails from outside the write (as when a member is declared
    // gone): that write's completion is stale, so its bytes must leave the count here.
    s->reset("test: member gone");
    REQUIRE(wait_until([&] { return !s->connected(); }));
    hold = false;
    // What was not written goes out on the next connection, and the count comes
    // back to zero, or the queue would shrink for good after every such break.
    REQUIRE(wait_until([&] { return s->connected(); }));
    REQUIRE(wait_until([&] { return s->queued_bytes() == 0; }));
    s->stop(error::stopped);
}

TEST_CASE("a parked stream dials again only when its member is heard, and a handshake ends parking",
          "[transport]") {
    auto c = test::loopback_config();
    auto rx = std::make_unique<test::recording_receiver>(c);
    const auto port = rx->port();
    test::io_runner tx;
    auto s = make_sender(tx.io, c, port);
    REQUIRE(wait_until([&] { return s->connected(); }));
    CHECK(s->stats().connects.load() == 1);
    s->park("test: member removed", s->stats().connects.load());
    REQUIRE(wait_until([&] { return !s->connected(); }));
    // Unparked, the backoff (20 ms at first) would have dialled many times by now.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK_FALSE(s->connected());
    CHECK(s->stats().connects.load() == 1);
    // Heard from (a heartbeat): one dial, and the handshake ends parking.
    s->reconnect_now();
    REQUIRE(wait_until([&] { return s->connected(); }));
    CHECK(s->stats().connects.load() == 2);
    rx.reset(); // a plain connection loss now redials on its own
    REQUIRE(wait_until([&] { return !s->connected(); }));
    rx = std::make_unique<test::recording_receiver>(test::loopback_config(port));
    REQUIRE(wait_until([&] { return s->connected(); }));
    CHECK(s->stats().connects.load() == 3);
    // A removal decided before the last handshake is stale: the stream stays up.
    s->park("test: stale removal", 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(s->connected());
    s->stop(error::stopped);
}

TEST_CASE("frames queued for a member that restarted are dropped and counted", "[transport]") {
    auto c = test::loopback_config();
    auto rx = std::make_unique<test::recording_receiver>(c);
    const auto port = rx->port();
    test::io_runner tx;
    auto s = make_sender(tx.io, c, port);
    REQUIRE_FALSE(s->enqueue(test::data_frame(0, 8, "first"), 0, nullptr));
    REQUIRE(wait_until([&] { return rx->count() == 1; }));
    rx.reset();
    REQUIRE(wait_until([&] { return !s->connected(); }));
    for (int i = 1; i <= 10; ++i) {
        REQUIRE_FALSE(s->enqueue(test::data_frame(i, 8, "old"), i, nullptr));
    }
    rx = std::make_unique<test::recording_receiver>(test::loopback_config(port)); // new incarnation
    REQUIRE(wait_until([&] { return s->connected(); }));
    REQUIRE_FALSE(s->enqueue(test::data_frame(11, 8, "new"), 11, nullptr));
    REQUIRE(wait_until([&] { return rx->count() == 1; }));
    CHECK(rx->snapshot().front() == "new");
    CHECK(s->stats().dropped.load() == 10);
    s->stop(error::stopped);
}

TEST_CASE("a full queue fails at once under the fail policy", "[transport]") {
    auto c = test::loopback_config();
    c.sender.queue_limit = 4200; // four frames of 1029 bytes
    c.sender.on_queue_full = conf::queue_full_policy::fail;
    test::io_runner tx;
    auto s = make_sender(tx.io, c, unused_port());
    const std::string kib(1000, 'x');
    boost::system::error_code ec;
    int accepted = 0;
    for (int i = 0; i < 10 && !ec; ++i) {
        ec = s->enqueue(test::data_frame(i, 8, kib), i, nullptr);
        accepted += ec ? 0 : 1;
    }
    CHECK(ec == error::queue_full);
    CHECK(accepted == 4);
    CHECK(s->stats().queue_full.load() == 1);
    s->stop(error::stopped);
    CHECK(wait_until([&] { return s->stats().dropped.load() == 4; }));
}

TEST_CASE("a full queue fails after block_timeout under the block policy", "[transport]") {
    auto c = test::loopback_config();
    c.sender.queue_limit = 2100; // two frames of 1029 bytes
    c.sender.on_queue_full = conf::queue_full_policy::block;
    c.sender.block_timeout = std::chrono::milliseconds(100);
    test::io_runner tx;
    auto s = make_sender(tx.io, c, unused_port());
    const std::string kib(1000, 'x');
    REQUIRE_FALSE(s->enqueue(test::data_frame(1, 8, kib), 1, nullptr));
    REQUIRE_FALSE(s->enqueue(test::data_frame(2, 8, kib), 2, nullptr));
    CHECK(s->enqueue(test::data_frame(3, 8, kib), 3, nullptr) == error::queue_full);
    s->stop(error::stopped);
}

TEST_CASE("a blocked sender proceeds once the peer drains the queue", "[transport]") {
    auto c = test::loopback_config();
    c.sender.queue_limit = 64 * 1024;
    c.sender.block_timeout = std::chrono::seconds(20);
    test::recording_receiver rx(c);
    test::io_runner tx;
    auto s = make_sender(tx.io, c, rx.port());
    const std::string big(16 * 1024, 'y');
    for (int i = 0; i < 200; ++i) { // ~3 MiB through a 64 KiB queue
        REQUIRE_FALSE(s->enqueue(test::data_frame(i, 8, big), i, nullptr));
    }
    CHECK(wait_until([&] { return rx.count() == 200; }));
    s->stop(error::stopped);
}

TEST_CASE("sync frames are acked, and a NACK carries the listener's reason", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    rx.verdict = fail_bad;
    test::io_runner tx;
    auto s = make_sender(tx.io, c, rx.port());
    std::promise<std::pair<boost::system::error_code, std::string>> good, bad;
    REQUIRE_FALSE(s->enqueue(test::data_frame(1, 6, "good"), 1,
                             [&](const boost::system::error_code& ec, std::string_view d) {
                                 good.set_value({ec, std::string(d)});
                             }));
    REQUIRE_FALSE(s->enqueue(test::data_frame(2, 6, "bad"), 2,
                             [&](const boost::system::error_code& ec, std::string_view d) {
                                 bad.set_value({ec, std::string(d)});
                             }));
    auto g = good.get_future();
    auto b = bad.get_future();
    REQUIRE(g.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    REQUIRE(b.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK_FALSE(g.get().first);
    const auto [ec, detail] = b.get();
    CHECK(ec == error::remote_failure);
    CHECK(detail == "boom");
    CHECK(s->stats().acks.load() == 1);
    CHECK(s->stats().nacks.load() == 1);
    s->stop(error::stopped);
}

TEST_CASE("an unanswered ack fails with ack_timeout", "[transport]") {
    auto c = test::loopback_config();
    c.sender.ack_timeout = std::chrono::milliseconds(300);
    std::atomic<bool> release{false};
    test::recording_receiver rx(c);
    rx.verdict = [&](const std::string&) {
        test::wait_until([&] { return release.load(); }, std::chrono::seconds(5));
        return delivery_result{};
    };
    test::io_runner tx;
    auto s = make_sender(tx.io, c, rx.port());
    std::promise<boost::system::error_code> done;
    REQUIRE_FALSE(s->enqueue(test::data_frame(1, 6, "slow"), 1,
                             [&](const boost::system::error_code& ec, std::string_view) { done.set_value(ec); }));
    auto f = done.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(f.get() == error::ack_timeout);
    CHECK(s->stats().ack_timeouts.load() == 1);
    release = true;
    s->stop(error::stopped);
}

TEST_CASE("ack frames queued for an unreachable peer fail with ack_timeout", "[transport]") {
    auto c = test::loopback_config();
    c.sender.ack_timeout = std::chrono::milliseconds(200);
    test::io_runner tx;
    auto s = make_sender(tx.io, c, unused_port());
    std::promise<boost::system::error_code> done;
    REQUIRE_FALSE(s->enqueue(test::data_frame(1, 2, "x"), 1,
                             [&](const boost::system::error_code& ec, std::string_view) { done.set_value(ec); }));
    auto f = done.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(f.get() == error::ack_timeout);
    CHECK(s->queued_bytes() == 0);
    s->stop(error::stopped);
}

TEST_CASE("a handshake with the wrong cluster name is refused on both sides", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    auto other = c;
    other.cluster.name = "other";
    test::io_runner tx;
    auto s = make_sender(tx.io, other, rx.port());
    CHECK(wait_until([&] { return rx.rx->stats().handshake_refused.load() >= 1; }));
    CHECK(wait_until([&] { return s->stats().handshake_failures.load() >= 1; }));
    CHECK_FALSE(s->connected());
    s->stop(error::stopped);
}

TEST_CASE("secrets must match: wrong, missing and unexpected secrets are refused", "[transport]") {
    auto c = test::loopback_config();
    c.cluster.secret = "0123456789abcdef-right";
    test::recording_receiver rx(c);
    test::io_runner tx;
    SECTION("wrong secret") {
        auto wrong = c;
        wrong.cluster.secret = "0123456789abcdef-wrong";
        auto s = make_sender(tx.io, wrong, rx.port());
        CHECK(wait_until([&] { return s->stats().handshake_failures.load() >= 1; }));
        CHECK(wait_until([&] { return rx.rx->stats().auth_failures.load() >= 1; }));
        CHECK_FALSE(s->connected());
        s->stop(error::stopped);
    }
    SECTION("no secret on the connecting side") {
        auto none = c;
        none.cluster.secret.clear();
        auto s = make_sender(tx.io, none, rx.port());
        CHECK(wait_until([&] { return s->stats().handshake_failures.load() >= 1; }));
        CHECK_FALSE(s->connected());
        s->stop(error::stopped);
    }
    SECTION("the same secret connects and delivers") {
        auto s = make_sender(tx.io, c, rx.port());
        REQUIRE_FALSE(s->enqueue(test::data_frame(1, 8, "hi"), 1, nullptr));
        CHECK(wait_until([&] { return rx.count() == 1; }));
        CHECK(s->stats().handshake_failures.load() == 0);
        s->stop(error::stopped);
    }
}

TEST_CASE("a peer without a secret is refused by a node that has one", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c); // no secret
    auto with = c;
    with.cluster.secret = "0123456789abcdef-right";
    test::io_runner tx;
    auto s = make_sender(tx.io, with, rx.port());
    CHECK(wait_until([&] { return s->stats().handshake_failures.load() >= 1; }));
    CHECK_FALSE(s->connected());
    s->stop(error::stopped);
}

// ---- Direct reads: a lone waiting caller reads its own acks ----------------

namespace {

/// What channel::send does for its one polling caller: queue the frame saying
/// the caller reads, read acks here for up to `read_for`, then hand reading back
/// and wait for the completion, whoever reads it.
std::pair<boost::system::error_code, std::string>
lone_send(peer_sender& s, std::uint64_t id, const std::string& payload,
          std::chrono::microseconds read_for = std::chrono::milliseconds(200)) {
    auto done = std::make_shared<std::promise<std::pair<boost::system::error_code, std::string>>>();
    auto f = done->get_future();
    const auto ec = s.enqueue(test::data_frame(id, 6, payload), id,
                              [done](const boost::system::error_code& e, std::string_view d) {
                                  done->set_value({e, std::string(d)});
                              },
                              true);
    if (ec) {
        return {ec, "enqueue"};
    }
    const auto until = std::chrono::steady_clock::now() + read_for;
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready &&
           std::chrono::steady_clock::now() < until) {
        std::this_thread::yield();
        s.read_acks_here();
    }
    s.hand_reading_back();
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        return {error::ack_timeout, "no completion within 10 s"};
    }
    return f.get();
}

/// A receiver in this process and a sender connected to it.
struct connected_sender {
    conf::cluster_config c;
    test::recording_receiver rx;
    test::io_runner tx;
    std::shared_ptr<peer_sender> s;

    explicit connected_sender(std::function<delivery_result(const std::string&)> verdict = {})
        : c(test::loopback_config()), rx(c) {
        rx.verdict = std::move(verdict);
        s = make_sender(tx.io, c, rx.port());
        REQUIRE(wait_until([&] { return s->connected(); }));
    }
    ~connected_sender() { s->stop(error::stopped); }
    connected_sender(const connected_sender&) = delete;
    connected_sender& operator=(const connected_sender&) = delete;
};

} // namespace

TEST_CASE("a lone waiting caller reads its own acks once the stream is idle", "[transport]") {
    connected_sender t{};
    auto& s = t.s;
    auto& rx = t.rx;
    for (int i = 0; i < 50; ++i) {
        const auto [ec, detail] = lone_send(*s, i, std::to_string(i));
        REQUIRE_FALSE(ec);
    }
    // The first ack is read by the I/O thread, which then takes the socket out
    // of the reactor; the caller reads the rest.
    CHECK(s->direct_reads());
    CHECK(s->stats().direct_entries.load() >= 1);
    CHECK(s->stats().caller_read_acks.load() > 0);
    CHECK(s->stats().acks.load() == 50);
    const auto got = rx.snapshot();
    REQUIRE(got.size() == 50);
    for (int i = 0; i < 50; ++i) {
        CHECK(got[i] == std::to_string(i));
    }
}

TEST_CASE("a NACK read by the waiting caller still carries the listener's reason", "[transport]") {
    connected_sender t{fail_bad};
    auto& s = t.s;
    REQUIRE_FALSE(lone_send(*s, 1, "good").first);
    REQUIRE(wait_until([&] { return s->direct_reads(); }));
    const auto read_before = s->stats().caller_read_acks.load();
    const auto [ec, detail] = lone_send(*s, 2, "bad");
    CHECK(ec == error::remote_failure);
    CHECK(detail == "boom");
    CHECK(s->stats().nacks.load() == 1);
    CHECK(s->stats().caller_read_acks.load() == read_before + 1);
}

TEST_CASE("direct reads give way to async frames and to acks nobody reads, in order", "[transport]") {
    connected_sender t{};
    auto& s = t.s;
    auto& rx = t.rx;
    std::uint64_t id = 0;
    std::vector<std::string> sent;
    auto lone = [&] {
        sent.push_back("sync" + std::to_string(id));
        const auto r = lone_send(*s, id, sent.back());
        ++id;
        return r.first;
    };
    // The stream goes direct after an ack the I/O thread read while the stream
    // was idle (not within a linger after async frames): send until it has.
    auto reach_direct = [&] {
        for (int k = 0; k < 500 && !s->direct_reads(); ++k) {
            if (lone()) {
                return false;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        return s->direct_reads();
    };
    for (int round = 0; round < 5; ++round) {
        REQUIRE(reach_direct());
        REQUIRE_FALSE(lone());
        // Async frames need the writer, and so the reactor.
        for (int k = 0; k < 20; ++k) {
            sent.push_back("async" + std::to_string(id));
            REQUIRE_FALSE(s->enqueue(test::data_frame(id, 8, sent.back()), id, nullptr));
            ++id;
        }
        REQUIRE(reach_direct());
        REQUIRE_FALSE(lone());
        // An ack for a completion handler: the I/O thread must read it.
        std::promise<boost::system::error_code> handled;
        sent.push_back("handler" + std::to_string(id));
        REQUIRE_FALSE(s->enqueue(test::data_frame(id, 6, sent.back()), id,
                                 [&](const boost::system::error_code& e, std::string_view) { handled.set_value(e); }));
        ++id;
        auto f = handled.get_future();
        REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
        CHECK_FALSE(f.get());
        CHECK_FALSE(s->direct_reads());
    }
    REQUIRE(wait_until([&] { return rx.count() == sent.size(); }));
    CHECK(rx.snapshot() == sent);
}

TEST_CASE("a caller that stops reading hands its ack to the I/O thread", "[transport]") {
    connected_sender t{[](const std::string& p) {
        if (p == "slow") {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return delivery_result{};
    }};
    auto& s = t.s;
    REQUIRE_FALSE(lone_send(*s, 1, "fast").first);
    REQUIRE(wait_until([&] { return s->direct_reads(); }));
    const auto read_before = s->stats().caller_read_acks.load();
    // Reads for 1 ms only: the listener takes 50.
    const auto [ec, detail] = lone_send(*s, 2, "slow", std::chrono::milliseconds(1));
    CHECK_FALSE(ec);
    CHECK(s->stats().caller_read_acks.load() == read_before);
    CHECK(s->stats().acks.load() == 2);
}

TEST_CASE("an idle stream in direct mode notices that the peer went away", "[transport]") {
    auto c = test::loopback_config();
    // No keep-alive PING within the test: only the tick's look at the socket finds the close.
    c.membership.failure_detector.ping_interval = std::chrono::minutes(10);
    auto rx = std::make_unique<test::recording_receiver>(c);
    std::atomic<int> downs{0};
    peer_sender::callbacks cb;
    cb.down = [&](const boost::system::error_code&, const std::string&, bool was_up) {
        if (was_up) {
            ++downs;
        }
    };
    test::io_runner tx;
    auto s = std::make_shared<peer_sender>(tx.io, c.sender, c.channel.max_message,
                                           c.membership.failure_detector.ping_interval,
                                           test::identity(c, 0, "tx"), "127.0.0.1", rx->port(), cb);
    s->start();
    REQUIRE(wait_until([&] { return s->connected(); }));
    REQUIRE_FALSE(lone_send(*s, 1, "x").first);
    REQUIRE(wait_until([&] { return s->direct_reads(); }));
    rx.reset(); // closes its end: nobody reads this socket but the tick's check
    REQUIRE(wait_until([&] { return downs.load() == 1; }, std::chrono::seconds(5)));
    CHECK_FALSE(s->direct_reads());
    s->stop(error::stopped);
}
