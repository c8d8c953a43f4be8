// SPDX-License-Identifier: Apache-2.0
// The manager API on the standard manager (no replication): lazy sessions,
// typed attributes, request scope, listeners, expiry on a manual clock, id
// rotation and concurrent requests on one session.
#include <troupe/conf/load.hpp>
#include <troupe/managers/manager.hpp>

#include "manual_clock.hpp"

#include <boost/serialization/vector.hpp>

#include <catch2/catch.hpp>

#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <tuple>

using namespace troupe;
using namespace troupe::managers;
using namespace std::chrono_literals;

namespace {

conf::cluster_config node_config(const std::string& name) {
    conf::cluster_config c;
    c.cluster.node = name;
    c.receiver.port = 0;
    c.admin.enabled = false;
    return c;
}

struct standard_fixture {
    engine::channel channel{node_config("node-a")};
    test::manual_clock clock;
    std::unique_ptr<session_manager> m;

    explicit standard_fixture(std::function<void(manager_config&)> tweak = {}) {
        manager_config c;
        c.type = "standard";
        c.max_inactive = 60s;
        c.expiry_interval = 0ms; // expire_now() only
        c.now = [this] { return clock.now(); };
        if (tweak) {
            tweak(c);
        }
        m = make_manager(channel, c);
    }

    std::string create(const std::string& name = "k", const std::string& value = "v") {
        auto r = m->begin_request("", "/app");
        r.session(true)->set(name, value);
        const auto id = r.session_id();
        r.end();
        return id;
    }

    std::optional<std::string> read(const std::string& id, const std::string& name) {
        auto r = m->begin_request(id, "/app");
        auto* s = r.session();
        return s ? s->get<std::string>(name) : std::nullopt;
    }
};

struct recorder {
    std::mutex mutex;
    std::vector<session_event> events;

    session_listener listener() {
        return [this](const session_event& e) {
            std::lock_guard lock(mutex);
            events.push_back(e);
        };
    }
    std::vector<std::string> kinds() {
        std::lock_guard lock(mutex);
        std::vector<std::string> out;
        for (const auto& e : events) {
            static const char* names[] = {"created", "destroyed", "added", "replaced", "removed"};
            out.push_back(std::string(names[static_cast<int>(e.what)]) + (e.attribute.empty() ? "" : ":" + e.attribute));
        }
        return out;
    }
};

} // namespace

TEST_CASE("a request that never asks for a session creates none", "[managers]") {
    standard_fixture f;
    {
        auto r = f.m->begin_request("", "/app");
        CHECK(r.session() == nullptr);
        CHECK(r.session_id().empty());
        CHECK_FALSE(r.id_changed());
        CHECK_FALSE(r.end().replicated);
    }
    CHECK(f.m->size() == 0);
    // An unknown cookie finds nothing and creates nothing either.
    auto r = f.m->begin_request("0123456789abcdef0123456789abcdef.node-a", "/app");
    CHECK(r.session() == nullptr);
    CHECK(f.m->size() == 0);
}

TEST_CASE("session ids are 128 random bits in hex, a dot and the node name", "[managers]") {
    standard_fixture f;
    std::set<std::string> ids;
    const std::regex shape("[0-9a-f]{32}\\.node-a");
    for (int i = 0; i < 2000; ++i) {
        auto r = f.m->begin_request("", "/");
        const auto id = r.session(true)->id();
        CHECK(std::regex_match(id, shape));
        ids.insert(id);
        CHECK(r.id_changed());
    }
    CHECK(ids.size() == 2000);
    CHECK(f.m->size() == 2000);
}

