// SPDX-License-Identifier: Apache-2.0
// Connections handed from the reactor to a reader thread of their own
// (receiver.reader_threads): the same frames, acks and failures as on the I/O
// threads, a bounded number of threads, and a stop() that ends every one of them.
#include <troupe/transport/receiver.hpp>

#include "raw_client.hpp"
#include "transport_fixture.hpp"
#include "wait_until.hpp"

#include <catch2/catch.hpp>

#include <condition_variable>
#include <future>
#include <sys/socket.h>

using namespace troupe;
using namespace troupe::transport;
using test::raw_client;
using test::wait_until;

namespace {

buffer data(std::uint64_t id, std::uint32_t options, const std::string& payload) {
    return *test::data_frame(id, options, payload);
}

/// Sends a sync DATA frame and returns its ACK or NACK.
ack_view sync_round(raw_client& c, std::uint64_t id, const std::string& payload, raw_client::frame& f) {
    c.send(data(id, 6, payload));
    return c.read_ack(f);
}

} // namespace

TEST_CASE("a connection keeps order, acks, PONGs and bad-frame handling on a reader thread or without one",
          "[transport]") {
    const std::uint32_t limit = GENERATE(0u, 4u);
    CAPTURE(limit);
    auto c = test::loopback_config();
    c.receiver.reader_threads = limit;
    test::recording_receiver rx(c);
    rx.verdict = [](const std::string& p) {
        return p.rfind("bad", 0) == 0 ? delivery_result{ack_status::listener_failed, "refused " + p}
                                      : delivery_result{};
    };
    raw_client client(rx.port());
    client.handshake("unit");

    // 300 frames in one write: async, ack and sync mixed; every third sync one refused.
    buffer burst;
    std::vector<std::uint64_t> acked;
    std::vector<std::string> sent;
    for (std::uint64_t id = 1; id <= 300; ++id) {
        const std::uint32_t options = id % 3 == 0 ? 0u : id % 3 == 1 ? 2u : 6u;
        const std::string p = (options == 6 && id % 9 == 2 ? "bad-" : "ok-") + std::to_string(id);
        sent.push_back(p);
        const auto b = data(id, options, p);
        burst.insert(burst.end(), b.begin(), b.end());
        if (options != 0) {
            acked.push_back(id);
        }
    }
    client.send(burst);
    raw_client::frame f;
    for (const auto id : acked) {
        const auto a = client.read_ack(f);
        REQUIRE(a.id == id);
        if (id % 3 == 2 && id % 9 == 2) {
            CHECK(f.type == frame_type::nack);
            CHECK(a.status == ack_status::listener_failed);
            CHECK(a.reason == "refused bad-" + std::to_string(id));
        } else {
            CHECK(f.type == frame_type::ack);
        }
    }
    CHECK(rx.snapshot() == sent);
    // The hand-over follows the acks of the read that carried the first DATA.
    CHECK(wait_until([&] { return rx.rx->stats().reader_threads.load() == (limit > 0 ? 1u : 0u); }));

    // Keep-alive is answered there too.
    buffer ping;
    append_token(ping, frame_type::ping, 77);
    client.send(ping);
    f = client.read_frame();
    REQUIRE(f.type == frame_type::pong);
    std::uint64_t token = 0;
    REQUIRE_FALSE(parse_token(f.body, token));
    CHECK(token == 77);

    // A bad frame closes this connection only, with its reason and a counter.
    client.send(buffer{'G', 'E', 'T', ' ', '/', '\r', '\n'});
    CHECK(client.read_to_close().find("bad frame: bad magic") != std::string::npos);
    CHECK(wait_until([&] { return rx.rx->stats().bad_frames.load() == 1; }));
    CHECK(wait_until([&] { return rx.rx->stats().open.load() == 0; }));
    CHECK(wait_until([&] { return rx.rx->stats().reader_threads.load() == 0; }));
    raw_client next(rx.port());
    next.handshake("unit");
    CHECK(sync_round(next, 1, "after", f).status == ack_status::ok);
    CHECK(f.type == frame_type::ack);
}

