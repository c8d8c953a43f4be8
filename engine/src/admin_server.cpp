// SPDX-License-Identifier: Apache-2.0
#include <troupe/engine/admin_server.hpp>

#include "log.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/system/system_error.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe::engine {

namespace detail {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

constexpr auto read_timeout = std::chrono::seconds(10);
// Also bounds a write, so a client that stops reading cannot pin a session forever.
constexpr auto write_timeout = std::chrono::seconds(10);
constexpr std::uint32_t request_header_limit = 8 * 1024;
constexpr std::uint64_t request_body_limit = 8 * 1024;
// Room for one maximal request plus some pipelined bytes; beyond that the client is abusive.
constexpr std::size_t read_buffer_limit = 32 * 1024;
// How long a finished connection keeps reading (and discarding) after its last reply, so
// that closing with unread bytes does not reset the connection before the client has read it.
constexpr auto linger_timeout = std::chrono::seconds(2);
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);
// stop() waits for the I/O threads to close everything; an owner that stopped running the
// io_context early must not hang us forever.
constexpr auto stop_wait_limit = std::chrono::seconds(5);

/// Fulfils its future when the last copy of the owning shared_ptr goes away, whether the
/// handler holding that copy ran or was destroyed unrun (io_context stopped or destroyed).
class completion_signal {
public:
    completion_signal()
        : future_(promise_.get_future().share()) {}

    completion_signal(const completion_signal&) = delete;
    completion_signal& operator=(const completion_signal&) = delete;

    ~completion_signal() { promise_.set_value(); }

    std::shared_future<void> future() const { return future_; }

private:
    std::promise<void> promise_;
    std::shared_future<void> future_;
};

std::string to_json_text(const nlohmann::json& j) {
    // Paths and exception texts come from outside; invalid UTF-8 must not make dump() throw.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string format_endpoint(const std::string& address, std::uint16_t port) {
    if (address.find(':') != std::string::npos) {
        return "[" + address + "]:" + std::to_string(port);
    }
    return address + ":" + std::to_string(port);
}

std::string_view route_path(std::string_view target) {
    const auto end = target.find_first_of("?#");
    return end == std::string_view::npos ? target : target.substr(0, end);
}

class admin_session;

/// Everything admin_server owns. Sessions and pending accept handlers hold it by shared_ptr,
/// so it outlives every handler that can still run, even after the admin_server is gone.
class admin_core : public std::enable_shared_from_this<admin_core> {
public:
    admin_core(net::io_context& io, std::string address, std::uint16_t port)
        : io_(io)
        , address_(std::move(address))
        , requested_port_(port)
        , strand_(net::make_strand(io))
        , acceptor_(strand_)
        , retry_timer_(strand_) {}

    void add_route(std::string path, admin_route route);
    void start();
    void stop();

    std::uint16_t port() const noexcept { return bound_port_.load(); }

    /// Builds the reply for one parsed request. Called on a session strand; never throws
    /// for a route failure (that becomes a 500).
    response answer(const request& req) const;

private:
    enum class state { idle, running, stopped };

    void do_accept();
    void on_accept(beast::error_code ec, tcp::socket socket);
    void close_acceptor();

    std::string where() const {
        const auto bound = bound_port_.load();
        return format_endpoint(address_, bound != 0 ? bound : requested_port_);
    }

    net::io_context& io_;
    const std::string address_;
    const std::uint16_t requested_port_;

    // The acceptor and the retry timer live on strand_; only its handlers touch them once
    // start() has returned.
    net::strand<net::io_context::executor_type> strand_;
    tcp::acceptor acceptor_;
    net::steady_timer retry_timer_;

    // Written only before start() (under mutex_); read without a lock afterwards, ordered by
    // the mutex every session creation passes through.
    std::unordered_map<std::string, admin_route> routes_;
    std::atomic<std::uint16_t> bound_port_{0};

