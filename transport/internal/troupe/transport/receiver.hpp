// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/transport/frame.hpp>
#include <troupe/transport/peer_sender.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace troupe::transport {

class inbound_connection;
class reader_threads;

/// What the upper layer made of one DATA frame (decides ACK or NACK for sync senders).
struct delivery_result {
    ack_status status = ack_status::ok;
    std::string reason;
};

/// Counters of the receiving side. Relaxed atomics: read for reporting only.
struct receiver_stats {
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> open{0};
    std::atomic<std::uint64_t> reader_threads{0};    ///< open connections read by a thread of their own
    std::atomic<std::uint64_t> frames_in{0};
    std::atomic<std::uint64_t> bytes_in{0};
    std::atomic<std::uint64_t> data_in{0};
    std::atomic<std::uint64_t> acks_out{0};
    std::atomic<std::uint64_t> nacks_out{0};
    std::atomic<std::uint64_t> bad_frames{0};        ///< connections closed for a malformed frame
    std::atomic<std::uint64_t> handshake_refused{0}; ///< wrong cluster, version, self, malformed HELLO
    std::atomic<std::uint64_t> auth_failures{0};     ///< wrong or missing secret
    std::atomic<std::uint64_t> handshake_timeouts{0};
    std::atomic<std::uint64_t> idle_timeouts{0};     ///< closed after receiver.idle_timeout of silence
};

/// The TCP receiver: an acceptor bound per `receiver.address`/`port`/`auto_bind`
/// and one inbound_connection per accepted socket. A bad frame closes that one
/// connection (one log line naming the peer and the reason, one counter); the
/// others go on.
///
/// Handshakes run on the I/O threads. A connection that carries DATA then gets a
/// thread of its own (up to `receiver.reader_threads`) that reads it with blocking
/// calls: a sync sender waits for each ack, and a thread woken by its socket answers
/// with two system calls where the reactor needs four (the wait, the read, the read
/// that finds the socket empty, the write); one peer's slow listener no longer holds
/// up the others either.
///
/// Owns the acceptor and tracks its connections weakly; stop() closes them all.
///
/// @par Thread safety
/// bind() and start() once, before traffic; stop() from any thread. stop() waits
/// for the reader threads, so a listener that calls it on an I/O thread must not
/// be waited on by another connection's listener.
class receiver : public std::enable_shared_from_this<receiver> {
public:
    struct callbacks {
        /// One DATA frame from an authenticated peer, in order per connection, on
        /// the thread reading that connection (its strand or its reader thread,
        /// both marked as I/O threads). Returning (not throwing) is required.
        std::function<delivery_result(const membership::member&, const data_view&)> deliver;
        /// A peer completed the handshake on an inbound connection. The member
        /// returned is what `deliver` is given for every frame of this connection.
        std::function<std::shared_ptr<const membership::member>(const peer_info&)> hello;
        /// A peer said BYE on an inbound connection (on the thread reading it, as `deliver`).
        std::function<void(const peer_info&, const std::string& reason)> bye;
    };

    receiver(boost::asio::io_context& io, const conf::cluster_config& config, callbacks cb);
    ~receiver();

    /// Binds the first free port of port..port+auto_bind-1 (or any port when 0).
    /// @throws boost::system::system_error naming the address and the range tried.
    std::uint16_t bind();
    /// Starts accepting; `self` is what this node says in HELLO.
    void start(local_identity self);
    void stop();

    std::uint16_t port() const noexcept { return port_; }
    const receiver_stats& stats() const noexcept { return stats_; }

private:
    friend class inbound_connection;
    void do_accept();

    boost::asio::io_context& io_;
    conf::cluster_config config_;
    callbacks cb_;
    local_identity self_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    receiver_stats stats_;
    std::mutex mutex_;
    std::vector<std::weak_ptr<inbound_connection>> connections_;
    std::unique_ptr<reader_threads> readers_;
    std::atomic<bool> stopped_{false};
};

} // namespace troupe::transport
