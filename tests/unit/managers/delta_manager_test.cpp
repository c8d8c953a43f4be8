// SPDX-License-Identifier: Apache-2.0
// The delta manager on an in-memory bus: versions, gaps and whole copies,
// reordering and loss, concurrent requests, rotation, invalidation, expiry with
// batched access times, state transfer (under writes, two joiners at once, a
// member without the context, a timeout), conflicts and malformed input.
#include "delta_cluster.hpp"

#include <future>
#include <random>
#include <set>
#include <thread>

using namespace troupe;
using namespace troupe::managers;
using namespace troupe::test;
using namespace std::chrono_literals;

TEST_CASE("a session created on one member and changed 100 times reads the same on the others",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    const auto id = create(a);
    for (int i = 0; i < 100; ++i) {
        set(a, id, "n", std::to_string(i));
        if (i % 10 == 0) {
            REQUIRE(c.pump());
        }
    }
    REQUIRE(c.pump());
    CHECK(a.find(id)->version() == 101);
    require_same(a, b);
    require_same(a, cc);
    auto r = cc.begin_request(id, "/");
    CHECK(r.session()->get<std::string>("n") == "99");
    CHECK(repl(b, "deltas_applied") == 100);
    CHECK(repl(b, "gaps") == 0);
    CHECK(repl(b, "full_requests_sent") == 0);
}

TEST_CASE("deltas that arrive out of order are never applied out of order", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    const auto id = create(a);
    REQUIRE(c.pump());
    for (int i = 0; i < 5; ++i) {
        set(a, id, "x" + std::to_string(i % 2), std::to_string(i));
    }
    // B sees version 5->6 first: a gap. It buffers, asks A for the whole
    // session, and ends where A is, with no later value overwritten by an
    // earlier one (Tribes BZ 63441).
    CHECK(c.bus.deliver_queued(/*reverse=*/true) == 5);
    CHECK(repl(b, "gaps") >= 1);
    REQUIRE(c.pump());
    require_same(a, b);
    auto r = b.begin_request(id, "/");
    CHECK(r.session()->get<std::string>("x0") == "4");
    CHECK(r.session()->get<std::string>("x1") == "3");
    CHECK(b.awaiting() == 0);
}

TEST_CASE("a delta for an unknown session makes the replica ask for the whole session",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    c.bus.filter = [](const test::fake_bus::envelope& e) {
        return type_of(e.payload) == wire::msg_type::created ? verdict::drop : verdict::deliver;
    };
    const auto id = create(a, "user", "ann");
    REQUIRE(c.pump());
    CHECK(b.find(id) == nullptr); // Tribes would now ignore every delta for it
    c.bus.filter = nullptr;
    set(a, id, "cart", "3 items");
    REQUIRE(c.pump());
    require_same(a, b);
    CHECK(repl(b, "unknown_sessions") == 1);
    CHECK(repl(b, "full_copies_received") == 1);
}

TEST_CASE("lost deltas (a reconnect) are repaired by the next one's gap", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    const auto id = create(a);
    REQUIRE(c.pump());
    // Drop deltas 2..4 to every replica.
    int deltas = 0;
    c.bus.filter = [&](const test::fake_bus::envelope& e) {
        if (type_of(e.payload) == wire::msg_type::delta) {
            ++deltas;
            if (deltas >= 3 && deltas <= 8) {
                return verdict::drop;
            }
        }
        return verdict::deliver;
    };
    for (int i = 0; i < 6; ++i) {
        set(a, id, "n", std::to_string(i));
    }
    REQUIRE(c.pump());
    c.bus.filter = nullptr;
    require_same(a, b); // the last delta (5->6... or later) showed the gap
    require_same(a, cc);
    CHECK(repl(b, "gaps") >= 1);
}

