// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace troupe::transport {

/// Outcomes of the wire protocol and of sends, category "troupe.transport".
enum class error {
    // Decoding: a frame that fails any of these closes its connection only.
    bad_magic = 1,
    unsupported_version,
    frame_too_large,
    truncated,
    unknown_type,
    malformed_body,
    // Handshake.
    handshake_failed,
    wrong_cluster,
    auth_failed,
    no_common_version,
    self_connection,
    handshake_timeout,
    // Sends.
    ack_timeout,
    remote_failure, ///< the peer's listener threw (NACK)
    no_listener,    ///< the peer has no listener for the context (NACK)
    connection_lost,
    queue_full,
    not_a_member,
    member_gone,
    stopped,
    message_too_large,
    peer_closed, ///< the peer said BYE
};

const boost::system::error_category& transport_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), transport_category()};
}

} // namespace troupe::transport

template <>
struct boost::system::is_error_code_enum<troupe::transport::error> : std::true_type {};
