// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace troupe::engine {

struct http_reply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
};

/// Answers one GET path. Runs on an I/O thread; exceptions become a 500 reply.
using admin_route = std::function<http_reply()>;

/// A small HTTP/1.1 server (Boost.Beast) for GET /members, /stats, /metrics and
/// whatever the embedder adds. Unknown paths get 404, other methods 405, malformed
/// requests 400; a request larger than 8 KiB or slower than 10 s is dropped.
///
/// Runs on the io_context it is given; stop() closes the acceptor and every open
/// connection. The owner must keep the io_context running until stop() returns.
///
/// @par Thread safety
/// add_route() only before start(); start()/stop()/port() from any thread.
class admin_server {
public:
    admin_server(boost::asio::io_context& io, std::string address, std::uint16_t port);
    ~admin_server();
    admin_server(const admin_server&) = delete;
    admin_server& operator=(const admin_server&) = delete;

    void add_route(std::string path, admin_route route);
    /// @throws boost::system::system_error if the address cannot be bound.
    void start();
    void stop();
    std::uint16_t port() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace troupe::engine
