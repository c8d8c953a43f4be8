// SPDX-License-Identifier: Apache-2.0
// Reconciliation on the in-memory bus: a healed partition converges both ways,
// tombstones win, copies changed on both sides pick one winner everywhere, a
// delta built on a stale copy is refused and answered with the newer copy, a
// rejoining (or paused) member's requests wait for the reconciled copy, and
// digests stay within the chunk bound.
#include "delta_cluster.hpp"

#include <atomic>
#include <future>
#include <set>
#include <thread>

using namespace troupe;
using namespace troupe::managers;
using namespace troupe::test;
using namespace std::chrono_literals;

namespace {

std::string get(session_manager& m, const std::string& id, const std::string& name) {
    auto r = m.begin_request(id, "/");
    if (r.session() == nullptr) {
        return "<no session>";
    }
    auto v = r.session()->get<std::string>(name);
    return v ? *v : "<unset>";
}

std::uint64_t reconciliation(const session_manager& m, const char* key) {
    return stats(m)["reconciliation"][key].get<std::uint64_t>();
}

/// Three members with sync replication, delivering on a thread of their own,
/// and one session made on a.
struct sync_trio {
    delta_cluster c{[](manager_config& cfg) { cfg.send_options = engine::send_options::sync; }};
    delta_manager& a = c.add("a");
    delta_manager& b = c.add("b");
    delta_manager& cc = c.add("c");
    pumper p{c.bus};
    std::string id = create(a, "k", "0");
};

} // namespace

TEST_CASE("after a partition heals, each side pulls the copies the other holds newer", "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    const auto on_a = create(a, "k", "0");
    const auto on_c = create(cc, "k", "0");
    REQUIRE(c.pump());
    const auto c_id = c.bus.id_of("c");
    c.bus.cut(c_id);
    REQUIRE(c.pump());
    // Each side serves its own users while apart.
    set(a, on_a, "k", "a1");
    set(a, on_a, "k", "a2");
    set(cc, on_c, "k", "c1");
    const auto only_a = create(a, "k", "new on a");
    const auto only_c = create(cc, "k", "new on c");
    REQUIRE(c.pump());
    CHECK(get(cc, on_a, "k") == "0");
    c.bus.heal(c_id);
    REQUIRE(c.pump());
    require_same(a, cc);
    require_same(a, b);
    CHECK(get(cc, on_a, "k") == "a2");
    CHECK(get(a, on_c, "k") == "c1");
    CHECK(get(b, only_c, "k") == "new on c");
    CHECK(get(cc, only_a, "k") == "new on a");
    // Both directions, and nobody is left waiting.
    CHECK(reconciliation(cc, "completed") >= 2);
    CHECK(reconciliation(a, "completed") >= 1);
    CHECK(reconciliation(cc, "fetches") >= 2);
    CHECK(reconciliation(a, "fetches") >= 2);
    CHECK(reconciliation(a, "conflicts") + reconciliation(cc, "conflicts") == 0);
    CHECK(a.reconciling_blocking() == 0);
    CHECK(cc.reconciling_blocking() == 0);
}

TEST_CASE("a session ended on one side while apart stays ended after the heal", "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    const auto invalidated = create(a, "k", "0");
    const auto kept = create(a, "k", "0");
    REQUIRE(c.pump());
    const auto c_id = c.bus.id_of("c");
    c.bus.cut(c_id);
    REQUIRE(c.pump());
    {
        auto r = a.begin_request(invalidated, "/");
        r.session()->invalidate();
    }
    REQUIRE(c.pump());
    CHECK(cc.find(invalidated));
    CHECK_FALSE(b.find(invalidated));
    c.bus.heal(c_id);
    REQUIRE(c.pump());
    // c dropped its copy instead of giving it back.
    CHECK_FALSE(cc.find(invalidated));
    CHECK_FALSE(a.find(invalidated));
    CHECK_FALSE(b.find(invalidated));
    CHECK(cc.find(kept));
    CHECK(reconciliation(cc, "tombstones_applied") == 1);
    require_same(a, cc);
}

