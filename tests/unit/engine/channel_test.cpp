// SPDX-License-Identifier: Apache-2.0
#include <troupe/engine/channel.hpp>
#include <troupe/transport/error.hpp>

#include "wait_until.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace troupe;
using troupe::test::wait_until;

namespace {

/// One cluster name per test and process: multicast discovery is on by default,
/// and tests running side by side must not find each other.
std::string unique_cluster() {
    static std::atomic<int> n{0};
    return "engine-unit-" + std::to_string(::getpid()) + "-" + std::to_string(n.load());
}

conf::cluster_config config_for(const std::string& node, std::vector<conf::host_port> peers = {}) {
    conf::cluster_config c;
    c.cluster.name = unique_cluster();
    c.cluster.node = node;
    c.receiver.port = 0;
    c.receiver.auto_bind = 1;
    c.admin.enabled = false;
    c.sender.ack_timeout = std::chrono::milliseconds(2000);
    c.membership.static_members = std::move(peers);
    return c;
}

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

/// Two channels in this process, each knowing the other.
struct pair_of_channels {
    engine::channel a{config_for("a")};
    std::unique_ptr<engine::channel> b;

    pair_of_channels() {
        a.start();
        b = std::make_unique<engine::channel>(config_for("b", {{"127.0.0.1", a.port()}}));
        b->start();
        REQUIRE(wait_until([&] { return a.members().size() == 1 && b->members().size() == 1; }));
    }
};

} // namespace

TEST_CASE("a sync send returns after the remote listener ran", "[engine]") {
    std::atomic<int> seen{0}; // before the channels: listeners may run until they stop
    pair_of_channels p;
    p.b->add_listener("app", [&](const engine::received_message& m) {
        CHECK(m.from.name == "a");
        CHECK(m.context == "app");
        seen++;
    });
    const auto r = p.a.send_all(bytes("hello"), engine::send_options::sync, "app");
    CHECK(r.ok());
    CHECK(r.destinations == 1);
    CHECK(seen == 1); // processed before send() returned
}

TEST_CASE("a listener exception becomes a NACK naming the member and the reason", "[engine]") {
    pair_of_channels p;
    p.b->add_listener("app", [](const engine::received_message&) { throw std::runtime_error("nope"); });
    const auto r = p.a.send_all(bytes("x"), engine::send_options::sync, "app");
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].member.name == "b");
    CHECK(r.failures[0].ec == transport::error::remote_failure);
    CHECK(r.failures[0].detail == "nope");
    CHECK_THAT(r.describe(), Catch::Contains("b (127.0.0.1:") && Catch::Contains("nope"));
    // The node is still fine.
    p.b->add_listener("app", [](const engine::received_message&) {});
    CHECK(p.a.send_all(bytes("y"), engine::send_options::sync, "app").ok());
}

TEST_CASE("a listener's message_refused is a NACK that is not counted as a listener failure", "[engine]") {
    pair_of_channels p;
    p.b->add_listener("app", [](const engine::received_message&) { throw engine::message_refused("stale base"); });
    const auto r = p.a.send_all(bytes("x"), engine::send_options::sync, "app");
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].ec == transport::error::remote_failure);
    CHECK(r.failures[0].detail == "stale base");
    CHECK(nlohmann::json::parse(p.b->stats_json())["channel"]["listener_failures"] == 0);
    p.b->add_listener("app", [](const engine::received_message&) { throw std::runtime_error("bug"); });
    CHECK_FALSE(p.a.send_all(bytes("y"), engine::send_options::sync, "app").ok());
    CHECK(nlohmann::json::parse(p.b->stats_json())["channel"]["listener_failures"] == 1);
}

TEST_CASE("a context without a listener is a NACK for sync senders", "[engine]") {
    pair_of_channels p;
    const auto r = p.a.send_all(bytes("x"), engine::send_options::sync, "nobody");
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].ec == transport::error::no_listener);
    CHECK(nlohmann::json::parse(p.b->stats_json())["channel"]["no_listener"] == 1);
}

