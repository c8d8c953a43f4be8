// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/member.hpp>
#include <troupe/transport/frame.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::transport {

/// The oldest wire protocol version this build speaks.
inline constexpr std::uint8_t protocol_min = 1;
/// The newest wire protocol version this build speaks.
inline constexpr std::uint8_t protocol_max = 1;

/// A handshake challenge: 16 fresh random bytes per HELLO.
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
///
/// Only the nonces, the two ids and the cluster name are under the MAC.
///
/// @par Thread safety
/// A plain value: distinct objects: safe. Shared objects: const access safe. The
/// functions below keep no shared state: safe from any thread.
struct hello {
    std::uint8_t proto_min = protocol_min; ///< oldest version the sender speaks
    std::uint8_t proto_max = protocol_max; ///< newest version the sender speaks
    std::uint8_t role = 0; ///< 0 = connector, 1 = acceptor
    membership::member_id id;      ///< the sender's member id
    std::uint64_t incarnation = 0; ///< the sender's start time, ms since the epoch
    std::uint16_t port = 0; ///< the sender's receiver port
    std::string cluster;    ///< the sender's cluster.name
    std::string node;       ///< the sender's cluster.node
    std::string host; ///< the sender's receiver address
    nonce challenge{};      ///< this side's fresh nonce
    bool has_mac = false;   ///< `proof` is present (acceptor with a secret)
    mac proof{};            ///< the sender's proof (the acceptor's mac_s)
};

/// Appends a HELLO frame; names over 255 bytes are cut.
void append_hello(buffer& out, const hello& h);
/// Parses a HELLO body. Checks the layout only (role, version order, mac length):
/// cluster, versions and proof are the caller's to judge.
/// @return error::truncated, error::malformed_body, or success.
boost::system::error_code parse_hello(std::span<const std::uint8_t> body, hello& out);

/// Appends an AUTH frame carrying the connector's proof.
void append_auth(buffer& out, const mac& proof);
/// Parses an AUTH body (exactly 32 bytes).
/// @return error::truncated, error::malformed_body (longer), or success.
boost::system::error_code parse_auth(std::span<const std::uint8_t> body, mac& out) noexcept;

/// The acceptor's proof (`acceptor` = true) or the connector's.
/// @throws std::runtime_error if OpenSSL fails.
mac handshake_mac(std::string_view secret, bool acceptor, const hello& connector_hello,
                  const hello& acceptor_hello);

/// Constant-time comparison.
bool mac_equal(const mac& a, const mac& b) noexcept;

/// A fresh challenge from OpenSSL's CSPRNG.
/// @throws std::runtime_error if OpenSSL cannot supply the bytes.
nonce random_nonce();

/// HMAC-SHA256 (OpenSSL).
/// @throws std::runtime_error if OpenSSL fails.
mac hmac_sha256(std::string_view key, std::span<const std::uint8_t> data);

} // namespace troupe::transport
