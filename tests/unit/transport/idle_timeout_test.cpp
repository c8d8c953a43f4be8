// SPDX-License-Identifier: Apache-2.0
// receiver.idle_timeout: a member connection that goes silent (a vanished host
// leaves no FIN) is closed and counted, on the I/O threads and on a reader thread
// of its own; one kept alive by PINGs is not.
#include <troupe/transport/receiver.hpp>

#include "raw_client.hpp"
#include "transport_fixture.hpp"
#include "wait_until.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

using namespace troupe;
using namespace troupe::transport;
using namespace std::chrono_literals;
using test::raw_client;
using test::wait_until;

namespace {

/// A sync DATA round trip, which also hands the connection to a reader thread when there is room.
void sync_round(raw_client& c, std::uint64_t id) {
    c.send(*test::data_frame(id, 6, "p" + std::to_string(id)));
    raw_client::frame f;
    REQUIRE(c.read_ack(f).id == id);
    REQUIRE(f.type == frame_type::ack);
}

/// A receiver with the given limits, and one client that has sent a sync DATA frame.
struct quiet_client {
    static conf::cluster_config config(std::uint32_t readers, std::chrono::milliseconds idle) {
        auto c = test::loopback_config();
        c.receiver.reader_threads = readers;
        c.receiver.idle_timeout = idle;
        return c;
    }
    quiet_client(std::uint32_t readers, std::chrono::milliseconds idle)
        : rx(config(readers, idle)), client(rx.port()) {
        client.handshake("unit");
        sync_round(client, 1);
    }
    test::recording_receiver rx;
    raw_client client;
};

} // namespace

TEST_CASE("a member connection silent for receiver.idle_timeout is closed and counted", "[transport]") {
    const std::uint32_t readers = GENERATE(0u, 4u);
    CAPTURE(readers);
    quiet_client q(readers, 1s); // its client has sent DATA
    const auto& stats = q.rx.rx->stats();
    REQUIRE(wait_until([&] { return stats.reader_threads.load() == (readers > 0 ? 1u : 0u); }));
    raw_client handshake_only(q.rx.port()); // stays on the I/O threads
    handshake_only.handshake("unit");

    // Both go silent: the receiver closes them (the client's own read limit is 20 s).
    CHECK(q.client.read_to_close().empty());
    CHECK(handshake_only.read_to_close().empty());
    CHECK(wait_until([&] { return stats.open.load() == 0; }));
    CHECK(stats.idle_timeouts.load() == 2);
    CHECK(stats.reader_threads.load() == 0);
    CHECK(stats.bad_frames.load() == 0);

    // The receiver goes on serving.
    raw_client next(q.rx.port());
    next.handshake("unit");
    sync_round(next, 1);
}

TEST_CASE("PINGs keep a quiet member connection open past receiver.idle_timeout", "[transport]") {
    const std::uint32_t readers = GENERATE(0u, 4u);
    CAPTURE(readers);
    quiet_client q(readers, 1s);

    // 2.5 s of PINGs 100 ms apart: never silent for the limit, as a live peer's sender.
    for (std::uint64_t token = 1; token <= 25; ++token) {
        std::this_thread::sleep_for(100ms);
        buffer ping;
        append_token(ping, frame_type::ping, token);
        q.client.send(ping);
        REQUIRE(q.client.read_frame().type == frame_type::pong);
    }
    CHECK(q.rx.rx->stats().idle_timeouts.load() == 0);
    CHECK(q.rx.rx->stats().open.load() == 1);
    sync_round(q.client, 2);
}

TEST_CASE("receiver.idle_timeout 0 never closes a silent connection", "[transport]") {
    quiet_client q(64, 0s);
    std::this_thread::sleep_for(1500ms);
    CHECK(q.rx.rx->stats().open.load() == 1);
    CHECK(q.rx.rx->stats().idle_timeouts.load() == 0);
    sync_round(q.client, 2);
}
