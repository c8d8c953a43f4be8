// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/membership/member.hpp>
#include <troupe/transport/frame.hpp>
#include <troupe/transport/frame_arena.hpp>
#include <troupe/transport/hello.hpp>
#include <troupe/transport/peer_stats.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::transport {

/// Who this node is, as told in HELLO.
struct local_identity {
    membership::member_id id;
    std::uint64_t incarnation = 0;
    std::string cluster;
    std::string node;
    std::string host; ///< receiver address
    std::uint16_t port = 0;
    std::string secret;
};

/// Who the peer said it is, after a successful handshake.
struct peer_info {
    membership::member_id id;
    std::uint64_t incarnation = 0;
    std::string node;
    std::string host;
    std::uint16_t port = 0;
};

/// Completion of one ack/sync frame to this peer: success, NACK (remote_failure,
/// no_listener; `detail` carries the remote text), ack_timeout, connection_lost,
/// member_gone or stopped. Runs on an I/O thread or, for failures found at
/// enqueue time, is not called at all (enqueue returns the error instead).
using ack_handler = std::function<void(const boost::system::error_code&, std::string_view detail)>;

/// The ordered outbound stream to one member: one TCP connection, one write in
/// flight, queued frames coalesced into gathered writes, many acks outstanding
/// (they carry the message id). Frames are written in enqueue order, also across
/// reconnects: a frame not yet written when the connection breaks is sent on the
/// next one. ack/sync frames written before a break fail with connection_lost.
///
/// Owns its socket and timers; runs on a strand of the given io_context. stop()
/// (or a flushed close()) ends it; it never outlives pending handlers because
/// every handler holds shared_from_this().
///
/// @par Thread safety
/// enqueue() may be called from any thread (it blocks only under the `block`
/// policy and never on an I/O thread). Other members are safe from any thread.
class peer_sender : public std::enable_shared_from_this<peer_sender> {
public:
    struct callbacks {
        std::function<void(const peer_info&)> up;  ///< handshake completed
        /// A connection ended or an attempt failed. `was_up`: a handshake had completed.
        std::function<void(const boost::system::error_code&, const std::string& reason, bool was_up)>
            down;
        std::function<void()> self; ///< the endpoint is this very node: stop using it
        /// The peer said BYE with `reason` ("leaving" on a clean stop).
        std::function<void(const std::string& reason)> bye;
    };

    /// @param ping_interval PING the connection when it was idle this long.
    peer_sender(boost::asio::io_context& io, const conf::sender_section& settings,
                std::uint64_t max_message, std::chrono::milliseconds ping_interval,
                local_identity self, std::string host, std::uint16_t port, callbacks cb);
    ~peer_sender();

    void start();

    /// Queues a whole frame. `on_ack` null = async (no ack awaited).
    /// `caller_reads`: the sending thread will wait for this ack and call
    /// read_acks_here() meanwhile (see "Direct reads" below).
    /// @return queue_full (after `block_timeout` under `block`), stopped, or success.
    boost::system::error_code enqueue(frame_ptr frame, std::uint64_t id, ack_handler on_ack,
                                      bool caller_reads = false);

    /// @name Direct reads
    /// A lone blocking ack/sync caller would otherwise wait for the I/O thread
    /// to read its ack and wake it: one more thread hop than a plain blocking
    /// socket, and the largest cost of a lone sync send on a small machine.
    /// While such a caller is the stream's only user, the stream takes its
    /// socket out of the I/O threads' epoll set (so an ack wakes nobody but
    /// the caller) and the caller reads its acks itself. Anything else (async
    /// frames to write, an ack someone else awaits, a PONG, BYE or EOF, a
    /// caller that stops waiting) hands the socket back to the I/O thread.
    /// @{
    /// Reads and completes the acks that have arrived, without blocking.
    /// @return false when the stream is not in direct mode (the I/O thread reads).
    bool read_acks_here();
    /// The waiting caller gives up reading: an I/O thread reads from now on.
    void hand_reading_back();
    /// The stream is in direct-read mode (for tests and stats).
    bool direct_reads() const;
    /// @}

    /// Queues an async DATA frame (no ack awaited), encoded into this stream's
    /// arena right behind the previous one: a burst of small messages becomes
    /// one contiguous run and one write, with no allocation per message.
    /// @return as enqueue().
    boost::system::error_code enqueue_data(std::uint64_t id, std::uint32_t options, std::string_view context,
                                           std::span<const std::uint8_t> payload);

    /// Queues async frames encoded elsewhere (a channel encodes a message sent to
    /// many members once, in its own arena). A slice that continues the run at
    /// the queue's tail joins it. @return as enqueue().
    boost::system::error_code enqueue_shared(const frame_slice& frames);