TEST_CASE("copies changed on both sides while apart converge to one winner on every member",
          "[managers][reconcile]") {
    for (const int steps_on_a : {1, 2}) {
        INFO(steps_on_a << " change(s) on a's side, 1 on c's");
        delta_cluster c;
        auto& a = c.add("a");
        auto& b = c.add("b");
        auto& cc = c.add("c");
        const auto id = create(a, "k", "0");
        REQUIRE(c.pump());
        const auto c_id = c.bus.id_of("c");
        c.bus.cut(c_id);
        REQUIRE(c.pump());
        for (int i = 0; i < steps_on_a; ++i) {
            set(a, id, "k", "a" + std::to_string(i));
        }
        set(cc, id, "k", "c");
        REQUIRE(c.pump());
        c.bus.heal(c_id);
        REQUIRE(c.pump());
        require_same(a, cc);
        require_same(a, b);
        const auto winner = get(a, id, "k");
        if (steps_on_a == 2) {
            CHECK(winner == "a1"); // more steps wins
        } else {
            CHECK((winner == "a0" || winner == "c")); // same version: the tag decides, alike everywhere
        }
        // Counted by the members that hold the winning copy, when they see the loser.
        const auto conflicts =
            reconciliation(a, "conflicts") + reconciliation(b, "conflicts") + reconciliation(cc, "conflicts");
        CHECK(conflicts >= 1);
        CHECK(conflicts <= 2);
        CHECK(logged("session " + id + " diverged"));
    }
}

TEST_CASE("a delta built on a stale copy is refused and fails its request, whatever on_replication_failure says",
          "[managers][reconcile]") {
    for (const auto mode : {manager_config::on_failure::log, manager_config::on_failure::fail}) {
        delta_cluster c([mode](manager_config& cfg) {
            cfg.send_options = engine::send_options::sync;
            cfg.on_replication_failure = mode;
        });
        auto& a = c.add("a");
        auto& b = c.add("b");
        auto& cc = c.add("c");
        pumper p(c.bus);
        const auto id = create(a, "k", "0");
        // A request on c is in flight when c freezes; the others remove c
        // and go on without it.
        auto r = cc.begin_request(id, "/");
        REQUIRE(r.session() != nullptr);
        CHECK(r.session()->get<std::string>("k") == "0");
        r.session()->set("k", "stale write");
        const auto c_id = c.bus.id_of("c");
        c.bus.announce_gone(c_id);
        set(a, id, "k", "1");
        set(a, id, "k", "2");
        // c resumes and finishes the request: its change reaches a and b.
        boost::system::error_code ec;
        const auto res = r.end(ec);
        REQUIRE(res.send);
        CHECK_FALSE(res.send->ok());
        CHECK(ec == errc::replication_failed);
        CHECK_THAT(res.detail, Catch::Contains("changed elsewhere"));
        CHECK_THAT(res.detail, Catch::Contains("stale base"));
        CHECK(repl(a, "stale_bases_refused") == 1);
        CHECK(repl(b, "stale_bases_refused") == 1);
        CHECK(repl(cc, "requests_refused") == 1);
        CHECK(get(a, id, "k") == "2");
        // Re-admitted, c reconciles: a's copy wins over the one nobody took.
        c.bus.readmit(c_id);
        REQUIRE(c.pump());
        CHECK(get(cc, id, "k") == "2");
        require_same(a, cc);
        require_same(a, b);
    }
}

