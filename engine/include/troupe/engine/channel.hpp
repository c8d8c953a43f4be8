// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/engine/interceptor.hpp>
#include <troupe/engine/send_options.hpp>
#include <troupe/engine/send_result.hpp>
#include <troupe/membership/member.hpp>

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::engine {

/// A message delivered to a listener. `payload` is valid only during the call.
using received_message = incoming_message;

/// Throwing from a listener turns into a NACK for an `ack`/`sync` sender (carrying
/// the exception text) and a log line; it never stops the node.
using message_listener = std::function<void(const received_message&)>;

/// Thrown by a listener that refuses a message it has already counted and
/// logged itself (a malformed one): the sender hears a NACK with this text,
/// and the channel neither logs it nor counts it as a listener failure.
class message_refused : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Called on the channel's event strand, in one order, for every change of a
/// member's state (alive, suspect, gone, left).
using member_listener = std::function<void(const membership::member&)>;

using send_handler = std::function<void(send_result)>;

/// One destination's answer to an async_send, as it comes (`one` has
/// destinations 1 and its failure, if any), before the handler's merged result.
using send_progress = std::function<void(const membership::member& to, const send_result& one)>;

/// The node's handle on the group: members, sends and listeners.
///
/// Owns an io_context run by `receiver.threads` threads, the TCP receiver, one
/// ordered sender per member and the admin-independent statistics. start() binds
/// and connects; stop() says BYE to every peer, flushes queued messages for up to
/// `channel.stop_timeout`, then joins its threads. The destructor calls stop().
///
/// @par Thread safety
/// All member functions may be called from any thread, except that the blocking
/// send() must not be called from inside a listener or handler (an I/O thread).
class channel {
public:
    explicit channel(conf::cluster_config config);
    ~channel();
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;

    /// Binds the receiver (honouring auto_bind) and starts connecting to static members.
    /// @throws boost::system::system_error if no port could be bound.
    void start();

    /// Graceful and idempotent: BYE to peers, queued async messages flushed up to
    /// `channel.stop_timeout`, pending acks failed, threads joined.
    void stop();

    /// Registers the listener for a context (an application name). One per context;
    /// a second registration replaces the first.
    void add_listener(std::string context, message_listener listener);
    void remove_listener(const std::string& context);
    void add_member_listener(member_listener listener);
    /// Adds a layer below the ones already added. Only before start().
    void add_interceptor(std::shared_ptr<interceptor> layer);

    /// Sends to the given members (empty = every alive or suspect member). Blocks
    /// per the options: async until queued, ack until every destination validated
    /// the frame, sync until every destination's listener returned.
    [[nodiscard]] send_result send(std::span<const membership::member_id> to,
                                   std::span<const std::byte> payload,
                                   std::uint32_t options,
                                   std::string_view context);

    /// Sends to every alive or suspect member.
    [[nodiscard]] send_result send_all(std::span<const std::byte> payload,
                                       std::uint32_t options,
                                       std::string_view context) {
        return send({}, payload, options, context);
    }

    /// Non-blocking form. The handler runs exactly once, on an I/O thread, never
    /// inside this call. The payload is copied before async_send returns.
    void async_send(std::span<const membership::member_id> to,
                    std::span<const std::byte> payload,
                    std::uint32_t options,
                    std::string_view context,
                    send_handler handler);

    /// As above, and `progress` runs for each destination as its answer comes,
    /// on the I/O thread that read it (it must not block): a caller can act on
    /// the members that answered without waiting for the others' ack timeout.
    /// Destinations that fail at once (not members, too large) are reported in
    /// the handler's result only.
    void async_send(std::span<const membership::member_id> to,
                    std::span<const std::byte> payload,
                    std::uint32_t options,
                    std::string_view context,
                    send_handler handler,
                    send_progress progress);

    /// True once initial discovery has ended: every static member, and every
    /// member heard in the first two heartbeat periods, was dialled once
    /// (reached or not), or `sender.connect_timeout` plus half a second more
    /// passed. Before that, an empty members() may only mean "not heard yet".
    /// False before start().
    bool discovered() const;
    /// Runs `handler` once, on the strand of the member events and after the
    /// events of the members discovery found, when discovered() turns true;
    /// posted at once if it already is. Never runs if the channel stops first.
    void on_discovered(std::function<void()> handler);

    const membership::member& self() const noexcept;
    /// Other members that are alive or suspect (sendable).
    std::vector<membership::member> members() const;
    /// Every member this node knows, gone and left included, self first.
    std::vector<membership::member> all_members() const;

    std::uint16_t port() const noexcept;
    const conf::cluster_config& config() const noexcept;
    boost::asio::io_context& io_context() noexcept;

    /// JSON for the admin endpoint: GET /members.
    std::string members_json() const;
    /// JSON for the admin endpoint: GET /stats.
    std::string stats_json() const;
    /// Prometheus text exposition: GET /metrics.
    std::string metrics_text() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace troupe::engine