    /// Flushes what is queued (up to `timeout`), sends BYE(reason) and closes.
    /// Blocks the caller (not an I/O thread) until done or timed out.
    void close_gracefully(const std::string& reason, std::chrono::milliseconds timeout);

    /// Closes at once; queued and awaited frames fail with `why`, and are counted as dropped.
    void stop(boost::system::error_code why);

    /// The member was just heard from: if not connected, give up the pending
    /// attempt or backoff and dial now (a healed partition rejoins in one round
    /// trip). A parked stream dials once per call (heartbeats call it every
    /// period while the member is heard).
    void reconnect_now();

    /// Closes the current connection (if any) and reconnects with backoff: used
    /// when a static member was declared gone, so that only a fresh handshake
    /// readmits it (static members send no heartbeats: only dialling finds them).
    void reset(const std::string& reason);

    /// The member was removed and will announce itself if it comes back
    /// (heartbeats, an inbound HELLO): close at once and dial only when
    /// reconnect_now() says it was heard.
    /// Blind redials during a partition keep the kernel resolving its address
    /// (ARP/ND), and a SYN after the heal then waits up to a second for the
    /// next probe. A completed handshake ends parking. `connects` is
    /// stats().connects when the member was removed: if a handshake completed
    /// since, the member is back and nothing is done.
    void park(const std::string& reason, std::uint64_t connects);

    /// Fails every frame still queued (not yet written) with `why`, counted as
    /// dropped and logged, and keeps the stream (the member may come back).
    void drop_queued(boost::system::error_code why);

    std::string endpoint() const { return host_ + ":" + std::to_string(port_); }
    const std::string& host() const noexcept { return host_; }
    std::uint16_t port() const noexcept { return port_; }
    bool connected() const;
    const peer_stats& stats() const noexcept { return stats_; }
    std::size_t queued_bytes() const;

private:
    using clock = std::chrono::steady_clock;
    struct entry {
        entry() = default;
        /// One whole frame.
        entry(frame_ptr f, std::uint64_t message, ack_handler handler, clock::time_point at)
            : frame(std::move(f)), data(frame->data()), size(frame->size()), id(message),
              on_ack(std::move(handler)), queued_at(at) {}
        /// A run of async frames (it grows while it is the queue's tail).
        explicit entry(const frame_slice& run) : frame(run.block), data(run.data), size(run.size) {}

        frame_ptr frame;                   ///< one frame, or a block holding a run of async frames
        const std::uint8_t* data = nullptr; ///< this entry's bytes, inside `frame`
        std::size_t size = 0;
        std::uint64_t id = 0;
        ack_handler on_ack;
        clock::time_point queued_at;
        std::uint32_t frames = 1; ///< frames in this entry (a run holds many)
    };

    /// Strand: the stream is idle and a lone caller reads its acks: release the
    /// socket from the reactor. @return true if it did (no read is pending then).
    bool maybe_enter_direct();
    /// Strand: give the socket back to the reactor and read on the I/O thread.
    void leave_direct();
    /// Under mutex_: a direct stream with no leave_direct() posted yet; marks it posted.
    bool claim_hand_back_locked();
    void post_leave_direct();
    /// Strand, from the tick: data, EOF or an error waits on a direct socket.
    bool direct_input_pending();
    /// Removes the awaited entry `id` (false: it timed out already).
    bool take_awaiting(std::uint64_t id, entry& out);
    /// Counts and completes an entry whose ACK/NACK came in.
    void finish_ack(entry& e, ack_status status, std::string_view reason);

    /// Waits (block policy) or fails (fail policy) until `size` more bytes fit.
    boost::system::error_code make_room_locked(std::unique_lock<std::mutex>& lock, std::size_t size);
    /// Queues (and counts) a run of async frames, joining the tail's run when it
    /// continues it, and wakes the writer.
    void queue_run_locked(const frame_slice& run);
    /// The first queued entry that may be removed (not one partly on the wire).
    std::deque<entry>::iterator first_unwritten_locked();
    /// Under read_mutex_ and mutex_: closes a released descriptor, if any.
    void close_direct_locked();

