// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace troupe::engine {

/// What an admin_route answers; the server adds the headers and the length.
struct http_reply {
    unsigned status = 200;                          ///< above 999: the client gets a 500
    std::string content_type = "application/json"; ///< the Content-Type header
    std::string body;                               ///< sent as is
};

/// Answers one GET path. Runs on an I/O thread; exceptions become a 500 reply.
using admin_route = std::function<http_reply()>;

/// A small HTTP/1.1 server (Boost.Beast) for GET routes the owner adds (troupe-node
/// adds /members, /stats, /metrics; none is built in). Unknown paths get 404, other
/// methods 405, malformed requests 400, a header or body over 8 KiB 431 or 413; a
/// request slower than 10 s is dropped. The query string is not part of the path.
///
/// Runs on the io_context it is given; stop() closes the acceptor and every open
/// connection. The owner must keep the io_context running until stop() returns.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: safe; add_route() only before start()
/// (it throws after); start()/stop()/port() from any thread. Routes run on the
/// io_context's threads, one strand per connection: requests on different
/// connections may run a route concurrently.
class admin_server {
public:
    /// Nothing is bound until start(). `port` 0: any free port (see port()).
    admin_server(boost::asio::io_context& io, std::string address, std::uint16_t port);
    /// Calls stop(); handlers still queued keep the internals alive, so nothing dangles.
    ~admin_server();
    /// Not copyable: it owns a listening socket.
    admin_server(const admin_server&) = delete;
    /// Not assignable.
    admin_server& operator=(const admin_server&) = delete;

    /// Answers GET `path` (exact match, without the query) with `route`; a second
    /// route for a path replaces the first.
    /// @throws std::invalid_argument if `path` does not start with '/' or `route` is empty.
    /// @throws std::logic_error after start().
    void add_route(std::string path, admin_route route);
    /// Binds and listens, then accepts on the io_context.
    /// @throws boost::system::system_error if the address cannot be bound.
    /// @throws std::logic_error when called twice or after stop().
    void start();
    /// Idempotent. Closes the acceptor and every connection, then waits (up to 5 s)
    /// for the I/O threads to finish; on one of them, or when the io_context is
    /// stopped, it returns without waiting.
    void stop();
    /// The bound port once start() returned (useful with port 0); 0 before.
    std::uint16_t port() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace troupe::engine
