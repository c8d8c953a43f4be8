// SPDX-License-Identifier: Apache-2.0
#pragma once

// troupe-sessionpeer children for the session integration tests: started by
// path on 127.0.0.1, talked to over pipes, ended by PID.

#include "cluster_fixture.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace troupe::test {

/// One troupe-sessionpeer process. spawn() and await_ready() are separate so
/// that several members can start at the same moment.
class session_peer {
public:
    session_peer(const std::string& config, const std::vector<std::string>& sets = {},
                 const std::vector<std::string>& flags = {}) {
        spawn(config, sets, flags);
        await_ready();
    }

    struct deferred {};
    session_peer(deferred, const std::string& config, const std::vector<std::string>& sets = {},
                 const std::vector<std::string>& flags = {}) {
        spawn(config, sets, flags);
    }

    void await_ready(std::chrono::seconds limit = std::chrono::seconds(60)) {
        const auto line = proc_->read_line(limit);
        REQUIRE(line);
        const auto ready = nlohmann::json::parse(*line);
        REQUIRE(ready.value("ready", false));
        port_ = ready.at("port").get<std::uint16_t>();
        name_ = ready.at("node").get<std::string>();
    }

    std::uint16_t port() const { return port_; }
    const std::string& name() const { return name_; }
    std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
    tools::child_process& process() { return *proc_; }

    nlohmann::json cmd(const std::string& line, std::chrono::seconds limit = std::chrono::seconds(60)) {
        INFO(name_ << ": " << line);
        REQUIRE(proc_->write_line(line));
        const auto reply = proc_->read_line(limit);
        REQUIRE(reply);
        auto j = nlohmann::json::parse(*reply);
        if (j.is_object() && j.contains("error") && j["error"].is_string() && !j["error"].get<std::string>().empty() &&
            line.rfind("set", 0) != 0) {
            FAIL_CHECK(name_ << ": " << line << " -> " << j.dump());
        }
        return j;
    }

    /// Polls `line` until `pred(reply)` holds or `limit` passes; returns the last reply.
    template <typename Pred>
    nlohmann::json poll(const std::string& line, Pred pred,
                        std::chrono::milliseconds limit = std::chrono::seconds(20)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        auto r = cmd(line);
        while (!pred(r) && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            r = cmd(line);
        }
        return r;
    }

    void quit() {
        proc_->write_line("quit");
        proc_->wait(std::chrono::seconds(15));
    }

private:
    void spawn(const std::string& config, const std::vector<std::string>& sets,
               const std::vector<std::string>& flags) {
        std::vector<std::string> argv{TROUPE_SESSIONPEER, "--config", config};
        for (const auto& s : sets) {
            argv.push_back("--set");
            argv.push_back(s);
        }
        argv.insert(argv.end(), flags.begin(), flags.end());
        proc_.emplace(tools::child_process::spawn(argv, true));
    }

    std::optional<tools::child_process> proc_;
    std::uint16_t port_ = 0;
    std::string name_;
};

inline std::string session_list(const std::vector<const session_peer*>& peers) {
    std::string out = "[";
    for (std::size_t i = 0; i < peers.size(); ++i) {
        out += (i ? ", " : "") + peers[i]->endpoint();
    }
    return out + "]";
}

} // namespace troupe::test