TEST_CASE("concurrent requests on one session keep every write on the primary and the replicas",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    const auto id = create(a);
    REQUIRE(c.pump());
    constexpr int threads = 8;
    constexpr int per_thread = 200;
    std::atomic<bool> done{false};
    std::thread pumper([&] {
        while (!done) {
            c.bus.deliver_queued();
            std::this_thread::sleep_for(1ms);
        }
    });
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                auto r = a.begin_request(id, "/");
                auto* s = r.session();
                s->set("t" + std::to_string(t), i);
                s->modify<int>("counter", [](int& v) { ++v; });
            }
        });
    }
    for (auto& t : pool) {
        t.join();
    }
    done = true;
    pumper.join();
    REQUIRE(c.pump());
    require_same(a, b);
    auto r = b.begin_request(id, "/");
    CHECK(r.session()->get<int>("counter") == threads * per_thread);
    for (int t = 0; t < threads; ++t) {
        CHECK(r.session()->get<int>("t" + std::to_string(t)) == per_thread - 1);
    }
    CHECK(repl(b, "gaps") == 0); // one sender, one stream: always in order
}

TEST_CASE("an id rotation is replicated with the request's changes", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    const auto old_id = create(a, "user", "anonymous");
    REQUIRE(c.pump());
    std::string new_id;
    {
        auto r = a.begin_request(old_id, "/login");
        r.rotate_id();
        r.session()->set("user", std::string("ann"));
        new_id = r.session_id();
    }
    REQUIRE(c.pump());
    CHECK(b.find(old_id) == nullptr);
    REQUIRE(b.find(new_id) != nullptr);
    require_same(a, b);
    CHECK(b.find(new_id)->version() == 3); // created, id change, delta
    // The old id stays dead, even for a late message naming it.
    CHECK(b.begin_request(old_id, "/").session() == nullptr);
    // A request served by B with the new id replicates back under the new id.
    set(b, new_id, "cart", "1");
    REQUIRE(c.pump());
    require_same(a, b);
}

TEST_CASE("invalidation is replicated and replica listeners follow notify_listeners_on_replication",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    recorder on_b;
    b.add_listener(on_b.listener());
    const auto id = create(a);
    set(a, id, "k", "w");
    REQUIRE(c.pump());
    CHECK(on_b.count(session_event::kind::created, true) == 1);
    CHECK(on_b.count(session_event::kind::attribute_replaced, true) == 1);
    {
        auto r = a.begin_request(id, "/logout");
        r.session()->invalidate();
    }
    REQUIRE(c.pump());
    CHECK(b.find(id) == nullptr);
    REQUIRE(on_b.count(session_event::kind::destroyed, true) == 1);
    CHECK_FALSE(on_b.events.back().expired);

    delta_cluster quiet([](manager_config& cfg) { cfg.notify_listeners_on_replication = false; });
    auto& qa = quiet.add("a");
    auto& qb = quiet.add("b");
    recorder none;
    qb.add_listener(none.listener());
    const auto qid = create(qa);
    REQUIRE(quiet.pump());
    CHECK(qb.find(qid) != nullptr);
    CHECK(none.events.empty());
}

TEST_CASE("the member that served a session last expires it everywhere and one only read elsewhere stays",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    const auto idle = create(a);
    const auto read_on_b = create(a);
    REQUIRE(c.pump());
    c.clock.advance(30s);
    {
        auto r = b.begin_request(read_on_b, "/"); // read only: no delta
        CHECK(r.session()->get<std::string>("k") == "v");
        CHECK_FALSE(r.end().replicated);
    }
    b.flush_access(); // the batched access time reaches A
    REQUIRE(c.pump());
    CHECK(repl(a, "accessed_received") == 1);
    c.clock.advance(40s); // idle: 70 s on A; read_on_b: 40 s since B read it
    CHECK(a.expire_now() == 1);
    REQUIRE(c.pump());
    CHECK(a.find(idle) == nullptr);
    CHECK(b.find(idle) == nullptr); // A told B
    CHECK(a.find(read_on_b) != nullptr);
    CHECK(b.find(read_on_b) != nullptr);
    c.clock.advance(30s); // read_on_b: 70 s idle. B served it last: B expires it.
    CHECK(a.expire_now() == 0); // A waits a grace period longer: it is B's call
    CHECK(b.expire_now() == 1);
    REQUIRE(c.pump());
    CHECK(a.find(read_on_b) == nullptr);
    CHECK(a.size() == 0);
    CHECK(b.size() == 0);
    // If the serving member is gone, the others end the copy after the grace period.
    const auto orphan = create(a);
    REQUIRE(c.pump());
    c.clock.advance(61s);
    CHECK(b.expire_now() == 0);
    c.clock.advance(30s);
    CHECK(b.expire_now() == 1);
}

