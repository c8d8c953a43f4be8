// SPDX-License-Identifier: Apache-2.0
// A cpp-httplib server (a thread per request, from its pool) whose sessions
// troupe replicates: GET /counter counts per session, and the count survives
// this process (another instance with the same cluster file goes on with it).
//
//   httplib_counter --config cluster.yaml --port 8080 [--set key=value]...
#include <troupe/troupe.hpp>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using troupe::managers::session_manager;

void count(session_manager& sessions, const httplib::Request& req, httplib::Response& res) {
    const auto& cookie = sessions.config().cookie;
    const auto header = req.get_header_value("Cookie");
    const auto id = troupe::managers::session_id_from_cookie(header, cookie.name);
    // The blocking forms suit a thread per request; the error_code overloads
    // do not throw (begin_request(info) and end() would throw session_error).
    boost::system::error_code ec;
    auto scope = sessions.begin_request({id, req.path, {}}, ec);
    if (ec) { // session_unavailable (it exists, but could not be had: retry) or stopped
        res.status = 503;
        res.set_content(R"({"error":")" + ec.message() + "\"}", "application/json");
        return;
    }
    std::int64_t value = 0;
    scope.session(true)->modify<std::int64_t>("counter", [&](std::int64_t& n) { value = ++n; });
    if (scope.id_changed()) {
        res.set_header("Set-Cookie", troupe::managers::set_cookie_value(scope.session_id(), cookie));
    }
    // With `sync` send options this returns once the other members hold the change.
    if (const auto ended = scope.end(ec); ec) {
        res.status = 503;
        res.set_content(R"({"error":")" + ended.detail + "\"}", "application/json");
        return;
    }
    res.set_content(R"({"counter":)" + std::to_string(value) + "}", "application/json");
}

int main(int argc, char** argv) try {
    std::string config_path;
    int port = 8080;
    std::vector<std::string> overrides;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i], value = argv[i + 1];
        if (arg == "--config") {
            config_path = value;
        } else if (arg == "--port") {
            port = std::stoi(value);
        } else if (arg == "--set") {
            overrides.push_back(value);
        }
    }
    // SIGINT and SIGTERM are taken by sigwait below, on a thread of their own.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    const auto config = troupe::conf::load_file(config_path, overrides); // errors say file:line:column
    troupe::engine::channel channel(config);
    channel.start();
    // Blocks while a joiner receives the cluster's sessions: no request is
    // served without them.
    auto sessions = troupe::managers::make_manager(channel, troupe::managers::manager_config_from(config.manager));

    httplib::Server server;
    server.Get("/counter", [&](const httplib::Request& req, httplib::Response& res) { count(*sessions, req, res); });
    std::atomic<bool> failed{false};
    std::thread stopper([&] {
        int signal = 0;
        sigwait(&stop_signals, &signal);
        // stop() before listen() began would be lost: wait (bounded) for it.
        for (int i = 0; i < 500 && !server.is_running() && !failed; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        server.stop();
    });
    std::printf("httplib_counter: node %s serving http://%s:%d/counter\n", config.cluster.node.c_str(),
                config.http.address.c_str(), port);
    std::fflush(stdout);
    const bool listened = server.listen(config.http.address, port);
    if (!listened) {
        failed = true;
        std::fprintf(stderr, "httplib_counter: cannot listen on %s:%d\n", config.http.address.c_str(), port);
        pthread_kill(stopper.native_handle(), SIGTERM);
    }
    stopper.join();
    sessions->stop();
    channel.stop();
    return listened ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "httplib_counter: %s\n", e.what());
    return 1;
}
