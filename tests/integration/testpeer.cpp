// SPDX-License-Identifier: Apache-2.0
// troupe-testpeer: a channel member driven by line commands on stdin, for the
// integration tests. It sends numbered messages ("<node> <seq> xxx…") and checks
// what it receives: per sender, each message exactly once and in order.
//
//   troupe-testpeer --config FILE [--set k=v]... [--throw-odd]
//
// Commands (one JSON line answers each):
//   wait-members N MS          until N other members are alive (or MS pass)
//   send COUNT SIZE OPTIONS [NODE]   COUNT sends to all (or NODE), one at a time
//   received                   per-sender counts, order errors, duplicates
//   stats                      the channel's /stats JSON
//   quit                       graceful stop
#include <troupe/troupe.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace {

struct sender_record {
    std::uint64_t count = 0;
    std::int64_t last = -1;
    std::uint64_t order_errors = 0;
    std::uint64_t duplicates = 0;
};

} // namespace

int main(int argc, char** argv) {
    using namespace troupe;
    std::string config_path;
    std::vector<std::string> overrides;
    bool throw_odd = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (arg == "--set" && i + 1 < argc) {
            overrides.push_back(argv[++i]);
        } else if (arg == "--throw-odd") {
            throw_odd = true;
        } else {
            std::cerr << "troupe-testpeer: bad argument " << arg << "\n";
            return 2;
        }
    }
    conf::cluster_config config;
    try {
        config = conf::load_file(config_path, overrides);
    } catch (const conf::config_error& e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
    // stdout carries the JSON replies; logs go to stderr.
    spdlog::set_default_logger(spdlog::stderr_color_mt("testpeer"));
    spdlog::set_level(spdlog::level::from_str(config.logging.level));

    std::mutex mutex;
    std::map<std::string, sender_record> received;
    engine::channel channel(config);
    channel.add_listener("test", [&](const engine::received_message& m) {
        const std::string_view text(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
        const auto space = text.find(' ');
        const auto space2 = text.find(' ', space + 1);
        if (space == std::string_view::npos) {
            throw std::runtime_error("malformed test payload");
        }
        const std::string node(text.substr(0, space));
        const auto seq = std::stoll(std::string(text.substr(space + 1, space2 - space - 1)));
        {
            std::lock_guard lock(mutex);
            auto& r = received[node];
            ++r.count;
            if (r.count > 1 && seq <= r.last) {
                ++r.duplicates;
            } else if (r.count > 1 && seq != r.last + 1) {
                ++r.order_errors;
            }
            r.last = std::max<std::int64_t>(r.last, seq);
        }
        if (throw_odd && seq % 2 == 1) {
            throw std::runtime_error("odd sequence number " + std::to_string(seq));
        }
    });
    channel.start();
    std::cout << nlohmann::json{{"ready", true}, {"node", channel.self().name}, {"port", channel.port()}}.dump()
              << std::endl;

    std::int64_t next_seq = 0;
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        nlohmann::json reply;
        if (cmd == "wait-members") {
            std::size_t n = 0;
            int ms = 0;
            in >> n >> ms;
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
            auto alive = [&] {
                std::size_t k = 0;
                for (const auto& m : channel.members()) {
                    k += m.state == membership::member_state::alive ? 1 : 0;
                }
                return k;
            };
            while (alive() < n && std::chrono::steady_clock::now() < deadline) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            reply["members"] = alive();
        } else if (cmd == "send") {
            std::size_t count = 0, size = 0;
            std::string options_text, target;
            in >> count >> size >> options_text >> target;
            std::uint32_t options = 0;
            if (!conf::parse_send_options(options_text, options)) {
                reply["error"] = "bad options";
            } else {
                std::vector<membership::member_id> to;
                if (!target.empty()) {
                    for (const auto& m : channel.all_members()) {
                        if (m.name == target && !(m.id == channel.self().id)) {
                            to.push_back(m.id); // the newest incarnation comes last
                        }
                    }
                    if (to.size() > 1) {
                        to.erase(to.begin(), to.end() - 1);
                    }
                    if (to.empty()) {
                        to.push_back(membership::member_id{}); // fails as not_a_member
                    }
                }
                std::map<std::string, std::uint64_t> by_member, kinds;
                std::uint64_t ok = 0, failed = 0;
                std::string first_error;
                std::vector<std::int64_t> failed_seqs;
                for (std::size_t i = 0; i < count; ++i) {
                    std::string payload = channel.self().name + " " + std::to_string(next_seq) + " ";
                    if (payload.size() < size) {
                        payload.append(size - payload.size(), 'x');
                    }
                    const auto r = channel.send(
                        to, std::as_bytes(std::span(payload.data(), payload.size())), options, "test");
                    if (r.ok()) {
                        ++ok;
                    } else {
                        ++failed;
                        failed_seqs.push_back(next_seq);
                        if (first_error.empty()) {
                            first_error = r.describe();
                        }
                        for (const auto& f : r.failures) {
                            ++by_member[f.member.name];
                            ++kinds[f.ec.message()];
                        }
                    }
                    ++next_seq;
                }
                reply = {{"sent", count},          {"ok", ok},       {"failed", failed},
                         {"failed_by_member", by_member}, {"kinds", kinds}, {"first_error", first_error}};
                // Small enough for the tests that check exactly which ones failed.
                if (failed_seqs.size() <= 1000) {
                    reply["failed_seqs"] = failed_seqs;
                }
            }
        } else if (cmd == "received") {
            std::lock_guard lock(mutex);
            reply["from"] = nlohmann::json::object();
            for (const auto& [node, r] : received) {
                reply["from"][node] = {{"count", r.count},
                                       {"last", r.last},
                                       {"order_errors", r.order_errors},
                                       {"duplicates", r.duplicates}};
            }
        } else if (cmd == "stats") {
            reply = nlohmann::json::parse(channel.stats_json());
        } else if (cmd == "quit") {
            break;
        } else {
            reply["error"] = "unknown command '" + cmd + "'";
        }
        std::cout << reply.dump() << std::endl;
    }
    channel.stop();
    return 0;
}
