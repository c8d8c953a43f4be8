// SPDX-License-Identifier: Apache-2.0
#include "inbound_connection.hpp"

#include "log.hpp"
#include "reader_threads.hpp"

#include <troupe/transport/io_thread.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace troupe::transport {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::size_t max_pending_acks = 4 << 20;

/// Adds `n` (as it is when the scope ends) to `counter`.
struct add_on_exit {
    add_on_exit(std::atomic<std::uint64_t>& c, const std::uint64_t& v) : counter(c), n(v) {}
    add_on_exit(const add_on_exit&) = delete;
    add_on_exit& operator=(const add_on_exit&) = delete;
    ~add_on_exit() { counter.fetch_add(n, std::memory_order_relaxed); }
    std::atomic<std::uint64_t>& counter;
    const std::uint64_t& n;
};

// A peer gets this long to complete HELLO (and AUTH): enough for a slow network,
// short enough that idle half-open sockets do not pile up.
constexpr auto handshake_deadline = std::chrono::seconds(10);

} // namespace

inbound_connection::inbound_connection(std::shared_ptr<receiver> owner, asio::ip::tcp::socket socket)
    : owner_(std::move(owner)), socket_(std::move(socket)), timer_(socket_.get_executor()) {
    error_code ec;
    const auto ep = socket_.remote_endpoint(ec);
    remote_ = ec ? "unknown peer" : ep.address().to_string() + ":" + std::to_string(ep.port());
    rbuf_.resize(256 * 1024); // many small frames per read: fewer syscalls
}

void inbound_connection::start() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
        self->owner_->stats_.open.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
        self->timer_.expires_after(handshake_deadline);
        self->timer_.async_wait([self](const error_code& ec) {
            if (!ec && self->phase_ != phase::ready && !self->closed_) {
                self->owner_->stats_.handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
                log()->warn("inbound {}: no handshake within {}s; closing", self->remote_,
                            handshake_deadline.count());
                self->finish();
            }
        });
        self->do_read();
    });
}

void inbound_connection::close() {
    if (dedicated_.load(std::memory_order_acquire)) {
        wake_reader(); // at once: its reader may be blocked in recv() or send()
    }
    // Also through the strand, which sees how a hand-over in progress ended (a
    // reader that could not start gives the socket back to the reactor).
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
        if (self->dedicated_.load(std::memory_order_acquire)) {
            self->wake_reader(); // handed over while this waited for the strand
            return;
        }
        self->finish();
    });
}

