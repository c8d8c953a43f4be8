// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/engine/send_result.hpp>
#include <troupe/membership/member.hpp>

#include <cstdint>
#include <span>
#include <string_view>

namespace troupe::engine {

/// A message on its way down to the transport.
struct outgoing_message {
    std::string_view context;
    std::span<const std::byte> payload;
    std::uint32_t options = 0;
    std::size_t destinations = 0;
};

/// A message on its way up from the transport.
struct incoming_message {
    const membership::member& from;
    std::string_view context;
    std::span<const std::byte> payload;
    std::uint32_t options = 0;
    std::uint64_t id = 0;
};

/// One layer of the channel's stack. Sends pass the stack top to bottom, receives
/// bottom to top, in the order the interceptors were added. Hooks run on the
/// sending thread (down) or on the connection's I/O thread (up): keep them short.
///
/// @par Thread safety
/// Hooks may run concurrently from several threads; implementations synchronise
/// their own state (the stats interceptor uses atomics).
class interceptor {
public:
    virtual ~interceptor() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual void on_send(const outgoing_message&) {}
    virtual void on_sent(const outgoing_message&, const send_result&) {}
    /// @return false to swallow the message (it is then neither delivered nor
    /// counted as failed; a sync sender gets an ACK).
    virtual bool on_receive(const incoming_message&) { return true; }
    virtual void on_member_event(const membership::member&, membership::member_state) {}
};

} // namespace troupe::engine