TEST_CASE("a joining member receives every session, with the changes made during the transfer",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    std::vector<std::string> ids;
    for (int i = 0; i < 300; ++i) {
        ids.push_back(create(a, "payload", std::string(200, static_cast<char>('a' + i % 26))));
    }
    REQUIRE(c.pump());
    auto& joiner = c.add("c", /*settle=*/false);
    CHECK(joiner.transferring());
    // Writes on A and B while the transfer runs.
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        std::mt19937 rng(7);
        for (int i = 0; i < 400 && !stop; ++i) {
            auto& m = (i % 2 == 0) ? static_cast<session_manager&>(a) : static_cast<session_manager&>(b);
            // Each member writes its own half: a session is served by one member at a time.
            const auto& id = ids[(rng() % 150) * 2 + (i % 2)];
            set(m, id, "w", std::to_string(i));
        }
    });
    std::thread pumper([&] {
        while (!stop) {
            c.bus.deliver_queued();
            std::this_thread::sleep_for(200us);
        }
    });
    writer.join();
    stop = true;
    pumper.join();
    REQUIRE(c.pump());
    CHECK_FALSE(joiner.transferring());
    require_same(a, joiner);
    require_same(b, joiner);
    const auto st = stats(joiner)["state_transfer"];
    CHECK(st["state"] == "done");
    CHECK(st["sessions"] == 300);
    CHECK(st["chunks"].get<int>() > 10); // 4 KiB chunks
}

TEST_CASE("two members joining at the same moment both end with every session", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    for (int i = 0; i < 100; ++i) {
        create(a);
    }
    REQUIRE(c.pump());
    auto& b = c.add("b", false);
    auto& cc = c.add("c", false);
    CHECK(b.transferring());
    CHECK(cc.transferring());
    REQUIRE(c.pump());
    CHECK(b.size() == 100);
    CHECK(cc.size() == 100);
    require_same(a, b);
    require_same(a, cc);
}

TEST_CASE("a member asked for every session while itself receiving them answers once it has them",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    for (int i = 0; i < 50; ++i) {
        create(a);
    }
    REQUIRE(c.pump());
    auto& b = c.add("b", false);
    REQUIRE(b.transferring());
    // X, a bare member, asks B (not the oldest) before B has its sessions.
    std::mutex mutex;
    std::uint64_t x_sessions = 0;
    bool x_complete = false;
    auto x = c.bus.join("x", 5000);
    x->attach({[&](const membership::member&, std::span<const std::uint8_t> payload) {
                   wire::message m;
                   REQUIRE_FALSE(wire::decode(payload, m));
                   std::lock_guard lock(mutex);
                   if (auto* d = std::get_if<wire::all_data_msg>(&m)) {
                       x_sessions += d->sessions.size();
                   } else if (std::get_if<wire::transfer_complete_msg>(&m)) {
                       x_complete = true;
                   }
               },
               nullptr});
    // Delivered before A's answer to B: B must not answer with nothing.
    wire::get_all_msg g{99, wire::get_all_msg::mode::full};
    c.bus.inject(x->self(), c.bus.id_of("b"), wire::encode(g));
    REQUIRE(c.pump());
    std::lock_guard lock(mutex);
    CHECK(x_complete);
    CHECK(x_sessions == 50);
}

TEST_CASE("a joiner whose oldest member has no such context moves on and still serves", "[managers][delta]") {
    delta_cluster c;
    auto bare = c.bus.join("bare", 1); // oldest, no manager for the context
    auto& b = c.add("b", false);
    REQUIRE(c.pump());
    CHECK_FALSE(b.transferring());
    CHECK(stats(b)["state_transfer"]["state"] == "failed");
    CHECK(logged("has no manager for context 'app'"));
    const auto id = create(b);
    CHECK(b.find(id) != nullptr);
}