TEST_CASE("a refused delta's writer gets the newer copy back at once when it can be reached",
          "[managers][reconcile]") {
    sync_trio t;
    auto& c = t.c;
    auto& a = t.a;
    auto& b = t.b;
    auto& cc = t.cc;
    const auto& id = t.id;
    // c misses a's two changes (their messages to c are lost) without any
    // membership change, and writes before the next delta shows it the gap.
    const auto c_id = c.bus.id_of("c");
    c.bus.filter = [&](const fake_bus::envelope& e) {
        return e.to == c_id && type_of(e.payload) == wire::msg_type::delta ? verdict::drop : verdict::deliver;
    };
    set(a, id, "k", "1");
    set(a, id, "k", "2");
    c.bus.filter = nullptr;
    {
        auto r = cc.begin_request(id, "/");
        r.session()->set("k", "stale write");
        boost::system::error_code ec;
        CHECK_THAT(r.end(ec).detail, Catch::Contains("stale base"));
        CHECK(ec == errc::replication_failed);
    }
    REQUIRE(c.pump());
    CHECK(get(cc, id, "k") == "2");
    CHECK(repl(cc, "newer_copies_installed") == 1);
    require_same(a, cc);
}

TEST_CASE("a request whose session is replaced by a newer copy meanwhile fails and changes nothing",
          "[managers][reconcile]") {
    sync_trio t;
    auto& c = t.c;
    auto& a = t.a;
    auto& b = t.b;
    auto& cc = t.cc;
    const auto& id = t.id;
    auto r = cc.begin_request(id, "/");
    r.session()->set("k", "from an old copy");
    const auto c_id = c.bus.id_of("c");
    c.bus.announce_gone(c_id);
    set(a, id, "k", "1");
    c.bus.readmit(c_id);
    REQUIRE(c.pump()); // c reconciles and installs a's copy under the request
    boost::system::error_code ec;
    const auto res = r.end(ec);
    CHECK(ec == errc::replication_failed);
    CHECK_THAT(res.detail, Catch::Contains("replaced by a newer copy"));
    CHECK_FALSE(res.replicated);
    REQUIRE(c.pump());
    CHECK(get(a, id, "k") == "1");
    CHECK(get(cc, id, "k") == "1");
}

TEST_CASE("a late duplicate of an applied delta is not taken for a stale base", "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    const auto id = create(a, "k", "0");
    REQUIRE(c.pump());
    // b receives a's deltas twice (a reconnect resending what was in flight).
    std::set<std::vector<std::uint8_t>> seen;
    c.bus.filter = [&](const fake_bus::envelope& e) {
        if (type_of(e.payload) == wire::msg_type::delta && seen.insert(e.payload).second) {
            c.bus.inject(e.from, e.to, e.payload);
        }
        return verdict::deliver;
    };
    set(a, id, "k", "1");
    set(a, id, "k", "2");
    REQUIRE(c.pump());
    c.bus.filter = nullptr;
    CHECK(repl(b, "stale_bases_refused") == 0);
    CHECK(repl(b, "deltas_stale") == 2);
    require_same(a, b);
}

TEST_CASE("a re-admitted member's requests wait for its reconciliation, then see the newer copy",
          "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    c.add("b");
    auto& cc = c.add("c");
    const auto id = create(a, "k", "0");
    REQUIRE(c.pump());
    const auto c_id = c.bus.id_of("c");
    c.bus.announce_gone(c_id); // frozen: removed by the others, c saw nothing
    set(a, id, "k", "while c was away");
    REQUIRE(c.pump());
    CHECK(cc.find(id)->contains("k"));
    c.bus.readmit(c_id); // a and b tell c "I had removed you"
    // Only the rejoin notices reach c: it now vouches for none of its copies.
    c.bus.filter = [](const fake_bus::envelope& e) {
        return type_of(e.payload) == wire::msg_type::get_all ? verdict::deliver : verdict::drop;
    };
    c.bus.deliver_queued();
    c.bus.filter = nullptr;
    CHECK(cc.reconciling_blocking() >= 1);
    CHECK(logged("had removed this node"));
    auto reader = std::async(std::launch::async, [&] { return get(cc, id, "k"); });
    CHECK(reader.wait_for(100ms) == std::future_status::timeout);
    REQUIRE(c.pump());
    CHECK(reader.get() == "while c was away");
    CHECK(reconciliation(cc, "unverified_waits") >= 1);
    CHECK(reconciliation(cc, "unverified_wait_timeouts") == 0);
}

