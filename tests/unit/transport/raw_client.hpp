// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/transport/frame.hpp>
#include <troupe/transport/hello.hpp>

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/time.h>

namespace troupe::test {

/// A raw client socket: whatever bytes a test wants, no troupe code on this side.
struct raw_client {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket{io};

    /// One whole frame as read back.
    struct frame {
        transport::frame_type type{};
        std::vector<std::uint8_t> body;
    };

    explicit raw_client(std::uint16_t port) {
        socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
        // A receiver that never answers fails the test instead of hanging it.
        const timeval limit{20, 0};
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    }
    void send(const transport::buffer& b) { boost::asio::write(socket, boost::asio::buffer(b)); }
    /// Reads until the peer closes (bounded by the receiver's own close).
    std::string read_to_close() {
        std::string all;
        boost::system::error_code ec;
        char chunk[4096];
        for (int i = 0; i < 1000 && !ec; ++i) {
            const auto n = socket.read_some(boost::asio::buffer(chunk), ec);
            all.append(chunk, n);
        }
        return all;
    }
    /// Reads one frame (blocking; the tests that call it expect one).
    frame read_frame() {
        std::uint8_t header[transport::header_size];
        boost::asio::read(socket, boost::asio::buffer(header));
        const std::uint32_t len = (std::uint32_t{header[8]} << 24) | (header[9] << 16) |
                                  (header[10] << 8) | header[11];
        REQUIRE(len < (1u << 20));
        frame f;
        f.type = static_cast<transport::frame_type>(header[5]);
        f.body.resize(len);
        boost::asio::read(socket, boost::asio::buffer(f.body));
        return f;
    }
    /// Reads one ACK or NACK frame.
    transport::ack_view read_ack(frame& f) {
        f = read_frame();
        REQUIRE((f.type == transport::frame_type::ack || f.type == transport::frame_type::nack));
        transport::ack_view a;
        REQUIRE_FALSE(transport::parse_ack(f.body, a));
        return a;
    }
    /// Completes a HELLO exchange without a secret.
    void handshake(const std::string& cluster) {
        transport::hello h;
        h.id = membership::member_id::random();
        h.cluster = cluster;
        h.node = "raw";
        h.host = "127.0.0.1";
        h.challenge = transport::random_nonce();
        transport::buffer b;
        transport::append_hello(b, h);
        send(b);
        REQUIRE(read_frame().type == transport::frame_type::hello);
    }
};

} // namespace troupe::test