void inbound_connection::finish() {
    if (closed_) {
        return;
    }
    closed_ = true;
    if (dedicated_.load(std::memory_order_relaxed)) {
        wake_reader(); // the reader closes the descriptor when its loop ends
        return;
    }
    owner_->stats_.open.fetch_sub(1, std::memory_order_relaxed);
    error_code ignored;
    timer_.cancel();
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

void inbound_connection::wake_reader() {
    std::lock_guard lock(fd_mutex_);
    if (fd_ >= 0) {
        ::shutdown(fd_, SHUT_RDWR); // ends a blocked recv() or send() at once
    }
}

bool inbound_connection::hand_to_reader() {
    auto& readers = *owner_->readers_;
    if (!readers.has_room()) {
        return false;
    }
    error_code ec;
    const auto protocol = socket_.local_endpoint(ec).protocol();
    const int flags = ec ? -1 : ::fcntl(socket_.native_handle(), F_GETFL);
    if (flags < 0) {
        return false;
    }
    const int fd = socket_.release(ec);
    if (ec) {
        log()->debug("inbound {}: cannot take the socket out of the reactor: {}", who(), ec.message());
        return false;
    }
    if (::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0) {
        {
            std::lock_guard lock(fd_mutex_);
            fd_ = fd;
        }
        dedicated_.store(true, std::memory_order_release);
        owner_->stats_.reader_threads.fetch_add(1, std::memory_order_relaxed);
        if (readers.start([self = shared_from_this()] { self->read_loop(); })) {
            timer_.cancel(); // the reader's socket timeouts watch for silence now
            return true;
        }
        owner_->stats_.reader_threads.fetch_sub(1, std::memory_order_relaxed);
        // No thread after all: the socket goes back to the reactor. (A close()
        // meanwhile also went through the strand, so it is not lost.)
        dedicated_.store(false, std::memory_order_release);
        {
            std::lock_guard lock(fd_mutex_);
            fd_ = -1;
        }
        ::fcntl(fd, F_SETFL, flags);
    }
    socket_.assign(protocol, fd, ec);
    if (ec) {
        log()->warn("inbound {}: cannot give the socket back to the reactor: {}; closing", who(),
                    ec.message());
        ::close(fd);
        closed_ = true;
        owner_->stats_.open.fetch_sub(1, std::memory_order_relaxed);
        return true; // nothing more to do on this connection
    }
    return false;
}

void inbound_connection::read_loop() {
    mark_io_thread(); // a listener here must not block on an ack, as on an I/O thread
    if (const auto limit = owner_->config_.receiver.idle_timeout; limit.count() > 0) {
        // recv() and send() give up with EAGAIN after this long without progress.
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(limit).count();
        const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
        if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
            ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
            log()->warn("inbound {}: cannot set the idle timeout: {}", who(), std::strerror(errno));
        }
    }
    try {
        // After stop() nothing more is delivered, even by a reader whose own
        // listener called stop() (it cannot be joined, and must not go on).
        while (!closed_ && !owner_->stopped_.load(std::memory_order_acquire)) {
            if (rlen_ == rbuf_.size()) {
                rbuf_.resize(rbuf_.size() * 2);
            }
            const ssize_t n = ::recv(fd_, rbuf_.data() + rlen_, rbuf_.size() - rlen_, 0);
            if (n > 0) {
                if (consume(static_cast<std::size_t>(n))) {
                    flush();
                }
                continue;
            }
            const int err = errno;
            if (n < 0 && err == EINTR) {
                continue;
            }
            if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK) && !closed_) {
                count_idle(false);
                break;
            }
            if (n < 0 && err != ECONNRESET && !closed_) {
                log()->debug("inbound {}: read: {}", who(), std::strerror(err));
            }
            break;
        }
    } catch (const std::exception& e) {
        // As on the I/O threads: a failure here ends this connection, not the node.
        log()->error("inbound {}: reader failed: {}; closing", who(), e.what());
    }
    closed_ = true;
    {
        std::lock_guard lock(fd_mutex_);
        ::close(fd_);
        fd_ = -1;
    }
    owner_->readers_->leave(); // before the counters: whoever sees them drop finds the slot free
    owner_->stats_.reader_threads.fetch_sub(1, std::memory_order_relaxed);
    owner_->stats_.open.fetch_sub(1, std::memory_order_relaxed);
}

void inbound_connection::write_all(const buffer& bytes) {
    if (!dedicated_.load(std::memory_order_relaxed)) {
        error_code ignored;
        asio::write(socket_, asio::buffer(bytes), ignored);
        return;
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !closed_) {
            count_idle(true);
        }
        if (n <= 0) {
            finish(); // the read side sees the same error
            return;
        }
        done += static_cast<std::size_t>(n);
    }
}

std::string inbound_connection::who() const {
    if (phase_ == phase::hello) {
        return remote_;
    }
    return peer_.node + " (" + remote_ + ")";
}

void inbound_connection::do_read() {
    if (closed_) {
        return;
    }
    if (rlen_ == rbuf_.size()) {
        rbuf_.resize(rbuf_.size() * 2);
    }
    // Silence counts from here: time spent in our own listeners is not the peer's.
    read_since_ = std::chrono::steady_clock::now();
    socket_.async_read_some(asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                            [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                self->on_read(ec, n);
                            });
}

