// SPDX-License-Identifier: Apache-2.0
// The ordered stream to one member: queueing, the writer, acks and their
// timeouts, keep-alive, reconnects and stopping. The HELLO exchange is in
// peer_sender_handshake.cpp, a caller reading its own acks in
// peer_sender_direct_reads.cpp.
#include <troupe/transport/io_thread.hpp>
#include <troupe/transport/peer_sender.hpp>

#include "log.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace troupe::transport {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// One gathered write: enough frames to amortise the syscall, few enough that
// one slow write does not hold back acks for long.
constexpr std::size_t max_frames_per_write = 64;
constexpr std::size_t max_bytes_per_write = 4 << 20;
constexpr auto tick_period = std::chrono::milliseconds(100);
// Lingering ends early once this much is queued: a write this big gains nothing more.
constexpr std::size_t linger_cutoff = 64 * 1024;

} // namespace

peer_sender::peer_sender(asio::io_context& io, const conf::sender_section& settings,
                         std::uint64_t max_message, std::chrono::milliseconds ping_interval,
                         local_identity self, std::string host, std::uint16_t port, callbacks cb)
    : io_(io)
    , strand_(asio::make_strand(io))
    , settings_(settings)
    , max_message_(max_message)
    , ping_interval_(ping_interval)
    , self_(std::move(self))
    , host_(std::move(host))
    , port_(port)
    , cb_(std::move(cb))
    , resolver_(strand_)
    , socket_(strand_)
    , connect_timer_(strand_)
    , tick_timer_(strand_)
    , reconnect_timer_(strand_)
    , linger_timer_(strand_) {
    rbuf_.resize(64 * 1024);
}

peer_sender::~peer_sender() {
    if (direct_fd_ >= 0) {
        ::close(direct_fd_); // stopped while in direct mode, with the io_context already gone
    }
}

void peer_sender::start() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->do_connect(); });
}

bool peer_sender::connected() const {
    std::lock_guard lock(mutex_);
    return connected_;
}

std::size_t peer_sender::queued_bytes() const {
    std::lock_guard lock(mutex_);
    return queued_bytes_;
}

error_code peer_sender::make_room_locked(std::unique_lock<std::mutex>& lock, std::size_t size) {
    if (stopped_ || closing_) {
        return error::stopped;
    }
    if (queued_bytes_ + size > settings_.queue_limit && queued_bytes_ > 0) {
        // Blocking an I/O thread would stall the very writer that frees room.
        if (settings_.on_queue_full == conf::queue_full_policy::fail || on_io_thread()) {
            stats_.queue_full.fetch_add(1, std::memory_order_relaxed);
            return error::queue_full;
        }
        const bool room = space_cv_.wait_for(lock, settings_.block_timeout, [&] {
            return stopped_ || closing_ || queued_bytes_ + size <= settings_.queue_limit ||
                   queued_bytes_ == 0;
        });
        if (stopped_ || closing_) {
            return error::stopped;
        }
        if (!room) {
            stats_.queue_full.fetch_add(1, std::memory_order_relaxed);
            return error::queue_full;
        }
    }
    return {};
}

void peer_sender::queue_run_locked(const frame_slice& run) {
    queued_bytes_ += run.size;
    auto* tail = queue_.empty() ? nullptr : &queue_.back();
    if (tail != nullptr && !tail->on_ack && tail->frame == run.block && tail->data + tail->size == run.data) {
        tail->size += run.size;
        ++tail->frames;
    } else {
        queue_.emplace_back(run);
    }
    kick_writer_locked(queued_bytes_ >= linger_cutoff);
}

std::deque<peer_sender::entry>::iterator peer_sender::first_unwritten_locked() {
    // A front frame partly written by a direct write must be finished by the
    // writer: removing it would leave half a frame on the stream.
    return queue_.begin() + (front_offset_ > 0 ? 1 : 0);
}

