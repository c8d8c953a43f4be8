// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/engine/send_result.hpp>
#include <troupe/membership/member.hpp>

#include <cstdint>
#include <span>
#include <string_view>

namespace troupe::engine {

/// A message on its way down to the transport.
/// Views only: valid during the hook call.
struct outgoing_message {
    std::string_view context;           ///< the listener context it is addressed to
    std::span<const std::byte> payload; ///< empty in on_sent of an async ack/sync send
    std::uint32_t options = 0;          ///< send_options bits
    std::size_t destinations = 0;       ///< members it goes to
};

/// A message on its way up from the transport. Views only: valid during the call.
struct incoming_message {
    const membership::member& from;     ///< the sending member
    std::string_view context;           ///< the listener context it is addressed to
    std::span<const std::byte> payload; ///< the bytes as sent
    std::uint32_t options = 0;          ///< the sender's send_options bits
    std::uint64_t id = 0;               ///< message id, unique per sending node
};

/// One layer of the channel's stack. Sends pass the stack top to bottom, receives
/// bottom to top, in the order the interceptors were added. Hooks run on the
/// sending thread (down) or on the connection's I/O thread (up): keep them short.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: hooks may run concurrently from several
/// threads; implementations synchronise their own state (the stats interceptor uses
/// atomics). The channel adds layers only before start(); hooks must not throw.
class interceptor {
public:
    /// The channel holds its layers until it is destroyed.
    virtual ~interceptor() = default;
    /// A short name for the layer ("stats").
    virtual std::string_view name() const noexcept = 0;
    /// Before a message is queued, on the sending thread; only for a send that goes
    /// out (running, with destinations, within channel.max_message).
    virtual void on_send(const outgoing_message&) {}
    /// Once a send has its result: on the thread of send(), or of an async_send that
    /// ends at once; an async ack/sync send's on the thread completing its last
    /// destination. Not called for an async ack/sync send without a handler.
    virtual void on_sent(const outgoing_message&, const send_result&) {}
    /// @return false to swallow the message (it is then neither delivered nor
    /// counted as failed; a sync sender gets an ACK). Runs on the thread reading the
    /// connection, before the listener.
    virtual bool on_receive(const incoming_message&) { return true; }
    /// A member changed state; on the event strand, before the member listeners.
    virtual void on_member_event(const membership::member&, membership::member_state) {}
};

} // namespace troupe::engine
