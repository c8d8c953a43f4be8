// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace troupe::transport {

/// Outcomes of the wire protocol and of sends, category "troupe.transport".
enum class error {
    // Decoding: a frame that fails any of these closes its connection only.
    bad_magic = 1,       ///< not "TRUP"
    unsupported_version, ///< a frame version other than 1
    frame_too_large,     ///< body over the limit (max_handshake_body before the handshake)
    truncated,           ///< a body shorter than its fields
    unknown_type,        ///< not a frame_type
    malformed_body,      ///< trailing bytes or an impossible field
    // Handshake.
    handshake_failed,  ///< not the HELLO expected (wrong frame or role)
    wrong_cluster,     ///< the acceptor belongs to another cluster.name
    auth_failed,       ///< a missing or wrong HMAC proof (cluster.secret differs)
    no_common_version, ///< version ranges do not overlap (unused: a refusal is a BYE)
    self_connection,   ///< the endpoint is this very node (unused: a refusal is a BYE)
    handshake_timeout, ///< not done within sender.connect_timeout
    // Sends.
    ack_timeout,       ///< no ACK within sender.ack_timeout
    remote_failure, ///< the peer's listener threw (NACK)
    no_listener,    ///< the peer has no listener for the context (NACK)
    connection_lost,   ///< the connection broke after the frame was written
    queue_full,        ///< sender.queue_limit reached (after block_timeout under `block`)
    not_a_member,      ///< no member has that id
    member_gone,       ///< the member is gone or left
    stopped,           ///< the channel (or that stream) is stopping or not running
    message_too_large, ///< payload over channel.max_message, or context over 255 bytes
    peer_closed, ///< the peer said BYE
};

/// The "troupe.transport" category; one instance per process.
const boost::system::error_category& transport_category() noexcept;

/// Makes `error` values convert to boost::system::error_code (found by ADL).
inline boost::system::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), transport_category()};
}

} // namespace troupe::transport

/// Lets a transport::error compare with and assign to a boost::system::error_code.
template <>
struct boost::system::is_error_code_enum<troupe::transport::error> : std::true_type {};