TEST_CASE("a frame split across the hand-over to the reader thread arrives whole", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    client.handshake("unit");
    // The first DATA and half of the second in one write: the strand handles the
    // first, hands over, and the reader thread must keep the half it left.
    buffer first = data(1, 6, "first");
    const buffer second = data(2, 6, std::string(3000, 's'));
    const std::size_t half = second.size() / 2;
    first.insert(first.end(), second.begin(), second.begin() + static_cast<std::ptrdiff_t>(half));
    client.send(first);
    raw_client::frame f;
    CHECK(client.read_ack(f).id == 1);
    REQUIRE(wait_until([&] { return rx.rx->stats().reader_threads.load() == 1; }));
    client.send(buffer(second.begin() + static_cast<std::ptrdiff_t>(half), second.end()));
    const auto a = client.read_ack(f);
    CHECK(a.id == 2);
    CHECK(f.type == frame_type::ack);
    CHECK(rx.snapshot() == std::vector<std::string>{"first", std::string(3000, 's')});
    CHECK(rx.rx->stats().bad_frames.load() == 0);
}

TEST_CASE("a BYE behind DATA on a reader thread: the acks go out, then the connection closes",
          "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    client.handshake("unit");
    raw_client::frame f;
    REQUIRE(sync_round(client, 1, "first", f).id == 1);
    REQUIRE(wait_until([&] { return rx.rx->stats().reader_threads.load() == 1; }));
    buffer last = data(2, 6, "second");
    append_bye(last, "leaving");
    client.send(last);
    const auto a = client.read_ack(f);
    CHECK(a.id == 2);
    CHECK(f.type == frame_type::ack);
    CHECK(client.read_to_close().empty()); // closed after the ack, nothing more
    CHECK(wait_until([&] { return rx.rx->stats().open.load() == 0; }));
    CHECK(wait_until([&] { return rx.rx->stats().reader_threads.load() == 0; }));
    CHECK(rx.snapshot() == std::vector<std::string>{"first", "second"});
}

TEST_CASE("receiver.reader_threads bounds the connections read by a thread of their own",
          "[transport]") {
    auto c = test::loopback_config();
    c.receiver.reader_threads = 1;
    test::recording_receiver rx(c);
    raw_client::frame f;
    auto a = std::make_unique<raw_client>(rx.port());
    auto b = std::make_unique<raw_client>(rx.port());
    a->handshake("unit");
    b->handshake("unit");
    CHECK(sync_round(*a, 1, "a1", f).id == 1);
    REQUIRE(wait_until([&] { return rx.rx->stats().reader_threads.load() == 1; }));
    CHECK(sync_round(*b, 1, "b1", f).id == 1);
    CHECK(sync_round(*a, 2, "a2", f).id == 2);
    CHECK(sync_round(*b, 2, "b2", f).id == 2); // served by the I/O thread
    CHECK(rx.rx->stats().reader_threads.load() == 1);
    CHECK(rx.rx->stats().open.load() == 2);

    // b goes first: after answering, each read of b looks for a free slot, and
    // one still running when a's slot came free would rightly take it.
    b.reset();
    CHECK(wait_until([&] { return rx.rx->stats().open.load() == 1; }));
    CHECK(rx.rx->stats().reader_threads.load() == 1);
    // The slot comes free when its connection ends; the next connection with DATA takes it.
    a.reset();
    CHECK(wait_until([&] { return rx.rx->stats().open.load() == 0; }));
    CHECK(wait_until([&] { return rx.rx->stats().reader_threads.load() == 0; }));
    raw_client d(rx.port());
    d.handshake("unit");
    CHECK(sync_round(d, 1, "d1", f).id == 1);
    CHECK(wait_until([&] { return rx.rx->stats().reader_threads.load() == 1; }));
    raw_client e(rx.port());
    e.handshake("unit");
    CHECK(sync_round(e, 1, "e1", f).id == 1); // served by the I/O thread
    CHECK(sync_round(d, 2, "d2", f).id == 2);
    CHECK(rx.rx->stats().reader_threads.load() == 1);
    CHECK(rx.rx->stats().open.load() == 2);
    CHECK(rx.snapshot() == std::vector<std::string>{"a1", "b1", "a2", "b2", "d1", "e1", "d2"});
}