void inbound_connection::on_read(const error_code& ec, std::size_t n) {
    if (closed_) {
        return;
    }
    if (ec) {
        if (ec != asio::error::eof && ec != asio::error::operation_aborted &&
            ec != asio::error::connection_reset) {
            log()->debug("inbound {}: read: {}", who(), ec.message());
        }
        finish();
        return;
    }
    if (!consume(n)) {
        return;
    }
    flush();
    if (data_seen_ && !write_in_flight_ && !closed_ && hand_to_reader()) {
        return;
    }
    if (out_.size() + writing_.size() > max_pending_acks && write_in_flight_) {
        read_paused_ = true; // resumed by on_write
        return;
    }
    do_read();
}

bool inbound_connection::consume(std::size_t n) {
    auto& stats = owner_->stats_;
    stats.bytes_in.fetch_add(n, std::memory_order_relaxed);
    rlen_ += n;
    // Until the peer proves who it is, it may not make us buffer more than a HELLO.
    const std::uint32_t max_body =
        phase_ == phase::ready
            ? static_cast<std::uint32_t>(owner_->config_.channel.max_message + data_overhead)
            : max_handshake_body;
    std::size_t pos = 0;
    std::size_t need = 0;
    // Counted once per read, not per frame: a locked add per message is a
    // measurable share of a small-message stream.
    std::uint64_t frames = 0;
    data_in_ = 0;
    const add_on_exit count_frames{stats.frames_in, frames};
    const add_on_exit count_data{stats.data_in, data_in_};
    while (pos < rlen_) {
        frame_view f;
        const auto r = decode_frame({rbuf_.data() + pos, rlen_ - pos}, max_body, f);
        if (r.what == decode_result::kind::need_more) {
            need = r.needed;
            break;
        }
        if (r.what == decode_result::kind::bad) {
            bad_frame(r.ec.message());
            return false;
        }
        ++frames;
        if (dedicated_.load(std::memory_order_relaxed) && owner_->stopped_.load(std::memory_order_acquire)) {
            return false; // see read_loop
        }
        if (!handle_frame(f) || closed_) {
            return false;
        }
        pos += r.consumed;
    }
    if (pos > 0) {
        std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
        rlen_ -= pos;
    }
    // `need` was checked against max_body by the decoder before we grow for it.
    if (need > rbuf_.size()) {
        rbuf_.resize(need);
    }
    return true;
}

bool inbound_connection::handle_frame(const frame_view& f) {
    switch (phase_) {
    case phase::hello:
        if (f.type != frame_type::hello) {
            bad_frame(std::string("expected HELLO, got ") + std::string(to_string(f.type)));
            return false;
        }
        return handle_hello(f);
    case phase::auth:
        if (f.type == frame_type::auth) {
            return handle_auth(f);
        }
        refuse(owner_->stats_.auth_failures,
               std::string("authentication required: got ") + std::string(to_string(f.type)) +
                   " before AUTH (does the peer have the cluster secret?)");
        return false;
    case phase::ready:
        break;
    }
    switch (f.type) {
    case frame_type::data:
        return handle_data(f);
    case frame_type::ping: {
        std::uint64_t token = 0;
        if (const auto ec = parse_token(f.body, token)) {
            bad_frame("PING: " + ec.message());
            return false;
        }
        append_token(out_, frame_type::pong, token);
        return true;
    }
    case frame_type::bye: {
        std::string_view reason;
        if (parse_bye(f.body, reason)) {
            reason = "(unreadable reason)";
        }
        log()->debug("inbound {}: BYE: {}", who(), reason);
        if (owner_->cb_.bye) {
            owner_->cb_.bye(peer_, std::string(reason));
        }
        // Acks for frames read before the BYE still go out: a sender that
        // stops right after a sync send must learn that it arrived.
        close_after_write_ = true;
        flush();
        if (!write_in_flight_) {
            finish();
        }
        return false;
    }
    default:
        bad_frame(std::string("unexpected ") + std::string(to_string(f.type)) + " frame");
        return false;
    }
}

