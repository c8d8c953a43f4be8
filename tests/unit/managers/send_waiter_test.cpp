// SPDX-License-Identifier: Apache-2.0
#include "send_waiter.hpp"

#include <troupe/transport/error.hpp>

#include <catch2/catch.hpp>

#include <memory>

using namespace troupe;
using managers::detail::laggard_set;
using managers::detail::send_waiter;

namespace {

using clock_type = send_waiter::clock;

engine::send_result ok() {
    engine::send_result r;
    r.destinations = 1;
    return r;
}

engine::send_result failed(const membership::member_id& m) {
    engine::send_result r;
    membership::member who;
    who.id = m;
    r.failures.push_back({who, transport::error::ack_timeout, "no ack"});
    return r;
}

// Never reached during a test, or already passed: no timing in the assertions.
const auto never = clock_type::now() + std::chrono::hours(1);
const auto passed = clock_type::now() - std::chrono::milliseconds(1);

} // namespace

TEST_CASE("a waiter settles when every member answered, or after early_at with half of the group",
          "[managers]") {
    const auto b = membership::member_id::random();
    const auto c = membership::member_id::random();
    SECTION("all answer") {
        send_waiter w(never);
        w.expect(b);
        w.expect(c);
        w.done(b, ok());
        CHECK_FALSE(w.poll());
        w.done(c, ok());
        CHECK(w.poll());
        CHECK(w.result().ok());
        CHECK_FALSE(w.skipped_any());
    }
    SECTION("half of the group, this node included, after early_at") {
        send_waiter w(passed);
        w.expect(b);
        w.expect(c);
        CHECK_FALSE(w.poll()); // only this node has it: 1 of 3
        w.done(b, ok());
        CHECK(w.poll()); // 2 of 3
        CHECK(w.skipped_any());
        CHECK(w.result().ok());
    }
    SECTION("a failed member does not count towards the half") {
        send_waiter w(passed);
        w.expect(b);
        w.expect(c);
        w.done(b, failed(b));
        CHECK_FALSE(w.poll());
    }
}

TEST_CASE("members a request skipped are not waited for until they answer again", "[managers]") {
    const auto b = membership::member_id::random();
    const auto c = membership::member_id::random();
    auto laggards = std::make_shared<laggard_set>();
    {
        // c is frozen: the first request settles by the early rule and marks it.
        send_waiter first(passed, laggards);
        first.expect(b);
        first.expect(c);
        first.done(b, ok());
        REQUIRE(first.wait(std::chrono::milliseconds(1000)));
        CHECK(laggards->contains(c));
        CHECK_FALSE(laggards->contains(b));
    }
    {
        // The next one settles as soon as b answers, long before its early_at.
        send_waiter next(never, laggards);
        next.expect(b);
        next.expect(c);
        CHECK_FALSE(next.poll());
        next.done(b, ok());
        CHECK(next.poll());
    }
    // c answers again (the manager removes it from the set on an ok answer):
    // requests wait for it once more.
    laggards->remove(c);
    send_waiter again(never, laggards);
    again.expect(b);
    again.expect(c);
    again.done(b, ok());
    CHECK_FALSE(again.poll());
    again.done(c, ok());
    CHECK(again.poll());
}

TEST_CASE("with two nodes a known laggard is still waited for until early_at", "[managers]") {
    // This node alone would be "half of the group": the shortcut needs
    // another member's ok, or a sync write would be acknowledged by nobody.
    const auto b = membership::member_id::random();
    auto laggards = std::make_shared<laggard_set>();
    laggards->add(b);
    send_waiter w(never, laggards);
    w.expect(b);
    CHECK_FALSE(w.poll());
    w.done(b, ok());
    CHECK(w.poll());
}
