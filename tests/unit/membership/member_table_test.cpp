// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/member_table.hpp>

#include <catch2/catch.hpp>

using namespace troupe::membership;

namespace {

member make(const std::string& name, std::uint16_t port) {
    member m;
    m.id = member_id::random();
    m.name = name;
    m.host = "127.0.0.1";
    m.port = port;
    return m;
}

} // namespace

TEST_CASE("a new incarnation at the same endpoint replaces the old one: gone, then alive", "[membership]") {
    member_table t;
    const auto old = make("b", 4002);
    REQUIRE(t.mark_alive(old).size() == 1);
    const auto fresh = make("b", 4002);
    const auto changes = t.mark_alive(fresh);
    REQUIRE(changes.size() == 2);
    CHECK(changes[0].id == old.id);
    CHECK(changes[0].state == member_state::gone);
    CHECK(changes[1].id == fresh.id);
    CHECK(changes[1].state == member_state::alive);
    CHECK(t.all().size() == 1); // no duplicate entry
}

TEST_CASE("marking an alive member alive again changes nothing", "[membership]") {
    member_table t;
    const auto m = make("b", 4002);
    t.mark_alive(m);
    CHECK(t.mark_alive(m).empty());
    CHECK_FALSE(t.set_state(m.id, member_state::alive));
    CHECK(t.set_state(m.id, member_state::suspect));
    CHECK(t.sendable().size() == 1); // a suspect is still sent to
    CHECK(t.set_state(m.id, member_state::gone));
    CHECK(t.sendable().empty());
}