error_code peer_sender::enqueue_data(std::uint64_t id, std::uint32_t options, std::string_view context,
                                     std::span<const std::uint8_t> payload) {
    const std::size_t size = header_size + 8 + 4 + 1 + std::min<std::size_t>(context.size(), 255) + payload.size();
    std::unique_lock lock(mutex_);
    if (auto ec = make_room_locked(lock, size)) {
        return ec;
    }
    queue_run_locked(arena_.append_data(id, options, context, payload));
    return {};
}

error_code peer_sender::enqueue_shared(const frame_slice& frames) {
    std::unique_lock lock(mutex_);
    if (auto ec = make_room_locked(lock, frames.size)) {
        return ec;
    }
    queue_run_locked(frames);
    return {};
}

error_code peer_sender::enqueue(frame_ptr frame, std::uint64_t id, ack_handler on_ack, bool caller_reads) {
    const std::size_t size = frame->size();
    std::unique_lock lock(mutex_);
    if (auto ec = make_room_locked(lock, size)) {
        return ec;
    }
    // Nobody but the I/O thread will read this ack: a direct stream hands the
    // socket back (after the unlock).
    bool hand_back = false;
    if (on_ack) {
        direct_wanted_ = caller_reads;
        hand_back = !caller_reads && claim_hand_back_locked();
    }
    const auto post_hand_back = [&] {
        if (hand_back) {
            post_leave_direct();
        }
    };
    // The tick times out unanswered frames; while it runs (it does for as long
    // as the stream is up) there is no need to wake the I/O thread for it.
    const bool needs_tick = on_ack && !ticking_;
    if (needs_tick) {
        ticking_ = true;
    }
    const auto now = clock::now();
    // Lingering means the last write completed and nothing is queued: idle too.
    // Only a lone waiter writes itself: while other acks are outstanding, sends
    // come in parallel and coalesce better in the writer's gathered writes.
    if (on_ack && connected_ && (!writing_ || lingering_) && queue_.empty() && awaiting_.empty() &&
        fd_ >= 0) {
        // An ack/sync sender waits for this frame, and the stream is idle: write
        // from this thread instead of waking an I/O thread (one cross-thread
        // wake-up less per lone sync send). Async frames take the queue, where
        // they coalesce into fewer, larger writes.
        // Holding mutex_ keeps fd_ open: fail_connection() clears it under the
        // lock before closing the socket.
        if (on_ack) {
            awaiting_.push_back(entry{frame, id, std::move(on_ack), now});
        }
        const ssize_t n = ::send(fd_, frame->data(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(size)) {
            stats_.frames_out.fetch_add(1, std::memory_order_relaxed);
            stats_.bytes_out.fetch_add(size, std::memory_order_relaxed);
            stats_.writes.fetch_add(1, std::memory_order_relaxed);
            last_write_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
            lock.unlock();
            if (needs_tick) {
                asio::post(strand_, [self = shared_from_this()] { self->arm_tick(); });
            }
            post_hand_back();
            return {};
        }
        // Partly written, or the socket is full or broken: the writer finishes
        // it (or the read side finds the break).
        ack_handler moved;
        if (!awaiting_.empty() && awaiting_.back().id == id && awaiting_.back().frame == frame) {
            moved = std::move(awaiting_.back().on_ack);
            awaiting_.pop_back();
        }
        front_offset_ = n > 0 ? static_cast<std::size_t>(n) : 0;
        queued_bytes_ += size - front_offset_;
        queue_.push_back(entry{std::move(frame), id, std::move(moved), now});
    } else {
        queued_bytes_ += size;
        queue_.push_back(entry{std::move(frame), id, std::move(on_ack), now});
    }
    kick_writer_locked();
    lock.unlock();
    if (needs_tick) {
        asio::post(strand_, [self = shared_from_this()] { self->arm_tick(); });
    }
    post_hand_back();
    return {};
}

void peer_sender::kick_writer_locked(bool urgent) {
    if (lingering_ && urgent && connected_ && !queue_.empty()) {
        lingering_ = false; // the linger timer's handler does nothing now
        ++linger_generation_;
        asio::post(strand_, [self = shared_from_this()] { self->do_write(); });
        return;
    }
    if (!writing_ && connected_ && !queue_.empty()) {
        writing_ = true;
        asio::post(strand_, [self = shared_from_this()] { self->do_write(); });
    }
}

void peer_sender::linger(std::uint64_t generation) {
    linger_timer_.expires_after(std::chrono::microseconds(settings_.linger_us));
    linger_timer_.async_wait([self = shared_from_this(), generation](const error_code& ec) {
        if (ec) {
            return; // stopped
        }
        {
            std::lock_guard lock(self->mutex_);
            if (!self->lingering_ || generation != self->linger_generation_) {
                return; // cut short by an urgent frame, or the connection broke
            }
            self->lingering_ = false;
            if (self->queue_.empty() || !self->connected_) {
                self->writing_ = false;
                self->drained_cv_.notify_all();
                return;
            }
        }
        self->do_write();
    });
}

void peer_sender::do_connect() {
    {
        std::lock_guard lock(mutex_);
        if (stopped_) {
            return;
        }
    }
    ++generation_;
    handshaken_ = false;
    attempting_ = true;
    rlen_ = 0;
    resolver_.async_resolve(host_, std::to_string(port_),
                            [self = shared_from_this(), gen = generation_](
                                const error_code& ec, asio::ip::tcp::resolver::results_type r) {
                                if (gen == self->generation_) {
                                    self->on_resolved(ec, std::move(r));
                                }
                            });
    // One deadline covers resolve, connect and HELLO: a frozen peer whose kernel
    // still accepts connections never answers HELLO, and is caught here.
    connect_timer_.expires_after(settings_.connect_timeout);
    connect_timer_.async_wait([self = shared_from_this(), gen = generation_](const error_code& ec) {
        if (!ec && gen == self->generation_ && !self->handshaken_) {
            self->fail_connection(error::handshake_timeout, "no connection and HELLO within " +
                                  std::to_string(self->settings_.connect_timeout.count()) + "ms");
        }
    });
}

void peer_sender::on_resolved(const error_code& ec, asio::ip::tcp::resolver::results_type results) {
    if (ec) {
        fail_connection(ec, "cannot resolve " + host_ + ": " + ec.message());
        return;
    }
    asio::async_connect(socket_, results,
                        [self = shared_from_this(), gen = generation_](
                            const error_code& cec, const asio::ip::tcp::endpoint&) {
                            if (gen == self->generation_) {
                                self->on_connected(cec);
                            }
                        });
}

void peer_sender::do_read() {
    if (rlen_ == rbuf_.size()) {
        rbuf_.resize(rbuf_.size() * 2);
    }
    socket_.async_read_some(asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                            [self = shared_from_this(), gen = generation_,
                             rgen = read_gen_](const error_code& ec, std::size_t n) {
                                if (gen == self->generation_ && rgen == self->read_gen_) {
                                    self->on_read(ec, n);
                                }
                            });
}

void peer_sender::on_read(const error_code& ec, std::size_t n) {
    if (ec) {
        fail_connection(ec, ec == asio::error::eof ? "peer closed the connection" : ec.message());
        return;
    }
    rlen_ += n;
    if (n > 0) {
        last_read_ = clock::now(); // not for leave_direct()'s parse of what is already here
    }
    std::size_t pos = 0;
    // Only acks, pongs and BYE come back on this connection: small frames.
    const std::uint32_t limit = handshaken_ ? 64 * 1024 : max_handshake_body;
    while (pos < rlen_) {
        frame_view f;
        const auto r = decode_frame({rbuf_.data() + pos, rlen_ - pos}, limit, f);
        if (r.what == decode_result::kind::need_more) {
            break;
        }
        if (r.what == decode_result::kind::bad) {
            log()->warn("connection to {}: bad frame from peer: {}; closing it", endpoint(),
                        r.ec.message());
            fail_connection(r.ec, "bad frame: " + r.ec.message());
            return;
        }
        const auto gen = generation_;
        if (!handle_frame(f) || gen != generation_) {
            return; // the connection was failed inside
        }
        pos += r.consumed;
    }
    if (pos > 0) {
        std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
        rlen_ -= pos;
    }
    // Only after a real read: leave_direct() calls this with n == 0 to parse what
    // a caller left, and whatever made it leave must be read first.
    if (n > 0 && maybe_enter_direct()) {
        return;
    }
    do_read();
}

bool peer_sender::handle_frame(const frame_view& f) {
    if (f.type == frame_type::bye) {
        std::string_view reason;
        if (parse_bye(f.body, reason)) {
            reason = "(unreadable reason)";
        }
        std::string why(reason);
        if (!handshaken_) {
            log()->warn("{} refused our HELLO: {}", endpoint(), why);
            stats_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
            if (why == "self") {
                // We dialled our own receiver (a static list shared by every node).
                std::lock_guard lock(mutex_);
                stopped_ = true;
            }
        }
        if (handshaken_ && cb_.bye) {
            cb_.bye(why);
        }
        if (why == "self" && cb_.self) {
            cb_.self();
        }
        fail_connection(error::peer_closed, "peer said BYE: " + why);
        return false;
    }
    if (!handshaken_) {
        if (f.type != frame_type::hello) {
            fail_connection(error::handshake_failed,
                            std::string("expected HELLO, got ") + std::string(to_string(f.type)));
            return false;
        }
        return handle_hello(f);
    }
    switch (f.type) {
    case frame_type::ack:
    case frame_type::nack: {
        ack_view a;
        if (const auto ec = parse_ack(f.body, a)) {
            log()->warn("connection to {}: malformed {}: {}; closing it", endpoint(),
                        to_string(f.type), ec.message());
            fail_connection(ec, "malformed ack");
            return false;
        }
        entry done;
        if (take_awaiting(a.id, done)) {
            finish_ack(done, a.status, a.reason);
        } // else it timed out already: the sender was told
        return true;
    }
    case frame_type::pong:
        ping_outstanding_ = false;
        return true;
    default:
        log()->warn("connection to {}: unexpected {} frame; closing it", endpoint(),
                    to_string(f.type));
        fail_connection(error::malformed_body, "unexpected frame");
        return false;
    }
}

void peer_sender::do_write() {
    if (direct_) {
        leave_direct(); // the writer needs the reactor (EPOLLOUT)
    }
    std::vector<entry> failed_now;
    {
        std::lock_guard lock(mutex_);
        if (!connected_ || queue_.empty()) {
            writing_ = false;
            if (queue_.empty()) {
                drained_cv_.notify_all();
            }
            return;
        }
        writing_frames_.clear();
        write_bufs_.clear();
        writing_bytes_ = 0;
        writing_async_ = 0;
        writing_count_ = 0;
        while (!queue_.empty() && writing_frames_.size() < max_frames_per_write &&
               (writing_bytes_ == 0 || writing_bytes_ + queue_.front().size <= max_bytes_per_write)) {
            entry e = std::move(queue_.front());
            queue_.pop_front();
            // Written already by a direct write (only ever the front entry's own bytes:
            // every path that removes a partly written front resets it).
            const std::size_t skip = std::min(front_offset_, e.size);
            front_offset_ = 0;
            writing_bytes_ += e.size - skip;
            // Taken off the queue, a run grows no more; its block may (frame_arena).
            write_bufs_.emplace_back(e.data + skip, e.size - skip);
            writing_frames_.push_back(e.frame);
            writing_count_ += e.frames;
            if (e.on_ack) {
                awaiting_.push_back(std::move(e));
            } else {
                writing_async_ += e.frames;
            }
        }
    }
    // Asio's transfer_all hands the kernel at most 64 KiB per sendmsg; without
    // that cap a call takes up to 16 buffers (Asio's limit) of any size, which
    // halves the syscalls and reactor rounds of a bulk stream.
    asio::async_write(socket_, write_bufs_,
                      [](const error_code& ec, std::size_t) -> std::size_t { return ec ? 0 : max_bytes_per_write; },
                      [self = shared_from_this(), gen = generation_](const error_code& ec,
                                                                     std::size_t n) {
                          if (gen == self->generation_) {
                              self->on_write(ec, n);
                          } else {
                              std::lock_guard lock(self->mutex_);
                              self->writing_ = false;
                          }
                      });
}

void peer_sender::on_write(const error_code& ec, std::size_t) {
    if (ec) {
        stats_.possibly_lost.fetch_add(writing_async_, std::memory_order_relaxed);
        {
            std::lock_guard lock(mutex_);
            queued_bytes_ -= writing_bytes_;
            writing_ = false;
            space_cv_.notify_all();
        }
        writing_bytes_ = 0;
        writing_frames_.clear();
        fail_connection(ec, "write: " + ec.message());
        return;
    }
    stats_.frames_out.fetch_add(writing_count_, std::memory_order_relaxed);
    stats_.bytes_out.fetch_add(writing_bytes_, std::memory_order_relaxed);
    stats_.writes.fetch_add(1, std::memory_order_relaxed);
    last_write_.store(clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    writing_frames_.clear(); // a block whose last slice this was goes back to its arena
    std::uint64_t lingering = 0;
    {
        std::lock_guard lock(mutex_);
        queued_bytes_ -= writing_bytes_;
        writing_bytes_ = 0;
        space_cv_.notify_all();
        if (queue_.empty()) {
            // After a write of async frames the writer lingers (sender.linger_us)
            // before writing again, so that a steady trickle (an HTTP request's
            // delta every few tens of µs) leaves in one write per linger instead
            // of one per message: fewer wake-ups here and at every receiver. The
            // first frame after a quiet spell, and every ack/sync frame, go at once.
            if (writing_async_ == 0 || closing_ || stopped_ || settings_.linger_us == 0) {
                writing_ = false;
                drained_cv_.notify_all();
                return;
            }
            // writing_ stays set: async frames queued meanwhile wait for the timer.
            lingering_ = true;
            lingering = ++linger_generation_;
        }
    }
    if (lingering != 0) {
        linger(lingering);
        return;
    }
    do_write();
}

void peer_sender::complete(entry& e, const error_code& ec, std::string_view detail) {
    if (e.on_ack) {
        auto handler = std::move(e.on_ack);
        handler(ec, detail);
    }
}

void peer_sender::fail_connection(const error_code& ec, const std::string& reason) {
    ++generation_; // every handler of the old connection becomes a no-op
    {
        // Before the close: no direct write may use the descriptor after this,
        // and no caller reads it (read_mutex_).
        std::lock_guard read_lock(read_mutex_);
        std::lock_guard lock(mutex_);
        close_direct_locked();
        handback_posted_ = false;
        fd_ = -1;
        connected_ = false;
        if (front_offset_ > 0 && !queue_.empty()) {
            // Half a frame went out on the dead connection: the rest is useless.
            queued_bytes_ -= queue_.front().size - front_offset_;
            entry half = std::move(queue_.front());
            queue_.pop_front();
            front_offset_ = 0;
            if (half.on_ack) {
                awaiting_.push_back(std::move(half)); // fails below as connection_lost
            } else {
                stats_.possibly_lost.fetch_add(half.frames, std::memory_order_relaxed);
            }
        }
        if (writing_bytes_ > 0) {
            // A write in flight on this connection: its completion will be stale
            // (generation_), so its bytes leave the queue's count here. Its async
            // frames may or may not have arrived; its ack frames fail below.
            queued_bytes_ -= writing_bytes_;
            stats_.possibly_lost.fetch_add(writing_async_, std::memory_order_relaxed);
            writing_bytes_ = 0;
            writing_async_ = 0;
            space_cv_.notify_all();
        }
    }
    // An RST, not a FIN: what is still unsent or unacknowledged was failed or
    // counted above (or just below), and a FIN would be retransmitted to an unresponsive peer
    // for minutes, keeping the kernel resolving its address (ARP/ND) all the
    // while; a SYN-ACK after a healed partition then waits up to a second for
    // the next probe.
    error_code ignored;
    if (socket_.is_open()) {
        // Frames written whole but still in the kernel's send buffer go with
        // the RST: counted as possibly lost (at least one; bytes do not say how many).
        int unsent = 0;
        if (::ioctl(socket_.native_handle(), SIOCOUTQ, &unsent) == 0 && unsent > 0) {
            stats_.possibly_lost.fetch_add(1, std::memory_order_relaxed);
        }
        socket_.set_option(asio::socket_base::linger(true, 0), ignored);
    }
    socket_.close(ignored);
    connect_timer_.cancel();
    const bool was_up = handshaken_;
    handshaken_ = false;
    attempting_ = false;
    rlen_ = 0;
    std::deque<entry> lost;
    bool stopped = false;
    {
        std::lock_guard lock(mutex_);
        connected_ = false;
        writing_ = false;
        lingering_ = false;
        ++linger_generation_;
        lost.swap(awaiting_);
        stopped = stopped_;
        drained_cv_.notify_all();
    }
    stats_.connection_losses.fetch_add(lost.size(), std::memory_order_relaxed);
    for (auto& e : lost) {
        complete(e, error::connection_lost, reason);
    }
    if (was_up) {
        log()->info("connection to {} lost: {}", endpoint(), reason);
    } else {
        log()->debug("connection attempt to {} failed: {}", endpoint(), reason);
    }
    if (cb_.down) {
        cb_.down(ec, reason, was_up);
    }
    if (!stopped && !parked_) {
        schedule_reconnect();
    }
}

void peer_sender::schedule_reconnect() {
    reconnect_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          settings_.reconnect_backoff_max));
    reconnect_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) {
            error_code ignored;
            self->socket_ = asio::ip::tcp::socket(self->strand_);
            self->do_connect();
        }
    });
}