TEST_CASE("typed attributes set, read, modify and remove through the handle", "[managers]") {
    standard_fixture f;
    std::string id;
    {
        auto r = f.m->begin_request("", "/login");
        auto* s = r.session(true);
        REQUIRE(s != nullptr);
        s->set("user", std::string("ann"));
        s->set("visits", 3);
        s->set("raw", std::vector<std::uint8_t>{1, 2});
        s->set("cart", std::vector<int>{7, 8});
        s->modify<int>("visits", [](int& v) { ++v; });
        s->modify<std::vector<int>>("cart", [](std::vector<int>& c) { c.push_back(9); });
        s->modify<std::int64_t>("fresh", [](std::int64_t& v) { v += 5; });
        CHECK(s->get<int>("visits") == 4);
        CHECK_FALSE(s->get<std::string>("absent"));
        id = r.session_id();
    }
    auto r = f.m->begin_request(id, "/page");
    auto* s = r.session();
    REQUIRE(s != nullptr);
    CHECK(s->get<std::string>("user") == "ann");
    CHECK(s->get<int>("visits") == 4);
    CHECK(s->get<std::vector<std::uint8_t>>("raw") == std::vector<std::uint8_t>{1, 2});
    CHECK(s->get<std::vector<int>>("cart") == std::vector<int>{7, 8, 9});
    CHECK(s->get<std::int64_t>("fresh") == 5);
    // A type mismatch is an error for that attribute only.
    CHECK_THROWS_AS(s->get<int>("user"), attribute_error);
    CHECK_THROWS_AS(s->modify<int>("user", [](int&) {}), attribute_error);
    CHECK(s->get<std::string>("user") == "ann");
    s->remove("user");
    CHECK_FALSE(s->contains("user"));
    CHECK(s->attribute_names() == std::vector<std::string>{"cart", "fresh", "raw", "visits"});
}

TEST_CASE("each request with changes is one version step and a read-only one is none", "[managers]") {
    standard_fixture f;
    const auto id = f.create();
    CHECK(f.m->find(id)->version() == 1);
    for (int i = 0; i < 5; ++i) {
        auto r = f.m->begin_request(id, "/");
        r.session()->set("n", i);
        r.session()->set("m", i);
    }
    CHECK(f.m->find(id)->version() == 6);
    CHECK(f.read(id, "k") == "v");
    CHECK(f.m->find(id)->version() == 6);
}

TEST_CASE("end() is idempotent and the destructor ends an open scope", "[managers]") {
    standard_fixture f;
    std::string id;
    {
        auto r = f.m->begin_request("", "/");
        r.session(true)->set("a", 1);
        id = r.session_id();
        r.end();
        r.end();
        CHECK(r.session() == nullptr); // ended: no more handles
    }
    CHECK(f.m->find(id)->version() == 1);
    {
        auto r = f.m->begin_request(id, "/");
        r.session()->set("a", 2);
    } // not ended explicitly
    CHECK(f.m->find(id)->version() == 2);
}

TEST_CASE("end_async commits at once and runs its handler exactly once", "[managers]") {
    standard_fixture f;
    int calls = 0;
    std::string id;
    {
        auto r = f.m->begin_request("", "/");
        r.session(true)->set("a", 1);
        id = r.session_id();
        r.end_async([&](boost::system::error_code, end_result res) {
            ++calls;
            CHECK_FALSE(res.replicated);
            CHECK(res.detail.empty());
        });
        CHECK(calls == 1);
        r.end_async([&](boost::system::error_code, end_result) { ++calls; }); // ended: answered with the (empty) result
        CHECK(calls == 2);
    } // the destructor does not end it again
    CHECK(f.m->find(id)->version() == 1);
}

TEST_CASE("filtered paths are recognised and their session still works", "[managers]") {
    standard_fixture f;
    const auto id = f.create();
    auto r = f.m->begin_request(id, "/static/logo.png");
    CHECK_FALSE(r.replicates());
    REQUIRE(r.session() != nullptr);
    r.session()->set("seen", std::string("logo"));
    CHECK(f.m->begin_request(id, "/app/page").replicates());
    CHECK_FALSE(f.m->begin_request(id, "/x/style.css").replicates());
    standard_fixture none([](manager_config& c) { c.filter = ""; });
    CHECK(none.m->begin_request("", "/static/logo.png").replicates());
}

TEST_CASE("listeners hear creation, attribute changes and destruction", "[managers]") {
    standard_fixture f;
    recorder rec;
    f.m->add_listener(rec.listener());
    std::string id;
    {
        auto r = f.m->begin_request("", "/");
        auto* s = r.session(true);
        s->set("a", 1);
        s->set("a", 2);
        s->modify<int>("b", [](int& v) { v = 1; });
        s->remove("a");
        s->remove("absent");
        id = r.session_id();
    }
    {
        auto r = f.m->begin_request(id, "/logout");
        r.session()->invalidate();
        r.session()->set("after", 1); // an invalidated session takes no writes
    }
    CHECK(rec.kinds() == std::vector<std::string>{"created", "added:a", "replaced:a", "added:b", "removed:a",
                                                  "destroyed"});
    CHECK_FALSE(rec.events.back().expired);
    CHECK_FALSE(rec.events.back().replicated);
    CHECK(rec.events.back().session_id == id);
    CHECK(f.m->find(id) == nullptr);
    CHECK(f.m->begin_request(id, "/").session() == nullptr);
}

