// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/multicast_discovery.hpp>

#include "log.hpp"

#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <set>

namespace troupe::membership {

namespace asio = boost::asio;
using boost::asio::ip::udp;
using boost::system::error_code;

namespace {

// A newcomer is answered at once, but a burst of newcomers (16 nodes starting
// together) gets one answer per this interval, not one each.
constexpr auto min_answer_gap = std::chrono::milliseconds(20);
// Remember this many senders we already warned about, so a flood from many
// addresses cannot grow memory.
constexpr std::size_t max_logged_senders = 256;

} // namespace

struct multicast_discovery::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& io, const conf::cluster_config& config, heartbeat self)
        : strand(asio::make_strand(io))
        , socket(strand)
        , timer(strand)
        , settings(config.membership.multicast)
        , cluster(config.cluster.name)
        , secret(config.cluster.secret)
        , me(std::move(self))
        , started(std::chrono::steady_clock::now()) {}

    asio::strand<asio::io_context::executor_type> strand;
    udp::socket socket;
    asio::steady_timer timer;
    conf::multicast_section settings;
    std::string cluster;
    std::string secret;
    heartbeat me;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point last_sent{};
    udp::endpoint group;
    udp::endpoint sender;
    std::array<std::uint8_t, 2048> rbuf{};
    heard_handler heard;
    bool stopped = false;                       ///< strand-only
    std::atomic<bool> stop_requested{false};    ///< stop() runs once

    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> own{0};
    std::atomic<std::uint64_t> send_errors{0};
    mutable std::mutex stats_mutex;
    std::map<std::string, std::uint64_t> rejected; ///< by reason
    std::set<std::string> warned;                   ///< "reason|sender" already logged

    void reject(const std::string& reason, const std::string& detail) {
        std::lock_guard lock(stats_mutex);
        ++rejected[reason];
        const auto key = reason + "|" + sender.address().to_string();
        if (warned.size() < max_logged_senders && warned.insert(key).second) {
            // Once per sender and reason: a misconfigured neighbour must not flood the log.
            log()->warn("heartbeat from {} ignored: {}{} (further ones from it are only counted)",
                        sender.address().to_string(), reason, detail.empty() ? "" : ": " + detail);
        }
    }

    void open() {
        error_code ec;
        const auto group_address = asio::ip::make_address_v4(settings.address, ec);
        if (ec || !group_address.is_multicast()) {
            throw boost::system::system_error(
                ec ? ec : make_error_code(boost::system::errc::invalid_argument),
                "membership.multicast.address '" + settings.address + "' is not an IPv4 multicast group");
        }
        const auto iface = asio::ip::make_address_v4(settings.interface, ec);
        if (ec) {
            throw boost::system::system_error(
                ec, "membership.multicast.interface '" + settings.interface + "' is not an IPv4 address");
        }
        group = udp::endpoint(group_address, settings.port);
        socket.open(udp::v4());
        socket.set_option(udp::socket::reuse_address(true)); // several members per host share the port
        // Bound to the group, so unicast datagrams to the port are not ours to read.
        socket.bind(udp::endpoint(group_address, settings.port));
        socket.set_option(asio::ip::multicast::join_group(group_address, iface));
        socket.set_option(asio::ip::multicast::outbound_interface(iface));
        // Loopback: TTL 0 keeps every datagram on this host, whatever the file says.
        const int ttl = iface.is_loopback() ? 0 : static_cast<int>(settings.ttl);
        socket.set_option(asio::ip::multicast::hops(ttl));
        socket.set_option(asio::ip::multicast::enable_loopback(true));
        log()->info("multicast heartbeats on {}:{} via {} (ttl {}, every {}ms, drop after {}ms)",
                    settings.address, settings.port, settings.interface, ttl, settings.frequency.count(),
                    settings.drop_time.count());
    }

    void send(bool leaving) {
        me.leaving = leaving;
        me.alive_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                     std::chrono::steady_clock::now() - started)
                                                     .count());
        const auto bytes = encode_heartbeat(me, secret);
        error_code ec;
        socket.send_to(asio::buffer(bytes), group, 0, ec);
        last_sent = std::chrono::steady_clock::now();
        if (ec) {
            send_errors.fetch_add(1, std::memory_order_relaxed);
            log()->warn("sending a heartbeat failed: {}", ec.message());
        } else {
            sent.fetch_add(1, std::memory_order_relaxed);
        }
    }

    void do_tick() {
        timer.expires_after(settings.frequency);
        timer.async_wait([self = shared_from_this()](const error_code& ec) {
            if (ec || self->stopped) {
                return;
            }
            self->send(false);
            self->do_tick();
        });
    }

    void do_receive() {
        socket.async_receive_from(asio::buffer(rbuf), sender,
                                  [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                      if (self->stopped || ec == asio::error::operation_aborted) {
                                          return;
                                      }
                                      if (!ec) {
                                          self->on_datagram(n);
                                      } else {
                                          log()->warn("multicast receive failed: {}", ec.message());
                                      }
                                      self->do_receive();
                                  });
    }

    void on_datagram(std::size_t n) {
        received.fetch_add(1, std::memory_order_relaxed);
        heartbeat hb;
        const auto err = decode_heartbeat({rbuf.data(), n}, secret, hb);
        if (err != heartbeat_error::none) {
            reject(std::string(to_string(err)), std::to_string(n) + " bytes");
            return;
        }
        if (hb.id == me.id) {
            own.fetch_add(1, std::memory_order_relaxed); // our own, looped back
            return;
        }
        if (hb.cluster != cluster) {
            reject("other_cluster", "cluster '" + hb.cluster + "'");
            return;
        }
        if (hb.proto_max < me.proto_min || hb.proto_min > me.proto_max) {
            reject("no_common_version", "");
            return;
        }
        if (heard) {
            heard(hb);
        }
    }
};

