// SPDX-License-Identifier: Apache-2.0
// Replicated sessions between real processes on 127.0.0.1: troupe-sessionpeer
// members (a channel and a delta manager each) and, for malformed input, a
// plain channel in this process.
#include "sessions_fixture.hpp"

#include <troupe/troupe.hpp>

#include <csignal>
#include <map>
#include <thread>

using troupe::test::scratch;
using troupe::test::session_peer;
using troupe::test::session_list;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> with(std::vector<std::string> flags, std::initializer_list<std::string> more) {
    flags.insert(flags.end(), more);
    return flags;
}

/// Three members in a full mesh; b and c start their managers once they see the others.
struct session_trio {
    scratch s;
    std::optional<session_peer> a, b, c;

    explicit session_trio(const std::vector<std::string>& flags = {}) {
        a.emplace(s.write_config("a"), std::vector<std::string>{}, flags);
        b.emplace(s.write_config("b"), std::vector<std::string>{"membership.static=" + session_list({&*a})},
                  with(flags, {"--wait-members", "1"}));
        c.emplace(s.write_config("c"), std::vector<std::string>{"membership.static=" + session_list({&*a, &*b})},
                  with(flags, {"--wait-members", "2"}));
        for (auto* p : {&*a, &*b, &*c}) {
            REQUIRE(p->cmd("wait-members 2 15000")["members"] == 2);
        }
    }
};

bool found(const nlohmann::json& j) { return j.value("found", false); }

} // namespace

TEST_CASE("a session created on A and changed 100 times reads identically on B and C",
          "[integration][sessions]") {
    session_trio t;
    const auto id = t.a->cmd("create user ann")["id"].get<std::string>();
    for (int i = 0; i < 100; ++i) {
        const auto r = t.a->cmd("set " + id + " n " + std::to_string(i));
        REQUIRE(r["found"] == true);
    }
    const auto on_a = t.a->cmd("dump " + id);
    CHECK(on_a["version"] == 101);
    for (auto* p : {&*t.b, &*t.c}) {
        const auto d = p->poll("dump " + id, [](const auto& j) { return found(j) && j["version"] == 101; });
        CHECK(d == on_a);
        CHECK(d["attributes"]["n"] == "99");
        CHECK(d["attributes"]["user"] == "ann");
    }
    const auto stats = t.b->cmd("stats")["replication"];
    CHECK(stats["gaps"] == 0);
    CHECK(stats["deltas_applied"] == 100);
}

TEST_CASE("with sync a value acknowledged by A is on B when A is SIGKILLed right after",
          "[integration][sessions]") {
    session_trio t({"--options", "sync"});
    const auto id = t.a->cmd("create")["id"].get<std::string>();
    for (int i = 0; i < 30; ++i) {
        const auto r = t.a->cmd("set " + id + " n " + std::to_string(i));
        REQUIRE(r["send_ok"] == true);
        // Acknowledged: already applied on the others, without waiting.
        CHECK(t.b->cmd("get " + id + " n")["value"] == std::to_string(i));
    }
    const auto r = t.a->cmd("set " + id + " last acknowledged");
    REQUIRE(r["send_ok"] == true);
    t.a->process().signal(SIGKILL);
    for (auto* p : {&*t.b, &*t.c}) {
        const auto g = p->cmd("get " + id + " last");
        CHECK(g["found"] == true);
        CHECK(g["value"] == "acknowledged");
        CHECK(g["version"] == 32);
    }
    t.a->process().wait(10s);
}

TEST_CASE("a fourth member started while 1,000 sessions are written ends with every session at its latest version",
          "[integration][sessions]") {
    session_trio t({"--chunk-bytes", "65536"});
    t.a->cmd("load-start 334 400");
    t.b->cmd("load-start 333 400");
    t.c->cmd("load-start 333 400");
    // Sessions exist and are being written when the fourth member starts.
    t.a->poll("count", [](const auto& j) { return j["sessions"] == 1000; });
    std::this_thread::sleep_for(500ms);
    session_peer d(t.s.write_config("d"),
                   std::vector<std::string>{"membership.static=" + session_list({&*t.a, &*t.b, &*t.c})},
                   {"--wait-members", "3", "--chunk-bytes", "65536"});
    const auto transfer = d.cmd("stats")["state_transfer"];
    INFO("d's state transfer: " << transfer.dump());
    CHECK(transfer["state"] == "done");
    std::this_thread::sleep_for(1s); // writes go on with d in the group
    std::map<std::string, std::uint64_t> latest;
    std::uint64_t writes = 0;
    for (auto* p : {&*t.a, &*t.b, &*t.c}) {
        const auto r = p->cmd("load-stop");
        writes += r["writes"].get<std::uint64_t>();
        for (const auto& [id, v] : r["versions"].items()) {
            latest[id] = v.get<std::uint64_t>();
        }
    }
    REQUIRE(latest.size() == 1000);
    CHECK(writes > 1000);
    for (auto* p : {&*t.a, &*t.b, &*t.c, &d}) {
        const auto digest = p->poll("digest", [&](const auto& j) {
            if (j["count"] != latest.size()) {
                return false;
            }
            for (const auto& [id, v] : latest) {
                if (!j["versions"].contains(id) || j["versions"][id] != v) {
                    return false;
                }
            }
            return true;
        }, 30s);
        INFO(p->name() << " stats: " << p->cmd("stats")["replication"].dump());
        CHECK(digest["count"] == latest.size());
        std::size_t behind = 0;
        for (const auto& [id, v] : latest) {
            behind += digest["versions"].value(id, std::uint64_t{0}) == v ? 0 : 1;
        }
        CHECK(behind == 0);
    }
}

