// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/member.hpp>
#include <troupe/transport/frame.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::transport {

inline constexpr std::uint8_t protocol_min = 1;
inline constexpr std::uint8_t protocol_max = 1;

using nonce = std::array<std::uint8_t, 16>;
using mac = std::array<std::uint8_t, 32>; ///< HMAC-SHA256

/// The handshake, on every connection:
///
///     connector -> acceptor   HELLO(role 0, nonce_c)
///     acceptor  -> connector  HELLO(role 1, nonce_s [, mac_s])     or BYE(reason)
///     connector -> acceptor   AUTH(mac_c)                          only with a secret
///
/// With a secret, mac_s = HMAC(secret, "troupe-s" | nonce_c | nonce_s | ids | cluster) proves
/// the acceptor knows it, and mac_c = HMAC(secret, "troupe-c" | ...) proves the connector
/// does; fresh nonces on both sides make a recorded handshake useless. The acceptor
/// takes no DATA before a valid AUTH.
///
///     HELLO body: proto_min u8 | proto_max u8 | role u8 | member id 16 | incarnation u64
///                 | port u16 | cluster_len u8 | cluster | node_len u8 | node
///                 | host_len u8 | host | nonce 16 | mac_len u8 (0 or 32) | mac
///     AUTH body:  mac 32
struct hello {
    std::uint8_t proto_min = protocol_min;
    std::uint8_t proto_max = protocol_max;
    std::uint8_t role = 0; ///< 0 = connector, 1 = acceptor
    membership::member_id id;
    std::uint64_t incarnation = 0;
    std::uint16_t port = 0; ///< the sender's receiver port
    std::string cluster;
    std::string node;
    std::string host; ///< the sender's receiver address
    nonce challenge{};
    bool has_mac = false;
    mac proof{};
};

void append_hello(buffer& out, const hello& h);
boost::system::error_code parse_hello(std::span<const std::uint8_t> body, hello& out);

void append_auth(buffer& out, const mac& proof);
boost::system::error_code parse_auth(std::span<const std::uint8_t> body, mac& out) noexcept;

/// The acceptor's proof (`acceptor` = true) or the connector's.
mac handshake_mac(std::string_view secret, bool acceptor, const hello& connector_hello,
                  const hello& acceptor_hello);

/// Constant-time comparison.
bool mac_equal(const mac& a, const mac& b) noexcept;

nonce random_nonce();

/// HMAC-SHA256 (OpenSSL).
mac hmac_sha256(std::string_view key, std::span<const std::uint8_t> data);

} // namespace troupe::transport