    std::mutex mutex_;
    state state_ = state::idle;
    std::vector<std::weak_ptr<admin_session>> sessions_;
    std::shared_future<void> stopped_;
};

/// One HTTP/1.1 connection. Every step runs on the connection's own strand, and every
/// handler holds a shared_ptr to the session, so it lives exactly as long as some operation
/// is pending on it. admin_core keeps only a weak_ptr, to close it on stop().
class admin_session : public std::enable_shared_from_this<admin_session> {
public:
    admin_session(tcp::socket&& socket, std::shared_ptr<const admin_core> core)
        : stream_(std::move(socket))
        , buffer_(read_buffer_limit)
        , core_(std::move(core)) {}

    void run() {
        // The socket came from async_accept on another strand; step onto ours before the
        // first operation.
        net::dispatch(stream_.get_executor(),
                      beast::bind_front_handler(&admin_session::do_read, shared_from_this()));
    }

    /// Posts the close onto the session strand. `done` is released once that has happened.
    void close(std::shared_ptr<completion_signal> done) {
        // `done` is captured only for its lifetime: it fires when this handler is gone.
        net::post(stream_.get_executor(),
                  [self = shared_from_this(), done = std::move(done)] { self->close_now(); });
    }

private:
    void do_read();
    void on_read(beast::error_code ec, std::size_t bytes);
    void reject(http::status status, std::string_view reason);
    void do_write();
    void on_write(bool keep_alive, beast::error_code ec, std::size_t bytes);
    void shutdown_send();
    void linger();
    void on_linger(beast::error_code ec, std::size_t bytes);
    void close_now();

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    // A parser handles one message only, so each request gets a fresh one.
    std::optional<http::request_parser<http::string_body>> parser_;
    // Must stay alive until async_write completes.
    response response_;
    std::array<char, 512> discard_{};
    std::shared_ptr<const admin_core> core_;
    bool closed_ = false;
};

void admin_session::do_read() {
    if (closed_) {
        return;
    }
    parser_.emplace();
    parser_->header_limit(request_header_limit);
    parser_->body_limit(request_body_limit);
    stream_.expires_after(read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&admin_session::on_read, shared_from_this()));
}

void admin_session::on_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (closed_ || ec == net::error::operation_aborted) {
        return;
    }
    if (ec == http::error::end_of_stream) {
        // The client closed between requests: the normal end of a keep-alive connection.
        shutdown_send();
        return;
    }
    if (ec == beast::error::timeout || ec == http::error::partial_message) {
        // tcp_stream closed the socket on timeout; a partial message means the peer went away.
        SPDLOG_LOGGER_DEBUG(engine_log(), "admin: dropping connection: {}", ec.message());
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
        reject(http::status::bad_request, "malformed request");
        return;
    }
    if (ec) {
        // Reset by peer and the like: nobody is left to answer.
        SPDLOG_LOGGER_DEBUG(engine_log(), "admin: read failed: {}", ec.message());
        return;
    }

    try {
        response_ = core_->answer(parser_->get());
    } catch (const std::exception& e) {
        // answer() guards the routes; what remains is allocation failure and the like.
        engine_log()->error("admin: cannot build a reply: {}", e.what());
        return;
    }
    do_write();
}

void admin_session::reject(http::status status, std::string_view reason) {
    SPDLOG_LOGGER_DEBUG(engine_log(), "admin: rejecting request: {}", reason);
    response_ = response{};
    response_.result(status);
    response_.set(http::field::content_type, "application/json");
    response_.body() = to_json_text({{"error", reason}});
    // The stream position is unknown after a parse error, so the connection cannot continue.
    response_.keep_alive(false);
    response_.prepare_payload();
    do_write();
}

void admin_session::do_write() {
    const bool keep_alive = response_.keep_alive();
    stream_.expires_after(write_timeout);
    http::async_write(
        stream_, response_,
        beast::bind_front_handler(&admin_session::on_write, shared_from_this(), keep_alive));
}