TEST_CASE("two members starting at the same moment both end with every session", "[integration][sessions]") {
    scratch s;
    session_peer a(s.write_config("a"));
    std::vector<std::string> ids;
    for (int i = 0; i < 200; ++i) {
        ids.push_back(a.cmd("create n " + std::to_string(i))["id"]);
    }
    const std::vector<std::string> sets{"membership.static=" + session_list({&a})};
    session_peer b(session_peer::deferred{}, s.write_config("b"), sets, {"--wait-members", "1"});
    session_peer c(session_peer::deferred{}, s.write_config("c"), sets, {"--wait-members", "1"});
    b.await_ready();
    c.await_ready();
    const auto expected = a.cmd("digest");
    for (auto* p : {&b, &c}) {
        CHECK(p->cmd("stats")["state_transfer"]["state"] == "done");
        const auto d = p->poll("digest", [&](const auto& j) { return j == expected; });
        CHECK(d == expected);
    }
}

TEST_CASE("expiry agrees across members and a session only read elsewhere stays alive",
          "[integration][sessions]") {
    session_trio t({"--max-inactive", "2", "--expiry-interval", "100", "--access-batch", "200"});
    const auto idle = t.a->cmd("create")["id"].get<std::string>();
    const auto kept = t.a->cmd("create")["id"].get<std::string>();
    for (auto* p : {&*t.b, &*t.c}) {
        p->poll("dump " + kept, found);
    }
    // `kept` is only read, on B, for 3.5 s: longer than its 2 s max inactive.
    const auto until = std::chrono::steady_clock::now() + 3500ms;
    while (std::chrono::steady_clock::now() < until) {
        CHECK(found(t.b->cmd("read " + kept)));
        std::this_thread::sleep_for(250ms);
    }
    for (auto* p : {&*t.a, &*t.b, &*t.c}) {
        INFO(p->name());
        CHECK_FALSE(found(p->poll("dump " + idle, [](const auto& j) { return !found(j); }, 5s)));
        CHECK(found(p->cmd("dump " + kept)));
    }
    // Left alone, it expires everywhere.
    for (auto* p : {&*t.a, &*t.b, &*t.c}) {
        INFO(p->name());
        CHECK(p->poll("count", [](const auto& j) { return j["sessions"] == 0; }, 15s)["sessions"] == 0);
    }
}

TEST_CASE("id rotation and invalidation reach every member", "[integration][sessions]") {
    session_trio t;
    const auto old_id = t.a->cmd("create user anonymous")["id"].get<std::string>();
    t.b->poll("dump " + old_id, found);
    const auto new_id = t.a->cmd("rotate " + old_id)["id"].get<std::string>();
    REQUIRE(new_id != old_id);
    for (auto* p : {&*t.b, &*t.c}) {
        CHECK(found(p->poll("dump " + new_id, found)));
        CHECK_FALSE(found(p->cmd("dump " + old_id)));
    }
    CHECK(t.b->cmd("invalidate " + new_id)["ok"] == true);
    for (auto* p : {&*t.a, &*t.c}) {
        CHECK_FALSE(found(p->poll("dump " + new_id, [](const auto& j) { return !found(j); })));
    }
}

TEST_CASE("malformed session bytes from a plain channel are rejected and counted and the member keeps serving",
          "[integration][sessions]") {
    session_trio t;
    auto config = troupe::conf::load_file(t.s.write_config("x"),
                                          {"membership.static=" + session_list({&*t.a})});
    troupe::engine::channel x(config);
    x.start();
    std::optional<troupe::membership::member_id> a_id;
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (!a_id && std::chrono::steady_clock::now() < deadline) {
        for (const auto& m : x.members()) {
            if (m.name == "a" && m.state == troupe::membership::member_state::alive) {
                a_id = m.id;
            }
        }
        std::this_thread::sleep_for(20ms);
    }
    REQUIRE(a_id);
    const std::vector<std::uint8_t> garbage{'n', 'o', 't', ' ', 'a', ' ', 's', 'e', 's', 's', 'i', 'o', 'n'};
    // Byte 2 is the session codec's version (managers/src/wire.hpp).
    // A delta header claiming a session id of 200 bytes, with 3 present.
    const std::vector<std::uint8_t> truncated{'T', 'S', 4, 2, 200, 'a', 'b', 'c'};
    // An all-data chunk claiming four billion sessions.
    const std::vector<std::uint8_t> huge{'T', 'S', 4, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff};
    for (const auto* bytes : {&garbage, &truncated, &huge}) {
        const auto r = x.send(std::span(&*a_id, 1), std::as_bytes(std::span(*bytes)), troupe::engine::send_options::sync,
                              "app");
        // Refused (NACK, so a sync sender's request fails), without failing the node.
        REQUIRE_FALSE(r.ok());
        CHECK(r.describe().find("malformed session message") != std::string::npos);
    }
    const auto stats = t.a->cmd("stats")["replication"];
    CHECK(stats["malformed"] == 3);
    CHECK(stats["malformed_by_reason"]["not a session message (bad magic)"] == 1);
    CHECK(stats["malformed_by_reason"]["truncated session message"] == 1);
    CHECK(stats["malformed_by_reason"]["count or length beyond the message"] == 1);
    // Still serving, still replicating.
    const auto id = t.a->cmd("create k v")["id"].get<std::string>();
    t.a->cmd("set " + id + " k w");
    CHECK(t.b->poll("dump " + id, [](const auto& j) { return found(j) && j["version"] == 2; })["attributes"]["k"] ==
          "w");
    x.stop();
}
