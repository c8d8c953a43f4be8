// SPDX-License-Identifier: Apache-2.0
#pragma once

// A cluster of delta (or backup) managers on the in-memory bus, and the
// helpers the managers' tests share: create/set sessions, read stats, compare members, record events.
#include "backup_manager.hpp"
#include "placement.hpp"
#include "delta_manager.hpp"
#include "fake_bus.hpp"
#include "manual_clock.hpp"
#include "wire.hpp"

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace troupe::test {

using namespace troupe::managers;
using namespace std::chrono_literals;
using managers::detail::backup_manager;
using managers::detail::delta_manager;
using verdict = fake_bus::verdict;

// The managers' log, captured for the tests that assert on it. Registered
// before any test runs, so the library finds it instead of making its own.
inline std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_sink() {
    static const auto sink = [] {
        auto s = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(512);
        auto logger = std::make_shared<spdlog::logger>("troupe.managers", s);
        logger->set_level(spdlog::level::info);
        spdlog::register_logger(logger);
        return s;
    }();
    return sink;
}
inline const bool log_registered = (log_sink(), true);

inline bool logged(const std::string& text) {
    for (const auto& line : log_sink()->last_formatted()) {
        if (line.find(text) != std::string::npos) {
            return true;
        }
    }
    return false;
}

inline wire::msg_type type_of(const std::vector<std::uint8_t>& payload) {
    return payload.size() >= 4 ? static_cast<wire::msg_type>(payload[3]) : wire::msg_type{};
}

template <typename Manager>
struct cluster_of {
    fake_bus bus; // first: it outlives the managers
    manual_clock clock;
    std::function<void(manager_config&)> tweak;
    std::uint64_t next_incarnation = 1000;
    std::vector<std::unique_ptr<Manager>> nodes;

    explicit cluster_of(std::function<void(manager_config&)> t = {})
        : tweak(std::move(t)) {}

    ~cluster_of() {
        for (auto& n : nodes) {
            n->stop();
        }
        nodes.clear();
    }

    manager_config config() {
        manager_config c;
        c.type = std::is_same_v<Manager, backup_manager> ? "backup" : "delta";
        c.max_inactive = 60s;
        c.expiry_interval = 0ms;          // expire_now() only
        c.copy_audit_interval = 0ms;      // audit_now() only
        c.access_batch_interval = 10s;    // flush_access() in the tests
        c.state_transfer_chunk_bytes = 4096;
        // These tests serve a session on one member, then another, and follow
        // it by id: a route rewrite would rename it at each move.
        // route_rewrite_test.cpp turns it on.
        c.route_rewrite = false;
        c.now = [this] { return clock.now(); };
        c.steady_now = [this] { return clock.steady_now(); };
        if (tweak) {
            tweak(c);
        }
        return c;
    }

    /// The endpoint of the last add_discovering().
    fake_bus::endpoint* discovering = nullptr;

    Manager& add(const std::string& name, bool settle = true) {
        auto m = std::make_unique<Manager>(bus.join(name, next_incarnation++), config());
        m->start();
        nodes.push_back(std::move(m));
        if (settle) {
            REQUIRE(pump());
        }
        return *nodes.back();
    }

    /// A member whose link has not finished initial discovery: it sees nobody
    /// until `discovering->finish_discovery()`.
    Manager& add_discovering(const std::string& name) {
        auto e = bus.join(name, next_incarnation++, false);
        discovering = e.get();
        auto m = std::make_unique<Manager>(std::move(e), config());
        m->start();
        nodes.push_back(std::move(m));
        return *nodes.back();
    }

    bool pump() {
        return bus.pump([this] {
            return std::all_of(nodes.begin(), nodes.end(), [](const auto& n) { return n->bulk_idle(); });
        });
    }
};

using delta_cluster = cluster_of<delta_manager>;
using backup_cluster = cluster_of<backup_manager>;

/// Delivers queued messages on a thread of its own while a test blocks in a
/// request (sync sends, or a request waiting for reconciliation).
class pumper {
public:
    explicit pumper(fake_bus& bus)
        : thread_([this, &bus] {
            while (!stop_) {
                bus.deliver_queued();
                std::this_thread::sleep_for(200us);
            }
        }) {}
    ~pumper() {
        stop_ = true;
        thread_.join();
    }

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

inline std::string create(session_manager& m, const std::string& name = "k", const std::string& value = "v") {
    auto r = m.begin_request("", "/app");
    r.session(true)->set(name, value);
    const auto id = r.session_id();
    r.end();
    return id;
}

inline void set(session_manager& m, const std::string& id, const std::string& name, const std::string& value) {
    auto r = m.begin_request(id, "/app");
    REQUIRE(r.session() != nullptr);
    r.session()->set(name, value);
    r.end(); // waits under ack/sync (a dropped scope would not)
}

/// A new session on `m` whose integer attribute "n" is `start`, acknowledged.
inline std::string create_counter(session_manager& m, int start = 0) {
    auto r = m.begin_request("", "/app");
    r.session(true)->set("n", start);
    auto id = r.session_id();
    REQUIRE_NOTHROW(r.end());
    return id;
}

/// The integer attribute "n" of `id` as `m` holds it; -1 without one.
inline int value(const session_manager& m, const std::string& id) {
    auto s = m.find(id);
    const auto a = s ? s->get("n") : std::nullopt;
    return a ? managers::decode_attribute<int>("n", *a) : -1;
}

/// The member named `name`.
template <typename Manager>
Manager& node(cluster_of<Manager>& c, const std::string& name) {
    for (auto& n : c.nodes) {
        if (n->node() == name) {
            return *n;
        }
    }
    FAIL("no node " << name);
    throw std::logic_error("unreachable");
}

/// SIGKILL as the others see it: removed from their view, then gone.
template <typename Manager>
void kill(cluster_of<Manager>& c, const std::string& name) {
    c.bus.announce_gone(c.bus.id_of(name));
    for (auto it = c.nodes.begin(); it != c.nodes.end(); ++it) {
        if ((*it)->node() == name) {
            (*it)->stop();
            c.nodes.erase(it);
            break;
        }
    }
}

/// The member rendezvous hashing names as `id`'s backup when `primary` serves it.
inline std::string expected_backup(backup_cluster& c, const std::string& id, const std::string& primary) {
    std::vector<membership::member> members;
    for (auto& n : c.nodes) {
        membership::member m;
        m.id = c.bus.id_of(n->node());
        m.name = n->node();
        members.push_back(m);
    }
    const auto* b = managers::detail::placement::backup(id, c.bus.id_of(primary), members);
    return b ? b->name : "";
}

inline nlohmann::json stats(const session_manager& m) { return nlohmann::json::parse(m.stats_json()); }

inline std::uint64_t repl(const session_manager& m, const char* key) {
    return stats(m)["replication"][key].get<std::uint64_t>();
}

/// Same ids, versions and attributes on both.
inline void require_same(const session_manager& a, const session_manager& b) {
    auto ids_a = a.session_ids();
    auto ids_b = b.session_ids();
    std::sort(ids_a.begin(), ids_a.end());
    std::sort(ids_b.begin(), ids_b.end());
    REQUIRE(ids_a == ids_b);
    for (const auto& id : ids_a) {
        const auto sa = a.find(id);
        const auto sb = b.find(id);
        REQUIRE(sa);
        REQUIRE(sb);
        INFO("session " << id);
        CHECK(sa->version() == sb->version());
        CHECK(sa->attributes() == sb->attributes());
        CHECK(sa->max_inactive() == sb->max_inactive());
    }
}

struct recorder {
    std::mutex mutex;
    std::vector<session_event> events;
    session_listener listener() {
        return [this](const session_event& e) {
            std::lock_guard lock(mutex);
            events.push_back(e);
        };
    }
    std::size_t count(session_event::kind k, bool replicated) {
        std::lock_guard lock(mutex);
        return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const auto& e) {
            return e.what == k && e.replicated == replicated;
        }));
    }
};


} // namespace troupe::test