void admin_session::on_write(bool keep_alive, beast::error_code ec, std::size_t /*bytes*/) {
    if (closed_ || ec == net::error::operation_aborted) {
        return;
    }
    if (ec) {
        SPDLOG_LOGGER_DEBUG(engine_log(), "admin: write failed: {}", ec.message());
        return;
    }
    if (!keep_alive) {
        linger();
        return;
    }
    do_read();
}

void admin_session::shutdown_send() {
    // A half-close lets the client read everything sent so far; the socket itself closes when
    // the last handler releases this session.
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

void admin_session::linger() {
    shutdown_send();
    stream_.expires_after(linger_timeout);
    stream_.async_read_some(
        net::buffer(discard_),
        beast::bind_front_handler(&admin_session::on_linger, shared_from_this()));
}

void admin_session::on_linger(beast::error_code ec, std::size_t /*bytes*/) {
    // Ends on EOF (the client has read the reply and closed), on timeout or on stop().
    if (closed_ || ec) {
        return;
    }
    stream_.async_read_some(
        net::buffer(discard_),
        beast::bind_front_handler(&admin_session::on_linger, shared_from_this()));
}

void admin_session::close_now() {
    closed_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    // Cancels the timer and the socket: pending handlers complete with operation_aborted.
    stream_.close();
}

void admin_core::add_route(std::string path, admin_route route) {
    if (path.empty() || path.front() != '/') {
        throw std::invalid_argument("admin_server: route path must start with '/': " + path);
    }
    if (!route) {
        throw std::invalid_argument("admin_server: empty route for " + path);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ != state::idle) {
        throw std::logic_error("admin_server: add_route() after start(): " + path);
    }
    routes_.insert_or_assign(std::move(path), std::move(route));
}

void admin_core::start() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ != state::idle) {
        throw std::logic_error("admin_server: start() called twice or after stop()");
    }

    beast::error_code ec;
    const auto address = net::ip::make_address(address_, ec);
    if (ec) {
        throw boost::system::system_error(ec, "admin_server: invalid address " + where());
    }
    const tcp::endpoint endpoint{address, requested_port_};
    const auto fail = [&](const char* what) {
        beast::error_code ignored;
        acceptor_.close(ignored);
        throw boost::system::system_error(ec, std::string("admin_server: cannot ") + what + " " +
                                                  where());
    };
    acceptor_.open(endpoint.protocol(), ec);
    if (ec) {
        fail("open");
    }
    // Lets a restarted node rebind while old connections sit in TIME_WAIT.
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (ec) {
        fail("configure");
    }
    acceptor_.bind(endpoint, ec);
    if (ec) {
        fail("bind");
    }
    acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        fail("listen on");
    }
    const auto bound = acceptor_.local_endpoint(ec);
    if (ec) {
        fail("read the bound port of");
    }
    bound_port_.store(bound.port());
    state_ = state::running;

    // From here on the acceptor belongs to its strand.
    net::post(strand_, [self = shared_from_this()] { self->do_accept(); });
    engine_log()->info("admin endpoint listening on {}", format_endpoint(address_, bound.port()));
}

void admin_core::do_accept() {
    if (!acceptor_.is_open()) {
        return;
    }
    // Each connection gets its own strand, so requests on different connections run in
    // parallel on a multi-threaded io_context.
    acceptor_.async_accept(net::make_strand(io_),
                           beast::bind_front_handler(&admin_core::on_accept, shared_from_this()));
}

void admin_core::on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) {
        return;
    }
    if (ec) {
        // Typically EMFILE. Retrying at once would spin, giving up would leave the endpoint
        // dead; wait a little instead.
        engine_log()->warn("admin: accept failed on {}: {}", where(), ec.message());
        retry_timer_.expires_after(accept_retry_delay);
        retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
            if (!wait_ec) {
                self->do_accept();
            }
        });
        return;
    }

    std::shared_ptr<admin_session> session;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (state_ != state::running) {
            return; // stop() is under way; the socket closes as it goes out of scope
        }
        session = std::make_shared<admin_session>(std::move(socket), shared_from_this());
        std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
        sessions_.push_back(session);
    }
    session->run();
    do_accept();
}

