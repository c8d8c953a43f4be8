// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/failure_detector.hpp>

#include <catch2/catch.hpp>

using namespace troupe::membership;
using namespace std::chrono_literals;
using clock_type = failure_detector::clock;

namespace {

/// A manual clock: time moves only when the test says so.
struct manual_clock {
    clock_type::time_point now{std::chrono::seconds(1000)};
    void advance(clock_type::duration d) { now += d; }
};

heartbeat beat_of(const member& m) {
    heartbeat hb;
    hb.cluster = "c";
    hb.id = m.id;
    hb.host = m.host;
    hb.port = m.port;
    hb.node = m.name;
    return hb;
}

member make(const std::string& name, std::uint16_t port) {
    member m;
    m.id = member_id::random();
    m.name = name;
    m.host = "127.0.0.1";
    m.port = port;
    return m;
}

struct fixture {
    manual_clock clock;
    member_id self = member_id::random();
    failure_detector fd{self, 3000ms};
    member b = make("b", 4002);

    /// b heard and then connected: alive.
    void admit() {
        auto a = fd.heard(beat_of(b), clock.now);
        REQUIRE(a.connect.size() == 1);
        auto c = fd.connected(b, clock.now);
        REQUIRE(c.changes.size() == 1);
        REQUIRE(c.changes[0].state == member_state::alive);
    }
    member_state state() const { return fd.table().find(b.id)->m.state; }
};

} // namespace

TEST_CASE("a heard member is admitted only through a handshake, and answered at once", "[membership]") {
    fixture f;
    const auto a = f.fd.heard(beat_of(f.b), f.clock.now);
    CHECK(a.changes.empty());
    REQUIRE(a.connect.size() == 1);
    CHECK(a.connect[0] == std::make_pair(std::string("127.0.0.1"), std::uint16_t{4002}));
    CHECK(a.answer_heartbeat);
    CHECK_FALSE(f.fd.table().find(f.b.id));
    f.fd.connected(f.b, f.clock.now);
    CHECK(f.state() == member_state::alive);
}

TEST_CASE("our own heartbeat is ignored", "[membership]") {
    fixture f;
    auto me = f.b;
    me.id = f.self;
    const auto a = f.fd.heard(beat_of(me), f.clock.now);
    CHECK(a.connect.empty());
    CHECK_FALSE(a.answer_heartbeat);
}

TEST_CASE("silence longer than drop_time makes a member suspect and asks for verification", "[membership]") {
    fixture f;
    f.admit();
    f.clock.advance(2900ms);
    CHECK(f.fd.tick(f.clock.now).changes.empty());
    f.clock.advance(200ms);
    const auto a = f.fd.tick(f.clock.now);
    REQUIRE(a.changes.size() == 1);
    CHECK(a.changes[0].state == member_state::suspect);
    CHECK_THAT(a.changes[0].reason, Catch::StartsWith("no heartbeat for 3100ms"));
    REQUIRE(a.verify.size() == 1);
    CHECK(a.verify[0].id == f.b.id);
    // While verifying, another tick does not ask again.
    f.clock.advance(500ms);
    CHECK(f.fd.tick(f.clock.now).verify.empty());
}

TEST_CASE("a suspect that answers verification stays, as a false suspicion avoided", "[membership]") {
    fixture f;
    f.admit();
    f.clock.advance(3500ms);
    f.fd.tick(f.clock.now);
    const auto a = f.fd.verified(f.b.id, true, "answered PING", 2ms, f.clock.now);
    REQUIRE(a.changes.size() == 1);
    CHECK(a.changes[0].state == member_state::alive);
    CHECK(f.fd.stats().false_suspicions_avoided == 1);
    CHECK(f.fd.stats().removals.empty());
    // The answer counts as a heartbeat: no immediate re-suspicion.
    f.clock.advance(1000ms);
    CHECK(f.fd.tick(f.clock.now).changes.empty());
}

