// SPDX-License-Identifier: Apache-2.0
// A Boost.Beast HTTP server with C++20 coroutines whose sessions troupe
// replicates: GET /counter counts per session, and the count survives this
// process (another instance with the same cluster file goes on with it).
//
//   beast_counter --config cluster.yaml --port 8080 [--set key=value]...
#include <troupe/troupe.hpp>

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::redirect_error, asio::use_awaitable; // Boost 1.74 has no as_tuple yet
using boost::system::error_code;
using troupe::managers::session_manager;
using response = http::response<http::string_body>;

std::string_view view(boost::beast::string_view s) { return {s.data(), s.size()}; }

asio::awaitable<void> answer(session_manager& sessions, const http::request<http::string_body>& req, response& res) {
    const auto& cookie = sessions.config().cookie;
    const auto id = troupe::managers::session_id_from_cookie(view(req[http::field::cookie]), cookie.name);
    const auto target = view(req.target());
    const auto path = target.substr(0, target.find('?')); // what manager.filter and skip_paths match
    // Never blocks this thread: a session that must be fetched or waited for
    // is waited for on troupe's threads, and the coroutine resumes here.
    error_code ec;
    auto scope = co_await sessions.async_begin_request({id, path, {}}, redirect_error(use_awaitable, ec));
    if (ec) { // session_unavailable (it exists but could not be had: retry later) or stopped
        res.result(http::status::service_unavailable);
        res.body() = R"({"error":")" + ec.message() + "\"}";
        co_return;
    }
    std::int64_t count = 0;
    scope.session(true)->modify<std::int64_t>("counter", [&](std::int64_t& n) { count = ++n; });
    if (scope.id_changed()) {
        res.set(http::field::set_cookie, troupe::managers::set_cookie_value(scope.session_id(), cookie));
    }
    // With `sync` send options this resumes once the other members hold the change.
    const auto ended = co_await scope.async_end(redirect_error(use_awaitable, ec));
    res.result(ec ? http::status::service_unavailable : http::status::ok);
    res.body() = ec ? R"({"error":")" + ended.detail + "\"}" : R"({"counter":)" + std::to_string(count) + "}";
}

asio::awaitable<void> serve(asio::ip::tcp::socket socket, session_manager& sessions) {
    boost::beast::flat_buffer buffer;
    for (error_code ec;;) {
        http::request<http::string_body> req;
        co_await http::async_read(socket, buffer, req, redirect_error(use_awaitable, ec));
        if (ec) {
            co_return; // closed, or not HTTP
        }
        response res{http::status::ok, req.version()};
        res.set(http::field::content_type, "application/json");
        co_await answer(sessions, req, res);
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        co_await http::async_write(socket, res, redirect_error(use_awaitable, ec));
        if (ec || !res.keep_alive()) {
            co_return;
        }
    }
}

/// Makes the manager (a joiner receives the cluster's sessions meanwhile,
/// without holding this thread), then serves until SIGINT or SIGTERM.
asio::awaitable<void> run(troupe::engine::channel& channel, const troupe::conf::cluster_config& config,
                          unsigned short port, std::unique_ptr<session_manager>& sessions) {
    auto executor = co_await asio::this_coro::executor;
    sessions = co_await troupe::managers::async_make_manager(
        channel, troupe::managers::manager_config_from(config.manager), use_awaitable);
    asio::ip::tcp::acceptor acceptor(executor, {asio::ip::make_address(config.http.address), port});
    asio::signal_set signals(executor, SIGINT, SIGTERM);
    signals.async_wait([&](error_code, int) { acceptor.close(); });
    std::printf("beast_counter: node %s serving on port %u\n", config.cluster.node.c_str(), port);
    std::fflush(stdout);
    for (error_code ec; ec != asio::error::operation_aborted;) { // aborted: closed by the signal
        auto socket = co_await acceptor.async_accept(redirect_error(use_awaitable, ec));
        if (!ec) {
            asio::co_spawn(executor, serve(std::move(socket), *sessions), asio::detached);
        }
    }
    static_cast<asio::io_context&>(executor.context()).stop(); // ends the open connections too
}

int main(int argc, char** argv) try {
    std::string config_path;
    unsigned short port = 8080;
    std::vector<std::string> overrides;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i], value = argv[i + 1];
        if (arg == "--config") {
            config_path = value;
        } else if (arg == "--port") {
            port = static_cast<unsigned short>(std::stoul(value));
        } else if (arg == "--set") {
            overrides.push_back(value);
        }
    }
    const auto config = troupe::conf::load_file(config_path, overrides); // errors say file:line:column
    troupe::engine::channel channel(config);
    channel.start();
    std::unique_ptr<session_manager> sessions;
    asio::io_context io; // after `sessions`: destroyed first, with any handler still holding a scope
    asio::co_spawn(io, run(channel, config, port, sessions), [](std::exception_ptr e) {
        if (e) {
            std::rethrow_exception(e); // out of io.run(), to the catch below
        }
    });
    io.run();
    if (sessions) {
        sessions->stop(); // completes pending ends before the channel goes
    }
    channel.stop();
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "beast_counter: %s\n", e.what());
    return 1;
}