TEST_CASE("a member that notices its own pause reconciles with every member before serving",
          "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    c.add("b");
    auto& cc = c.add("c");
    const auto id = create(a, "k", "0");
    REQUIRE(c.pump());
    const auto c_id = c.bus.id_of("c");
    c.bus.announce_gone(c_id);
    set(a, id, "k", "1");
    REQUIRE(c.pump());
    c.bus.readmit(c_id);
    c.bus.filter = [](const fake_bus::envelope&) { return verdict::drop; }; // nothing from a or b yet
    c.bus.deliver_queued();
    c.bus.filter = nullptr;
    cc.simulate_pause(5s);
    // The request thread notices before the timer thread does.
    auto reader = std::async(std::launch::async, [&] { return get(cc, id, "k"); });
    CHECK(reader.wait_for(100ms) == std::future_status::timeout);
    CHECK(cc.reconciling_blocking() == 2);
    REQUIRE(c.pump());
    CHECK(reader.get() == "1");
    CHECK(reconciliation(cc, "pauses_detected") == 1);
    CHECK(logged("did not run for"));
}

TEST_CASE("digests stay within the chunk bound and cost little when nothing changed", "[managers][reconcile]") {
    delta_cluster c; // state_transfer_chunk_bytes: 4096
    auto& a = c.add("a");
    auto& b = c.add("b");
    for (int i = 0; i < 400; ++i) {
        create(a, "payload", std::string(200, 'x'));
    }
    REQUIRE(c.pump());
    std::size_t digest_chunks = 0;
    std::size_t digest_bytes = 0;
    std::size_t largest = 0;
    std::size_t whole_copies = 0;
    std::mutex seen;
    c.bus.filter = [&](const fake_bus::envelope& e) {
        std::lock_guard lock(seen);
        const auto t = type_of(e.payload);
        if (t == wire::msg_type::digest) {
            ++digest_chunks;
            digest_bytes += e.payload.size();
            largest = std::max(largest, e.payload.size());
        } else if (t == wire::msg_type::session_data || t == wire::msg_type::newer_copy) {
            ++whole_copies;
        }
        return verdict::deliver;
    };
    const auto b_id = c.bus.id_of("b");
    c.bus.cut(b_id);
    REQUIRE(c.pump());
    c.bus.heal(b_id);
    REQUIRE(c.pump());
    c.bus.filter = nullptr;
    CHECK(digest_chunks > 4); // 400 entries each way, in several chunks
    CHECK(largest <= 4096 + wire::digest_entry_size(wire::max_id));
    CHECK(whole_copies == 0); // the same copies on both sides: digests only
    // A digest entry is a small fraction of a 200-byte session.
    CHECK(digest_bytes < 2 * 400 * 80);
    require_same(a, b);
}

TEST_CASE("the cut-off minority neither serves at once nor acknowledges a sync write, the majority goes on",
          "[managers][reconcile]") {
    sync_trio t;
    auto& c = t.c;
    auto& a = t.a;
    auto& b = t.b;
    auto& cc = t.cc;
    const auto& id = t.id;
    const auto c_id = c.bus.id_of("c");
    c.bus.cut(c_id);
    CHECK(stats(cc)["reconciliation"]["minority"] == true);
    CHECK(stats(a)["reconciliation"]["minority"] == false);
    CHECK(logged("sees fewer than half of the cluster's members"));
    set(a, id, "k", "1"); // two of three: acknowledged
    {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = cc.begin_request(id, "/"); // waits for the others, then serves what it has
        CHECK(std::chrono::steady_clock::now() - t0 >= 2s);
        r.session()->set("k", "on the cut-off side");
        boost::system::error_code ec;
        CHECK_THAT(r.end(ec).detail, Catch::Contains("fewer than half"));
        CHECK(ec == errc::replication_failed);
    }
    CHECK(reconciliation(cc, "minority_refusals") == 1);
    CHECK(reconciliation(cc, "unverified_wait_timeouts") == 1);
    c.bus.heal(c_id);
    REQUIRE(c.pump());
    CHECK(stats(cc)["reconciliation"]["minority"] == false);
    CHECK(get(cc, id, "k") == "1");
    require_same(a, cc);
    require_same(a, b);
}

