// SPDX-License-Identifier: Apache-2.0
#include "http_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/system/system_error.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace troupe::httpd {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// Room for one maximal request plus pipelined bytes behind it.
constexpr std::size_t read_buffer_slack = 16 * 1024;
// After a response that closes the connection, unread bytes would turn the close into a
// reset that can destroy the response before the client reads it: read and discard a
// little while first.
constexpr auto linger_timeout = std::chrono::seconds(2);
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

std::string endpoint_text(const std::string& address, std::uint16_t port) {
    if (address.find(':') != std::string::npos) {
        return "[" + address + "]:" + std::to_string(port);
    }
    return address + ":" + std::to_string(port);
}

// The tool owns the default logger (node_setup's "troupe"); the server writes there.
spdlog::logger* http_log() {
    return spdlog::default_logger_raw();
}

response error_response(http::status status, std::string_view reason) {
    response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = nlohmann::json{{"error", reason}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
    return res;
}

} // namespace

/// Shared by a request's responder copies: delivers the first response, or a
/// 500 when the last copy goes uncalled.
struct responder::state {
    explicit state(std::function<void(response)> d) : deliver(std::move(d)) {}
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() {
        if (!answered.exchange(true)) {
            http_log()->error("request handler dropped its responder without answering");
            deliver(error_response(http::status::internal_server_error, "internal error"));
        }
    }

    std::function<void(response)> deliver;
    std::atomic<bool> answered{false};
};

void responder::operator()(response res) const {
    if (state_ && !state_->answered.exchange(true)) {
        state_->deliver(std::move(res));
    }
}

class connection;

/// Everything the server owns. Connections and pending accept handlers hold it by
/// shared_ptr, so it outlives every handler that can still run.
class server_core : public std::enable_shared_from_this<server_core> {
public:
    server_core(server_options o, request_handler h, reject_observer r)
        : options(std::move(o))
        , handler(std::move(h))
        , on_reject(std::move(r))
        , io(static_cast<int>(options.threads))
        , strand(net::make_strand(io))
        , acceptor(strand)
        , retry_timer(strand) {}

    void start();
    void stop();
    void connection_closed();

    const server_options options;
    const request_handler handler;
    const reject_observer on_reject;

    std::atomic<std::uint16_t> bound_port{0};
    std::atomic<std::uint64_t> open{0};
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<bool> finished{false}; ///< stop() joined the threads

private:
    void do_accept();
    void on_accept(beast::error_code ec, tcp::socket socket);

    net::io_context io;
    net::strand<net::io_context::executor_type> strand;
    tcp::acceptor acceptor;
    net::steady_timer retry_timer;
    std::vector<std::thread> threads;

    std::mutex mutex;
    std::condition_variable all_closed;
    enum class state { idle, running, stopped } state_ = state::idle;
    std::vector<std::weak_ptr<connection>> connections;
};

/// One HTTP/1.1 connection, every step on its own strand. Each pending handler
/// holds a shared_ptr to it; the server keeps only a weak_ptr, to stop it.
class connection : public std::enable_shared_from_this<connection> {
public:
    connection(tcp::socket&& socket, std::shared_ptr<server_core> server)
        : server_(std::move(server))
        , stream_(std::move(socket))
        , buffer_(server_->options.header_limit + server_->options.body_limit + read_buffer_slack) {
        server_->open.fetch_add(1);
    }

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    ~connection() { server_->connection_closed(); }

    void run() {
        // The socket was accepted on the acceptor's strand: move onto ours first.
        net::dispatch(stream_.get_executor(),
                      beast::bind_front_handler(&connection::do_read, shared_from_this()));
    }

    /// From stop(): an idle connection closes now, a busy one after its response.
    void stop() {
        net::post(stream_.get_executor(), [self = shared_from_this()] {
            self->stopping_ = true;
            if (self->reading_ || self->lingering_) {
                self->close_now();
            }
        });
    }

private:
    void do_read() {
        if (stopping_) {
            close_now();
            return;
        }
        parser_.emplace();
        parser_->header_limit(server_->options.header_limit);
        parser_->body_limit(server_->options.body_limit);
        stream_.expires_after(server_->options.read_timeout);
        reading_ = true;
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&connection::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t /*bytes*/) {
        reading_ = false;
        if (closed_ || ec == net::error::operation_aborted) {
            return;
        }
        if (ec == http::error::end_of_stream) {
            // The client closed between requests: the normal end of keep-alive.
            shutdown_send();
            return;
        }
        if (ec == beast::error::timeout || ec == http::error::partial_message) {
            // tcp_stream closed the socket on timeout; a partial message means the peer left.
            SPDLOG_LOGGER_DEBUG(http_log(), "dropping connection: {}", ec.message());
            return;
        }
        if (ec == http::error::body_limit) {
            reject(http::status::payload_too_large, "request body too large");
            return;
        }
        if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
            reject(http::status::request_header_fields_too_large, "request header too large");
            return;
        }
        if (ec.category() == beast::error_code(http::error::bad_method).category()) {
            reject(http::status::bad_request, "malformed request: " + ec.message());
            return;
        }
        if (ec) {
            SPDLOG_LOGGER_DEBUG(http_log(), "read failed: {}", ec.message());
            return;
        }