TEST_CASE("a state transfer that does not complete times out and says what was missing",
          "[managers][delta]") {
    delta_cluster c([](manager_config& cfg) { cfg.state_transfer_timeout = 300ms; });
    auto& a = c.add("a");
    for (int i = 0; i < 40; ++i) {
        create(a);
    }
    REQUIRE(c.pump());
    c.bus.filter = [](const test::fake_bus::envelope& e) {
        return type_of(e.payload) == wire::msg_type::transfer_complete ? verdict::drop : verdict::deliver;
    };
    auto& b = c.add("b", false);
    REQUIRE(c.pump());
    CHECK(b.transferring());
    c.clock.advance_steady(350ms); // past the timeout, without waiting for it
    b.housekeeping_now();
    CHECK_FALSE(b.transferring());
    const auto st = stats(b)["state_transfer"];
    CHECK(st["state"] == "timed_out");
    CHECK(st["sessions"] == 40);
    CHECK(logged("state transfer timed out after"));
    CHECK(logged("received 40 sessions in"));
    c.bus.filter = nullptr;
    REQUIRE(c.pump());
    require_same(a, b);
}

TEST_CASE("a request for a session not yet transferred waits for the transfer", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    const auto id = create(a, "user", "ann");
    REQUIRE(c.pump());
    auto& b = c.add("b", false);
    REQUIRE(b.transferring());
    auto reader = std::async(std::launch::async, [&] {
        auto r = b.begin_request(id, "/");
        return r.session() ? r.session()->get<std::string>("user") : std::nullopt;
    });
    CHECK(reader.wait_for(50ms) == std::future_status::timeout);
    REQUIRE(c.pump());
    CHECK(reader.get() == "ann");
}

// A restarted node that sees no member yet (its channel's initial discovery
// still runs) is not the first of the cluster: a request for a session it does
// not know yet must wait, not get a new session (consistency-check, restart).
TEST_CASE("a member that has not finished discovery waits for it before serving a session it lacks",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    const auto id = create(a, "user", "ann");
    REQUIRE(c.pump());
    auto& b = c.add_discovering("b");
    REQUIRE(b.transferring());
    CHECK(stats(b)["replication"]["discovering"] == true);
    auto reader = std::async(std::launch::async, [&] {
        auto r = b.begin_request(id, "/");
        return std::make_pair(r.session_id(), r.session() ? r.session()->get<std::string>("user") : std::nullopt);
    });
    REQUIRE(c.pump());
    CHECK(reader.wait_for(50ms) == std::future_status::timeout);
    // A change made meanwhile on a (which already sees b) reaches b too.
    set(a, id, "cart", "3 items");
    REQUIRE(c.pump());
    c.discovering->finish_discovery();
    REQUIRE(c.pump());
    const auto [served, user] = reader.get();
    CHECK(served == id);
    CHECK(user == "ann");
    CHECK(stats(b)["state_transfer"]["state"] == "done");
    require_same(a, b);
}

TEST_CASE("the first member of a cluster serves once discovery finds nobody", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add_discovering("a");
    REQUIRE(a.transferring());
    c.discovering->finish_discovery();
    REQUIRE(c.pump());
    CHECK_FALSE(a.transferring());
    CHECK(stats(a)["replication"]["discovering"] == false);
    CHECK(stats(a)["state_transfer"]["state"] == "none");
    const auto id = create(a, "user", "ann");
    auto& b = c.add("b");
    REQUIRE(c.pump());
    require_same(a, b);
    CHECK(b.find(id));
}

TEST_CASE("two members writing one session at once converge on one copy", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    const auto id = create(a);
    REQUIRE(c.pump());
    set(a, id, "x", "from a");
    set(b, id, "y", "from b"); // both made version 2
    REQUIRE(c.pump());
    require_same(a, b);
    require_same(a, cc);
    // Counted where a losing copy was replaced.
    CHECK(repl(a, "conflicts") + repl(b, "conflicts") + repl(cc, "conflicts") >= 1);
    // And they go on from there.
    set(b, id, "z", "1");
    REQUIRE(c.pump());
    require_same(a, b);
    require_same(a, cc);
}

