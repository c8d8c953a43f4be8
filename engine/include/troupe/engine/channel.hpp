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
/// the exception text) and a log line; it never stops the node. Runs on the thread
/// reading the connection (its reader thread or an I/O thread); one member's
/// messages arrive in the order sent, one at a time.
using message_listener = std::function<void(const received_message&)>;

/// Thrown by a listener that refuses a message it has already counted and
/// logged itself (a malformed one): the sender hears a NACK with this text,
/// and the channel neither logs it nor counts it as a listener failure.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: const members safe.
class message_refused : public std::runtime_error {
public:
    /// The text is what the sender's NACK carries.
    using std::runtime_error::runtime_error;
};

/// Called on the channel's event strand, in one order, for every change of a
/// member's state (alive, suspect, gone, left). A std::exception it throws is
/// logged and dropped.
using member_listener = std::function<void(const membership::member&)>;

/// Completion of async_send: the merged result of every destination.
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
/// Distinct objects: safe. Shared objects: every member function may be called
/// from any thread, with these exceptions. A blocking send() with `ack`/`sync` on
/// an I/O or reader thread (inside a listener or handler) is refused with
/// `boost::system::errc::operation_would_block`, not deadlocked: use async_send()
/// there. add_interceptor() only before start(). stop() and the destructor join the
/// I/O threads, so never call them from one. start() once, from one thread.
/// Callbacks: message listeners run on reader or I/O threads; member listeners and
/// on_discovered handlers on the event strand; send handlers on I/O threads.
class channel {
public:
    /// Takes the config as given: validate it first (conf::validate, or a loader),
    /// nothing here checks it. Draws this node's member id; nothing runs until start().
    /// @throws std::runtime_error if no random member id can be drawn.
    explicit channel(conf::cluster_config config);
    /// Calls stop().
    ~channel();
    /// Not copyable: it owns threads and sockets.
    channel(const channel&) = delete;
    /// Not assignable.
    channel& operator=(const channel&) = delete;

    /// Binds the receiver (honouring auto_bind) and starts connecting to static members.
    /// @throws boost::system::system_error if no port could be bound, or the multicast
    /// socket cannot be set up.
    /// @throws std::logic_error when called twice or after stop(): a channel runs once.
    void start();

    /// Graceful and idempotent: BYE to peers, queued async messages flushed up to
    /// `channel.stop_timeout`, pending acks failed, threads joined. Blocks until then:
    /// the I/O threads get 2 s to run out of work before the io_context is stopped.
    /// Not from an I/O thread (it would join itself).
    void stop();

    /// Registers the listener for a context (an application name). One per context;
    /// a second registration replaces the first.
    void add_listener(std::string context, message_listener listener);
    /// Messages for `context` then find no listener (a `no_listener` NACK to `ack`/`sync`
    /// senders). A call already delivering may still be running when this returns.
    void remove_listener(const std::string& context);
    /// Adds a listener for member events (there is no removal); it hears the events
    /// from then on, on the event strand (see member_listener).
    void add_member_listener(member_listener listener);
    /// Adds a layer below the ones already added. Only before start().
    /// @throws std::logic_error after start().
    void add_interceptor(std::shared_ptr<interceptor> layer);

    /// Sends to the given members (empty = every alive or suspect member). Blocks
    /// per the options: async until queued, ack until every destination validated
    /// the frame, sync until every destination's listener returned. Failures are
    /// `transport::error` codes (category "troupe.transport"), one per member; an
    /// `ack`/`sync` send on an I/O thread fails at once with
    /// `boost::system::errc::operation_would_block` (generic category). Under the
    /// `block` queue policy it may also wait up to `sender.block_timeout` per full queue.
    /// Never throws for a delivery problem.
    [[nodiscard]] send_result send(std::span<const membership::member_id> to,
                                   std::span<const std::byte> payload,
                                   std::uint32_t options,
                                   std::string_view context);

    /// Sends to every alive or suspect member; as send({}, ...).
    [[nodiscard]] send_result send_all(std::span<const std::byte> payload,
                                       std::uint32_t options,
                                       std::string_view context) {
        return send({}, payload, options, context);
    }

    /// Non-blocking form. The handler runs exactly once, on an I/O thread, never
    /// inside this call. The payload is copied before async_send returns. Under the
    /// `block` queue policy, off an I/O thread, a full queue still waits up to
    /// `sender.block_timeout` here. Before start() the handler waits for start();
    /// after stop() no I/O thread runs, so it never runs (it is destroyed unrun).
    void async_send(std::span<const membership::member_id> to,
                    std::span<const std::byte> payload,
                    std::uint32_t options,
                    std::string_view context,
                    send_handler handler);

    /// As above, and `progress` runs for each destination as its answer comes,
    /// on the I/O thread that read it (it must not block): a caller can act on
    /// the members that answered without waiting for the others' ack timeout.
    /// Destinations that fail at once (not members, too large) are reported in
    /// the handler's result only. A full or stopped stream found while queueing
    /// also goes to `progress`, inside this call, on the calling thread.
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

    /// This node as a member. Its port is set by start(): read it after start() returns.
    const membership::member& self() const noexcept;
    /// Other members that are alive or suspect (sendable).
    std::vector<membership::member> members() const;
    /// Every member this node knows, gone and left included, self first.
    std::vector<membership::member> all_members() const;

    /// The receiver's bound port (auto_bind may move it off receiver.port); 0 before start().
    std::uint16_t port() const noexcept;
    /// The config as given to the constructor.
    const conf::cluster_config& config() const noexcept;
    /// The channel's io_context, run by its I/O threads between start() and stop(): for
    /// the embedder's own handlers (the admin_server). Keep them short and non-blocking.
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
