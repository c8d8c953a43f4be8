// SPDX-License-Identifier: Apache-2.0
// troupe-sessionpeer: a channel member with a session manager, driven by line
// commands on stdin, for the session integration tests. Each command is one
// request through the manager's request scope, as an HTTP handler would make.
//
//   troupe-sessionpeer --config FILE [--set k=v]... [--wait-members N]
//                      [--type delta|standard] [--context NAME] [--options async|ack|sync]
//                      [--max-inactive S] [--expiry-interval MS] [--access-batch MS]
//                      [--transfer-timeout MS] [--chunk-bytes N]
//
// With --wait-members the manager starts once N other members are alive (as an
// embedder starts its manager after the channel has found the group). The
// ready line {"ready":true,"node":...,"port":...} comes once the manager has
// every session.
//
// Commands (one JSON line answers each):
//   wait-members N MS          until N other members are alive (or MS pass)
//   create [NAME VALUE]        a new session -> id, version
//   set ID NAME VALUE          -> version, replicated, send_ok, error
//   incr ID NAME               modify<int64>(++) -> value, version
//   get ID NAME                -> found, value, version
//   read ID                    a request that only reads -> found
//   dump ID                    -> found, version, attributes (strings)
//   rotate ID                  -> id (the new one)
//   invalidate ID              -> ok
//   digest                     -> count, versions {id: version}
//   count                      -> sessions
//   expire                     -> expired (expire_now)
//   load-start N PAUSE_US      writer thread: N own sessions, then sets on them until load-stop
//   load-stop                  -> writes, versions {id: version} of its own sessions
//   stats                      the manager's stats JSON (with the channel's under "channel")
//   quit                       graceful stop
#include <troupe/troupe.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

namespace {

using namespace troupe;

std::size_t alive_members(const engine::channel& ch) {
    std::size_t k = 0;
    for (const auto& m : ch.members()) {
        k += m.state == membership::member_state::alive ? 1 : 0;
    }
    return k;
}

std::string printable(const managers::attribute& a) {
    if (a.type == "string") {
        return std::string(a.bytes.begin(), a.bytes.end());
    }
    if (a.type == "i64") {
        return std::to_string(managers::decode_attribute<std::int64_t>("", a));
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = a.type + ":";
    for (auto b : a.bytes) {
        out.push_back(hex[b >> 4]);
        out.push_back(hex[b & 0xf]);
    }
    return out;
}

/// A background writer: its own sessions, written round robin until stopped.
class load_writer {
public:
    void start(managers::session_manager& m, std::size_t n, int pause_us) {
        stop_ = false;
        thread_ = std::thread([this, &m, n, pause_us] {
            std::vector<std::string> ids;
            // The error_code forms: a refused write is counted by the
            // manager, and this thread must go on (a throw would end the peer).
            boost::system::error_code ec;
            for (std::size_t i = 0; i < n && !stop_; ++i) {
                auto r = m.begin_request({"", "/load", {}}, ec);
                if (auto* s = r.session(true)) {
                    s->set("w", std::int64_t{0});
                    ids.push_back(r.session_id());
                }
                r.end(ec);
            }
            {
                std::lock_guard lock(mutex_);
                ids_ = ids;
            }
            std::mt19937 rng(std::random_device{}());
            while (!stop_ && !ids.empty()) {
                const auto& id = ids[rng() % ids.size()];
                auto r = m.begin_request({id, "/load", {}}, ec);
                if (auto* s = r.session()) {
                    s->modify<std::int64_t>("w", [](std::int64_t& v) { ++v; });
                }
                r.end(ec);
                writes_.fetch_add(1);
                if (pause_us > 0) {
                    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
                }
            }
        });
    }

    nlohmann::json stop(managers::session_manager& m) {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        nlohmann::json versions = nlohmann::json::object();
        std::lock_guard lock(mutex_);
        for (const auto& id : ids_) {
            if (auto s = m.find(id)) {
                versions[id] = s->version();
            }
        }
        return {{"writes", writes_.load()}, {"versions", versions}};
    }

    ~load_writer() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
    }

private:
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> writes_{0};
    std::mutex mutex_;
    std::vector<std::string> ids_;
    std::thread thread_;
};

} // namespace