TEST_CASE("at exactly half of four members the half with the first name goes on, the other half waits",
          "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    auto& d = c.add("d");
    (void)create(a, "k", "0");
    REQUIRE(c.pump());
    const auto minority = [](delta_manager& m) { return stats(m)["reconciliation"]["minority"] == true; };
    // c and d gone from a's and b's view: a and b are half of four, with "a".
    c.bus.cut(c.bus.id_of("c"));
    c.bus.cut(c.bus.id_of("d"));
    CHECK_FALSE(minority(a));
    CHECK_FALSE(minority(b));
    CHECK(minority(cc)); // alone: one of four
    c.bus.heal(c.bus.id_of("c"));
    c.bus.heal(c.bus.id_of("d"));
    REQUIRE(c.pump());
    CHECK_FALSE(minority(cc));
    CHECK_FALSE(minority(d));
    // a and b gone: c and d are half of four, without "a": they wait.
    c.bus.cut(c.bus.id_of("a"));
    c.bus.cut(c.bus.id_of("b"));
    CHECK(minority(cc));
    CHECK(minority(d));
    c.bus.heal(c.bus.id_of("a"));
    c.bus.heal(c.bus.id_of("b"));
    REQUIRE(c.pump());
    CHECK_FALSE(minority(cc));
    CHECK_FALSE(minority(d));
    CHECK_FALSE(minority(a));
}

TEST_CASE("a digest asked for before the other side re-admitted us is asked for again", "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    const auto id = create(a, "k", "0");
    REQUIRE(c.pump());
    const auto c_id = c.bus.id_of("c");
    c.bus.cut(c_id);
    set(a, id, "k", "1");
    REQUIRE(c.pump());
    // c's view heals first: its rejoin reaches a and b, whose answers (GET_ALL
    // back to c) fail, since c is not back in their view yet.
    c.bus.heal_from(c_id);
    for (int i = 0; i < 3; ++i) {
        c.bus.deliver_queued(); // the rejoin to a and b, then their failed GET_ALLs
    }
    CHECK(a.reconciling_blocking() == 1);
    c.bus.readmit(c_id);
    REQUIRE(c.pump());
    CHECK(a.reconciling_blocking() == 0);
    CHECK(cc.reconciling_blocking() == 0);
    CHECK(reconciliation(a, "abandoned") == 0);
    CHECK(get(cc, id, "k") == "1");
    require_same(a, cc);
    require_same(b, cc);
}

TEST_CASE("a sync request does not wait for a frozen member once half of the group has the change, and the "
          "next does not wait for it at all",
          "[managers][reconcile]") {
    sync_trio t;
    auto& c = t.c;
    auto& a = t.a;
    auto& b = t.b;
    auto& cc = t.cc;
    const auto& id = t.id;
    const auto c_id = c.bus.id_of("c");
    // c is frozen: what is sent to it stays unanswered.
    c.bus.filter = [&](const fake_bus::envelope& e) { return e.to == c_id ? verdict::hold : verdict::deliver; };
    for (const bool blocking : {true, false}) {
        INFO((blocking ? "end()" : "end_async()"));
        auto r = a.begin_request(id, "/");
        r.session()->set("k", blocking ? "1" : "2");
        end_result res;
        if (blocking) {
            boost::system::error_code ec;
            res = r.end(ec);
        } else {
            std::promise<end_result> ended;
            r.end_async([&ended](boost::system::error_code, end_result e) { ended.set_value(std::move(e)); });
            res = ended.get_future().get();
        }
        CHECK(res.detail.empty());
        // Each ended by the early rule, not by the transport's ack timeout:
        // c was skipped. That the second did not wait for c at all (c is a
        // known laggard) is send_waiter_test's, on a clock of its own: here
        // the time waited would be a timing assertion.
        CHECK(repl(a, "laggards_skipped") == (blocking ? 1 : 2));
    }
    CHECK(repl(a, "laggards_skipped") == 2);
    CHECK(get(b, id, "k") == "2");
    // c never answers: it gets the whole session instead. (The second
    // request's message to c may still be on its way to the hold: it settled
    // without waiting for c.)
    c.bus.filter = nullptr;
    CHECK(c.bus.release_held(true) >= 1);
    REQUIRE(c.pump());
    CHECK(repl(a, "laggard_resyncs") >= 1);
    CHECK(get(cc, id, "k") == "2");
}

