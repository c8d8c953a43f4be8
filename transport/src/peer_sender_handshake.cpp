// SPDX-License-Identifier: Apache-2.0
// The handshake of each connection, from the TCP connect to "up": our HELLO
// out, then the peer's HELLO (or BYE) checked, AUTH sent when the cluster has a
// secret, and the stream opened to the writer. One deadline, armed by
// do_connect(), bounds it together with the resolve and the connect.
#include <troupe/transport/peer_sender.hpp>

#include "log.hpp"

#include <boost/asio/write.hpp>

#include <memory>
#include <string>

namespace troupe::transport {

namespace asio = boost::asio;
using boost::system::error_code;

void peer_sender::on_connected(const error_code& ec) {
    if (ec) {
        stats_.connect_failures.fetch_add(1, std::memory_order_relaxed);
        fail_connection(ec, "connect: " + ec.message());
        return;
    }
    error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    protocol_ = socket_.local_endpoint(ignored).protocol();
    my_hello_ = hello{};
    my_hello_.role = 0;
    my_hello_.id = self_.id;
    my_hello_.incarnation = self_.incarnation;
    my_hello_.port = self_.port;
    my_hello_.cluster = self_.cluster;
    my_hello_.node = self_.node;
    my_hello_.host = self_.host;
    my_hello_.challenge = random_nonce();
    auto out = std::make_shared<buffer>();
    append_hello(*out, my_hello_);
    asio::async_write(socket_, asio::buffer(*out),
                      [self = shared_from_this(), out, gen = generation_](const error_code& wec,
                                                                          std::size_t) {
                          if (gen == self->generation_ && wec) {
                              self->fail_connection(wec, "writing HELLO: " + wec.message());
                          }
                      });
    do_read();
}

bool peer_sender::handle_hello(const frame_view& f) {
    hello peer;
    if (const auto ec = parse_hello(f.body, peer)) {
        stats_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
        log()->warn("{}: malformed HELLO: {}", endpoint(), ec.message());
        fail_connection(ec, "malformed HELLO");
        return false;
    }
    auto refuse = [&](error e, const std::string& why) {
        stats_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
        log()->warn("{} ({}): handshake refused: {}", endpoint(), peer.node, why);
        // Written synchronously (a few bytes into an empty socket buffer) so that the
        // peer reads the reason before the close.
        buffer bye;
        append_bye(bye, why);
        error_code ignored;
        asio::write(socket_, asio::buffer(bye), ignored);
        fail_connection(e, why);
        return false;
    };
    if (peer.role != 1) {
        return refuse(error::handshake_failed, "peer answered HELLO as a connector");
    }
    if (peer.cluster != self_.cluster) {
        return refuse(error::wrong_cluster,
                      "wrong cluster: expected '" + self_.cluster + "', peer is in '" + peer.cluster + "'");
    }
    if (!last_peer_id_.is_nil() && last_peer_id_ != peer.id) {
        // The member restarted: what was queued for the old incarnation (deltas for
        // its sessions, say) means nothing to the new one. Dropped before AUTH is
        // queued, which must go out.
        drop_queued(error::member_gone);
    }
    last_peer_id_ = peer.id;
    if (!self_.secret.empty()) {
        if (!peer.has_mac) {
            return refuse(error::auth_failed, "authentication failed: peer has no cluster secret");
        }
        if (!mac_equal(peer.proof, handshake_mac(self_.secret, true, my_hello_, peer))) {
            return refuse(error::auth_failed,
                          "authentication failed: peer does not know the cluster secret");
        }
        auto auth = std::make_shared<buffer>();
        append_auth(*auth, handshake_mac(self_.secret, false, my_hello_, peer));
        // At the head of the ordered queue, so it goes before any DATA and never
        // races the writer.
        std::lock_guard lock(mutex_);
        queued_bytes_ += auth->size();
        queue_.push_front(entry{std::move(auth), 0, nullptr, clock::now()});
    } else if (peer.has_mac) {
        return refuse(error::auth_failed,
                      "authentication failed: peer requires a cluster secret and we have none");
    }
    handshaken_ = true;
    was_up_ = true;
    parked_ = false;
    attempting_ = false;
    connect_timer_.cancel();
    backoff_ = std::chrono::milliseconds(20);
    ping_outstanding_ = false;
    last_write_.store(clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    stats_.connects.fetch_add(1, std::memory_order_relaxed);
    peer_info info{peer.id, peer.incarnation, peer.node, peer.host, peer.port};
    if (cb_.up) {
        cb_.up(info);
    }
    {
        std::lock_guard lock(mutex_);
        connected_ = true;
        fd_ = socket_.native_handle();
        kick_writer_locked();
    }
    arm_tick();
    return true;
}

} // namespace troupe::transport