TEST_CASE("stop() ends reader threads: one waiting for bytes, one in a listener", "[transport]") {
    // Declared before the receiver: a failed REQUIRE stops it while they still exist.
    std::mutex m;
    std::condition_variable cv;
    bool in_listener = false;
    bool release = false;
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    rx.verdict = [&](const std::string& p) {
        if (p == "hold") {
            std::unique_lock lock(m);
            in_listener = true;
            cv.notify_all();
            cv.wait(lock, [&] { return release; });
        }
        return delivery_result{};
    };
    struct release_on_exit { // a failed REQUIRE must not leave the listener waiting
        std::mutex& m; std::condition_variable& cv; bool& release;
        ~release_on_exit() { { std::lock_guard lock(m); release = true; } cv.notify_all(); }
    } guard{m, cv, release};
    raw_client::frame f;
    raw_client idle(rx.port());
    raw_client busy(rx.port());
    idle.handshake("unit");
    busy.handshake("unit");
    CHECK(sync_round(idle, 1, "idle", f).id == 1);
    CHECK(sync_round(busy, 1, "busy", f).id == 1); // the first DATA hands it to its thread
    busy.send(data(2, 6, "hold"));
    {
        std::unique_lock lock(m);
        REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return in_listener; }));
    }
    REQUIRE(wait_until([&] { return rx.rx->stats().reader_threads.load() == 2; }));

    auto stopped = std::async(std::launch::async, [&] { rx.rx->stop(); });
    // The idle connection is closed at once...
    CHECK(idle.read_to_close().empty());
    // ...but stop() waits for the listener: nothing may be delivered after it returns.
    CHECK(stopped.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    REQUIRE(stopped.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(wait_until([&] { return rx.rx->stats().reader_threads.load() == 0; }));
    CHECK(rx.rx->stats().open.load() == 0);
    CHECK(rx.snapshot() == std::vector<std::string>{"idle", "busy", "hold"});
}

TEST_CASE("a peer that never reads its acks cannot hold stop()", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    const int small = 4096;
    ::setsockopt(client.socket.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    client.handshake("unit");
    raw_client::frame f;
    REQUIRE(sync_round(client, 1, "first", f).id == 1);
    REQUIRE(wait_until([&] { return rx.rx->stats().reader_threads.load() == 1; }));
    // Sync frames whose acks nobody reads, until the receiver stops taking them
    // (its reader blocked writing acks) or a bound is reached.
    client.socket.non_blocking(true);
    const buffer frame = data(2, 6, std::string(64, 'x'));
    buffer many;
    for (int i = 0; i < 1024; ++i) {
        many.insert(many.end(), frame.begin(), frame.end());
    }
    std::size_t written = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::uint64_t last_in = 0;
    int still = 0;
    for (int round = 0; round < 100000 && std::chrono::steady_clock::now() < deadline && still < 20;
         ++round) {
        boost::system::error_code ec;
        written += client.socket.write_some(boost::asio::buffer(many), ec);
        if (ec == boost::asio::error::would_block) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        const auto in = rx.rx->stats().bytes_in.load();
        still = in == last_in ? still + 1 : 0;
        last_in = in;
    }
    CHECK(still >= 20); // the receiver stopped reading: its reader is blocked on the acks
    auto stopped = std::async(std::launch::async, [&] { rx.rx->stop(); });
    CHECK(stopped.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(wait_until([&] { return rx.rx->stats().reader_threads.load() == 0; }));
    CHECK(written > 0);
}
