// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace troupe::httpd {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;

/// Sends the response to one request. Call it exactly once, from any thread
/// (the write starts at once on the connection's strand, or is posted there);
/// later calls are ignored. When
/// the last copy is dropped uncalled, the client gets a 500: a handler that
/// loses it cannot hang a connection.
class responder {
public:
    void operator()(response res) const;

    struct state;
    explicit responder(std::shared_ptr<state> s) : state_(std::move(s)) {}

private:
    std::shared_ptr<state> state_;
};

/// Answers one parsed request through `respond`, now or later: a handler that
/// waits for something (a sync replication) returns at once and responds from
/// the completion, so the server's few threads never block. Runs on one of the
/// server's threads; `req` stays valid until the response is written. It must
/// not throw, but an exception becomes a 500 all the same.
using request_handler = std::function<void(const request& req, responder respond)>;

/// Told about every request refused before it reached the handler (400 for a
/// malformed request, 413 for a body over the limit, 431 for headers over it).
using reject_observer = std::function<void(unsigned status)>;

struct server_options {
    std::string address = "127.0.0.1";
    std::uint16_t port = 8080; ///< 0 = any free port
    unsigned threads = 2;
    /// A whole request (headers and body), and the wait for the next one on a
    /// kept-alive connection, must arrive within this; else the connection closes.
    std::chrono::milliseconds read_timeout{10000};
    std::chrono::milliseconds write_timeout{10000};
    std::uint32_t header_limit = 8 * 1024;
    std::uint64_t body_limit = 64 * 1024;
};

/// A Boost.Beast HTTP/1.1 server (keep-alive, pipelining answered in order) with
/// its own io_context run by `threads` threads, so that request handlers never
/// run on the channel's I/O threads. A connection reads its next request once
/// the response to the current one is written.
///
/// Owns its threads, the acceptor and every connection. stop() closes the
/// acceptor and idle connections, lets requests being handled finish and send
/// their response (bounded by the write timeout), then joins the threads. The
/// destructor calls stop().
///
/// @par Thread safety
/// start(), stop() and port() may be called from any thread but a server thread.
class http_server {
public:
    http_server(server_options options, request_handler handler, reject_observer on_reject = {});
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    /// Binds and starts the threads.
    /// @throws boost::system::system_error if the address cannot be bound.
    void start();
    /// Graceful and idempotent.
    void stop();
    /// The bound port (after start()).
    std::uint16_t port() const noexcept;
    /// Connections open right now, and accepted since start.
    std::uint64_t open_connections() const noexcept;
    std::uint64_t accepted_connections() const noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace troupe::httpd
