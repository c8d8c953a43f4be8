// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/member.hpp>
#include <troupe/transport/peer_sender.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace troupe::transport {

/// Outcome of a probe: alive, or why not.
using probe_handler = std::function<void(bool alive, const std::string& reason)>;

/// Verifies a suspected member over a fresh TCP connection: connect, HELLO (and
/// AUTH with a secret), then a PING that must be answered with a PONG, all within
/// `timeout`. A frozen process whose kernel still accepts the connection fails at
/// HELLO or PING; a new incarnation at the same endpoint (another member id)
/// counts as "not that member". The handler runs exactly once, on an I/O thread,
/// never inside this call; the probe says BYE("probe") and closes either way.
void async_probe(boost::asio::io_context& io, const local_identity& self, const std::string& host,
                 std::uint16_t port, const membership::member_id& expected,
                 std::chrono::milliseconds timeout, probe_handler handler);

} // namespace troupe::transport