void peer_sender::arm_tick() {
    if (tick_armed_) {
        return;
    }
    tick_armed_ = true;
    {
        std::lock_guard lock(mutex_);
        ticking_ = true;
    }
    tick_timer_.expires_after(tick_period);
    tick_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
        self->tick_armed_ = false;
        if (!ec) {
            self->on_tick();
        }
        if (!self->tick_armed_) {
            self->tick_stopped();
        }
    });
}

void peer_sender::tick_stopped() {
    {
        std::lock_guard lock(mutex_);
        // A frame that enqueue() saw ticking_ for may have come in since.
        const bool waiting = !awaiting_.empty() || std::any_of(queue_.begin(), queue_.end(), [](const entry& e) {
            return static_cast<bool>(e.on_ack);
        });
        if (stopped_ || !waiting) {
            ticking_ = false;
            return;
        }
    }
    arm_tick();
}

void peer_sender::on_tick() {
    const auto now = clock::now();
    std::vector<entry> expired;
    bool keep_ticking = false;
    bool up = false;
    {
        std::lock_guard lock(mutex_);
        if (stopped_) {
            return;
        }
        up = connected_;
        const auto deadline = now - settings_.ack_timeout;
        // Written frames: their acks are overdue.
        while (!awaiting_.empty() && awaiting_.front().queued_at <= deadline) {
            expired.push_back(std::move(awaiting_.front()));
            awaiting_.pop_front();
        }
        // Frames never written (peer unreachable): fail and unqueue them, so a
        // sender told "failed" is not surprised by a late delivery.
        // A front frame partly written by a direct write stays: the writer is
        // about to finish it, and its ack then times out from awaiting_.
        for (auto it = first_unwritten_locked(); it != queue_.end();) {
            if (it->on_ack && it->queued_at <= deadline) {
                queued_bytes_ -= it->size;
                expired.push_back(std::move(*it));
                it = queue_.erase(it);
            } else {
                ++it;
            }
        }
        if (!expired.empty()) {
            space_cv_.notify_all();
        }
        keep_ticking = connected_ || !awaiting_.empty() ||
                       std::any_of(queue_.begin(), queue_.end(),
                                   [](const entry& e) { return static_cast<bool>(e.on_ack); });
    }
    stats_.ack_timeouts.fetch_add(expired.size(), std::memory_order_relaxed);
    for (auto& e : expired) {
        complete(e, error::ack_timeout,
                 "no ack within " + std::to_string(settings_.ack_timeout.count()) + "ms");
    }
    if (up && handshaken_ && direct_input_pending()) {
        // A PONG, BYE, EOF or an ack nobody waits for sits on a direct socket.
        leave_direct();
    }
    if (up && handshaken_) {
        if (ping_outstanding_ && now - ping_sent_ > settings_.ack_timeout &&
            now - last_read_ > settings_.ack_timeout) {
            log()->warn("connection to {}: no PONG within {}ms; reconnecting", endpoint(),
                        settings_.ack_timeout.count());
            fail_connection(error::ack_timeout, "keep-alive timed out");
            return;
        }
        const clock::time_point last_write{clock::duration(last_write_.load(std::memory_order_relaxed))};
        if (!ping_outstanding_ && now - last_write >= ping_interval_) {
            auto ping = std::make_shared<buffer>();
            append_token(*ping, frame_type::ping,
                         static_cast<std::uint64_t>(now.time_since_epoch().count()));
            ping_outstanding_ = true;
            ping_sent_ = now;
            stats_.pings.fetch_add(1, std::memory_order_relaxed);
            std::lock_guard lock(mutex_);
            queued_bytes_ += ping->size();
            queue_.push_back(entry{std::move(ping), 0, nullptr, now});
            kick_writer_locked();
        }
    }
    if (keep_ticking) {
        arm_tick();
    }
}

