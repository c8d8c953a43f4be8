// SPDX-License-Identifier: Apache-2.0
// Route rewrite on failover (manager_config::route_rewrite), the old id's
// alias, and requests the manager skips (skip_paths, skip_headers), under the
// delta and the backup manager on the in-memory bus.
#include "delta_cluster.hpp"
#include "placement.hpp"
#include "route.hpp"

#include <future>
#include <thread>

namespace troupe::test {
namespace {

using managers::detail::session_access;

void rewrite_on(manager_config& c) {
    c.route_rewrite = true;
    c.route_alias_time = 30s;
    c.send_options = engine::send_options::sync;
}

/// One request that increments "n". @return the value and the id it ended
/// with; -1: no session, -2: the request failed (the id is then the error).
/// No Catch assertion: it runs on several threads at once.
std::pair<int, std::string> increment(session_manager& m, const std::string& id) {
    auto r = m.begin_request(id, "/app");
    auto* s = r.session();
    if (s == nullptr) {
        return {-1, ""};
    }
    int v = 0;
    s->modify<int>("n", [&v](int& n) { v = ++n; });
    auto out = r.session_id();
    boost::system::error_code ec;
    if (auto res = r.end(ec); ec) {
        return {-2, res.detail};
    }
    return {v, out};
}

/// Members a, b, c (and more), a counter made on a (at 1), every message
/// delivered. @return its id.
template <typename Manager>
std::string counter_on_a(cluster_of<Manager>& c, std::initializer_list<const char*> more = {}) {
    c.add("a");
    c.add("b");
    c.add("c");
    for (const auto* n : more) {
        c.add(n);
    }
    std::string id;
    {
        pumper p(c.bus);
        id = create_counter(node(c, "a"), 1);
    }
    REQUIRE(c.pump());
    return id;
}

} // namespace

TEST_CASE("route helpers: the route is what follows the first dot", "[managers][route]") {
    using namespace managers::detail;
    CHECK(route_of("0123.n1") == "n1");
    CHECK(route_of("0123.n1.x") == "n1.x");
    CHECK(route_of("0123") == "");
    CHECK(with_route("0123.n1", "n2") == std::optional<std::string>("0123.n2"));
    CHECK_FALSE(with_route("0123", "n2"));
    CHECK(same_but_route("ab.n1", "ab.n2"));
    CHECK_FALSE(same_but_route("ab.n1", "ab.n1"));
    CHECK_FALSE(same_but_route("ab.n1", "cd.n2")); // a rotation
    CHECK_FALSE(same_but_route("ab", "ab"));
}

TEST_CASE("alias table: aliases end after their lifetime, follow chains, and never loop", "[managers][route]") {
    using managers::detail::alias_table;
    const auto t0 = wall_clock::time_point{} + std::chrono::hours(1000);
    alias_table t(10s);
    CHECK(t.add("x.a", "x.b", t0));
    CHECK(t.find("x.a", t0 + 9s) == std::optional<std::string>("x.b"));
    CHECK_FALSE(t.find("x.a", t0 + 10s));
    CHECK(t.add("x.b", "x.c", t0 + 1s));
    CHECK(t.find("x.a", t0 + 2s) == std::optional<std::string>("x.c")); // a -> b -> c
    CHECK(t.add("x.c", "x.a", t0 + 3s)); // back to a: a's own alias goes
    CHECK_FALSE(t.find("x.a", t0 + 4s));
    CHECK(t.find("x.c", t0 + 4s) == std::optional<std::string>("x.a"));
    alias_table off(0s);
    CHECK_FALSE(off.add("y.a", "y.b", t0));
    CHECK(off.size() == 0);
}

TEST_CASE("delta: a request for a removed member's route is served here, the id takes this route everywhere, "
          "and the old id is an alias for a bounded time",
          "[managers][route][delta]") {
    delta_cluster c(rewrite_on);
    const auto id = counter_on_a(c);
    auto& b = node(c, "b");
    auto& cc = node(c, "c");
    REQUIRE(managers::detail::route_of(id) == "a");
    const auto new_id = *managers::detail::with_route(id, "b");
    // While a is in b's view, a request for it on b is a detour: the id stays.
    {
        pumper p(c.bus);
        CHECK(increment(b, id) == std::make_pair(2, id));
    }
    kill(c, "a");
    REQUIRE(c.pump());
    {
        pumper p(c.bus);
        // A request that only reads renames nothing.
        auto read = b.begin_request(id, "/app");
        REQUIRE(read.session() != nullptr);
        CHECK(read.session()->get<int>("n") == 2);
        CHECK(read.session_id() == id);
        CHECK_FALSE(read.id_changed());
        read.end();
        // The first change renames.
        auto r = b.begin_request(id, "/app");
        REQUIRE(r.session() != nullptr);
        r.session()->modify<int>("n", [](int& n) { ++n; });
        CHECK(r.session_id() == new_id);
        CHECK(r.id_changed()); // the front sets the cookie again
        REQUIRE(r.end().detail.empty());
    }
    REQUIRE(c.pump());
    for (auto* m : {&b, &cc}) {
        INFO(m->node());
        CHECK_FALSE(m->find(id));
        CHECK(value(*m, new_id) == 3);
    }
    CHECK(stats(b)["route_rewrites"] == 1);

    // Served on its own route: no rewrite, no new cookie.
    {
        pumper p(c.bus);
        auto r = b.begin_request(new_id, "/app");
        REQUIRE(r.session() != nullptr);
        CHECK_FALSE(r.id_changed());
    }
    // The old id a moment later, where the rewrite happened and where a copy
    // is held: the same session, and the cookie is set again.
    for (auto* m : {&b, &cc}) {
        INFO(m->node());
        auto r = m->begin_request(id, "/static.css"); // a filtered path: no rewrite by c
        REQUIRE(r.session() != nullptr);
        CHECK(r.session_id() == new_id);
        CHECK(r.id_changed());
    }
    CHECK(stats(b)["route_alias_hits"] == 1);
    // After route_alias_time the old id is nobody's.
    c.clock.advance(31s);
    {
        auto r = b.begin_request(id, "/app");
        CHECK(r.session() == nullptr);
    }
    CHECK(b.size() == 1);
}

TEST_CASE("delta: concurrent requests racing the rewrite on one member end with one id and every increment",
          "[managers][route][delta]") {
    // Async: concurrent sync requests on one session may be refused
    // ("replaced by another copy") whatever the route; the id is what counts here.
    delta_cluster c([](manager_config& cfg) {
        rewrite_on(cfg);
        cfg.send_options = engine::send_options::async;
    });
    const auto id = counter_on_a(c);
    auto& b = node(c, "b");
    auto& cc = node(c, "c");
    kill(c, "a");
    REQUIRE(c.pump());
    constexpr int threads = 8;
    std::vector<std::string> ended(threads);
    {
        pumper p(c.bus);
        std::vector<std::thread> ts;
        for (int i = 0; i < threads; ++i) {
            ts.emplace_back([&, i] { ended[i] = increment(b, id).second; });
        }
        for (auto& t : ts) {
            t.join();
        }
    }
    REQUIRE(c.pump());
    const auto new_id = *managers::detail::with_route(id, "b");
    for (const auto& e : ended) {
        CHECK(e == new_id);
    }
    CHECK(value(b, new_id) == 1 + threads);
    CHECK(value(cc, new_id) == 1 + threads);
    CHECK(stats(b)["route_rewrites"] == 1);
}

TEST_CASE("delta: an id rewritten away and back (x.a -> x.b -> x.a) is taken again where the first rename "
          "left a tombstone",
          "[managers][route][delta]") {
    delta_cluster c(rewrite_on);
    const auto id = counter_on_a(c);
    auto& cc = node(c, "c");
    kill(c, "a");
    REQUIRE(c.pump());
    const auto on_b = *managers::detail::with_route(id, "b");
    {
        pumper p(c.bus);
        CHECK(increment(node(c, "b"), id) == std::make_pair(2, on_b));
    }
    REQUIRE(c.pump());
    CHECK(value(cc, on_b) == 2);
    // a starts again (a new incarnation, the sessions by state transfer),
    // then b dies: a takes the session back under its first id.
    c.add("a");
    REQUIRE(c.pump());
    kill(c, "b");
    REQUIRE(c.pump());
    {
        pumper p(c.bus);
        CHECK(increment(node(c, "a"), on_b) == std::make_pair(3, id));
    }
    REQUIRE(c.pump());
    CHECK(value(cc, id) == 3); // c's tombstone for x.a was lifted by the newer rename
    CHECK_FALSE(cc.find(on_b));
    {
        pumper p(c.bus);
        CHECK(increment(cc, id) == std::make_pair(4, id)); // a is in view: no rewrite
    }
    REQUIRE(c.pump());
    CHECK(value(node(c, "a"), id) == 4);
}

TEST_CASE("route_rewrite off: a session keeps its id wherever it is served", "[managers][route][delta]") {
    delta_cluster c([](manager_config& cfg) { cfg.route_rewrite = false; });
    auto& a = c.add("a");
    auto& b = c.add("b");
    const auto id = create(a);
    REQUIRE(c.pump());
    auto r = b.begin_request(id, "/app");
    REQUIRE(r.session() != nullptr);
    CHECK(r.session_id() == id);
    CHECK_FALSE(r.id_changed());
}

TEST_CASE("backup: the primary's member dies, a proxy serves the session under its own route, two copies again",
          "[managers][route][backup]") {
    backup_cluster c(rewrite_on);
    const auto id = counter_on_a(c, {"d"});
    // A member that holds neither copy.
    const auto backup = expected_backup(c, id, "a");
    REQUIRE_FALSE(backup.empty());
    std::string proxy;
    for (const auto* n : {"b", "c", "d"}) {
        if (n != backup) {
            proxy = n;
            break;
        }
    }
    kill(c, "a");
    REQUIRE(c.pump());
    std::pair<int, std::string> done;
    {
        pumper p(c.bus);
        done = increment(node(c, proxy), id);
    }
    node(c, proxy).flush_locations(); // the old id's end reaches the others
    REQUIRE(c.pump());
    const auto new_id = *managers::detail::with_route(id, proxy);
    CHECK(done == std::make_pair(2, new_id));
    int primaries = 0;
    int backups = 0;
    for (auto& n : c.nodes) {
        INFO(n->node());
        CHECK_FALSE(n->find(id)); // the old id is held nowhere
        if (auto s = n->find(new_id); s && s->valid()) {
            CHECK(value(*n, new_id) == 2);
            (session_access::roles_of(*s).primary ? primaries : backups) += 1;
        }
    }
    CHECK(primaries == 1);
    CHECK(backups == 1);
    CHECK(node(c, proxy).find(new_id));
    // The old id where the rewrite happened: the same session.
    {
        pumper p(c.bus);
        CHECK(increment(node(c, proxy), id) == std::make_pair(3, new_id));
    }
}

TEST_CASE("delta: a member cut off during the rewrite learns the alias from the digests after the heal",
          "[managers][route][delta]") {
    delta_cluster c(rewrite_on);
    const auto id = counter_on_a(c, {"d", "e"}); // b, c and e stay a majority
    auto& d = node(c, "d");
    const auto d_id = c.bus.id_of("d");
    c.bus.cut(d_id);
    kill(c, "a");
    REQUIRE(c.pump());
    const auto new_id = *managers::detail::with_route(id, "b");
    {
        pumper p(c.bus);
        const auto done = increment(node(c, "b"), id);
        INFO(done.first << " " << done.second);
        CHECK(done == std::make_pair(2, new_id));
    }
    REQUIRE(c.pump());
    // d missed the rename (id_changed): the heal's digests carry the old
    // id's route tombstone and where it leads.
    c.bus.heal(d_id);
    REQUIRE(c.pump());
    CHECK_FALSE(d.find(id));
    CHECK(value(d, new_id) == 2);
    // A client that never had the new cookie (its answer was lost), sent to d.
    {
        pumper p(c.bus);
        auto r = d.begin_request(id, "/app");
        REQUIRE(r.session() != nullptr);
        CHECK(r.session_id() == new_id);
        CHECK(r.id_changed());
    }
    CHECK(stats(d)["route_alias_hits"] == 1);
}

TEST_CASE("backup: a member without a copy leads the old id to the new one: a proxy by the rename's location, "
          "a joiner by asking every member",
          "[managers][route][backup]") {
    backup_cluster c(rewrite_on);
    const auto id = counter_on_a(c, {"d", "e"});
    const auto backup = expected_backup(c, id, "a");
    REQUIRE_FALSE(backup.empty());
    std::vector<std::string> proxies;
    for (const auto* n : {"b", "c", "d", "e"}) {
        if (n != backup) {
            proxies.emplace_back(n);
        }
    }
    REQUIRE(proxies.size() == 3);
    kill(c, "a");
    REQUIRE(c.pump());
    const auto& renamer = proxies[0];
    const auto new_id = *managers::detail::with_route(id, renamer);
    {
        pumper p(c.bus);
        CHECK(increment(node(c, renamer), id) == std::make_pair(2, new_id));
    }
    node(c, renamer).flush_locations(); // the old id's end, renamed, reaches the proxies
    REQUIRE(c.pump());
    // A proxy that never held the session, asked with the old id: it fetches
    // the new one and serves it under that id.
    {
        pumper p(c.bus);
        CHECK(increment(node(c, proxies[1]), id) == std::make_pair(3, new_id));
    }
    const auto fetches = stats(node(c, proxies[1]))["backup"]["fetches"];
    CHECK(fetches["found"] == 1);
    CHECK(fetches["asked_everyone"] == 0); // straight to where the new id lives
    REQUIRE(c.pump());
    // A member that joins after the rename learned locations, not the alias:
    // the member that serves the session answers the old id's fetch.
    c.add("f");
    REQUIRE(c.pump());
    {
        pumper p(c.bus);
        CHECK(increment(node(c, "f"), id) == std::make_pair(4, new_id));
    }
    CHECK(stats(node(c, "f"))["route_alias_hits"] == 0); // f knew no alias: it asked everyone
    CHECK(stats(node(c, "f"))["backup"]["fetches"]["asked_everyone"] >= 1);
    node(c, "f").flush_locations(); // the copies handed over on the way are dropped
    REQUIRE(c.pump());
    int holders = 0;
    for (auto& n : c.nodes) {
        INFO(n->node());
        CHECK_FALSE(n->find(id));
        if (auto s = n->find(new_id); s && s->valid()) {
            CHECK(value(*n, new_id) == 4);
            ++holders;
        }
    }
    CHECK(holders == 2);
}

TEST_CASE("skip_paths and skip_headers: such requests neither create nor touch a session",
          "[managers][route][skip]") {
    delta_cluster c([](manager_config& cfg) {
        cfg.skip_paths = "^/health.*";
        cfg.skip_headers = {"X-Health-Check", "X-Bot"};
    });
    auto& a = c.add("a");
    const auto id = create(a);
    const auto accessed = a.find(id)->last_accessed();
    c.clock.advance(5s);
    auto has = [](std::string_view want) {
        return [want](std::string_view name) {
            // Case-insensitive, as HTTP field names.
            return name.size() == want.size() &&
                   std::equal(name.begin(), name.end(), want.begin(), [](char x, char y) {
                       return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
                   });
        };
    };
    {
        auto r = a.begin_request({id, "/app", has("x-health-check")});
        CHECK(r.skipped());
        CHECK(r.session(true) == nullptr);
        CHECK(r.session_id().empty());
        CHECK_FALSE(r.id_changed());
    }
    {
        auto r = a.begin_request({"", "/healthz", {}});
        CHECK(r.skipped());
        CHECK(r.session(true) == nullptr);
    }
    CHECK(a.size() == 1);
    CHECK(a.find(id)->last_accessed() == accessed);
    CHECK(stats(a)["requests_skipped"] == 2);
    {
        // Another header: an ordinary request.
        auto r = a.begin_request({id, "/app", has("Accept")});
        CHECK_FALSE(r.skipped());
        CHECK(r.session() != nullptr);
    }
    {
        // No cookie and the session never asked for: nothing is created.
        auto r = a.begin_request({"", "/app", {}});
        CHECK_FALSE(r.skipped());
        CHECK_FALSE(r.id_changed());
    }
    CHECK(a.size() == 1);
}

TEST_CASE("manager settings: skip_paths must be a regex, skip_headers field names", "[managers][route]") {
    manager_config cfg;
    cfg.skip_paths = "(";
    cfg.skip_headers = {"X-Ok", "bad header", ""};
    const auto problems = managers::validate(cfg);
    REQUIRE(problems.size() == 3);
    CHECK(problems[0].rfind("skip_paths: ", 0) == 0);
    CHECK(problems[1].rfind("skip_headers[1]: ", 0) == 0);
    CHECK(problems[2].rfind("skip_headers[2]: ", 0) == 0);
}

} // namespace troupe::test

