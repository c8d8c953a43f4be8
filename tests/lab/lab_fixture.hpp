// SPDX-License-Identifier: Apache-2.0
#pragma once

// The network lab for the membership tests: one troupe-node per network
// namespace (tools/netlab), joined by a bridge that lives in a namespace too.
// Nodes are started through `netlab exec` (which execs, so the PID we hold is
// troupe-node's), watched through their --events stream and asked for their view
// with troupe-ctl inside their namespace. The lab is destroyed in the destructor,
// after its nodes were killed, also when a test fails.
//
// Tests assert on outcomes, never on timings; every wait is bounded.

#include "common/child_process.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace troupe::lab {

using namespace std::chrono_literals;
using json = nlohmann::json;
using tools::child_process;
using steady = std::chrono::steady_clock;

/// Lab tests need network namespaces: without root they are skipped (exit 77,
/// which ctest reports as "Skipped" through SKIP_RETURN_CODE).
inline void skip_unless_root() {
    if (::geteuid() != 0) {
        std::puts("lab tests need root (network namespaces); skipped");
        std::fflush(stdout);
        std::_Exit(77);
    }
}

struct run_result {
    int code = -1;
    std::string out;
};

/// Runs a command to completion (bounded): exit code and stdout.
inline run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds limit = 30s) {
    auto p = child_process::spawn(argv);
    const auto deadline = steady::now() + limit;
    run_result r;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left <= 0ms) {
            break;
        }
        auto line = p.read_line(left);
        if (!line) {
            break; // EOF (or out of time)
        }
        r.out += *line + "\n";
    }
    r.code = p.wait(2s).value_or(-1); // still running: the destructor kills it
    return r;
}

/// One line of a node's --events stream.
struct member_event {
    std::string node;   ///< the node that saw it
    std::string member; ///< the member it is about
    std::string id;
    std::string state; ///< alive, suspect, gone, left
    std::string reason;
    std::int64_t mono_ns = 0;
};

/// How a node is configured (the cluster file is written from this).
struct node_options {
    std::string name;            ///< default: n<index>
    std::string cluster;         ///< default: the lab's cluster name
    std::string secret;          ///< default: none
    bool multicast = true;       ///< multicast heartbeats on the node's lab address
    std::vector<std::string> static_members; ///< host:port
    std::vector<std::string> sets;           ///< extra --set key=value
};

class lab;

/// One troupe-node inside node `index`'s namespace.
class node {
public:
    node(const lab& l, int index, std::string name, const std::vector<std::string>& argv)
        : lab_(l), index_(index), name_(std::move(name)) {
        proc_.emplace(child_process::spawn(argv));
    }

    /// Reads the ready line (bounded); false if the node did not come up.
    bool await_ready(std::chrono::milliseconds limit = 30s) {
        const auto deadline = steady::now() + limit;
        while (steady::now() < deadline) {
            auto line = proc_->read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
                std::max<steady::duration>(deadline - steady::now(), 1ms)));
            if (!line) {
                return false;
            }
            const auto doc = json::parse(*line, nullptr, false);
            if (doc.is_object() && doc.value("ready", false)) {
                ready_ = doc;
                return true;
            }
            take_event(doc); // events may come before the ready line
        }
        return false;
    }

    /// Reads every event line the node printed so far (never blocks long), so
    /// that its stdout pipe never fills up.
    void pump() {
        for (int i = 0; i < 10000; ++i) {
            auto line = proc_->read_line(0ms);
            if (!line) {
                return;
            }
            take_event(json::parse(*line, nullptr, false));
        }
    }

    int index() const { return index_; }
    const std::string& name() const { return name_; }
    const json& ready() const { return ready_; }
    std::string id() const { return ready_.value("id", ""); }
    pid_t pid() const { return proc_->pid(); }
    const std::vector<member_event>& events() const { return events_; }
    void signal(int sig) { proc_->signal(sig); }
    std::optional<int> wait(std::chrono::milliseconds limit) { return proc_->wait(limit); }
    bool running() { return proc_->running(); }

    /// This node's member list (troupe-ctl members --json inside its namespace);
    /// an empty array when it cannot be asked (stopped, frozen, ...).
    json members() const;
    /// This node's /stats; an empty object when it cannot be asked.
    json stats() const;