TEST_CASE("listeners are per context", "[engine]") {
    std::atomic<int> one{0}, two{0};
    pair_of_channels p;
    p.b->add_listener("one", [&](const engine::received_message&) { one++; });
    p.b->add_listener("two", [&](const engine::received_message&) { two++; });
    CHECK(p.a.send_all(bytes("1"), engine::send_options::sync, "one").ok());
    CHECK(p.a.send_all(bytes("2"), engine::send_options::sync, "two").ok());
    CHECK(p.a.send_all(bytes("2"), engine::send_options::sync, "two").ok());
    CHECK(one == 1);
    CHECK(two == 2);
}

TEST_CASE("async_send completes its handler once, outside the call", "[engine]") {
    std::promise<engine::send_result> done;
    bool inside = true;
    pair_of_channels p;
    p.b->add_listener("app", [](const engine::received_message&) {});
    p.a.async_send({}, bytes("x"), engine::send_options::sync, "app",
                   [&](engine::send_result r) { done.set_value(std::move(r)); });
    inside = false;
    auto f = done.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(f.get().ok());
    CHECK_FALSE(inside);
}

TEST_CASE("a message larger than channel.max_message is refused before it is queued", "[engine]") {
    pair_of_channels p;
    const std::string big(p.a.config().channel.max_message + 1, 'x');
    const auto r = p.a.send_all(bytes(big), engine::send_options::async, "app");
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].ec == transport::error::message_too_large);
}

TEST_CASE("sending to an unknown member id fails as not_a_member", "[engine]") {
    pair_of_channels p;
    const membership::member_id nobody = membership::member_id::random();
    const auto r = p.a.send(std::span(&nobody, 1), bytes("x"), engine::send_options::async, "app");
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].ec == transport::error::not_a_member);
}

TEST_CASE("member listeners see alive then left when a peer stops cleanly", "[engine]") {
    std::mutex m;
    std::vector<std::string> events;
    pair_of_channels p;
    p.a.add_member_listener([&](const membership::member& who) {
        std::lock_guard lock(m);
        events.push_back(who.name + ":" + std::string(membership::to_string(who.state)));
    });
    p.b->stop();
    REQUIRE(wait_until([&] {
        std::lock_guard lock(m);
        return std::find(events.begin(), events.end(), "b:left") != events.end();
    }));
    std::lock_guard lock(m);
    // A clean stop is never taken for a failure. (A late "alive" from a second
    // path that completed after the pair saw each other may come first.)
    for (const auto& e : events) {
        if (e == "b:left") {
            break;
        }
        CHECK(e != "b:suspect");
        CHECK(e != "b:gone");
    }
    CHECK(p.a.members().empty());
}

TEST_CASE("async messages queued before stop() are flushed to the peer", "[engine]") {
    std::atomic<int> seen{0};
    pair_of_channels p;
    p.b->add_listener("app", [&](const engine::received_message&) { seen++; });
    for (int i = 0; i < 5000; ++i) {
        REQUIRE(p.a.send_all(bytes(std::string(512, 'x')), engine::send_options::async, "app").ok());
    }
    p.a.stop();
    CHECK(wait_until([&] { return seen == 5000; }));
}

TEST_CASE("a blocking ack send from an I/O thread is refused instead of deadlocking", "[engine]") {
    std::mutex m;
    std::vector<engine::send_result> results;
    pair_of_channels p;
    p.b->add_listener("app", [](const engine::received_message&) {});
    p.a.add_listener("echo", [&](const engine::received_message&) {
        auto r = p.a.send_all(bytes("x"), engine::send_options::sync, "app");
        std::lock_guard lock(m);
        results.push_back(std::move(r));
    });
    // The first on an I/O thread, the second on the connection's reader thread.
    CHECK(p.b->send_all(bytes("x"), engine::send_options::sync, "echo").ok());
    CHECK(p.b->send_all(bytes("x"), engine::send_options::sync, "echo").ok());
    CHECK(nlohmann::json::parse(p.a.stats_json())["receiver"]["reader_threads"] == 1);
    std::lock_guard lock(m);
    REQUIRE(results.size() == 2);
    for (const auto& r : results) {
        REQUIRE(r.failures.size() == 1);
        CHECK_THAT(r.failures[0].detail, Catch::Contains("use async_send"));
    }
}

