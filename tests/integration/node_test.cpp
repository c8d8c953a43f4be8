// SPDX-License-Identifier: Apache-2.0
// troupe-node and troupe-ctl as an operator uses them.
#include "cluster_fixture.hpp"

#include <fstream>
#include <thread>

using troupe::test::scratch;
using troupe::tools::child_process;

namespace {

struct node {
    std::optional<child_process> proc;
    nlohmann::json ready;

    node(const std::string& config, const std::vector<std::string>& sets) {
        std::vector<std::string> argv{TROUPE_NODE, "--config", config};
        for (const auto& s : sets) {
            argv.push_back("--set");
            argv.push_back(s);
        }
        proc.emplace(child_process::spawn(argv));
        const auto line = proc->read_line(std::chrono::seconds(20));
        REQUIRE(line);
        ready = nlohmann::json::parse(*line);
        REQUIRE(ready["ready"] == true);
    }
    std::string admin() const { return "127.0.0.1:" + std::to_string(ready["admin_port"].get<int>()); }
    std::string endpoint() const { return "127.0.0.1:" + std::to_string(ready["port"].get<int>()); }
};

/// Runs a command to completion; returns its exit code and stdout.
std::pair<int, std::string> run(const std::vector<std::string>& argv) {
    auto p = child_process::spawn(argv);
    std::string out;
    while (auto line = p.read_line(std::chrono::seconds(20))) {
        out += *line + "\n";
    }
    const auto code = p.wait(std::chrono::seconds(20));
    REQUIRE(code);
    return {*code, out};
}

nlohmann::json members(const node& n) {
    const auto [code, out] = run({TROUPE_CTL, "--admin", n.admin(), "members", "--json"});
    REQUIRE(code == 0);
    return nlohmann::json::parse(out);
}

std::string state_of(const nlohmann::json& list, const std::string& name) {
    for (const auto& m : list) {
        if (m["name"] == name) {
            return m["state"];
        }
    }
    return "absent";
}

} // namespace

TEST_CASE("troupe-ctl lists every member of three troupe-nodes, and a stopped one as left",
          "[integration]") {
    scratch s;
    const auto admin_on = std::string("admin:\n  enabled: true\n  port: 0\n");
    node a(s.write_config("a"), {"admin.enabled=true"});
    node b(s.write_config("b"), {"admin.enabled=true", "membership.static=[" + a.endpoint() + "]"});
    node c(s.write_config("c"),
           {"admin.enabled=true", "membership.static=[" + a.endpoint() + ", " + b.endpoint() + "]"});
    for (const node* n : {&a, &b, &c}) {
        nlohmann::json list;
        for (int i = 0; i < 200; ++i) {
            list = members(*n);
            if (list.size() == 3 && state_of(list, "a") == "alive" && state_of(list, "b") == "alive" &&
                state_of(list, "c") == "alive") {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        REQUIRE(list.size() == 3);
        int selves = 0;
        for (const auto& m : list) {
            CHECK(m["state"] == "alive");
            CHECK(m["endpoint"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
            selves += m["self"].get<bool>() ? 1 : 0;
        }
        CHECK(selves == 1);
    }
    const auto [code, table] = run({TROUPE_CTL, "--admin", a.admin(), "members"});
    CHECK(code == 0);
    CHECK_THAT(table, Catch::Contains("alive"));
    const auto [scode, stats] = run({TROUPE_CTL, "--admin", a.admin(), "stats", "--json"});
    CHECK(scode == 0);
    CHECK(nlohmann::json::parse(stats)["node"] == "a");
    // The container image's health check.
    const auto [hcode, health] = run({TROUPE_CTL, "--admin", a.admin(), "health"});
    CHECK(hcode == 0);
    CHECK_THAT(health, Catch::Contains("\"ok\":true"));

    c.proc->signal(SIGTERM);
    CHECK(c.proc->wait(std::chrono::seconds(15)) == 0);
    // Nothing answers on its admin port any more: unhealthy, exit 1.
    CHECK(run({TROUPE_CTL, "--admin", c.admin(), "health"}).first == 1);
    std::string state;
    for (int i = 0; i < 100 && state != "left"; ++i) {
        state = state_of(members(a), "c");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(state == "left");
}

TEST_CASE("a SIGKILLed troupe-node is suspected, then gone", "[integration]") {
    scratch s;
    node a(s.write_config("a"), {"admin.enabled=true", "membership.failure_detector.ping_interval=500ms"});
    node b(s.write_config("b"), {"membership.static=[" + a.endpoint() + "]"});
    std::string state;
    for (int i = 0; i < 200 && state != "alive"; ++i) {
        state = state_of(members(a), "b");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(state == "alive");
    b.proc->signal(SIGKILL);
    for (int i = 0; i < 300 && state != "gone"; ++i) {
        state = state_of(members(a), "b");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(state == "gone");
}

TEST_CASE("troupe-node --check-config prints every diagnostic and exits 2", "[integration]") {
    scratch s;
    const auto path = std::filesystem::temp_directory_path() / (s.cluster() + "-bad.yaml");
    {
        std::ofstream out(path);
        out << "cluster:\n  name: x\nrecever:\n  port: 4000\nsender:\n  ack_timeout: fast\n";
    }
    auto p = child_process::spawn({"/bin/sh", "-c", std::string(TROUPE_NODE) + " --check-config " +
                                                        path.string() + " 2>&1"});
    std::string out;
    while (auto line = p.read_line(std::chrono::seconds(20))) {
        out += *line + "\n";
    }
    CHECK(p.wait(std::chrono::seconds(10)) == 2);
    CHECK_THAT(out, Catch::Contains(path.string() + ":3:1: error:"));
    CHECK_THAT(out, Catch::Contains("did you mean 'receiver'?"));
    CHECK_THAT(out, Catch::Contains(path.string() + ":6:16: error: sender.ack_timeout"));
    std::filesystem::remove(path);

    const auto good = s.write_config("good");
    const auto [code, yaml] = run({TROUPE_NODE, "--check-config", good});
    CHECK(code == 0);
    CHECK_THAT(yaml, Catch::Contains("ack_timeout: 3s"));
}