multicast_discovery::multicast_discovery(asio::io_context& io, const conf::cluster_config& config,
                                         heartbeat self)
    : impl_(std::make_shared<impl>(io, config, std::move(self))) {
    if (impl_->settings.interface.empty()) {
        impl_->settings.interface = config.receiver.address;
    }
}

multicast_discovery::~multicast_discovery() { stop(false); }

void multicast_discovery::start(heard_handler heard) {
    impl_->heard = std::move(heard);
    impl_->open();
    asio::post(impl_->strand, [self = impl_] {
        self->send(false);
        self->do_tick();
        self->do_receive();
    });
}

void multicast_discovery::announce() {
    asio::post(impl_->strand, [self = impl_] {
        if (!self->stopped && std::chrono::steady_clock::now() - self->last_sent >= min_answer_gap) {
            self->send(false);
        }
    });
}

void multicast_discovery::stop(bool leaving) {
    if (impl_->stop_requested.exchange(true)) {
        return; // stopped already (the destructor after channel::stop)
    }
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    asio::post(impl_->strand, [self = impl_, leaving, done] {
        if (!self->stopped) {
            self->stopped = true;
            if (leaving && self->socket.is_open()) {
                self->send(true); // peers drop us at once instead of waiting drop_time
            }
            error_code ignored;
            self->timer.cancel();
            self->socket.close(ignored);
        }
        done->set_value();
    });
    // Bounded: if the io_context no longer runs, the socket closes with the object.
    finished.wait_for(std::chrono::seconds(1));
}

std::vector<std::pair<std::string, std::uint64_t>> multicast_discovery::counters() const {
    std::vector<std::pair<std::string, std::uint64_t>> out{
        {"heartbeats_sent", impl_->sent.load()},
        {"heartbeats_received", impl_->received.load()},
        {"heartbeats_own", impl_->own.load()},
        {"heartbeat_send_errors", impl_->send_errors.load()},
    };
    std::lock_guard lock(impl_->stats_mutex);
    for (const auto& [reason, n] : impl_->rejected) {
        out.emplace_back("heartbeats_rejected." + reason, n);
    }
    return out;
}

} // namespace troupe::membership