bool inbound_connection::handle_hello(const frame_view& f) {
    const auto& self = owner_->self_;
    const auto& stats = owner_->stats_;
    (void)stats;
    if (const auto ec = parse_hello(f.body, peer_hello_)) {
        bad_frame("malformed HELLO: " + ec.message());
        return false;
    }
    peer_ = peer_info{peer_hello_.id, peer_hello_.incarnation, peer_hello_.node, peer_hello_.host,
                      peer_hello_.port};
    if (peer_hello_.role != 0) {
        refuse(owner_->stats_.handshake_refused, "HELLO from a peer claiming to be the acceptor");
        return false;
    }
    if (peer_hello_.id == self.id) {
        // Static lists are shared by all nodes, so every node dials itself once.
        refuse(owner_->stats_.handshake_refused, "self");
        return false;
    }
    if (peer_hello_.cluster != self.cluster) {
        refuse(owner_->stats_.handshake_refused, "wrong cluster: this node is in '" + self.cluster +
                                                     "', peer is in '" + peer_hello_.cluster + "'");
        return false;
    }
    if (peer_hello_.proto_max < protocol_min || peer_hello_.proto_min > protocol_max) {
        refuse(owner_->stats_.handshake_refused,
               "no common protocol version: this node speaks " + std::to_string(protocol_min) + ".." +
                   std::to_string(protocol_max) + ", peer " + std::to_string(peer_hello_.proto_min) +
                   ".." + std::to_string(peer_hello_.proto_max));
        return false;
    }
    my_hello_ = hello{};
    my_hello_.role = 1;
    my_hello_.id = self.id;
    my_hello_.incarnation = self.incarnation;
    my_hello_.port = self.port;
    my_hello_.cluster = self.cluster;
    my_hello_.node = self.node;
    my_hello_.host = self.host;
    my_hello_.challenge = random_nonce();
    if (!self.secret.empty()) {
        my_hello_.has_mac = true;
        my_hello_.proof = handshake_mac(self.secret, true, peer_hello_, my_hello_);
    }
    append_hello(out_, my_hello_);
    if (self.secret.empty()) {
        phase_ = phase::ready;
        on_authenticated();
    } else {
        phase_ = phase::auth;
    }
    return true;
}

bool inbound_connection::handle_auth(const frame_view& f) {
    mac proof{};
    if (const auto ec = parse_auth(f.body, proof)) {
        bad_frame("malformed AUTH: " + ec.message());
        return false;
    }
    const auto expected = handshake_mac(owner_->self_.secret, false, peer_hello_, my_hello_);
    if (!mac_equal(proof, expected)) {
        refuse(owner_->stats_.auth_failures,
               "authentication failed: peer does not know the cluster secret");
        return false;
    }
    phase_ = phase::ready;
    on_authenticated();
    return true;
}

bool inbound_connection::handle_data(const frame_view& f) {
    data_view d;
    if (const auto ec = parse_data(f.body, d)) {
        bad_frame("DATA: " + ec.message());
        return false;
    }
    if (d.payload.size() > owner_->config_.channel.max_message) {
        bad_frame("DATA payload of " + std::to_string(d.payload.size()) +
                  " bytes exceeds channel.max_message");
        return false;
    }
    auto& stats = owner_->stats_;
    ++data_in_; // added to stats.data_in by consume
    data_seen_ = true;
    const bool ack = (d.options & 2u) != 0;
    const bool processed = (d.options & 4u) != 0;
    if (ack && !processed) {
        // `ack` promises "received and validated": that is true now, before delivery.
        append_ack(out_, frame_type::ack, d.id, ack_status::ok, {});
        stats.acks_out.fetch_add(1, std::memory_order_relaxed);
    }
    delivery_result result;
    if (owner_->cb_.deliver) {
        result = owner_->cb_.deliver(*member_, d);
    }
    if (processed) {
        if (result.status == ack_status::ok) {
            append_ack(out_, frame_type::ack, d.id, ack_status::ok, {});
            stats.acks_out.fetch_add(1, std::memory_order_relaxed);
        } else {
            append_ack(out_, frame_type::nack, d.id, result.status, result.reason);
            stats.nacks_out.fetch_add(1, std::memory_order_relaxed);
        }
    }
    return true;
}

