// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/receiver.hpp>

#include "inbound_connection.hpp"
#include "log.hpp"
#include "reader_threads.hpp"

#include <boost/asio/strand.hpp>
#include <boost/system/system_error.hpp>

namespace troupe::transport {

namespace asio = boost::asio;
using boost::system::error_code;

receiver::receiver(asio::io_context& io, const conf::cluster_config& config, callbacks cb)
    : io_(io), config_(config), cb_(std::move(cb)), acceptor_(io),
      readers_(std::make_unique<reader_threads>(config.receiver.reader_threads)) {}

receiver::~receiver() = default;

std::uint16_t receiver::bind() {
    error_code ec;
    const auto address = asio::ip::make_address(config_.receiver.address, ec);
    if (ec) {
        throw boost::system::system_error(
            ec, "receiver.address '" + config_.receiver.address + "' is not an IP address");
    }
    const std::uint32_t first = config_.receiver.port;
    const std::uint32_t tries = first == 0 ? 1 : config_.receiver.auto_bind;
    error_code last;
    for (std::uint32_t i = 0; i < tries && first + i <= 65535; ++i) {
        const asio::ip::tcp::endpoint ep(address, static_cast<std::uint16_t>(first + i));
        error_code e;
        acceptor_.open(ep.protocol(), e);
        if (!e) {
            acceptor_.set_option(asio::socket_base::reuse_address(true), e);
        }
        if (!e) {
            acceptor_.bind(ep, e);
        }
        if (!e) {
            acceptor_.listen(asio::socket_base::max_listen_connections, e);
        }
        if (!e) {
            port_ = acceptor_.local_endpoint().port();
            return port_;
        }
        last = e;
        error_code ignored;
        acceptor_.close(ignored);
    }
    const std::string range =
        first == 0 ? "any port"
                   : "ports " + std::to_string(first) + ".." + std::to_string(first + tries - 1);
    throw boost::system::system_error(last, "cannot bind the receiver on " +
                                                config_.receiver.address + ", " + range);
}

void receiver::start(local_identity self) {
    self_ = std::move(self);
    do_accept();
}

void receiver::do_accept() {
    acceptor_.async_accept(asio::make_strand(io_), [self = shared_from_this()](
                                                       const error_code& ec,
                                                       asio::ip::tcp::socket socket) {
        if (self->stopped_) {
            return;
        }
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                return;
            }
            // EMFILE and friends: log, keep accepting rather than go deaf.
            log()->warn("accept failed: {}", ec.message());
        } else {
            self->stats_.accepted.fetch_add(1, std::memory_order_relaxed);
            auto conn = std::make_shared<inbound_connection>(self, std::move(socket));
            {
                std::lock_guard lock(self->mutex_);
                std::erase_if(self->connections_, [](const auto& w) { return w.expired(); });
                self->connections_.push_back(conn);
            }
            conn->start();
        }
        self->do_accept();
    });
}

void receiver::stop() {
    if (stopped_.exchange(true)) {
        return;
    }
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
        error_code ignored;
        self->acceptor_.close(ignored);
    });
    readers_->close(); // no connection leaves the reactor from now on
    std::vector<std::shared_ptr<inbound_connection>> open;
    {
        std::lock_guard lock(mutex_);
        for (auto& w : connections_) {
            if (auto c = w.lock()) {
                open.push_back(std::move(c));
            }
        }
        connections_.clear();
    }
    for (auto& c : open) {
        c->close();
    }
    open.clear();
    // Closing woke every reader; a reader in a listener returns when it does.
    readers_->join_all();
}

} // namespace troupe::transport