void peer_sender::drop_all_locked(std::vector<entry>& out) {
    for (auto& e : queue_) {
        out.push_back(std::move(e));
    }
    for (auto& e : awaiting_) {
        out.push_back(std::move(e));
    }
    queue_.clear();
    awaiting_.clear();
    queued_bytes_ = 0;
    front_offset_ = 0;
}

void peer_sender::close_gracefully(const std::string& reason, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (stopped_) {
        return;
    }
    closing_ = true;
    space_cv_.notify_all();
    if (connected_ && !bye_written_) {
        // BYE goes last on the ordered stream: everything queued before it is flushed.
        bye_written_ = true;
        auto bye = std::make_shared<buffer>();
        append_bye(*bye, reason);
        queued_bytes_ += bye->size();
        queue_.push_back(entry{std::move(bye), 0, nullptr, clock::now()});
        kick_writer_locked();
        drained_cv_.wait_for(lock, timeout, [&] {
            return (queue_.empty() && awaiting_.empty() && !writing_) || !connected_;
        });
    }
    lock.unlock();
    stop(error::stopped);
}

void peer_sender::reconnect_now() {
    asio::post(strand_, [self = shared_from_this()] {
        {
            std::lock_guard lock(self->mutex_);
            if (self->stopped_) {
                return;
            }
        }
        if (self->handshaken_) {
            return;
        }
        // Drop a SYN that may still hang in a dead route and any backoff wait.
        ++self->generation_;
        error_code ignored;
        self->socket_.close(ignored);
        self->resolver_.cancel();
        self->connect_timer_.cancel();
        self->reconnect_timer_.cancel();
        self->backoff_ = std::chrono::milliseconds(20);
        self->socket_ = asio::ip::tcp::socket(self->strand_);
        self->do_connect();
    });
}