TEST_CASE("stats and metrics report traffic per member", "[engine]") {
    pair_of_channels p;
    p.b->add_listener("app", [](const engine::received_message&) {});
    for (int i = 0; i < 10; ++i) {
        REQUIRE(p.a.send_all(bytes("0123456789"), engine::send_options::sync, "app").ok());
    }
    const auto sa = nlohmann::json::parse(p.a.stats_json());
    CHECK(sa["channel"]["messages_out"] == 10);
    CHECK(sa["channel"]["bytes_out"] == 100);
    CHECK(sa["peers"][0]["acks"] == 10);
    const auto sb = nlohmann::json::parse(p.b->stats_json());
    CHECK(sb["channel"]["in_by_member"]["a"]["messages"] == 10);
    CHECK(sb["receiver"]["reader_threads"] == 1); // the connection moved to its own thread
    CHECK_THAT(p.b->metrics_text(), Catch::Contains("troupe_receiver_reader_threads 1\n"));
    CHECK(sb["receiver"]["idle_timeouts"] == 0);
    CHECK_THAT(p.b->metrics_text(), Catch::Contains("troupe_receiver_idle_timeouts_total 0\n"));
    const auto metrics = p.a.metrics_text();
    CHECK_THAT(metrics, Catch::Contains("troupe_messages_out_total 10"));
    CHECK_THAT(metrics, Catch::Contains("troupe_peer_ack_latency_us_count{peer=\"127.0.0.1:"));
    CHECK_THAT(metrics, Catch::Contains("troupe_members{state=\"alive\"} 1"));
}

TEST_CASE("lone sync senders read their own acks, and concurrent and async senders still complete", "[engine]") {
    std::atomic<int> seen{0};
    pair_of_channels p;
    p.b->add_listener("app", [&](const engine::received_message& m) {
        if (std::string(reinterpret_cast<const char*>(m.payload.data()), m.payload.size()) == "throw") {
            throw std::runtime_error("refused");
        }
        seen++;
    });
    // A lone caller: after the first ack the stream reads on the caller's thread.
    for (int i = 0; i < 20; ++i) {
        REQUIRE(p.a.send_all(bytes("lone"), engine::send_options::sync, "app").ok());
    }
    const auto peer = [&] { return nlohmann::json::parse(p.a.stats_json())["peers"][0]; };
    CHECK(peer()["direct_entries"].get<int>() >= 1);
    CHECK(peer()["caller_read_acks"].get<int>() > 0);
    // Several callers at once, async sends and completion handlers in between:
    // the stream changes hands, and every send still completes exactly once.
    std::atomic<int> failures{0};
    std::atomic<int> handled{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t) {
        callers.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                if (!p.a.send_all(bytes("sync"), engine::send_options::sync, "app").ok()) {
                    ++failures;
                }
                if (t == 0) {
                    (void)p.a.send_all(bytes("async"), engine::send_options::async, "app");
                }
                if (t == 1) {
                    p.a.async_send({}, bytes("handled"), engine::send_options::ack, "app",
                                   [&](engine::send_result r) {
                                       if (r.ok()) {
                                           ++handled;
                                       }
                                   });
                }
            }
        });
    }
    for (auto& c : callers) {
        c.join();
    }
    CHECK(failures == 0);
    REQUIRE(wait_until([&] { return handled.load() == 50 && seen.load() == 20 + 4 * 50 + 50 + 50; }));
    // A NACK read on the caller's thread names the listener's reason.
    const auto r = p.a.send_all(bytes("throw"), engine::send_options::sync, "app");
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].ec == transport::error::remote_failure);
    CHECK_THAT(r.failures[0].detail, Catch::Contains("refused"));
}