private:
    void take_event(const json& doc) {
        if (!doc.is_object() || doc.value("event", "") != "member") {
            return;
        }
        member_event e;
        e.node = doc.value("node", "");
        e.member = doc.value("member", "");
        e.id = doc.value("id", "");
        e.state = doc.value("state", "");
        e.reason = doc.value("reason", "");
        e.mono_ns = doc.value("mono_ns", std::int64_t{0});
        events_.push_back(std::move(e));
    }

    const lab& lab_;
    int index_;
    std::string name_;
    std::optional<child_process> proc_;
    json ready_;
    std::vector<member_event> events_;
};

/// A lab of `n` node namespaces. Nodes are started on demand.
class lab {
public:
    explicit lab(int n) : size_(n) {
        static std::atomic<int> counter{0};
        name_ = "lab" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
        cluster_ = name_;
        dir_ = std::filesystem::temp_directory_path() / ("troupe-" + name_);
        std::filesystem::create_directories(dir_);
        const auto r = run({TROUPE_NETLAB, "create", name_, std::to_string(n)});
        created_ = r.code == 0;
        if (!created_) {
            run({TROUPE_NETLAB, "destroy", name_});
        }
        REQUIRE(created_);
        nodes_.resize(static_cast<std::size_t>(n) + 1);
    }

    ~lab() {
        nodes_.clear(); // SIGKILLs and reaps every node still running, by PID
        if (created_) {
            run({TROUPE_NETLAB, "destroy", name_});
        }
        if (std::getenv("TROUPE_LAB_KEEP") == nullptr) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
    }

    lab(const lab&) = delete;
    lab& operator=(const lab&) = delete;

    const std::string& name() const { return name_; }
    const std::string& cluster() const { return cluster_; }
    int size() const { return size_; }
    const std::filesystem::path& dir() const { return dir_; }

    std::string addr(int i) const {
        if (auto it = addrs_.find(i); it != addrs_.end()) {
            return it->second;
        }
        const auto r = run({TROUPE_NETLAB, "addr", name_, std::to_string(i)});
        REQUIRE(r.code == 0);
        return addrs_[i] = r.out.substr(0, r.out.find('\n'));
    }
    static constexpr int port = 4000;
    std::string endpoint(int i) const { return addr(i) + ":" + std::to_string(port); }

    void cut(int i) { REQUIRE(run({TROUPE_NETLAB, "cut", name_, std::to_string(i)}).code == 0); }
    void heal(int i) { REQUIRE(run({TROUPE_NETLAB, "heal", name_, std::to_string(i)}).code == 0); }
    void drop(int i, int percent) {
        REQUIRE(run({TROUPE_NETLAB, "drop", name_, std::to_string(i), std::to_string(percent)}).code == 0);
    }

    /// argv that runs `cmd` inside node i's namespace.
    std::vector<std::string> in_node(int i, std::vector<std::string> cmd) const {
        std::vector<std::string> argv{TROUPE_NETLAB, "exec", name_, std::to_string(i)};
        argv.insert(argv.end(), cmd.begin(), cmd.end());
        return argv;
    }

    /// Writes node i's cluster file.
    std::string write_config(int i, const node_options& o) const {
        const auto name = o.name.empty() ? "n" + std::to_string(i) : o.name;
        const auto path = dir_ / (name + ".yaml");
        const auto address = addr(i);
        std::ofstream out(path);
        out << "cluster:\n  name: " << (o.cluster.empty() ? cluster_ : o.cluster) << "\n  node: " << name << "\n";
        if (!o.secret.empty()) {
            out << "  secret: " << o.secret << "\n";
        }
        out << "receiver:\n  address: " << address << "\n  port: " << port << "\n"
            << "membership:\n";
        if (!o.static_members.empty()) {
            out << "  static: [";
            for (std::size_t k = 0; k < o.static_members.size(); ++k) {
                out << (k ? ", " : "") << o.static_members[k];
            }
            out << "]\n";
        }
        out << "  multicast:\n    enabled: " << (o.multicast ? "true" : "false") << "\n";
        if (o.multicast) {
            out << "    interface: " << address << "\n    ttl: 1\n";
        }
        out << "admin:\n  enabled: true\n  address: 127.0.0.1\n  port: 0\n"
            << "logging:\n  level: warn\n";
        return path.string();
    }

    /// Spawns troupe-node in each of `indices` (all at once), then waits for
    /// every ready line.
    void start(const std::vector<int>& indices, const std::map<int, node_options>& options = {}) {
        for (int i : indices) {
            auto it = options.find(i);
            const node_options o = it == options.end() ? node_options{} : it->second;
            const auto name = o.name.empty() ? "n" + std::to_string(i) : o.name;
            std::vector<std::string> cmd{TROUPE_NODE, "--config", write_config(i, o), "--events"};
            for (const auto& s : o.sets) {
                cmd.push_back("--set");
                cmd.push_back(s);
            }
            nodes_.at(static_cast<std::size_t>(i)) = std::make_unique<node>(*this, i, name, in_node(i, cmd));
        }
        for (int i : indices) {
            INFO("node " << i << " of lab " << name_ << " did not print its ready line");
            REQUIRE(at(i).await_ready());
        }
    }

