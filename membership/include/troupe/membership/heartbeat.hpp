// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/member.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::membership {

/// The multicast heartbeat datagram, v1. Big-endian, one datagram under 1,400 bytes:
///
///     magic "TRHB" | version u8 | flags u8 (1 leaving, 2 signed) | proto_min u8 | proto_max u8
///     | cluster_len u8 | cluster | member id 16 | incarnation u64 | alive_ms u64
///     | port u16 | host_len u8 | host | node_len u8 | node
///     | payload count u8 | (key_len u8 | key | value_len u8 | value)*
///     | [HMAC-SHA256 over everything before it, 32 bytes, when signed]
///
/// @par Thread safety
/// A plain value: distinct objects: safe. Shared objects: const access safe.
struct heartbeat {
    std::uint8_t proto_min = 1;    ///< oldest wire protocol version the sender speaks
    std::uint8_t proto_max = 1;    ///< newest wire protocol version the sender speaks
    bool leaving = false;          ///< the sender stops: drop it now, not after drop_time
    std::string cluster;           ///< cluster.name; others' heartbeats are ignored
    member_id id;                  ///< the sender's member id
    std::uint64_t incarnation = 0; ///< the sender's start time, ms since the epoch
    std::uint64_t alive_ms = 0; ///< the sender's uptime: no wall clocks compared
    std::string host;           ///< TCP endpoint of its receiver
    std::uint16_t port = 0;     ///< TCP port of its receiver
    std::string node;           ///< cluster.node: its name
    std::vector<std::pair<std::string, std::string>> payload; ///< membership.payload, in order
};

/// The largest datagram encoded or accepted, in bytes.
inline constexpr std::size_t max_heartbeat_size = 1400;

/// Why a datagram was not accepted as a heartbeat; also the keys of the
/// `heartbeats_rejected` counters.
enum class heartbeat_error {
    none = 0,            ///< accepted
    too_large,           ///< over max_heartbeat_size
    bad_magic,           ///< not "TRHB"
    unsupported_version, ///< a version other than 1
    truncated,           ///< ends before its fields do
    malformed,           ///< unknown flags, trailing bytes, or an impossible field
    unsigned_heartbeat, ///< the cluster has a secret and this one carries no tag
    bad_signature,        ///< the tag does not match: another secret, or forged
    signed_but_no_secret, ///< signed, but this cluster has no secret
};

/// The counter key: the enumerator's name, except "unsigned" for unsigned_heartbeat.
std::string_view to_string(heartbeat_error e) noexcept;

/// Encodes; signs with HMAC-SHA256 when `secret` is not empty.
/// @throws std::length_error when the result would exceed max_heartbeat_size, a
/// string field exceeds 255 bytes or the payload 255 entries.
/// @throws std::runtime_error if OpenSSL fails to sign.
std::vector<std::uint8_t> encode_heartbeat(const heartbeat& hb, std::string_view secret);

/// Decodes and, when `secret` is set, checks the tag before trusting anything.
/// Never reads past `data`; never allocates more than the datagram holds.
/// @return heartbeat_error::none on success; `out` is partly overwritten otherwise.
/// @throws std::runtime_error if OpenSSL fails to compute the tag.
heartbeat_error decode_heartbeat(std::span<const std::uint8_t> data, std::string_view secret,
                                 heartbeat& out);

} // namespace troupe::membership