        const auto& req = parser_->get();
        auto state = std::make_shared<responder::state>(
            [self = shared_from_this()](response res) {
                // After stop() nothing runs the server's handlers any more: a queued
                // one would hold the connection, and so the core, forever.
                if (self->server_->finished.load()) {
                    return;
                }
                // Inline when answered on this connection's strand (a handler that
                // responds at once); posted there from any other thread.
                net::dispatch(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
                    self->on_response(std::move(res));
                });
            });
        const responder respond(state);
        state.reset(); // the handler's copies decide when it is dropped
        try {
            server_->handler(req, respond);
        } catch (const std::exception& e) {
            http_log()->error("request handler failed: {}", e.what());
            respond(error_response(http::status::internal_server_error, "internal error"));
        }
    }

    void on_response(response res) {
        if (closed_) {
            return;
        }
        const auto& req = parser_->get();
        response_ = std::move(res);
        response_.version(req.version());
        response_.keep_alive(req.keep_alive() && !stopping_);
        do_write();
    }

    void reject(http::status status, const std::string& reason) {
        SPDLOG_LOGGER_DEBUG(http_log(), "rejecting request: {}", reason);
        if (server_->on_reject) {
            server_->on_reject(static_cast<unsigned>(status));
        }
        response_ = error_response(status, reason);
        // Where the next request would start is unknown after a parse error.
        response_.keep_alive(false);
        do_write();
    }

    void do_write() {
        response_.set(http::field::server, "troupe-httpd");
        response_.prepare_payload();
        const bool keep_alive = response_.keep_alive();
        stream_.expires_after(server_->options.write_timeout);
        http::async_write(
            stream_, response_,
            beast::bind_front_handler(&connection::on_write, shared_from_this(), keep_alive));
    }

    void on_write(bool keep_alive, beast::error_code ec, std::size_t /*bytes*/) {
        if (closed_ || ec == net::error::operation_aborted) {
            return;
        }
        if (ec) {
            SPDLOG_LOGGER_DEBUG(http_log(), "write failed: {}", ec.message());
            return;
        }
        if (!keep_alive || stopping_) {
            linger();
            return;
        }
        do_read();
    }

    void shutdown_send() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    void linger() {
        lingering_ = true;
        shutdown_send();
        stream_.expires_after(linger_timeout);
        stream_.async_read_some(
            net::buffer(discard_),
            beast::bind_front_handler(&connection::on_linger, shared_from_this()));
    }

    void on_linger(beast::error_code ec, std::size_t /*bytes*/) {
        if (closed_ || ec || stopping_) {
            return;
        }
        stream_.async_read_some(
            net::buffer(discard_),
            beast::bind_front_handler(&connection::on_linger, shared_from_this()));
    }

    void close_now() {
        closed_ = true;
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.close();
    }

    // First member, so destroyed last: a late responder copy can hold the last
    // reference to the core, whose io_context the stream's socket and timer need
    // while they are destroyed.
    std::shared_ptr<server_core> server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    // A parser reads one message, so each request gets a fresh one.
    std::optional<http::request_parser<http::string_body>> parser_;
    response response_; // alive until async_write completes
    std::array<char, 512> discard_{};
    bool reading_ = false;   // waiting for (the rest of) a request
    bool lingering_ = false; // response sent, connection closing
    bool stopping_ = false;
    bool closed_ = false;
};