    void do_connect();
    void on_resolved(const boost::system::error_code& ec,
                     boost::asio::ip::tcp::resolver::results_type results);
    void on_connected(const boost::system::error_code& ec);
    void do_read();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    bool handle_frame(const frame_view& f);
    bool handle_hello(const frame_view& f);
    void do_write();
    void on_write(const boost::system::error_code& ec, std::size_t n);
    /// Closes the connection with an RST, fails what awaited it, and redials
    /// with backoff unless stopped or parked.
    void fail_connection(const boost::system::error_code& ec, const std::string& reason);
    void schedule_reconnect();
    void arm_tick();
    void tick_stopped();
    void on_tick();
    /// Starts the writer if it is idle; `urgent` also cuts a linger short.
    void kick_writer_locked(bool urgent = true);
    /// After a write of async frames emptied the queue: write again in a moment.
    void linger(std::uint64_t generation);
    void complete(entry& e, const boost::system::error_code& ec, std::string_view detail);
    void drop_all_locked(std::vector<entry>& out);

    boost::asio::io_context& io_;
    boost::asio::strand<boost::asio::io_context::executor_type> strand_;
    conf::sender_section settings_;
    std::uint64_t max_message_;
    std::chrono::milliseconds ping_interval_;
    local_identity self_;
    std::string host_;
    std::uint16_t port_;
    callbacks cb_;
    peer_stats stats_;

    // Guarded by mutex_: shared with sending threads.
    mutable std::mutex mutex_;
    std::condition_variable space_cv_;
    std::condition_variable drained_cv_;
    std::deque<entry> queue_;
    std::deque<entry> awaiting_; ///< written (or being written), ack not yet in
    std::size_t queued_bytes_ = 0;
    bool writing_ = false;
    bool connected_ = false;
    bool closing_ = false; ///< graceful close: no new frames, BYE after the queue drains
    bool stopped_ = false;
    bool bye_written_ = false;
    /// The connected socket's descriptor while `connected_`, else -1: lets an
    /// idle stream be written from the sending thread (see enqueue()).
    int fd_ = -1;
    /// The tick timer is armed or about to be: enqueue() posts arm_tick() only
    /// when it is not, saving an I/O-thread wake-up per ack/sync send.
    bool ticking_ = false;
    /// The writer waits for more async frames (writing_ stays set meanwhile);
    /// the generation tells the linger timer's handler whether it still counts.
    bool lingering_ = false;
    std::uint64_t linger_generation_ = 0;
    /// Bytes of queue_.front() already written by a direct write.
    std::size_t front_offset_ = 0;
    /// Where enqueue_data() encodes this stream's own async frames.
    frame_arena arena_;
    /// The last ack frame queued was for a caller that reads its own acks.
    bool direct_wanted_ = false;
    /// A leave_direct() is posted and has not run yet.
    bool handback_posted_ = false;

    // Direct reads. `direct_` and `direct_fd_` are written on the strand under
    // both read_mutex_ and mutex_ (so either lock reads them); read_mutex_ also
    // guards rbuf_ and rlen_ while `direct_` (a caller parses them then).
    // Lock order: read_mutex_ before mutex_.
    mutable std::mutex read_mutex_;
    bool direct_ = false;
    int direct_fd_ = -1; ///< the released descriptor while direct_, else -1

    // Strand-only.
    boost::asio::ip::tcp::resolver resolver_;
    boost::asio::ip::tcp::socket socket_;
    boost::asio::steady_timer connect_timer_;
    boost::asio::steady_timer tick_timer_;
    boost::asio::steady_timer reconnect_timer_;
    boost::asio::steady_timer linger_timer_;
    bool tick_armed_ = false;
    boost::asio::ip::tcp protocol_ = boost::asio::ip::tcp::v4(); ///< to assign() the socket back
    std::uint64_t read_gen_ = 0; ///< bumps when the socket leaves the reactor: drops the aborted read
    std::vector<std::uint8_t> rbuf_;
    std::size_t rlen_ = 0;
    std::vector<frame_ptr> writing_frames_; ///< keeps what is being written alive
    std::vector<boost::asio::const_buffer> write_bufs_;
    std::size_t writing_bytes_ = 0;
    std::size_t writing_async_ = 0; ///< frames in this write that await no ack
    std::size_t writing_count_ = 0; ///< frames in this write
    hello my_hello_;
    bool handshaken_ = false;
    bool was_up_ = false;
    bool parked_ = false;     ///< park(): no redial but on reconnect_now()
    bool attempting_ = false; ///< a connection attempt runs (do_connect until HELLO or failure)
    membership::member_id last_peer_id_; ///< who answered last time: a new id is a restart
    std::chrono::milliseconds backoff_{20};
    std::atomic<clock::rep> last_write_{0};
    clock::time_point last_read_{};
    clock::time_point ping_sent_{};
    bool ping_outstanding_ = false;
    std::uint64_t generation_ = 0; ///< bumps per connection so stale handlers do nothing
};

} // namespace troupe::transport