void admin_core::close_acceptor() {
    beast::error_code ignored;
    retry_timer_.cancel();
    acceptor_.close(ignored);
}

void admin_core::stop() {
    std::shared_future<void> done;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (state_ == state::idle) {
            state_ = state::stopped;
            return;
        }
        if (state_ == state::running) {
            state_ = state::stopped;
            auto signal = std::make_shared<completion_signal>();
            stopped_ = signal->future();
            net::post(strand_, [self = shared_from_this(), signal] { self->close_acceptor(); });
            for (const auto& weak : sessions_) {
                if (auto session = weak.lock()) {
                    session->close(signal);
                }
            }
            sessions_.clear();
            engine_log()->info("admin endpoint on {} stopping", where());
        }
        done = stopped_;
    }

    if (io_.get_executor().running_in_this_thread()) {
        // The close handlers may need this very thread (or the strand it is on); they run
        // soon after we return.
        return;
    }
    if (io_.stopped()) {
        // Nobody will run the handlers until the owner restarts the io_context; if it is
        // destroyed instead, destroying the handlers closes the sockets all the same.
        return;
    }
    if (done.valid() && done.wait_for(stop_wait_limit) != std::future_status::ready) {
        engine_log()->warn("admin: stop() gave up waiting for the io_context after {} s",
                           stop_wait_limit.count());
    }
}

response admin_core::answer(const request& req) const {
    response res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "troupe-admin");
    res.set(http::field::content_type, "application/json");

    const auto target = req.target();
    const std::string path(route_path(std::string_view(target.data(), target.size())));
    if (req.method() != http::verb::get) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET");
        res.body() = to_json_text(
            {{"error", "method not allowed"}, {"method", std::string(req.method_string())}});
    } else if (const auto it = routes_.find(path); it == routes_.end()) {
        res.result(http::status::not_found);
        res.body() = to_json_text({{"error", "not found"}, {"path", path}});
    } else {
        std::string failure;
        try {
            http_reply reply = it->second();
            // result() rejects codes above 999 by throwing, which lands in the 500 below.
            res.result(reply.status);
            res.set(http::field::content_type, reply.content_type);
            res.body() = std::move(reply.body);
        } catch (const std::exception& e) {
            failure = e.what();
        } catch (...) {
            failure = "unknown exception";
        }
        if (!failure.empty()) {
            engine_log()->warn("admin: route {} failed: {}", path, failure);
            res.result(http::status::internal_server_error);
            res.set(http::field::content_type, "application/json");
            res.body() =
                to_json_text({{"error", "route failed"}, {"path", path}, {"message", failure}});
        }
    }
    SPDLOG_LOGGER_DEBUG(engine_log(), "admin: {} {} -> {}", std::string(req.method_string()), path,
                        res.result_int());
    res.prepare_payload();
    return res;
}

} // namespace detail

struct admin_server::impl : detail::admin_core {
    using admin_core::admin_core;
};

admin_server::admin_server(boost::asio::io_context& io, std::string address, std::uint16_t port)
    : impl_(std::make_shared<impl>(io, std::move(address), port)) {}

admin_server::~admin_server() {
    try {
        impl_->stop();
    } catch (const std::exception& e) {
        // A destructor must not throw; the handlers still hold impl_, so nothing dangles.
        try {
            engine_log()->error("admin: stop() in destructor failed: {}", e.what());
        } catch (...) {
        }
    }
}

void admin_server::add_route(std::string path, admin_route route) {
    impl_->add_route(std::move(path), std::move(route));
}

void admin_server::start() {
    impl_->start();
}

void admin_server::stop() {
    impl_->stop();
}

std::uint16_t admin_server::port() const noexcept {
    return impl_->port();
}

} // namespace troupe::engine