namespace {

/// A TCP socket bound to a free loopback port: {fd, port}.
std::pair<int, std::uint16_t> bound_loopback_socket() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    return {fd, ntohs(sa.sin_port)};
}

/// A loopback port nothing listens on (bound, read, closed): dialling it is refused.
std::uint16_t refused_port() {
    const auto [fd, port] = bound_loopback_socket();
    ::close(fd);
    return port;
}

/// Starts `a` and waits (10 s at most) for its initial discovery to end: how
/// long that took, or nothing if it did not end.
std::optional<std::chrono::steady_clock::duration> start_until_discovered(engine::channel& a) {
    // Shared: the handler may still run after a timed-out wait returned.
    auto ended = std::make_shared<std::promise<void>>();
    a.on_discovered([ended] { ended->set_value(); });
    const auto t0 = std::chrono::steady_clock::now();
    a.start();
    if (ended->get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        return std::nullopt;
    }
    return std::chrono::steady_clock::now() - t0;
}

} // namespace

// A replicating manager must not take "nobody in view yet" for "first of the
// cluster": discovery ends only after each static member was dialled once,
// and the members found are announced before it ends.
TEST_CASE("initial discovery ends once every static member was dialled, after the found members' events",
          "[engine]") {
    engine::channel b{config_for("b")};
    b.start();
    auto cfg = config_for("a", {{"127.0.0.1", b.port()}, {"127.0.0.1", refused_port()}});
    cfg.membership.multicast.enabled = false;
    engine::channel a{cfg};
    CHECK_FALSE(a.discovered());
    std::mutex mutex;
    std::vector<std::string> order;
    std::promise<std::size_t> members_at_end;
    a.add_member_listener([&](const membership::member& m) {
        std::lock_guard lock(mutex);
        order.push_back("member " + m.name + " " + std::string(membership::to_string(m.state)));
    });
    a.on_discovered([&] {
        {
            std::lock_guard lock(mutex);
            order.push_back("discovered");
        }
        members_at_end.set_value(a.members().size());
    });
    a.start();
    auto done = members_at_end.get_future();
    REQUIRE(done.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(done.get() == 1);
    CHECK(a.discovered());
    std::lock_guard lock(mutex);
    REQUIRE(order.size() >= 2);
    CHECK(order[0] == "member b alive");
    CHECK(order[1] == "discovered");
}

TEST_CASE("with multicast, initial discovery listens for two heartbeat periods", "[engine]") {
    auto cfg = config_for("alone");
    cfg.membership.multicast.frequency = std::chrono::milliseconds(100);
    engine::channel a{cfg};
    const auto waited = start_until_discovered(a);
    REQUIRE(waited);
    // A lower bound only: the code cannot end it sooner, however busy the machine.
    CHECK(*waited >= std::chrono::milliseconds(200));
    CHECK(a.members().empty());
    std::atomic<bool> late{false};
    a.on_discovered([&] { late = true; }); // already done: posted at once
    CHECK(wait_until([&] { return late.load(); }));
}

TEST_CASE("a static member that accepts but never answers holds discovery up to its connect timeout",
          "[engine]") {
    // A listening socket nobody accepts from: the kernel completes the TCP
    // handshake, and HELLO is never answered (a frozen process looks so).
    const auto [fd, port] = bound_loopback_socket();
    REQUIRE(::listen(fd, 8) == 0);
    auto cfg = config_for("a", {{"127.0.0.1", port}, {"127.0.0.1", refused_port()}});
    cfg.membership.multicast.enabled = false;
    cfg.sender.connect_timeout = std::chrono::milliseconds(300);
    engine::channel a{cfg};
    const auto waited = start_until_discovered(a);
    ::close(fd);
    REQUIRE(waited);
    // Not on the refused member's quick answer: on the silent one's timeout
    // (a lower bound only, which no busy machine can break).
    CHECK(*waited >= std::chrono::milliseconds(300));
    CHECK(a.members().empty());
}