void server_core::start() {
    std::lock_guard lock(mutex);
    if (state_ != state::idle) {
        throw std::logic_error("http_server: start() called twice or after stop()");
    }
    const auto where = endpoint_text(options.address, options.port);
    beast::error_code ec;
    const auto address = net::ip::make_address(options.address, ec);
    if (ec) {
        throw boost::system::system_error(ec, "http: invalid address " + where);
    }
    const tcp::endpoint endpoint{address, options.port};
    const auto fail = [&](const char* what) {
        beast::error_code ignored;
        acceptor.close(ignored);
        throw boost::system::system_error(ec, std::string("http: cannot ") + what + " " + where);
    };
    acceptor.open(endpoint.protocol(), ec);
    if (ec) {
        fail("open");
    }
    // A restarted server rebinds while old connections sit in TIME_WAIT.
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (ec) {
        fail("configure");
    }
    acceptor.bind(endpoint, ec);
    if (ec) {
        fail("bind");
    }
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        fail("listen on");
    }
    const auto bound = acceptor.local_endpoint(ec);
    if (ec) {
        fail("read the bound port of");
    }
    bound_port.store(bound.port());
    state_ = state::running;
    net::post(strand, [self = shared_from_this()] { self->do_accept(); });
    threads.reserve(options.threads);
    for (unsigned i = 0; i < options.threads; ++i) {
        threads.emplace_back([this] {
            // Handlers catch their own exceptions; one escaping here is a bug, but
            // the thread keeps serving rather than taking the process down.
            for (;;) {
                try {
                    io.run();
                    return;
                } catch (const std::exception& e) {
                    http_log()->error("http thread: {}", e.what());
                }
            }
        });
    }
    http_log()->info("http listening on {} with {} thread(s)",
                     endpoint_text(options.address, bound.port()), options.threads);
}

void server_core::do_accept() {
    if (!acceptor.is_open()) {
        return;
    }
    // A strand per connection: connections run in parallel on the server's threads.
    acceptor.async_accept(net::make_strand(io),
                          beast::bind_front_handler(&server_core::on_accept, shared_from_this()));
}

void server_core::on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) {
        return;
    }
    if (ec) {
        // Typically EMFILE: retrying at once would spin, giving up would leave the server deaf.
        http_log()->warn("http: accept failed: {}", ec.message());
        retry_timer.expires_after(accept_retry_delay);
        retry_timer.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
            if (!wait_ec) {
                self->do_accept();
            }
        });
        return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::shared_ptr<connection> c;
    {
        std::lock_guard lock(mutex);
        if (state_ != state::running) {
            return;
        }
        accepted.fetch_add(1);
        c = std::make_shared<connection>(std::move(socket), shared_from_this());
        std::erase_if(connections, [](const auto& weak) { return weak.expired(); });
        connections.push_back(c);
    }
    c->run();
    do_accept();
}

void server_core::connection_closed() {
    std::lock_guard lock(mutex);
    open.fetch_sub(1);
    all_closed.notify_all();
}

void server_core::stop() {
    std::vector<std::shared_ptr<connection>> live;
    {
        std::lock_guard lock(mutex);
        if (state_ != state::running) {
            state_ = state::stopped;
            return;
        }
        state_ = state::stopped;
        for (const auto& weak : connections) {
            if (auto c = weak.lock()) {
                live.push_back(std::move(c));
            }
        }
        connections.clear();
    }
    net::post(strand, [self = shared_from_this()] {
        beast::error_code ignored;
        self->retry_timer.cancel();
        self->acceptor.close(ignored);
    });
    // Outside the lock: dropping the last reference to a connection takes it.
    for (auto& c : live) {
        c->stop();
    }
    live.clear();
    std::unique_lock lock(mutex);
    // Requests being handled finish and write their response; a client that does
    // not read it is cut off by the write timeout, then the linger ends.
    const auto limit = options.write_timeout + linger_timeout + std::chrono::seconds(1);
    if (!all_closed.wait_for(lock, limit, [this] { return open.load() == 0; })) {
        http_log()->warn("http: {} connection(s) still open after {} ms; closing them", open.load(),
                         std::chrono::duration_cast<std::chrono::milliseconds>(limit).count());
    }
    lock.unlock();
    io.stop();
    for (auto& t : threads) {
        t.join();
    }
    threads.clear();
    finished.store(true);
    // Handlers still queued (the acceptor's, aborted ones) hold the core and
    // their connections: run them out here, so that nothing keeps them alive.
    io.restart();
    io.poll();
    http_log()->info("http server stopped");
}

struct http_server::impl : server_core {
    using server_core::server_core;
};

http_server::http_server(server_options options, request_handler handler, reject_observer on_reject)
    : impl_(std::make_shared<impl>(std::move(options), std::move(handler), std::move(on_reject))) {
    if (impl_->options.threads == 0) {
        throw std::invalid_argument("http_server: threads must be at least 1");
    }
}

http_server::~http_server() {
    try {
        impl_->stop();
    } catch (const std::exception& e) {
        try {
            http_log()->error("http: stop() in destructor failed: {}", e.what());
        } catch (...) {
        }
    }
}

void http_server::start() {
    impl_->start();
}

void http_server::stop() {
    impl_->stop();
}

std::uint16_t http_server::port() const noexcept {
    return impl_->bound_port.load();
}

std::uint64_t http_server::open_connections() const noexcept {
    return impl_->open.load();
}

std::uint64_t http_server::accepted_connections() const noexcept {
    return impl_->accepted.load();
}

} // namespace troupe::httpd
