// SPDX-License-Identifier: Apache-2.0
// Sends: the destinations of a message, its framing and queueing, and for an
// ack/sync send the aggregation of every destination's ack into one result
// (pending_send), which a blocking caller may read itself.
#include "channel_impl.hpp"

#include <troupe/transport/error.hpp>
#include <troupe/transport/io_thread.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <sched.h>

namespace troupe::engine {

namespace {

/// How long a blocking ack/sync send reads (or watches) for its acks before it
/// sleeps on its condition variable: a loopback round trip fits, and a caller
/// that reads its own acks saves the I/O thread's wake-up and the futex
/// wake-up of the caller after it (5-10 µs each on a small VM) on every lone
/// sync send.
constexpr auto spin_limit = std::chrono::microseconds(50);

/// Callers polling right now, process-wide: only one polls at a time, so that
/// many concurrent senders sleep instead of burning the CPUs their acks need.
std::atomic<int> spinning{0};

/// Makes the calling thread the poller if no other blocking ack/sync send is in
/// flight in this process; undone on destruction. Every such send counts for its
/// whole duration on purpose: overlapping senders are better served by sleeping
/// while the I/O thread reads their pipelined acks (16 callers: 127k sends/s,
/// p99 ~200 µs) than by taking turns at polling (104-119k, p99 270-470 µs).
class poller_slot {
public:
    explicit poller_slot(bool wanted)
        : held_(wanted && spinning.fetch_add(1, std::memory_order_relaxed) == 0), counted_(wanted) {}
    ~poller_slot() {
        if (counted_) {
            spinning.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    poller_slot(const poller_slot&) = delete;
    poller_slot& operator=(const poller_slot&) = delete;
    bool held() const noexcept { return held_; }

private:
    bool held_;
    bool counted_;
};

} // namespace

namespace detail {

/// One send waiting for its destinations: completes exactly once, either by
/// waking the blocked caller or by posting the async handler.
struct pending_send {
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t remaining = 0;
    std::atomic<bool> finished{false}; ///< remaining reached 0 (read without the mutex)
    std::vector<bool> done;
    send_result result;
    std::vector<member> members;
    send_handler handler; ///< async form only
    send_progress progress; ///< async form only, optional
    asio::io_context* io = nullptr;
    std::function<void(const send_result&)> on_sent;
    /// Streams whose acks the blocking caller reads itself (peer_sender direct
    /// reads), in the order of `members`.
    std::vector<std::shared_ptr<transport::peer_sender>> readers;

    void complete(std::size_t index, const error_code& ec, std::string_view detail) {
        std::unique_lock lock(mutex);
        if (done[index]) {
            return;
        }
        done[index] = true;
        if (ec) {
            result.failures.push_back(member_failure{members[index], ec, std::string(detail)});
        }
        const bool last = --remaining == 0;
        if (progress) {
            // Before the merged result: a caller hears of every member first.
            send_result one;
            one.destinations = 1;
            if (ec) {
                one.failures.push_back(result.failures.back());
            }
            const auto who = members[index];
            lock.unlock();
            progress(who, one);
            lock.lock();
        }
        if (last) {
            finished.store(true, std::memory_order_release);
            finish(lock);
        }
    }

    bool acked(std::size_t index) {
        std::lock_guard lock(mutex);
        return done[index];
    }

    /// The poller's wait: reads its acks from the streams in direct mode (an
    /// I/O thread reads the others) for up to spin_limit, yielding the CPU
    /// between looks; then hands reading back to the I/O threads.
    void poll_for_acks() {
        const auto until = std::chrono::steady_clock::now() + spin_limit;
        while (!finished.load(std::memory_order_acquire)) {
            // Yield first: the frames went out a moment ago, and on a busy CPU
            // the receivers run now instead of after a read that finds nothing.
            sched_yield();
            for (std::size_t i = 0; i < readers.size(); ++i) {
                if (!acked(i)) { // a read that finds nothing still costs a syscall
                    readers[i]->read_acks_here();
                }
            }
            if (finished.load(std::memory_order_acquire)) {
                return;
            }
            if (std::chrono::steady_clock::now() >= until) {
                for (const auto& r : readers) {
                    r->hand_reading_back();
                }
                return;
            }
        }
    }