void peer_sender::park(const std::string& reason, std::uint64_t connects) {
    asio::post(strand_, [self = shared_from_this(), reason, connects] {
        {
            std::lock_guard lock(self->mutex_);
            if (self->stopped_) {
                return;
            }
        }
        if (self->stats_.connects.load(std::memory_order_relaxed) != connects) {
            return; // a handshake completed after the removal: it is back
        }
        self->parked_ = true;
        self->reconnect_timer_.cancel();
        if (self->handshaken_ || self->attempting_) {
            self->resolver_.cancel();
            self->fail_connection(error::member_gone, reason);
        }
    });
}

void peer_sender::reset(const std::string& reason) {
    asio::post(strand_, [self = shared_from_this(), reason] {
        if (self->handshaken_) {
            self->fail_connection(error::member_gone, reason);
        }
    });
}

void peer_sender::drop_queued(error_code why) {
    std::deque<entry> dropped;
    {
        std::lock_guard lock(mutex_);
        // Bytes of a write in flight stay counted until it completes.
        const auto first = first_unwritten_locked();
        for (auto it = first; it != queue_.end(); ++it) {
            queued_bytes_ -= it->size;
            dropped.push_back(std::move(*it));
        }
        queue_.erase(first, queue_.end());
        space_cv_.notify_all();
    }
    if (dropped.empty()) {
        return;
    }
    std::size_t frames = 0;
    for (const auto& e : dropped) {
        frames += e.frames;
    }
    stats_.dropped.fetch_add(frames, std::memory_order_relaxed);
    log()->warn("{}: {} queued frame(s) dropped: {}", endpoint(), frames, why.message());
    for (auto& e : dropped) {
        complete(e, why, why.message());
    }
}