    node& at(int i) {
        auto& p = nodes_.at(static_cast<std::size_t>(i));
        REQUIRE(p);
        return *p;
    }
    bool started(int i) const { return nodes_.at(static_cast<std::size_t>(i)) != nullptr; }
    /// Kills (SIGKILL) and forgets node i.
    void forget(int i) { nodes_.at(static_cast<std::size_t>(i)).reset(); }

    void pump() {
        for (auto& n : nodes_) {
            if (n) {
                n->pump();
            }
        }
    }

    /// Polls `pred` (pumping events in between) until it holds or `limit` passes.
    template <typename Pred>
    bool wait_for(Pred pred, std::chrono::milliseconds limit, std::chrono::milliseconds every = 200ms) {
        const auto deadline = steady::now() + limit;
        for (;;) {
            pump();
            if (pred()) {
                pump(); // events printed while pred() looked
                return true;
            }
            if (steady::now() >= deadline) {
                return false;
            }
            std::this_thread::sleep_for(every);
        }
    }

    /// Keeps pumping for `d` (so no node's stdout fills up while we wait).
    void idle(std::chrono::milliseconds d) {
        wait_for([] { return false; }, d, 100ms);
    }

private:
    int size_;
    std::string name_;
    std::string cluster_;
    std::filesystem::path dir_;
    bool created_ = false;
    mutable std::map<int, std::string> addrs_;
    std::vector<std::unique_ptr<node>> nodes_; // 1-based; nullptr = not started
};

inline json node::members() const {
    const auto admin = "127.0.0.1:" + std::to_string(ready_.value("admin_port", 0));
    const auto r = run(lab_.in_node(index_, {TROUPE_CTL, "--admin", admin, "members", "--json"}), 10s);
    const auto doc = json::parse(r.out, nullptr, false);
    return r.code == 0 && doc.is_array() ? doc : json::array();
}

inline json node::stats() const {
    const auto admin = "127.0.0.1:" + std::to_string(ready_.value("admin_port", 0));
    const auto r = run(lab_.in_node(index_, {TROUPE_CTL, "--admin", admin, "stats", "--json"}), 10s);
    const auto doc = json::parse(r.out, nullptr, false);
    return r.code == 0 && doc.is_object() ? doc : json::object();
}

// ---- views -----------------------------------------------------------------

/// Entries of `list` named `name`.
inline std::vector<json> entries(const json& list, const std::string& name) {
    std::vector<json> out;
    for (const auto& m : list) {
        if (m.value("name", "") == name) {
            out.push_back(m);
        }
    }
    return out;
}

/// The state of the one entry named `name`: "absent" if none, "duplicate" if several.
inline std::string state_of(const json& list, const std::string& name) {
    const auto e = entries(list, name);
    if (e.empty()) {
        return "absent";
    }
    if (e.size() > 1) {
        return "duplicate";
    }
    return e.front().value("state", "");
}

/// Exactly `names`, one entry each, all alive.
inline bool exactly_alive(const json& list, const std::vector<std::string>& names) {
    if (list.size() != names.size()) {
        return false;
    }
    for (const auto& n : names) {
        if (state_of(list, n) != "alive") {
            return false;
        }
    }
    return true;
}

inline std::string names_of(const json& list) {
    std::string out;
    for (const auto& m : list) {
        out += (out.empty() ? "" : ", ") + m.value("name", std::string("?")) + "=" + m.value("state", std::string("?"));
    }
    return "[" + out + "]";
}

/// Sum of the values of a JSON object of counters (0 if not an object).
inline std::uint64_t sum_counters(const json& counters) {
    std::uint64_t s = 0;
    if (counters.is_object()) {
        for (const auto& [k, v] : counters.items()) {
            if (v.is_number_unsigned() || v.is_number_integer()) {
                s += v.get<std::uint64_t>();
            }
        }
    } else if (counters.is_number()) {
        s = counters.get<std::uint64_t>();
    }
    return s;
}

inline std::uint64_t heartbeats_rejected(const json& stats) {
    if (!stats.contains("membership")) {
        return 0;
    }
    return sum_counters(stats["membership"].value("heartbeats_rejected", json::object()));
}

} // namespace troupe::lab