void inbound_connection::on_authenticated() {
    arm_idle_check(); // replaces the handshake deadline
    if (owner_->cb_.hello) {
        member_ = owner_->cb_.hello(peer_);
    }
    if (!member_) {
        auto m = std::make_shared<membership::member>();
        m->id = peer_.id;
        m->incarnation = peer_.incarnation;
        m->name = peer_.node;
        m->host = peer_.host;
        m->port = peer_.port;
        member_ = std::move(m);
    }
}

void inbound_connection::arm_idle_check() {
    const auto limit = owner_->config_.receiver.idle_timeout;
    if (limit.count() <= 0) {
        timer_.cancel();
        return;
    }
    // One wake-up per idle_timeout under traffic: the reads only note the time.
    timer_.expires_at(read_since_ + limit);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
        // Once a reader thread owns the connection, its socket timeouts take over.
        if (ec || self->dedicated_.load(std::memory_order_acquire) || self->closed_) {
            return;
        }
        if (std::chrono::steady_clock::now() - self->read_since_ <
            self->owner_->config_.receiver.idle_timeout) {
            self->arm_idle_check();
            return;
        }
        self->count_idle(self->write_in_flight_);
        self->finish();
    });
}

void inbound_connection::count_idle(bool acks_unread) {
    owner_->stats_.idle_timeouts.fetch_add(1, std::memory_order_relaxed);
    log()->warn("inbound {}: {} for {} ms (receiver.idle_timeout); closing", who(),
                acks_unread ? "acks not read" : "nothing received",
                owner_->config_.receiver.idle_timeout.count());
}

void inbound_connection::refuse(std::atomic<std::uint64_t>& counter, const std::string& reason) {
    counter.fetch_add(1, std::memory_order_relaxed);
    if (reason != "self") {
        log()->warn("inbound {}: handshake refused: {}", who(), reason);
    }
    // Whatever was batched is dropped: the peer is refused, it gets only the reason.
    buffer bye;
    append_bye(bye, reason);
    write_all(bye);
    finish();
}

void inbound_connection::bad_frame(const std::string& reason) {
    owner_->stats_.bad_frames.fetch_add(1, std::memory_order_relaxed);
    log()->warn("inbound {}: bad frame: {}; closing this connection", who(), reason);
    buffer bye;
    append_bye(bye, "bad frame: " + reason);
    write_all(bye);
    finish();
}

void inbound_connection::flush() {
    if (write_in_flight_ || out_.empty() || closed_) {
        return;
    }
    if (dedicated_.load(std::memory_order_relaxed)) {
        write_all(out_); // a peer that does not read its acks stops our reads here
        out_.clear();
        return;
    }
    // Acks nearly always fit the socket buffer: written here they cost one
    // syscall, where an async_write's completion handler costs a dispatch and
    // one more epoll_wait per message (a sync sender waits on every one).
    const ssize_t n = ::send(socket_.native_handle(), out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(out_.size())) {
        out_.clear();
        return;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        finish(); // the read side sees the same error and ends the connection
        return;
    }
    if (n > 0) {
        out_.erase(out_.begin(), out_.begin() + n); // the rest goes asynchronously
    }
    writing_.swap(out_);
    out_.clear();
    write_in_flight_ = true;
    asio::async_write(socket_, asio::buffer(writing_),
                      [self = shared_from_this()](const error_code& ec, std::size_t) {
                          self->on_write(ec);
                      });
}

void inbound_connection::on_write(const error_code& ec) {
    write_in_flight_ = false;
    writing_.clear();
    if (ec || closed_) {
        finish();
        return;
    }
    if (close_after_write_) {
        flush();
        if (!write_in_flight_) {
            finish();
        }
        return;
    }
    flush();
    if (read_paused_ && !write_in_flight_) {
        read_paused_ = false;
        do_read();
    } else if (read_paused_ && out_.size() + writing_.size() <= max_pending_acks) {
        read_paused_ = false;
        do_read();
    }
}

} // namespace troupe::transport