int main(int argc, char** argv) {
    std::string config_path;
    std::vector<std::string> overrides;
    std::size_t wait_members = 0;
    managers::manager_config mc;
    mc.filter = "^/static/.*";
    mc.route_rewrite = false; // the tests follow a session by id across members
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) {
                    throw std::invalid_argument(arg + " needs a value");
                }
                return argv[++i];
            };
            if (arg == "--config") {
                config_path = value();
            } else if (arg == "--set") {
                overrides.push_back(value());
            } else if (arg == "--wait-members") {
                wait_members = std::stoul(value());
            } else if (arg == "--type") {
                mc.type = value();
            } else if (arg == "--context") {
                mc.context = value();
            } else if (arg == "--options") {
                if (!conf::parse_send_options(value(), mc.send_options)) {
                    throw std::invalid_argument("--options: async, ack or sync");
                }
            } else if (arg == "--max-inactive") {
                mc.max_inactive = std::chrono::seconds(std::stol(value()));
            } else if (arg == "--expiry-interval") {
                mc.expiry_interval = std::chrono::milliseconds(std::stol(value()));
            } else if (arg == "--access-batch") {
                mc.access_batch_interval = std::chrono::milliseconds(std::stol(value()));
            } else if (arg == "--transfer-timeout") {
                mc.state_transfer_timeout = std::chrono::milliseconds(std::stol(value()));
            } else if (arg == "--chunk-bytes") {
                mc.state_transfer_chunk_bytes = std::stoul(value());
            } else {
                throw std::invalid_argument("bad argument " + arg);
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "troupe-sessionpeer: " << e.what() << "\n";
        return 2;
    }
    conf::cluster_config config;
    try {
        config = conf::load_file(config_path, overrides);
    } catch (const conf::config_error& e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
    // stdout carries the JSON replies; logs go to stderr.
    spdlog::set_default_logger(spdlog::stderr_color_mt("sessionpeer"));
    spdlog::set_level(spdlog::level::from_str(config.logging.level));

    engine::channel channel(config);
    channel.start();
    {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (alive_members(channel) < wait_members && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    std::unique_ptr<managers::session_manager> manager;
    try {
        manager = managers::make_manager(channel, mc);
    } catch (const std::exception& e) {
        std::cerr << "troupe-sessionpeer: " << e.what() << "\n";
        return 2;
    }
    std::cout << nlohmann::json{{"ready", true}, {"node", channel.self().name}, {"port", channel.port()}}.dump()
              << std::endl;

    load_writer load;
    auto& m = *manager;
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        nlohmann::json reply;
        try {
            if (cmd == "wait-members") {
                std::size_t n = 0;
                int ms = 0;
                in >> n >> ms;
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
                while (alive_members(channel) < n && std::chrono::steady_clock::now() < deadline) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(10));
                }
                reply["members"] = alive_members(channel);
            } else if (cmd == "create") {
                std::string name, value;
                in >> name >> value;
                auto r = m.begin_request("", "/app");
                auto* s = r.session(true);
                if (!name.empty()) {
                    s->set(name, value);
                }
                reply["id"] = r.session_id();
                boost::system::error_code ec;
                const auto res = r.end(ec);
                reply["version"] = s->version();
                reply["replicated"] = res.replicated;
                reply["error"] = res.detail;
            } else if (cmd == "set" || cmd == "incr") {
                std::string id, name, value;
                in >> id >> name >> value;
                auto r = m.begin_request(id, "/app");
                auto* s = r.session();
                if (s == nullptr) {
                    reply["found"] = false;
                } else {
                    reply["found"] = true;
                    if (cmd == "set") {
                        s->set(name, value);
                    } else {
                        std::int64_t now = 0;
                        s->modify<std::int64_t>(name, [&](std::int64_t& v) { now = ++v; });
                        reply["value"] = now;
                    }
                    boost::system::error_code ec;
                const auto res = r.end(ec);
                    reply["version"] = s->version();
                    reply["replicated"] = res.replicated;
                    reply["send_ok"] = !res.send || res.send->ok();
                    reply["error"] = res.detail;
                }
            } else if (cmd == "get" || cmd == "read") {
                std::string id, name;
                in >> id >> name;
                auto r = m.begin_request(id, "/app");
                auto* s = r.session();
                reply["found"] = s != nullptr;
                if (s != nullptr && cmd == "get") {
                    auto a = s->underlying()->get(name);
                    reply["value"] = a ? nlohmann::json(printable(*a)) : nlohmann::json();
                    reply["version"] = s->version();
                }
            } else if (cmd == "dump") {
                std::string id;
                in >> id;
                auto s = m.find(id);
                reply["found"] = s != nullptr;
                if (s) {
                    reply["version"] = s->version();
                    nlohmann::json attrs = nlohmann::json::object();
                    for (const auto& [name, a] : s->attributes()) {
                        attrs[name] = printable(a);
                    }
                    reply["attributes"] = attrs;
                    reply["max_inactive"] = s->max_inactive().count();
                }
            } else if (cmd == "rotate") {
                std::string id;
                in >> id;
                auto r = m.begin_request(id, "/login");
                reply["found"] = r.session() != nullptr;
                r.rotate_id();
                reply["id"] = r.session_id();
                boost::system::error_code ec;
                reply["error"] = r.end(ec).detail;
            } else if (cmd == "invalidate") {
                std::string id;
                in >> id;
                auto r = m.begin_request(id, "/logout");
                reply["ok"] = r.session() != nullptr;
                if (auto* s = r.session()) {
                    s->invalidate();
                }
                r.end();
            } else if (cmd == "digest") {
                nlohmann::json versions = nlohmann::json::object();
                for (const auto& id : m.session_ids()) {
                    if (auto s = m.find(id)) {
                        versions[id] = s->version();
                    }
                }
                reply["count"] = versions.size();
                reply["versions"] = versions;
            } else if (cmd == "count") {
                reply["sessions"] = m.size();
            } else if (cmd == "expire") {
                reply["expired"] = m.expire_now();
            } else if (cmd == "load-start") {
                std::size_t n = 0;
                int pause_us = 0;
                in >> n >> pause_us;
                load.start(m, n, pause_us);
                reply["started"] = true;
            } else if (cmd == "load-stop") {
                reply = load.stop(m);
            } else if (cmd == "stats") {
                reply = nlohmann::json::parse(m.stats_json());
                reply["channel"] = nlohmann::json::parse(channel.stats_json());
            } else if (cmd == "quit") {
                break;
            } else {
                reply["error"] = "unknown command '" + cmd + "'";
            }
        } catch (const std::exception& e) {
            reply["error"] = e.what();
        }
        std::cout << reply.dump() << std::endl;
    }
    (void)load.stop(m);
    manager->stop();
    manager.reset();
    channel.stop();
    return 0;
}