TEST_CASE("a suspect that fails verification is removed, saying why", "[membership]") {
    fixture f;
    f.admit();
    const auto s = f.fd.disconnected(f.b.id, "Connection reset by peer", f.clock.now);
    REQUIRE(s.verify.size() == 1);
    f.clock.advance(1ms);
    const auto a = f.fd.verified(f.b.id, false, "connect: Connection refused", 1ms, f.clock.now);
    REQUIRE(a.changes.size() == 1);
    CHECK(a.changes[0].state == member_state::gone);
    CHECK(a.changes[0].reason ==
          "suspected (connection lost: Connection reset by peer), verification failed after 1ms: connect: "
          "Connection refused");
    CHECK(f.fd.stats().removals.at("verification_failed") == 1);
}

TEST_CASE("heavy heartbeat loss never removes a member that answers verification", "[membership]") {
    fixture f;
    f.admit();
    int removals = 0;
    // 10 minutes where only one heartbeat in ten arrives.
    for (int i = 0; i < 1200; ++i) {
        f.clock.advance(500ms);
        if (i % 10 == 0) {
            f.fd.heard(beat_of(f.b), f.clock.now);
        }
        const auto a = f.fd.tick(f.clock.now);
        for (const auto& m : a.verify) {
            const auto v = f.fd.verified(m.id, true, "answered PING", 3ms, f.clock.now);
            for (const auto& c : v.changes) {
                removals += c.state == member_state::gone ? 1 : 0;
            }
        }
    }
    CHECK(removals == 0);
    CHECK(f.state() == member_state::alive);
}

TEST_CASE("a leaving heartbeat removes a member at once as left", "[membership]") {
    fixture f;
    f.admit();
    auto hb = beat_of(f.b);
    hb.leaving = true;
    const auto a = f.fd.heard(hb, f.clock.now);
    REQUIRE(a.changes.size() == 1);
    CHECK(a.changes[0].state == member_state::left);
    CHECK(f.fd.stats().removals.at("left") == 1);
    CHECK(f.fd.table().sendable().empty());
}

TEST_CASE("a removed member that is heard again is readmitted through a new handshake", "[membership]") {
    fixture f;
    f.admit();
    f.fd.disconnected(f.b.id, "reset", f.clock.now);
    f.fd.verified(f.b.id, false, "refused", 1ms, f.clock.now);
    REQUIRE(f.state() == member_state::gone);
    f.clock.advance(10s);
    const auto a = f.fd.heard(beat_of(f.b), f.clock.now);
    CHECK(a.changes.empty()); // not on a heartbeat alone
    REQUIRE(a.connect.size() == 1);
    const auto c = f.fd.connected(f.b, f.clock.now);
    REQUIRE(c.changes.size() == 1);
    CHECK(c.changes[0].state == member_state::alive);
    CHECK(f.fd.table().all().size() == 1);
}

TEST_CASE("a restart at the same endpoint removes the old incarnation", "[membership]") {
    fixture f;
    f.admit();
    auto reborn = f.b;
    reborn.id = member_id::random();
    const auto a = f.fd.connected(reborn, f.clock.now);
    REQUIRE(a.changes.size() == 2);
    CHECK(a.changes[0].id == f.b.id);
    CHECK(a.changes[0].state == member_state::gone);
    CHECK_THAT(a.changes[0].reason, Catch::StartsWith("restarted"));
    CHECK(a.changes[1].id == reborn.id);
    CHECK(f.fd.stats().removals.at("restarted") == 1);
}

TEST_CASE("a failed send makes a member suspect and a late verification result is ignored",
          "[membership]") {
    fixture f;
    f.admit();
    const auto s = f.fd.send_failed(f.b.id, "ack timeout", f.clock.now);
    REQUIRE(s.changes.size() == 1);
    CHECK(s.changes[0].reason == "send failed: ack timeout");
    f.fd.connected(f.b, f.clock.now); // reconnected meanwhile: alive again
    CHECK(f.state() == member_state::alive);
    CHECK(f.fd.verified(f.b.id, false, "late", 1s, f.clock.now).changes.empty());
    CHECK(f.state() == member_state::alive);
}

TEST_CASE("members known only over TCP are not judged by heartbeat silence", "[membership]") {
    fixture f;
    f.fd.connected(f.b, f.clock.now); // a static member: never heard over multicast
    f.clock.advance(1h);
    CHECK(f.fd.tick(f.clock.now).changes.empty());
}
