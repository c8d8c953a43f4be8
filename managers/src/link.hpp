// SPDX-License-Identifier: Apache-2.0
#pragma once

// What a replicating manager needs from the group: its own member, the other
// members, sends, and delivery of its context's messages and member events.
// The channel provides it in production (make_channel_link); unit tests use an
// in-memory bus with loss and reordering.

#include <troupe/engine/channel.hpp>
#include <troupe/engine/send_result.hpp>
#include <troupe/membership/member.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace troupe::managers::detail {

struct link_events {
    /// One message of the context; `payload` is valid during the call only.
    std::function<void(const membership::member& from, std::span<const std::uint8_t> payload)> message;
    std::function<void(const membership::member&)> member_changed;
    /// Once, when discovered() turns true (after the found members' events).
    std::function<void()> discovered;
};

class link {
public:
    using done_handler = std::function<void(engine::send_result)>;
    /// One member's answer to a send_each (destinations 1, its failure if any).
    using progress_handler = std::function<void(const membership::member_id&, const engine::send_result&)>;

    virtual ~link() = default;
    virtual membership::member self() const = 0;
    /// Other members that are alive or suspect.
    virtual std::vector<membership::member> members() const = 0;
    /// False while initial discovery runs: no member may mean "not heard yet".
    virtual bool discovered() const = 0;
    /// Starts delivering events. Calls may come from several threads at once.
    virtual void attach(link_events events) = 0;
    /// Stops delivering: when it returns, no event call is running or will run.
    virtual void detach() = 0;
    /// Sends to `to` (empty: every member). Never blocks for acks: `done` (may
    /// be empty) runs with what the send achieved, even after detach(), so it
    /// must only touch state it co-owns. With ack/sync options it runs later on
    /// another thread; with async it may run before send() returns (all there
    /// is to report is the enqueue), so it must not take a lock the caller holds.
    /// Messages to one member leave in the order of these calls.
    virtual void send(std::vector<membership::member_id> to, std::vector<std::uint8_t> payload,
                      std::uint32_t options, done_handler done) = 0;
    /// An ack/sync send to `to` (empty: every member) that reports each
    /// member's answer as it comes (`progress`, which may run before this
    /// returns), then the merged result (`done`, never inside this call).
    virtual void send_each(std::vector<membership::member_id> to, std::vector<std::uint8_t> payload,
                           std::uint32_t options, progress_handler progress, done_handler done) = 0;
    /// True on a thread that must not block waiting for a send (an I/O thread).
    virtual bool on_io_thread() const = 0;
    /// How long a waiter may wait for a `done` at most (the transport fails
    /// every ack by its timeout; this only guards against one never coming).
    virtual std::chrono::milliseconds wait_limit() const = 0;
    /// Largest payload a send accepts.
    virtual std::size_t max_message() const = 0;
};

/// The production link: `context` on `channel`.
std::unique_ptr<link> make_channel_link(engine::channel& channel, std::string context);

} // namespace troupe::managers::detail
