// SPDX-License-Identifier: Apache-2.0
// Direct reads (see the group in peer_sender.hpp): a lone blocking ack/sync
// caller takes the idle stream's socket out of the reactor and reads its acks
// itself; anything else hands the socket back to the I/O thread.
#include <troupe/transport/peer_sender.hpp>

#include <boost/asio/post.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace troupe::transport {

namespace asio = boost::asio;
using boost::system::error_code;

void peer_sender::close_direct_locked() {
    if (direct_) {
        ::close(direct_fd_);
        direct_fd_ = -1;
        direct_ = false;
    }
}

bool peer_sender::maybe_enter_direct() {
    std::lock_guard read_lock(read_mutex_);
    std::lock_guard lock(mutex_);
    if (!direct_wanted_ || direct_ || !connected_ || !handshaken_ || stopped_ || closing_ || writing_ ||
        !queue_.empty() || !awaiting_.empty() || fd_ < 0) {
        return false;
    }
    error_code ec;
    const int fd = socket_.release(ec); // out of the epoll set; the descriptor stays open
    if (ec) {
        return false;
    }
    ++read_gen_;
    direct_fd_ = fd;
    direct_ = true;
    stats_.direct_entries.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void peer_sender::leave_direct() {
    int fd = -1;
    {
        std::lock_guard read_lock(read_mutex_);
        std::lock_guard lock(mutex_);
        handback_posted_ = false;
        if (!direct_) {
            return;
        }
        fd = direct_fd_;
        direct_fd_ = -1;
        direct_ = false;
    }
    error_code ec;
    socket_.assign(protocol_, fd, ec);
    if (ec) {
        {
            // fail_connection() closes it, after no sender can write to it any more.
            std::lock_guard read_lock(read_mutex_);
            std::lock_guard lock(mutex_);
            direct_fd_ = fd;
            direct_ = true;
        }
        fail_connection(ec, "taking the socket back: " + ec.message());
        return;
    }
    // Frames a caller left unparsed (a PONG, a BYE) come first; then read on.
    on_read({}, 0);
}

bool peer_sender::direct_input_pending() {
    std::lock_guard read_lock(read_mutex_);
    if (!direct_) {
        return false;
    }
    char byte = 0;
    const ssize_t n = ::recv(direct_fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

bool peer_sender::direct_reads() const {
    std::lock_guard lock(mutex_);
    return direct_;
}

bool peer_sender::claim_hand_back_locked() {
    if (!direct_ || handback_posted_) {
        return false;
    }
    handback_posted_ = true;
    return true;
}

void peer_sender::post_leave_direct() {
    asio::post(strand_, [self = shared_from_this()] { self->leave_direct(); });
}

void peer_sender::hand_reading_back() {
    {
        std::lock_guard lock(mutex_);
        if (awaiting_.empty() || !claim_hand_back_locked()) {
            return;
        }
    }
    post_leave_direct();
}

bool peer_sender::read_acks_here() {
    struct done_ack {
        entry e;
        ack_status status;
        std::string reason;
    };
    std::vector<done_ack> done;
    bool hand_back = false;
    {
        std::unique_lock read_lock(read_mutex_, std::try_to_lock);
        if (!read_lock.owns_lock() || !direct_) {
            return false; // the I/O thread reads, or is taking the socket back right now
        }
        // Read what is there. A read shorter than the room emptied the socket:
        // no second read to learn so (a syscall on the caller's critical path);
        // what comes later the next look, or the tick's, finds. Acks are small:
        // a full buffer means something else is going on, which the I/O thread
        // sorts out.
        for (int reads = 0; reads < 64; ++reads) {
            if (rlen_ == rbuf_.size()) {
                hand_back = true;
                break;
            }
            const std::size_t room = rbuf_.size() - rlen_;
            const ssize_t n = ::recv(direct_fd_, rbuf_.data() + rlen_, room, MSG_DONTWAIT);
            if (n > 0) {
                rlen_ += static_cast<std::size_t>(n);
                if (static_cast<std::size_t>(n) < room) {
                    break;
                }
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            hand_back = true; // EOF or an error: the I/O thread fails the connection
            break;
        }
        std::size_t pos = 0;
        while (pos < rlen_) {
            frame_view f;
            const auto r = decode_frame({rbuf_.data() + pos, rlen_ - pos}, 64 * 1024, f);
            if (r.what == decode_result::kind::need_more) {
                break;
            }
            ack_view a;
            if (r.what == decode_result::kind::bad ||
                (f.type != frame_type::ack && f.type != frame_type::nack) || parse_ack(f.body, a)) {
                hand_back = true; // not an ack, or a bad one: left in rbuf_ for the I/O thread
                break;
            }
            pos += r.consumed;
            entry e;
            if (take_awaiting(a.id, e)) {
                done.push_back(done_ack{std::move(e), a.status, std::string(a.reason)});
            }
        }
        if (pos > 0) {
            std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
            rlen_ -= pos;
        }
    }
    // Completions run outside read_mutex_: a handler may send again.
    stats_.caller_read_acks.fetch_add(done.size(), std::memory_order_relaxed);
    for (auto& d : done) {
        finish_ack(d.e, d.status, d.reason);
    }
    if (hand_back) {
        bool post = false;
        {
            std::lock_guard lock(mutex_);
            post = claim_hand_back_locked();
        }
        if (post) {
            post_leave_direct();
        }
        return false;
    }
    return true;
}

} // namespace troupe::transport
