// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/error.hpp>

#include <string>

namespace troupe::transport {
namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "troupe.transport"; }

    std::string message(int value) const override {
        switch (static_cast<error>(value)) {
        case error::bad_magic: return "bad magic";
        case error::unsupported_version: return "unsupported frame version";
        case error::frame_too_large: return "frame too large";
        case error::truncated: return "truncated frame";
        case error::unknown_type: return "unknown frame type";
        case error::malformed_body: return "malformed frame body";
        case error::handshake_failed: return "handshake failed";
        case error::wrong_cluster: return "wrong cluster name";
        case error::auth_failed: return "authentication failed";
        case error::no_common_version: return "no common protocol version";
        case error::self_connection: return "connected to itself";
        case error::handshake_timeout: return "handshake timed out";
        case error::ack_timeout: return "ack timeout";
        case error::remote_failure: return "remote listener failed";
        case error::no_listener: return "no listener for the context";
        case error::connection_lost: return "connection lost before the ack";
        case error::queue_full: return "send queue full";
        case error::not_a_member: return "not a member";
        case error::member_gone: return "member gone";
        case error::stopped: return "channel stopped";
        case error::message_too_large: return "message larger than channel.max_message";
        case error::peer_closed: return "peer closed the connection";
        }
        return "unknown troupe.transport error " + std::to_string(value);
    }
};

} // namespace

const boost::system::error_category& transport_category() noexcept {
    static const category instance;
    return instance;
}

} // namespace troupe::transport