    void finish(std::unique_lock<std::mutex>& lock) {
        if (handler) {
            auto h = std::move(handler);
            auto r = result;
            lock.unlock();
            if (on_sent) {
                on_sent(r);
            }
            asio::post(*io, [h = std::move(h), r = std::move(r)]() mutable { h(std::move(r)); });
        } else {
            // After the unlock: a caller woken while we still held the mutex
            // would only block on it again (two more context switches).
            lock.unlock();
            cv.notify_all();
        }
    }
};

} // namespace detail

using detail::pending_send;

std::shared_ptr<const channel::impl::target_list>
channel::impl::resolve(std::span<const member_id> to, send_result& result) const {
    auto all = std::atomic_load(&targets); // no lock on the per-send path
    if (to.empty()) {
        return all;
    }
    auto picked = std::make_shared<target_list>();
    auto& out = *picked;
    out.reserve(to.size());
    for (const auto& id : to) {
        auto it = std::find_if(all->begin(), all->end(), [&](const target& t) { return t.m.id == id; });
        if (it != all->end()) {
            out.push_back(*it);
            continue;
        }
        member m;
        m.id = id;
        {
            std::lock_guard lock(mutex);
            if (auto e = detector->table().find(id)) {
                m = e->m;
            }
        }
        const bool known = !m.name.empty();
        result.failures.push_back(member_failure{
            m, known ? transport::error::member_gone : transport::error::not_a_member,
            known ? "member is " + std::string(membership::to_string(m.state))
                  : "no member with id " + id.str()});
    }
    return picked;
}

std::shared_ptr<pending_send> channel::impl::dispatch(std::span<const member_id> to,
                                                      std::span<const std::byte> payload,
                                                      std::uint32_t options, std::string_view context,
                                                      send_handler handler, send_result& immediate,
                                                      bool caller_reads, send_progress progress) {
    if ((options & send_options::sync & ~send_options::ack) != 0) {
        options |= send_options::ack; // "processed" implies "received"
    }
    if (!running) {
        immediate.failures.push_back(member_failure{self, transport::error::stopped, "channel is not running"});
        return nullptr;
    }
    const auto dests_ptr = resolve(to, immediate);
    const auto& dests = *dests_ptr;
    immediate.destinations = dests.size() + immediate.failures.size();
    if (payload.size() > config.channel.max_message || context.size() > 255) {
        for (const auto& t : dests) {
            immediate.failures.push_back(member_failure{
                t.m, transport::error::message_too_large,
                context.size() > 255 ? "context name longer than 255 bytes"
                                     : std::to_string(payload.size()) + " bytes > channel.max_message"});
        }
        return nullptr;
    }
    if (dests.empty()) {
        return nullptr; // nobody to send to (no members, or none of those asked for)
    }
    outgoing_message om{context, payload, options, dests.size()};
    for (auto& layer : layers) {
        layer->on_send(om);
    }
    const auto id = next_id.fetch_add(1, std::memory_order_relaxed);
    const std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(payload.data()),
                                              payload.size()};
    if (!send_options::wants_ack(options)) {
        if (dests.size() == 1) {
            // Encoded straight into the member's own arena: one copy, one lock.
            if (auto ec = dests.front().sender->enqueue_data(id, options, context, bytes)) {
                immediate.failures.push_back(member_failure{dests.front().m, ec, ec.message()});
            }
            return nullptr;
        }
        // Encoded (copied) once for every member. Only sends to several
        // members share blocks: a block stays alive while any member's queue
        // holds a slice of it, so a stalled member pins the blocks of the
        // traffic it shares, not other members' private traffic.
        transport::frame_slice frame;
        {
            std::lock_guard lock(arena_mutex);
            frame = arena.append_data(id, options, context, bytes);
        }
        for (const auto& t : dests) {
            if (auto ec = t.sender->enqueue_shared(frame)) {
                immediate.failures.push_back(member_failure{t.m, ec, ec.message()});
            }
        }
        return nullptr;
    }
    auto frame = std::make_shared<transport::buffer>();
    transport::append_data(*frame, id, options, context, bytes);
    auto op = std::make_shared<pending_send>();
    op->remaining = dests.size();
    op->done.assign(dests.size(), false);
    op->result = immediate;
    op->io = &io;
    op->handler = std::move(handler);
    op->progress = std::move(progress);
    if (op->handler) {
        op->on_sent = [this, ctx = std::string(context), size = payload.size(), options,
                       n = dests.size()](const send_result& r) {
            outgoing_message m{ctx, {}, options, n};
            (void)size;
            for (auto& layer : layers) {
                layer->on_sent(m, r);
            }
        };
    }
    for (const auto& t : dests) {
        op->members.push_back(t.m);
        if (caller_reads) {
            op->readers.push_back(t.sender);
        }
    }
    for (std::size_t i = 0; i < dests.size(); ++i) {
        auto ec = dests[i].sender->enqueue(
            frame, id, [this, op, i, who = dests[i].m.id](const error_code& e, std::string_view detail) {
                op->complete(i, e, detail);
                if (e == transport::error::ack_timeout || e == transport::error::connection_lost) {
                    // A failed send is a suspicion: the detector verifies the member.
                    asio::post(events, [this, who, why = e.message()] { on_send_failed(who, why); });
                }
            },
            caller_reads);
        if (ec) {
            op->complete(i, ec, ec.message());
        }
    }
    return op;
}

send_result channel::send(std::span<const member_id> to, std::span<const std::byte> payload,
                          std::uint32_t options, std::string_view context) {
    auto& d = *impl_;
    send_result result;
    if (send_options::wants_ack(options) && transport::on_io_thread()) {
        // The thread that would read the ack is the one we would block.
        result.failures.push_back(member_failure{
            d.self, make_error_code(boost::system::errc::operation_would_block),
            "blocking send() with ack/sync called on a troupe I/O thread; use async_send()"});
        return result;
    }
    // One blocking caller at a time reads its own acks; the others sleep.
    const poller_slot poller(send_options::wants_ack(options));
    auto op = d.dispatch(to, payload, options, context, nullptr, result, poller.held());
    if (op) {
        if (poller.held()) {
            op->poll_for_acks();
            op->readers.clear(); // they hold the op through its ack handlers
        }
        std::unique_lock lock(op->mutex);
        // The transport fails every frame by ack_timeout; the extra margin only
        // guards against a bug leaving a caller blocked forever.
        const auto limit = d.config.sender.ack_timeout * 2 + std::chrono::seconds(1);
        if (!op->cv.wait_for(lock, limit, [&] { return op->remaining == 0; })) {
            for (std::size_t i = 0; i < op->done.size(); ++i) {
                if (!op->done[i]) {
                    op->done[i] = true;
                    op->result.failures.push_back(member_failure{op->members[i], transport::error::ack_timeout,
                                                                 "no completion from the transport"});
                }
            }
            op->remaining = 0;
        }
        result = op->result;
    }
    outgoing_message om{context, payload, options, result.destinations};
    for (auto& layer : d.layers) {
        layer->on_sent(om, result);
    }
    return result;
}

void channel::async_send(std::span<const member_id> to, std::span<const std::byte> payload,
                         std::uint32_t options, std::string_view context, send_handler handler) {
    async_send(to, payload, options, context, std::move(handler), nullptr);
}

void channel::async_send(std::span<const member_id> to, std::span<const std::byte> payload,
                         std::uint32_t options, std::string_view context, send_handler handler,
                         send_progress progress) {
    auto& d = *impl_;
    send_result result;
    auto op = d.dispatch(to, payload, options, context, handler, result, false, std::move(progress));
    if (!op) {
        outgoing_message om{context, payload, options, result.destinations};
        for (auto& layer : d.layers) {
            layer->on_sent(om, result);
        }
        if (handler) { // no wake-up of an I/O thread for nobody
            asio::post(d.io, [h = std::move(handler), r = std::move(result)]() mutable { h(std::move(r)); });
        }
    }
}

} // namespace troupe::engine
