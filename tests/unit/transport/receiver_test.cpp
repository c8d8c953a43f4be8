// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/receiver.hpp>

#include "raw_client.hpp"
#include "transport_fixture.hpp"
#include "wait_until.hpp"

#include <catch2/catch.hpp>

using namespace troupe;
using namespace troupe::transport;
using boost::asio::ip::tcp;
using troupe::test::wait_until;

using test::raw_client;

TEST_CASE("garbage bytes close that connection only, with a counter", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client bad(rx.port());
    bad.send(buffer{'G', 'E', 'T', ' ', '/', '\r', '\n'});
    const auto reply = bad.read_to_close();
    CHECK(reply.find("bad frame: bad magic") != std::string::npos); // the BYE says why
    CHECK(wait_until([&] { return rx.rx->stats().bad_frames.load() == 1; }));
    // Others are still served.
    raw_client good(rx.port());
    good.handshake("unit");
    buffer d;
    append_data(d, 1, 8, "test", std::span<const std::uint8_t>());
    good.send(d);
    CHECK(wait_until([&] { return rx.count() == 1; }));
}

TEST_CASE("an oversize length before the handshake is refused without allocating", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    buffer b;
    append_header(b, frame_type::hello, 0, max_handshake_body + 1);
    client.send(b);
    CHECK(client.read_to_close().find("frame too large") != std::string::npos);
    CHECK(wait_until([&] { return rx.rx->stats().bad_frames.load() == 1; }));
}

TEST_CASE("an oversize DATA length after the handshake is refused", "[transport]") {
    auto c = test::loopback_config();
    c.channel.max_message = 4096;
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    client.handshake("unit");
    buffer b;
    append_header(b, frame_type::data, 0, 0x7fffffff);
    client.send(b);
    CHECK(client.read_to_close().find("frame too large") != std::string::npos);
    CHECK(wait_until([&] { return rx.rx->stats().bad_frames.load() == 1; }));
    CHECK(rx.count() == 0);
}

TEST_CASE("DATA before HELLO is refused", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    buffer d;
    append_data(d, 1, 8, "test", std::span<const std::uint8_t>());
    client.send(d);
    CHECK(client.read_to_close().find("expected HELLO") != std::string::npos);
    CHECK(rx.count() == 0);
}

TEST_CASE("a truncated DATA body is a bad frame", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    client.handshake("unit");
    buffer b;
    append_header(b, frame_type::data, 0, 3); // too short for id + options
    b.insert(b.end(), {1, 2, 3});
    client.send(b);
    CHECK(client.read_to_close().find("truncated") != std::string::npos);
    CHECK(wait_until([&] { return rx.rx->stats().bad_frames.load() == 1; }));
}

TEST_CASE("PING is answered with PONG carrying the token", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver rx(c);
    raw_client client(rx.port());
    client.handshake("unit");
    buffer b;
    append_token(b, frame_type::ping, 0xabcdef);
    client.send(b);
    std::uint8_t reply[header_size + 8];
    boost::asio::read(client.socket, boost::asio::buffer(reply));
    frame_view f;
    REQUIRE(decode_frame(reply, 64, f).what == decode_result::kind::frame);
    CHECK(f.type == frame_type::pong);
    std::uint64_t token = 0;
    REQUIRE_FALSE(parse_token(f.body, token));
    CHECK(token == 0xabcdef);
}

TEST_CASE("auto_bind moves to the next free port", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver first(c);
    auto c2 = test::loopback_config(first.port());
    c2.receiver.auto_bind = 10;
    test::io_runner io;
    auto r = std::make_shared<receiver>(io.io, c2, receiver::callbacks{});
    const auto port = r->bind();
    CHECK(port > first.port());
    CHECK(port < first.port() + 10);
    r->stop();
}

TEST_CASE("bind failure names the address and the range", "[transport]") {
    auto c = test::loopback_config();
    test::recording_receiver first(c);
    auto c2 = test::loopback_config(first.port());
    c2.receiver.auto_bind = 1;
    test::io_runner io;
    auto r = std::make_shared<receiver>(io.io, c2, receiver::callbacks{});
    try {
        r->bind();
        FAIL("bind should have failed");
    } catch (const boost::system::system_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("cannot bind the receiver on 127.0.0.1, ports " +
                                             std::to_string(first.port())));
    }
}