namespace {

/// Cuts c off, changes `existing` on a and makes a session on c, heals: every
/// member ends with both changes and nothing left in progress or awaited.
void cut_write_heal_converges(delta_cluster& c, delta_manager& a, delta_manager& b, delta_manager& cc,
                              const std::string& existing) {
    const auto c_id = c.bus.id_of("c");
    c.bus.cut(c_id);
    REQUIRE(c.pump());
    set(a, existing, "k", "changed on a while apart");
    const auto on_c = create(cc, "k", "made on c while apart");
    REQUIRE(c.pump());
    c.bus.heal(c_id);
    REQUIRE(c.pump());
    require_same(a, b);
    require_same(a, cc);
    CHECK(get(cc, existing, "k") == "changed on a while apart");
    CHECK(get(b, on_c, "k") == "made on c while apart");
    for (auto* m : {&a, &b, &cc}) {
        CHECK(reconciliation(*m, "in_progress") == 0);
        CHECK(repl(*m, "awaiting") == 0);
    }
}

} // namespace

// A member that ends its transfer compares digests with every other member,
// some of which may still be receiving theirs (their digest chunks queue
// behind the transfer). None of it may be left in progress, or hold up the
// reconciliation of a later heal with the same member.
TEST_CASE("a digest exchanged with a member still receiving its transfer does not hold up a later heal",
          "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add("a");
    for (int i = 0; i < 50; ++i) {
        create(a, "k", std::to_string(i));
    }
    REQUIRE(c.pump());
    auto& b = c.add("b", false);
    auto& cc = c.add("c", false);
    const auto a_id = c.bus.id_of("a");
    const auto c_id = c.bus.id_of("c");
    // c's request for every session waits; b's does not.
    c.bus.filter = [&](const fake_bus::envelope& e) {
        return e.from.id == c_id && e.to == a_id && type_of(e.payload) == wire::msg_type::get_all ? verdict::hold
                                                                                                 : verdict::deliver;
    };
    REQUIRE(c.pump());
    CHECK_FALSE(b.transferring());
    CHECK(cc.transferring());
    c.bus.filter = nullptr;
    CHECK(c.bus.release_held(false) >= 1);
    REQUIRE(c.pump());
    CHECK_FALSE(cc.transferring());
    require_same(a, b);
    require_same(a, cc);
    for (auto* m : {&a, &b, &cc}) {
        CHECK(reconciliation(*m, "in_progress") == 0);
    }
    cut_write_heal_converges(c, a, b, cc, a.session_ids().front());
}

// Cold start: every member discovering at once. The oldest ends up first of
// the cluster, the others catch up from it; a later cut and heal converges.
TEST_CASE("members that start together, each discovering, converge after a later cut and heal",
          "[managers][reconcile]") {
    delta_cluster c;
    auto& a = c.add_discovering("a");
    auto* a_link = c.discovering;
    auto& b = c.add_discovering("b");
    auto* b_link = c.discovering;
    auto& cc = c.add_discovering("c");
    auto* c_link = c.discovering;
    a_link->finish_discovery();
    REQUIRE(c.pump());
    CHECK_FALSE(a.transferring());
    const auto early = create(a, "k", "early");
    b_link->finish_discovery();
    c_link->finish_discovery();
    REQUIRE(c.pump());
    require_same(a, b);
    require_same(a, cc);
    cut_write_heal_converges(c, a, b, cc, early);
}
