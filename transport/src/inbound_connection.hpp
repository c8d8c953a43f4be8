// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/transport/receiver.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace troupe::transport {

/// One accepted connection: answers HELLO (and checks AUTH), then reads DATA,
/// PING and BYE frames and writes ACK/NACK/PONG back, batched per read. Reading
/// pauses while more than 4 MiB of acks wait for a peer that does not read them.
/// A connection silent for `receiver.idle_timeout` (or whose acks go unread that
/// long) is closed: a vanished host leaves no FIN, and would hold it for good.
///
/// Owned by its own handlers (shared_from_this); the receiver keeps a weak_ptr to
/// close it on stop.
class inbound_connection : public std::enable_shared_from_this<inbound_connection> {
public:
    inbound_connection(std::shared_ptr<receiver> owner, boost::asio::ip::tcp::socket socket);
    void start();
    void close();

private:
    void do_read();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    /// Decodes and handles the `n` bytes just read; false once the connection ends.
    bool consume(std::size_t n);
    /// Internal close, on whichever thread owns the connection (strand or reader).
    void finish();
    bool hand_to_reader();
    void read_loop();
    void wake_reader();
    /// Blocking write of a whole buffer (BYE on a refusal, acks on a reader thread).
    void write_all(const buffer& bytes);
    bool handle_frame(const frame_view& f);
    bool handle_hello(const frame_view& f);
    bool handle_auth(const frame_view& f);
    bool handle_data(const frame_view& f);
    void on_authenticated();
    /// Runs the timer until a read has waited `receiver.idle_timeout` for bytes.
    void arm_idle_check();
    /// Counts and logs an idle close; the caller ends the connection.
    void count_idle(bool acks_unread);
    void refuse(std::atomic<std::uint64_t>& counter, const std::string& reason);
    void bad_frame(const std::string& reason);
    void flush();
    void on_write(const boost::system::error_code& ec);
    std::string who() const;

    std::shared_ptr<receiver> owner_;
    boost::asio::ip::tcp::socket socket_;
    boost::asio::steady_timer timer_; ///< the handshake deadline, then the idle check
    /// When the pending read was started; a read paused for unread acks keeps its
    /// time. The idle check's clock on the I/O threads (readers use SO_RCVTIMEO).
    std::chrono::steady_clock::time_point read_since_;
    std::string remote_;
    std::vector<std::uint8_t> rbuf_;
    std::size_t rlen_ = 0;
    std::uint64_t data_in_ = 0; ///< DATA frames in the current read (see on_read)
    buffer out_;     ///< acks/pongs waiting for the current write to finish
    buffer writing_; ///< the write in flight
    bool write_in_flight_ = false;
    bool read_paused_ = false;
    bool close_after_write_ = false; ///< BYE read: flush the acks, then close
    bool closed_ = false;
    bool data_seen_ = false; ///< the first DATA frame hands the connection to a reader thread
    /// Set once the socket left the reactor for a reader thread of its own; from
    /// then on that thread alone owns the state above.
    std::atomic<bool> dedicated_{false};
    std::mutex fd_mutex_; ///< orders wake_reader()'s shutdown before the reader's close
    int fd_ = -1;
    enum class phase { hello, auth, ready } phase_ = phase::hello;
    hello peer_hello_;
    hello my_hello_;
    peer_info peer_;
    std::shared_ptr<const membership::member> member_;
};

} // namespace troupe::transport