TEST_CASE("malformed session messages are rejected and counted and the member keeps serving",
          "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto x = c.bus.join("x", 5000);
    const auto b_id = c.bus.id_of("b");
    c.bus.inject(x->self(), b_id, {'G', 'A', 'R', 'B', 'A', 'G', 'E'});
    auto truncated = wire::encode(wire::delta_msg{"a.n", 1, 2, 0, 0, {{change::kind::remove, "k", {}, 0}}});
    truncated.pop_back();
    c.bus.inject(x->self(), b_id, truncated);
    wire::buffer huge;
    wire::append_header(huge, wire::msg_type::all_data);
    wire::append_u64(huge, 1);
    wire::append_u32(huge, 1);
    wire::append_u32(huge, 0xffffffffu);
    c.bus.inject(x->self(), b_id, huge);
    REQUIRE(c.pump());
    const auto r = stats(b)["replication"];
    CHECK(r["malformed"] == 3);
    CHECK(r["malformed_by_reason"]["not a session message (bad magic)"] == 1);
    CHECK(r["malformed_by_reason"]["truncated session message"] == 1);
    CHECK(r["malformed_by_reason"]["count or length beyond the message"] == 1);
    CHECK(logged("rejected a malformed message of 7 bytes from x"));
    const auto id = create(a);
    set(a, id, "k", "2");
    REQUIRE(c.pump());
    require_same(a, b);
}

TEST_CASE("with sync options a failed replication is reported per on_replication_failure", "[managers][delta]") {
    for (const auto mode : {manager_config::on_failure::fail, manager_config::on_failure::log}) {
        delta_cluster c([mode](manager_config& cfg) {
            cfg.send_options = engine::send_options::sync;
            cfg.on_replication_failure = mode;
        });
        auto& a = c.add("a");
        c.add("b");
        std::atomic<bool> stop{false};
        std::thread pumper([&] {
            while (!stop) {
                c.bus.deliver_queued();
                std::this_thread::sleep_for(200us);
            }
        });
        std::string id;
        {
            auto r = a.begin_request("", "/");
            r.session(true)->set("k", 1);
            id = r.session_id();
            const auto res = r.end();
            CHECK(res.replicated);
            REQUIRE(res.send);
            CHECK(res.send->ok());
            CHECK(res.detail.empty());
        }
        c.bus.filter = [](const test::fake_bus::envelope&) { return verdict::fail; };
        {
            auto r = a.begin_request(id, "/");
            r.session()->set("k", 2);
            boost::system::error_code ec;
            const auto res = r.end(ec);
            CHECK(ec == (mode == manager_config::on_failure::fail ? make_error_code(errc::replication_failed)
                                                                   : boost::system::error_code()));
            REQUIRE(res.send);
            CHECK_FALSE(res.send->ok());
            CHECK(res.detail.empty() == (mode == manager_config::on_failure::log));
        }
        stop = true;
        pumper.join();
        c.bus.filter = nullptr;
        const auto s = stats(a);
        CHECK(s["replication_failures"] == 1);
        CHECK(s["on_replication_failure"] == (mode == manager_config::on_failure::fail ? "fail" : "log"));
    }
}