TEST_CASE("a listener that throws is counted and does not break the request", "[managers]") {
    standard_fixture f;
    f.m->add_listener([](const session_event&) { throw std::runtime_error("listener bug"); });
    const auto id = f.create();
    CHECK(f.read(id, "k") == "v");
    CHECK_THAT(f.m->stats_json(), Catch::Contains("\"listener_failures\":2"));
}

TEST_CASE("sessions idle past max_inactive expire on a manual clock and busy ones do not", "[managers]") {
    standard_fixture f;
    recorder rec;
    f.m->add_listener(rec.listener());
    const auto idle = f.create();
    const auto busy = f.create();
    std::string forever;
    {
        auto r = f.m->begin_request("", "/");
        r.session(true)->set_max_inactive(0s);
        forever = r.session_id();
    }
    std::string held;
    auto holder = f.m->begin_request("", "/");
    holder.session(true);
    held = holder.session_id();

    for (int i = 0; i < 5; ++i) {
        f.clock.advance(20s);
        CHECK(f.read(busy, "k") == "v"); // touched every 20 s
    }
    CHECK(f.m->expire_now() == 1); // only `idle`: 100 s > 60 s
    CHECK(f.m->find(idle) == nullptr);
    CHECK(f.m->find(busy) != nullptr);
    CHECK(f.m->find(forever) != nullptr);
    CHECK(f.m->find(held) != nullptr); // a request holds it
    CHECK(rec.events.back().what == session_event::kind::destroyed);
    CHECK(rec.events.back().expired);
    CHECK(rec.events.back().session_id == idle);

    holder.end();
    f.clock.advance(61s);
    CHECK(f.m->expire_now() == 2); // busy and held
    CHECK(f.m->find(forever) != nullptr);
    CHECK(f.m->size() == 1);
    CHECK_THAT(f.m->stats_json(), Catch::Contains("\"expired\":3"));
}

TEST_CASE("rotate_id gives the session a new id and retires the old one", "[managers]") {
    standard_fixture f;
    const auto old_id = f.create("user", "ann");
    std::string new_id;
    {
        auto r = f.m->begin_request(old_id, "/login");
        REQUIRE(r.session() != nullptr);
        CHECK_FALSE(r.id_changed());
        r.rotate_id();
        CHECK(r.id_changed());
        new_id = r.session_id();
        CHECK(new_id != old_id);
        CHECK(r.session()->id() == new_id);
        r.session()->set("role", std::string("admin"));
    }
    CHECK(f.m->find(old_id) == nullptr);
    CHECK(f.m->begin_request(old_id, "/").session() == nullptr);
    CHECK(f.read(new_id, "user") == "ann");
    CHECK(f.read(new_id, "role") == "admin");
    CHECK(f.m->size() == 1);
    CHECK(new_id.substr(32) == ".node-a");
}

TEST_CASE("concurrent requests on one session keep every write", "[managers]") {
    standard_fixture f;
    const auto id = f.create();
    constexpr int threads = 8;
    constexpr int per_thread = 500;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                auto r = f.m->begin_request(id, "/");
                auto* s = r.session();
                s->set("t" + std::to_string(t), i);
                s->modify<int>("counter", [](int& v) { ++v; });
                (void)s->get<int>("counter");
            }
        });
    }
    for (auto& t : pool) {
        t.join();
    }
    auto r = f.m->begin_request(id, "/");
    auto* s = r.session();
    CHECK(s->get<int>("counter") == threads * per_thread);
    for (int t = 0; t < threads; ++t) {
        CHECK(s->get<int>("t" + std::to_string(t)) == per_thread - 1);
    }
    // A request whose changes another request's end already committed makes no
    // version step of its own.
    CHECK(s->version() > 1);
    CHECK(s->version() <= 1 + threads * per_thread);
}

TEST_CASE("settings are checked, and an unknown manager lists the valid ones", "[managers]") {
    manager_config c;
    CHECK(validate(c).empty());
    c.type = "buddy";
    c.filter = "([unclosed";
    c.send_options = 4;
    c.state_transfer_chunk_bytes = 10;
    c.access_batch_interval = 0ms;
    const auto problems = validate(c);
    REQUIRE(problems.size() == 5);
    CHECK(problems[0] == "type: expected one of backup, delta, standard (got 'buddy')");
    CHECK_THAT(problems[1], Catch::StartsWith("filter: not a valid regular expression: "));
    CHECK_THAT(problems[2], Catch::StartsWith("send_options:"));
    engine::channel ch(node_config("n"));
    CHECK_THROWS_WITH(make_manager(ch, c), Catch::Contains("manager.type: expected one of backup, delta, standard"));
    manager_config ok;
    for (std::uint32_t o : {2u, 6u, 8u, 10u, 14u}) {
        ok.send_options = o;
        CHECK(validate(ok).empty());
    }
}