void peer_sender::stop(error_code why) {
    std::vector<entry> dropped;
    {
        std::lock_guard lock(mutex_);
        stopped_ = true;
        fd_ = -1;
        connected_ = false;
        drop_all_locked(dropped);
        space_cv_.notify_all();
        drained_cv_.notify_all();
    }
    if (!dropped.empty()) {
        std::size_t frames = 0;
        for (const auto& e : dropped) {
            frames += e.frames;
        }
        stats_.dropped.fetch_add(frames, std::memory_order_relaxed);
        log()->warn("{}: {} queued frame(s) dropped: {}", endpoint(), frames, why.message());
    }
    asio::post(strand_, [self = shared_from_this(), dropped = std::move(dropped), why]() mutable {
        ++self->generation_;
        {
            std::lock_guard read_lock(self->read_mutex_);
            std::lock_guard lock(self->mutex_);
            self->close_direct_locked();
        }
        error_code ignored;
        self->socket_.close(ignored);
        self->resolver_.cancel();
        self->connect_timer_.cancel();
        self->tick_timer_.cancel();
        self->reconnect_timer_.cancel();
        self->linger_timer_.cancel();
        for (auto& e : dropped) {
            self->complete(e, why, why.message());
        }
    });
}

bool peer_sender::take_awaiting(std::uint64_t id, entry& out) {
    std::lock_guard lock(mutex_);
    // Acks come back in send order, so the match is almost always the front.
    auto it = std::find_if(awaiting_.begin(), awaiting_.end(), [&](const entry& e) { return e.id == id; });
    if (it == awaiting_.end()) {
        return false;
    }
    out = std::move(*it);
    awaiting_.erase(it);
    return true;
}

void peer_sender::finish_ack(entry& e, ack_status status, std::string_view reason) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - e.queued_at).count();
    stats_.record_ack_latency(static_cast<std::uint64_t>(us));
    if (status == ack_status::ok) {
        stats_.acks.fetch_add(1, std::memory_order_relaxed);
        complete(e, {}, {});
    } else {
        stats_.nacks.fetch_add(1, std::memory_order_relaxed);
        complete(e, status == ack_status::no_listener ? error::no_listener : error::remote_failure, reason);
    }
}

} // namespace troupe::transport
