// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/probe.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstring>

namespace troupe::transport {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

class prober : public std::enable_shared_from_this<prober> {
public:
    prober(asio::io_context& io, local_identity self, std::string host, std::uint16_t port,
           membership::member_id expected, probe_handler handler)
        : strand_(asio::make_strand(io))
        , resolver_(strand_)
        , socket_(strand_)
        , timer_(strand_)
        , self_(std::move(self))
        , host_(std::move(host))
        , port_(port)
        , expected_(expected)
        , handler_(std::move(handler)) {}

    void start(std::chrono::milliseconds timeout) {
        asio::dispatch(strand_, [me = shared_from_this(), timeout] {
            me->timer_.expires_after(timeout);
            me->timer_.async_wait([me, timeout](const error_code& ec) {
                if (!ec) {
                    me->finish(false, "no answer within " + std::to_string(timeout.count()) + "ms (" +
                                          me->stage_ + ")");
                }
            });
            me->resolver_.async_resolve(me->host_, std::to_string(me->port_),
                                        [me](const error_code& ec, tcp::resolver::results_type r) {
                                            if (ec) {
                                                me->finish(false, "resolve: " + ec.message());
                                                return;
                                            }
                                            me->stage_ = "connect";
                                            asio::async_connect(me->socket_, r,
                                                                [me](const error_code& cec, const tcp::endpoint&) {
                                                                    me->on_connect(cec);
                                                                });
                                        });
        });
    }

private:
    void on_connect(const error_code& ec) {
        if (done_) {
            return;
        }
        if (ec) {
            finish(false, "connect: " + ec.message());
            return;
        }
        stage_ = "HELLO";
        mine_.role = 0;
        mine_.id = self_.id;
        mine_.incarnation = self_.incarnation;
        mine_.port = self_.port;
        mine_.cluster = self_.cluster;
        mine_.node = self_.node;
        mine_.host = self_.host;
        mine_.challenge = random_nonce();
        append_hello(out_, mine_);
        write_out();
        read();
    }

    void write_out() {
        auto data = std::make_shared<buffer>(std::move(out_));
        out_.clear();
        asio::async_write(socket_, asio::buffer(*data), [me = shared_from_this(), data](const error_code& ec,
                                                                                       std::size_t) {
            if (ec) {
                me->finish(false, "write: " + ec.message());
            }
        });
    }

    void read() {
        socket_.async_read_some(asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                                [me = shared_from_this()](const error_code& ec, std::size_t n) {
                                    me->on_read(ec, n);
                                });
    }

    void on_read(const error_code& ec, std::size_t n) {
        if (done_) {
            return;
        }
        if (ec) {
            finish(false, "during " + stage_ + ": " + (ec == asio::error::eof ? "closed by peer" : ec.message()));
            return;
        }
        rlen_ += n;
        std::size_t pos = 0;
        while (pos < rlen_) {
            frame_view f;
            const auto r = decode_frame({rbuf_.data() + pos, rlen_ - pos}, max_handshake_body, f);
            if (r.what == decode_result::kind::need_more) {
                break;
            }
            if (r.what == decode_result::kind::bad) {
                finish(false, "bad frame: " + r.ec.message());
                return;
            }
            if (!on_frame(f)) {
                return;
            }
            pos += r.consumed;
        }
        std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
        rlen_ -= pos;
        if (rlen_ == rbuf_.size()) {
            finish(false, "oversized answer");
            return;
        }
        read();
    }

    bool on_frame(const frame_view& f) {
        if (f.type == frame_type::bye) {
            std::string_view why;
            (void)parse_bye(f.body, why);
            finish(false, "refused: " + std::string(why));
            return false;
        }
        if (stage_ == "HELLO") {
            hello peer;
            if (f.type != frame_type::hello || parse_hello(f.body, peer) || peer.role != 1) {
                finish(false, "bad HELLO answer");
                return false;
            }
            if (peer.id != expected_) {
                finish(false, "another member (" + peer.node + ", " + peer.id.str() + ") answers there now");
                return false;
            }
            if (!self_.secret.empty()) {
                if (!peer.has_mac || !mac_equal(peer.proof, handshake_mac(self_.secret, true, mine_, peer))) {
                    finish(false, "peer failed authentication");
                    return false;
                }
                append_auth(out_, handshake_mac(self_.secret, false, mine_, peer));
            }
            stage_ = "PING";
            append_token(out_, frame_type::ping, 0x70726f6265ull); // "probe"
            write_out();
            return true;
        }
        if (f.type == frame_type::pong) {
            finish(true, "answered PING");
            return false;
        }
        return true;
    }

    void finish(bool alive, const std::string& reason) {
        if (done_) {
            return;
        }
        done_ = true;
        timer_.cancel();
        resolver_.cancel();
        error_code ignored;
        if (socket_.is_open()) {
            buffer bye;
            append_bye(bye, "probe");
            socket_.non_blocking(true, ignored);
            socket_.send(asio::buffer(bye), 0, ignored); // best effort: never wait for a frozen peer
            socket_.close(ignored);
        }
        // Completed via post: the handler never runs inside a caller's frame.
        asio::post(strand_, [h = std::move(handler_), alive, reason] { h(alive, reason); });
    }

    asio::strand<asio::io_context::executor_type> strand_;
    tcp::resolver resolver_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    local_identity self_;
    std::string host_;
    std::uint16_t port_;
    membership::member_id expected_;
    probe_handler handler_;
    hello mine_;
    buffer out_;
    std::array<std::uint8_t, 4096> rbuf_{};
    std::size_t rlen_ = 0;
    std::string stage_ = "resolve";
    bool done_ = false;
};

} // namespace

void async_probe(asio::io_context& io, const local_identity& self, const std::string& host,
                 std::uint16_t port, const membership::member_id& expected,
                 std::chrono::milliseconds timeout, probe_handler handler) {
    auto p = std::make_shared<prober>(io, self, host, port, expected, std::move(handler));
    p->start(timeout);
}

} // namespace troupe::transport