TEST_CASE("stats and metrics report the counters", "[managers]") {
    standard_fixture f;
    f.create();
    (void)f.m->begin_request("", "/static/x.js");
    const auto stats = f.m->stats_json();
    CHECK_THAT(stats, Catch::Contains("\"type\":\"standard\""));
    CHECK_THAT(stats, Catch::Contains("\"sessions\":1"));
    CHECK_THAT(stats, Catch::Contains("\"requests_filtered\":1"));
    const auto metrics = f.m->metrics_text();
    CHECK_THAT(metrics, Catch::Contains("troupe_sessions{context=\"app\"} 1"));
    CHECK_THAT(metrics, Catch::Contains("troupe_sessions_created_total{context=\"app\"} 1"));
}

TEST_CASE("the cluster file and the managers follow the same rules for the same keys", "[managers]") {
    // Each value is judged by conf::validate (a cluster file) and by
    // managers::validate (a manager_config built in code): both or neither object.
    auto conf_objects = [](const std::string& key, const conf::cluster_config& cluster) {
        for (const auto& d : conf::validate(cluster)) {
            if (d.path == key) {
                return true;
            }
        }
        return false;
    };
    auto manager_objects = [](const std::string& key, const manager_config& c) {
        for (const auto& p : validate(c)) {
            if (p.rfind(key, 0) == 0) {
                return true;
            }
        }
        return false;
    };
    // Sets one key both ways and compares the verdicts (the cookie's keys are
    // named apart: manager.cookie_path in the file, cookie.path in code).
    auto agree_as = [&](const std::string& file_key, const std::string& code_key, auto set) {
        conf::cluster_config cluster;
        manager_config c;
        set(cluster.manager, c);
        return conf_objects("manager." + file_key, cluster) == manager_objects(code_key + ":", c);
    };
    auto agree = [&](const std::string& key, auto set) { return agree_as(key, key, set); };
    for (const std::string v : {"TROUPE_SESSION", "JSESSIONID", "", "a b", "x;y", "caf\xc3\xa9", "a=b"}) {
        CAPTURE(v);
        CHECK(agree_as("cookie", "cookie.name", [&](auto& f, auto& m) { f.cookie = m.cookie.name = v; }));
    }
    for (const std::string v : {std::string("/"), std::string("/app"), std::string(), std::string("app"),
                                std::string("/a;b"), std::string("/a b"), std::string(1025, '/')}) {
        CAPTURE(v);
        CHECK(agree_as("cookie_path", "cookie.path", [&](auto& f, auto& m) { f.cookie_path = m.cookie.path = v; }));
    }
    using same_site = cookie_same_site;
    for (const auto& [text, value, secure] : {std::tuple{"lax", same_site::lax, false},
                                              std::tuple{"strict", same_site::strict, false},
                                              std::tuple{"none", same_site::none, true},
                                              std::tuple{"none", same_site::none, false}}) {
        CAPTURE(text, secure);
        CHECK(agree_as("cookie_same_site", "cookie.same_site", [&](auto& f, auto& m) {
            f.cookie_same_site = text;
            m.cookie.same_site = value;
            f.cookie_secure = m.cookie.secure = secure;
        }));
    }
    for (const std::string v : {"delta", "standard", "backup", "Delta", ""}) {
        CAPTURE(v);
        CHECK(agree("type", [&](auto& f, auto& m) { f.type = m.type = v; }));
    }
    for (const std::string v : {"", ".*\\.css$", "([unclosed", "*x", "a{2,1}"}) {
        CAPTURE(v);
        CHECK(agree("filter", [&](auto& f, auto& m) { f.filter = m.filter = v; }));
    }
    for (const std::uint32_t v : {2u, 4u, 6u, 8u, 0u, 1u, 16u}) {
        CAPTURE(v);
        CHECK(agree("send_options", [&](auto& f, auto& m) { f.send_options = m.send_options = v; }));
    }
    for (const std::size_t n : {std::size_t{1}, std::size_t{255}, std::size_t{256}}) {
        CAPTURE(n);
        CHECK(agree("context", [&](auto& f, auto& m) { f.context = m.context = std::string(n, 'c'); }));
    }
}