TEST_CASE("end_async does not wait: its handler runs once, when the members answered", "[managers][delta]") {
    delta_cluster c([](manager_config& cfg) {
        cfg.send_options = engine::send_options::sync;
        cfg.on_replication_failure = manager_config::on_failure::fail;
    });
    auto& a = c.add("a");
    auto& b = c.add("b");
    std::vector<end_result> results;
    std::mutex results_mutex;
    auto record = [&](boost::system::error_code, end_result r) {
        std::lock_guard lock(results_mutex);
        results.push_back(std::move(r));
    };
    std::string id;
    {
        auto r = a.begin_request("", "/");
        r.session(true)->set("k", 1);
        id = r.session_id();
        // The fake bus holds the send until deliver_queued(): a blocking end()
        // would never return here, end_async() must.
        r.end_async(record);
        CHECK(results.empty());
        CHECK(r.end().replicated == false); // a second end: empty, no second send
    }
    CHECK(results.empty());
    c.bus.deliver_queued();
    REQUIRE(results.size() == 1);
    CHECK(results[0].replicated);
    REQUIRE(results[0].send);
    CHECK(results[0].send->ok());
    CHECK(results[0].detail.empty());
    CHECK(b.find(id) != nullptr);

    c.bus.filter = [](const test::fake_bus::envelope&) { return verdict::fail; };
    {
        auto r = a.begin_request(id, "/");
        r.session()->set("k", 2);
        r.end_async(record);
    }
    c.bus.deliver_queued();
    c.bus.filter = nullptr;
    REQUIRE(results.size() == 2);
    REQUIRE(results[1].send);
    CHECK_FALSE(results[1].send->ok());
    CHECK_THAT(results[1].detail, Catch::Contains("replication failed"));
    CHECK(stats(a)["replication_failures"] == 1);

    // Nothing to wait for: the handler runs at once, on this thread.
    {
        auto r = a.begin_request("", "/"); // no session asked for
        r.end_async(record);
        REQUIRE(results.size() == 3);
        CHECK_FALSE(results[2].replicated);
    }
    {
        auto r = a.begin_request(id, "/");
        (void)r.session(); // read only: an access, not a delta
        r.end_async(record);
        REQUIRE(results.size() == 4);
        CHECK_FALSE(results[3].replicated);
    }
}

TEST_CASE("end_async with async options completes at once", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    int calls = 0;
    end_result got;
    std::string id;
    {
        auto r = a.begin_request("", "/");
        r.session(true)->set("k", 1);
        id = r.session_id();
        r.end_async([&](boost::system::error_code, end_result res) {
            ++calls;
            got = std::move(res);
        });
        CHECK(calls == 1);
        CHECK(got.replicated);
        CHECK_FALSE(got.send);
    }
    REQUIRE(c.pump());
    require_same(a, b);
}

TEST_CASE("a filtered request replicates nothing and its changes go with the next one", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    const auto id = create(a);
    REQUIRE(c.pump());
    {
        auto r = a.begin_request(id, "/static/app.js");
        r.session()->set("seen", std::string("js"));
        CHECK_FALSE(r.end().replicated);
    }
    REQUIRE(c.pump());
    CHECK_FALSE(b.find(id)->contains("seen"));
    set(a, id, "page", "2");
    REQUIRE(c.pump());
    require_same(a, b);
    CHECK(b.find(id)->contains("seen"));
}

TEST_CASE("expire_sessions_on_shutdown ends every session on every member", "[managers][delta]") {
    delta_cluster c([](manager_config& cfg) { cfg.expire_sessions_on_shutdown = true; });
    auto& a = c.add("a");
    auto& b = c.add("b");
    create(a);
    create(b);
    REQUIRE(c.pump());
    CHECK(b.size() == 2);
    a.stop();
    REQUIRE(c.pump());
    CHECK(b.size() == 0);
}

TEST_CASE("a replica that loses the member it asked asks another", "[managers][delta]") {
    delta_cluster c;
    auto& a = c.add("a");
    auto& b = c.add("b");
    auto& cc = c.add("c");
    const auto id = create(a);
    REQUIRE(c.pump());
    const auto a_id = c.bus.id_of("a");
    const auto c_id = c.bus.id_of("c");
    // C misses A's first delta, sees the gap on the second and asks A, which
    // never answers...
    int to_c = 0;
    c.bus.filter = [&](const test::fake_bus::envelope& e) {
        if (e.to == c_id && type_of(e.payload) == wire::msg_type::delta && ++to_c == 1) {
            return verdict::drop;
        }
        if (e.to == a_id && type_of(e.payload) == wire::msg_type::get_sessions) {
            return verdict::drop;
        }
        return verdict::deliver;
    };
    set(a, id, "k", "1");
    set(a, id, "k", "2");
    REQUIRE(c.pump());
    CHECK(cc.awaiting() == 1);
    // ...and goes: C asks B instead.
    c.bus.announce_gone(a_id);
    REQUIRE(c.pump());
    CHECK(cc.awaiting() == 0);
    require_same(b, cc);
    CHECK(cc.begin_request(id, "/").session()->get<std::string>("k") == "2");
}