namespace troupe::test {

TEST_CASE("backup: a rename's end of the old id goes out only once the rename stands at the backup",
          "[managers][route][backup]") {
    backup_cluster c(rewrite_on);
    const auto id = counter_on_a(c);
    const auto backup = expected_backup(c, id, "a");
    REQUIRE(node(c, backup).find(id));
    auto& a = node(c, "a");
    std::string rotated;
    {
        pumper p(c.bus);
        auto r = a.begin_request(id, "/app");
        REQUIRE(r.session() != nullptr);
        r.rotate_id();
        rotated = r.session_id();
        r.session()->modify<int>("n", [](int& n) { ++n; });
        // The location batch leaves mid-request: the backup keeps its copy.
        a.flush_locations();
        std::this_thread::sleep_for(20ms);
        CHECK(node(c, backup).find(id));
        REQUIRE(r.end().detail.empty());
    }
    a.flush_locations();
    REQUIRE(c.pump());
    const auto now_backup = expected_backup(c, rotated, "a");
    CHECK(value(node(c, now_backup), rotated) == 2);
    for (auto& n : c.nodes) {
        INFO(n->node());
        CHECK_FALSE(n->find(id)); // the old id ended everywhere once the rename stood
    }
}

} // namespace troupe::test

namespace troupe::test {

TEST_CASE("delta: a route rewrite whose request fails gives the session its old id back, and the old id "
          "finds it on every member",
          "[managers][route][delta]") {
    delta_cluster c([](manager_config& cfg) {
        rewrite_on(cfg);
        cfg.on_replication_failure = manager_config::on_failure::fail;
    });
    const auto id = counter_on_a(c);
    kill(c, "a");
    REQUIRE(c.pump());
    auto& b = node(c, "b");
    auto& cc = node(c, "c");
    // c refuses b's messages: the request that renames fails.
    c.bus.filter = [](const fake_bus::envelope&) { return verdict::fail; };
    {
        pumper p(c.bus);
        auto r = b.begin_request(id, "/app");
        REQUIRE(r.session() != nullptr);
        r.session()->modify<int>("n", [](int& n) { ++n; });
        CHECK(r.id_changed()); // renamed: before the end, the new id is the one to send
        std::promise<end_result> ended;
        r.end_async([&ended](boost::system::error_code, end_result e) { ended.set_value(std::move(e)); });
        const auto e = ended.get_future().get();
        CHECK_FALSE(e.detail.empty());
        CHECK(e.rename_undone); // taken back: the response sets no cookie
    }
    c.bus.filter = [](const fake_bus::envelope&) { return verdict::deliver; };
    REQUIRE(c.pump());
    CHECK(b.find(id)); // the old id is back where the rename was made
    CHECK(stats(b)["route_rewrites_failed"] == 1);
    // The client kept the old id: the next request renames again, and stands.
    const auto new_id = *managers::detail::with_route(id, "b");
    {
        pumper p(c.bus);
        const auto [v, ended] = increment(b, id);
        CHECK(v == 3); // the failed request's change stood here (its client was told it failed)
        CHECK(ended == new_id);
    }
    REQUIRE(c.pump());
    CHECK(value(cc, new_id) == 3);
    CHECK_FALSE(cc.find(id));
}

} // namespace troupe::test
