// SPDX-License-Identifier: Apache-2.0
#pragma once

// Real processes on 127.0.0.1 for the integration tests: troupe-testpeer and
// troupe-node children, started by path, talked to over pipes, ended by PID.

#include "common/child_process.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <string>
#include <unistd.h>
#include <vector>

namespace troupe::test {

/// A per-test folder and a cluster name no other test (or run) shares, so
/// parallel tests never join each other's clusters.
class scratch {
public:
    scratch() {
        static std::atomic<int> counter{0};
        const int n = counter.fetch_add(1);
        cluster_ = "it-" + std::to_string(::getpid()) + "-" + std::to_string(n);
        dir_ = std::filesystem::temp_directory_path() / cluster_;
        std::filesystem::create_directories(dir_);
    }
    ~scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    const std::string& cluster() const { return cluster_; }
    const std::filesystem::path& dir() const { return dir_; }

    /// Writes a cluster file; `extra` is appended YAML.
    std::string write_config(const std::string& name, const std::string& extra = "") const {
        const auto path = dir_ / (name + ".yaml");
        std::ofstream out(path);
        out << "cluster:\n  name: " << cluster_ << "\n  node: " << name << "\n"
            << "receiver:\n  address: 127.0.0.1\n  port: 0\n"
            << "admin:\n  enabled: false\n"
            << "logging:\n  level: " << log_level() << "\n"
            << extra;
        return path.string();
    }

    /// TROUPE_TEST_LOG=debug shows the members' logs when a test needs a look.
    static std::string log_level() {
        const char* v = std::getenv("TROUPE_TEST_LOG");
        return v != nullptr ? v : "warn";
    }

private:
    std::string cluster_;
    std::filesystem::path dir_;
};

/// One troupe-testpeer process.
class peer {
public:
    peer(const std::string& config, const std::vector<std::string>& sets = {},
         const std::vector<std::string>& flags = {}) {
        std::vector<std::string> argv{TROUPE_TESTPEER, "--config", config};
        for (const auto& s : sets) {
            argv.push_back("--set");
            argv.push_back(s);
        }
        argv.insert(argv.end(), flags.begin(), flags.end());
        proc_.emplace(tools::child_process::spawn(argv, true));
        const auto line = proc_->read_line(std::chrono::seconds(20));
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
        REQUIRE(proc_->write_line(line));
        const auto reply = proc_->read_line(limit);
        INFO("command: " << line);
        REQUIRE(reply);
        return nlohmann::json::parse(*reply);
    }

    /// Messages received from `node`, once they reach `count` or the limit passes.
    nlohmann::json received_from(const std::string& node, std::uint64_t count,
                                 std::chrono::seconds limit = std::chrono::seconds(30)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        nlohmann::json r;
        do {
            r = cmd("received");
            if (r["from"].contains(node) && r["from"][node]["count"].get<std::uint64_t>() >= count) {
                return r["from"][node];
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        } while (std::chrono::steady_clock::now() < deadline);
        return r["from"].contains(node) ? r["from"][node] : nlohmann::json::object();
    }

    void quit() {
        proc_->write_line("quit");
        proc_->wait(std::chrono::seconds(15));
    }

private:
    std::optional<tools::child_process> proc_;
    std::uint16_t port_ = 0;
    std::string name_;
};

inline std::string static_list(const std::vector<const peer*>& peers) {
    std::string out = "[";
    for (std::size_t i = 0; i < peers.size(); ++i) {
        out += (i ? ", " : "") + peers[i]->endpoint();
    }
    return out + "]";
}

} // namespace troupe::test
