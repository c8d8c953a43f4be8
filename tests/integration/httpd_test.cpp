// SPDX-License-Identifier: Apache-2.0
// troupe-httpd as a load balancer's client sees it: real processes on 127.0.0.1,
// a plain Boost.Beast HTTP client, sessions that survive a SIGKILLed node.
#include "cluster_fixture.hpp"
#include "../support/process_state.hpp"
#include "../support/wait_until.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdlib>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using troupe::test::scratch;
using troupe::tools::child_process;

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr auto io_timeout = 10s;

struct reply {
    unsigned status = 0;
    std::string body;
    std::string set_cookie;
    bool closed = false; ///< the server closed the connection after this reply

    nlohmann::json json() const { return nlohmann::json::parse(body); }
};

/// One keep-alive connection to a troupe-httpd, every operation bounded.
class client {
public:
    explicit client(std::uint16_t port)
        : stream_(io_) {
        stream_.expires_after(io_timeout);
        stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    }

    reply get(const std::string& target,
              const std::string& cookie = {},
              http::verb method = http::verb::get) {
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        if (!cookie.empty()) {
            req.set(http::field::cookie, cookie);
        }
        req.prepare_payload();
        stream_.expires_after(io_timeout);
        http::write(stream_, req);
        return read();
    }

    /// Bytes as they are, for requests no well-behaved client would send.
    reply raw(const std::string& bytes) {
        stream_.expires_after(io_timeout);
        net::write(stream_.socket(), net::buffer(bytes));
        return read();
    }

    /// Sends bytes and expects no reply: whether the server closes the connection
    /// (EOF or reset) within `limit`.
    bool closed_within(const std::string& bytes, std::chrono::seconds limit) {
        net::write(stream_.socket(), net::buffer(bytes));
        stream_.expires_after(limit);
        char c = 0;
        beast::error_code ec;
        stream_.read_some(net::buffer(&c, 1), ec);
        return ec == net::error::eof || ec == net::error::connection_reset;
    }

private:
    reply read() {
        http::response<http::string_body> res;
        http::read(stream_, buffer_, res);
        reply r;
        r.status = res.result_int();
        r.body = res.body();
        r.set_cookie = std::string(res[http::field::set_cookie]);
        r.closed = !res.keep_alive();
        return r;
    }

    net::io_context io_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
};

/// One request on a connection of its own.
reply get(std::uint16_t port, const std::string& target, const std::string& cookie = {}) {
    return client(port).get(target, cookie);
}

/// The `NAME=value` part of a Set-Cookie header, ready for a Cookie header.
std::string cookie_of(const std::string& set_cookie) {
    return set_cookie.substr(0, set_cookie.find(';'));
}

/// One troupe-httpd process, started by path, ended by PID.
struct httpd {
    std::optional<child_process> proc;
    nlohmann::json ready;

    httpd(const std::string& config,
          const std::vector<std::string>& sets,
          const std::vector<std::string>& flags = {}) {
        std::vector<std::string> argv{
            TROUPE_HTTPD, "--config",          config, "--set", "http.port=0",
            "--set",      "admin.enabled=true"};
        for (const auto& s : sets) {
            argv.push_back("--set");
            argv.push_back(s);
        }
        argv.insert(argv.end(), flags.begin(), flags.end());
        proc.emplace(child_process::spawn(argv));
        const auto line = proc->read_line(20s);
        REQUIRE(line);
        ready = nlohmann::json::parse(*line);
        REQUIRE(ready["ready"] == true);
        REQUIRE(ready["http_port"].get<int>() > 0);
    }

    std::uint16_t http() const { return ready["http_port"].get<std::uint16_t>(); }

    std::uint16_t admin() const { return ready["admin_port"].get<std::uint16_t>(); }

    std::string endpoint() const { return "127.0.0.1:" + std::to_string(ready["port"].get<int>()); }

    int alive_members() const {
        const auto r = get(admin(), "/members");
        int alive = 0;
        for (const auto& m : nlohmann::json::parse(r.body)) {
            alive += m["state"] == "alive" ? 1 : 0;
        }
        return alive;
    }

    /// Polls /members until exactly `want` are alive (bounded: 10 s).
    bool await_alive(int want) const {
        for (int i = 0; i < 500; ++i) {
            if (alive_members() == want) {
                return true;
            }
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }
};

/// Three troupe-httpd nodes a, b, c with static membership, each seeing all three alive.
struct trio {
    scratch s;
    std::optional<httpd> a, b, c;

    explicit trio(const std::vector<std::string>& sets = {}) {
        auto with = [&sets](std::vector<std::string> more) {
            more.insert(more.end(), sets.begin(), sets.end());
            return more;
        };
        a.emplace(s.write_config("a"), with({}));
        b.emplace(s.write_config("b"), with({"membership.static=[" + a->endpoint() + "]"}));
        c.emplace(s.write_config("c"),
                  with({"membership.static=[" + a->endpoint() + ", " + b->endpoint() + "]"}));
        for (const httpd* n : {&*a, &*b, &*c}) {
            REQUIRE(n->await_alive(3));
        }
    }
};

/// Polls GET /session on `port` until its counter is `want` (bounded): an async
/// delta may still be on its way.
std::int64_t counter_seen(std::uint16_t port, const std::string& cookie, std::int64_t want) {
    std::int64_t seen = -1;
    for (int i = 0; i < 500; ++i) {
        const auto r = get(port, "/session", cookie);
        if (r.status == 200) {
            const auto j = r.json();
            if (j["attributes"].contains("counter")) {
                seen = j["attributes"]["counter"].get<std::int64_t>();
                if (seen == want) {
                    return seen;
                }
            }
        }
        std::this_thread::sleep_for(20ms);
    }
    return seen;
}

std::string metrics(std::uint16_t port) {
    const auto r = get(port, "/metrics");
    REQUIRE(r.status == 200);
    return r.body;
}

} // namespace

TEST_CASE("troupe-httpd answers bad requests with 4xx and keeps serving", "[integration][httpd]") {
    scratch s;
    httpd n(s.write_config("a"), {"manager.type=standard"});

    CHECK(get(n.http(), "/healthz").status == 200);
    CHECK(get(n.http(), "/nowhere").status == 404);
    {
        client c(n.http());
        const auto r = c.get("/counter", {}, http::verb::post);
        CHECK(r.status == 405);
        // The connection stays usable after a well-formed refusal.
        CHECK(c.get("/healthz").status == 200);
    }
    const std::vector<std::string> malformed{
        "GARBAGE\r\n\r\n",
        "GET /healthz HTTP/9.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
        "GET http://example.com/counter HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /static/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /static/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /static/a%2 HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (const auto& bytes : malformed) {
        INFO(bytes);
        CHECK(client(n.http()).raw(bytes).status == 400);
        CHECK(get(n.http(), "/healthz").status == 200);
    }
    {
        INFO("a body over the limit");
        const auto r = client(n.http()).raw(
            "POST /counter HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
        CHECK(r.status == 413);
        CHECK(r.closed);
    }
    {
        INFO("headers over the limit");
        const auto r = client(n.http()).raw(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n");
        CHECK(r.status == 431);
    }
    CHECK(get(n.http(), "/healthz").status == 200);

    const auto text = metrics(n.http());
    CHECK_THAT(text,
               Catch::Contains("troupe_http_requests_total{route=\"other\",status=\"400\"} 5"));
    CHECK_THAT(text,
               Catch::Contains("troupe_http_requests_total{route=\"static\",status=\"400\"} 3"));
    CHECK_THAT(text,
               Catch::Contains("troupe_http_requests_total{route=\"other\",status=\"404\"} 1"));
    CHECK_THAT(text,
               Catch::Contains("troupe_http_requests_total{route=\"counter\",status=\"405\"} 1"));
    CHECK_THAT(text,
               Catch::Contains("troupe_http_requests_total{route=\"other\",status=\"413\"} 1"));
    CHECK_THAT(text,
               Catch::Contains("troupe_http_requests_total{route=\"other\",status=\"431\"} 1"));
    CHECK_THAT(text, Catch::Contains("troupe_http_connections_accepted_total"));
    // The channel's own metrics are there too.
    CHECK_THAT(text, Catch::Contains("troupe_receiver_connections_open"));

    n.proc->signal(SIGTERM);
    CHECK(n.proc->wait(15s) == 0);
}

TEST_CASE("troupe-httpd drops a client that sends its request too slowly", "[integration][httpd]") {
    scratch s;
    httpd n(s.write_config("a"), {"manager.type=standard"}, {"--read-timeout", "1s"});
    client slow(n.http());
    CHECK(slow.closed_within("GET /healthz HTTP/1.1\r\nHo", 5s));
    CHECK(get(n.http(), "/healthz").status == 200);
}

TEST_CASE("troupe-httpd serves static files without a session", "[integration][httpd]") {
    scratch s;
    const auto dir = std::filesystem::temp_directory_path() / (s.cluster() + "-static");
    std::filesystem::create_directories(dir / "css");
    std::ofstream(dir / "css" / "site.css") << "body { color: teal; }\n";
    std::ofstream(dir / "index.html") << "<p>hello</p>\n";
    httpd n(s.write_config("a"), {"manager.type=standard"}, {"--static", dir.string()});

    const auto css = get(n.http(), "/static/css/site.css");
    CHECK(css.status == 200);
    CHECK(css.body == "body { color: teal; }\n");
    CHECK(css.set_cookie.empty());
    CHECK(get(n.http(), "/static/").body == "<p>hello</p>\n");
    CHECK(get(n.http(), "/static/missing.png").status == 404);

    // A session cookie on a static request neither creates nor needs a session.
    const auto counted = get(n.http(), "/counter");
    REQUIRE(counted.status == 200);
    const auto cookie = cookie_of(counted.set_cookie);
    const auto with_cookie = get(n.http(), "/static/css/site.css", cookie);
    CHECK(with_cookie.status == 200);
    CHECK(with_cookie.set_cookie.empty());
    CHECK_THAT(metrics(n.http()), Catch::Contains("troupe_sessions{context=\"app\"} 1"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("troupe-httpd's built-in static page creates no session", "[integration][httpd]") {
    scratch s;
    httpd n(s.write_config("a"), {"manager.type=standard"});
    for (int i = 0; i < 3; ++i) {
        const auto r = get(n.http(), "/static/index.html");
        CHECK(r.status == 200);
        CHECK(r.set_cookie.empty());
    }
    CHECK(get(n.http(), "/session").status == 404);
    CHECK_THAT(metrics(n.http()), Catch::Contains("troupe_sessions{context=\"app\"} 0"));
}

TEST_CASE("troupe-httpd writes the cookie as manager.cookie_path, cookie_same_site and cookie_max_age say",
          "[integration][httpd]") {
    scratch s;
    httpd n(s.write_config("a"), {"manager.type=standard", "manager.cookie_path=/app", "manager.cookie_same_site=none",
                                  "manager.cookie_secure=true", "manager.cookie_max_age=8h"});
    client c(n.http());
    const auto first = c.get("/counter");
    REQUIRE(first.status == 200);
    const auto id = first.json()["session"].get<std::string>();
    CHECK(first.set_cookie ==
          "TROUPE_SESSION=" + id + "; Path=/app; HttpOnly; SameSite=None; Secure; Max-Age=28800");
    CHECK(c.get("/counter", cookie_of(first.set_cookie)).json()["counter"] == 2);
}

TEST_CASE("troupe-httpd keeps a counter in the session, on one keep-alive connection",
          "[integration][httpd]") {
    scratch s;
    httpd n(s.write_config("a"),
            {"manager.type=standard", "manager.cookie=SID", "manager.cookie_secure=true"});
    client c(n.http());
    const auto first = c.get("/counter");
    REQUIRE(first.status == 200);
    CHECK(first.json()["counter"] == 1);
    CHECK(first.json()["node"] == "a");
    const auto id = first.json()["session"].get<std::string>();
    CHECK(id.size() > 3);
    CHECK(id.substr(id.size() - 2) == ".a");
    CHECK(first.set_cookie == "SID=" + id + "; Path=/; HttpOnly; SameSite=Lax; Secure");
    const auto cookie = cookie_of(first.set_cookie);
    for (int i = 2; i <= 5; ++i) {
        const auto r = c.get("/counter", "other=1; " + cookie);
        CHECK(r.json()["counter"] == i);
        CHECK(r.set_cookie.empty()); // the id did not change
    }
    const auto session = c.get("/session", cookie);
    REQUIRE(session.status == 200);
    const auto j = session.json();
    CHECK(j["id"] == id);
    CHECK(j["attributes"]["counter"] == 5);
    CHECK(j["created"].get<std::int64_t>() > 1600000000000);
    CHECK(j["accessed"].get<std::int64_t>() >= j["created"].get<std::int64_t>());
    CHECK(j.contains("version"));
    // An unknown id gets a new session.
    const auto fresh = c.get("/counter", "SID=unknown.a");
    CHECK(fresh.json()["counter"] == 1);
    CHECK_FALSE(fresh.set_cookie.empty());
}

TEST_CASE("a session counter continues on another troupe-httpd, and after its node is SIGKILLed",
          "[integration][httpd]") {
    trio t;
    std::string cookie;
    for (int i = 1; i <= 10; ++i) {
        const auto r = get(t.a->http(), "/counter", cookie);
        REQUIRE(r.status == 200);
        CHECK(r.json()["counter"] == i);
        CHECK(r.json()["node"] == "a");
        if (cookie.empty()) {
            cookie = cookie_of(r.set_cookie);
        }
    }
    // async: the last delta may still be on its way to b.
    REQUIRE(counter_seen(t.b->http(), cookie, 10) == 10);
    const auto on_b = get(t.b->http(), "/counter", cookie);
    CHECK(on_b.json()["counter"] == 11);
    CHECK(on_b.json()["node"] == "b");
    CHECK(on_b.set_cookie.empty()); // same session, same id
    REQUIRE(counter_seen(t.c->http(), cookie, 11) == 11);

    t.a->proc->signal(SIGKILL);
    t.a->proc->wait(10s);
    const auto on_c = get(t.c->http(), "/counter", cookie);
    CHECK(on_c.json()["counter"] == 12);
    CHECK(on_c.json()["node"] == "c");
    CHECK(counter_seen(t.b->http(), cookie, 12) == 12);

    const auto text = metrics(t.c->http());
    CHECK_THAT(text,
               Catch::Contains("troupe_http_requests_total{route=\"counter\",status=\"200\"} 1"));
    CHECK_THAT(text, Catch::Contains("troupe_sessions{context=\"app\"} 1"));
}

TEST_CASE("with sync replication a counter is on every node as soon as it is answered",
          "[integration][httpd]") {
    trio t({"manager.send_options=sync"});
    std::string cookie;
    for (int i = 1; i <= 10; ++i) {
        const auto r = get(t.a->http(), "/counter", cookie);
        REQUIRE(r.status == 200);
        if (cookie.empty()) {
            cookie = cookie_of(r.set_cookie);
        }
    }
    // No waiting: sync answers only once every member has applied the change.
    CHECK(get(t.b->http(), "/counter", cookie).json()["counter"] == 11);
    t.b->proc->signal(SIGKILL);
    CHECK(get(t.c->http(), "/counter", cookie).json()["counter"] == 12);
    t.b->proc->wait(10s);
    CHECK(get(t.a->http(), "/counter", cookie).json()["counter"] == 13);
}

TEST_CASE("metrics.statsd: a node sends its counters, gauges and timings as statsd lines over UDP",
          "[integration][httpd]") {
    // The statsd server: a UDP socket of the test's own on 127.0.0.1.
    net::io_context io;
    net::ip::udp::socket statsd(io, net::ip::udp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    statsd.non_blocking(true);
    const auto port = std::to_string(statsd.local_endpoint().port());
    scratch s;
    httpd a(s.write_config("a"), {"manager.send_options=sync", "metrics.statsd.address=127.0.0.1",
                                  "metrics.statsd.port=" + port, "metrics.statsd.prefix=shop.web",
                                  "metrics.statsd.interval=200ms"});
    httpd b(s.write_config("b"), {"manager.send_options=sync", "membership.static=[" + a.endpoint() + "]"});
    for (int i = 0; i < 300 && a.alive_members() != 2; ++i) {
        std::this_thread::sleep_for(20ms);
    }
    REQUIRE(a.alive_members() == 2);
    std::string cookie;
    for (int i = 1; i <= 3; ++i) {
        const auto r = get(a.http(), "/counter", cookie);
        REQUIRE(r.status == 200);
        if (cookie.empty()) {
            cookie = cookie_of(r.set_cookie);
        }
    }
    // Counters add up over the datagrams; the last gauge and timing stand.
    std::map<std::string, double> counted;
    std::map<std::string, std::string> last;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline && (counted["shop.web.requests"] < 3 || last["shop.web.sessions"] != "1|g" ||
                                                           last["shop.web.members"] != "1|g" ||
                                                           last["shop.web.replication.ack_latency"].empty())) {
        char buf[2048];
        boost::system::error_code ec;
        const auto n = statsd.receive(net::buffer(buf), 0, ec);
        if (ec) {
            std::this_thread::sleep_for(20ms);
            continue;
        }
        std::istringstream lines(std::string(buf, n));
        for (std::string line; std::getline(lines, line);) {
            const auto colon = line.find(':');
            REQUIRE(colon != std::string::npos);
            const auto name = line.substr(0, colon);
            const auto value = line.substr(colon + 1);
            last[name] = value;
            if (value.size() > 2 && value.substr(value.size() - 2) == "|c") {
                counted[name] += std::stod(value.substr(0, value.size() - 2));
            }
        }
    }
    CHECK(counted["shop.web.requests"] == 3);
    CHECK(counted["shop.web.sessions.created"] == 1);
    CHECK(counted["shop.web.replication.acks"] >= 3); // one sync message per request, to b
    CHECK(counted["shop.web.replication.failures"] == 0);
    CHECK(last["shop.web.sessions"] == "1|g");
    CHECK(last["shop.web.members"] == "1|g");
    const auto latency = last["shop.web.replication.ack_latency"];
    REQUIRE(latency.size() > 3);
    CHECK(latency.substr(latency.size() - 3) == "|ms");
    CHECK(std::stod(latency.substr(0, latency.size() - 3)) > 0);
}

TEST_CASE("with sync and on_replication_failure fail, a frozen member turns /counter into a 503 "
          "while the node keeps serving",
          "[integration][httpd]") {
    // One HTTP thread: the request waiting for the frozen member must not hold it.
    trio t({"manager.send_options=sync", "manager.on_replication_failure=fail", "sender.ack_timeout=700ms",
            "http.threads=1"});
    const auto first = get(t.a->http(), "/counter");
    REQUIRE(first.status == 200);
    const auto cookie = cookie_of(first.set_cookie);

    const int c_pid = t.c->proc->pid();
    t.c->proc->signal(SIGSTOP);
    REQUIRE(troupe::test::wait_until([&] { return troupe::test::process_state(c_pid) == 'T'; }));
    std::optional<reply> waited;
    std::thread slow([&] { waited = get(t.a->http(), "/counter", cookie); });
    // Answered while /counter waits for c's ack on the only HTTP thread.
    std::this_thread::sleep_for(100ms);
    CHECK(get(t.a->http(), "/healthz").status == 200);
    slow.join();
    t.c->proc->signal(SIGCONT);
    REQUIRE(waited);
    CHECK(waited->status == 503);
    const auto j = waited->json();
    CHECK(j["error"] == "replication failed");
    CHECK_THAT(j["detail"].get<std::string>(), Catch::Contains("no ack within 700ms"));
    CHECK_THAT(metrics(t.a->http()), Catch::Contains("troupe_session_replication_failures_total"));

    // c answers again: the next change is acknowledged by everyone.
    bool ok = false;
    for (int i = 0; i < 100 && !ok; ++i) {
        ok = get(t.a->http(), "/counter", cookie).status == 200;
        if (!ok) {
            std::this_thread::sleep_for(50ms);
        }
    }
    CHECK(ok);
}

TEST_CASE("troupe-httpd refuses channel.send_options and points to manager.send_options", "[integration][httpd]") {
    // It used to be accepted and ignored: the managers replicated asynchronously
    // while the file said sync.
    scratch s;
    const auto moved = s.write_config("moved", "channel:\n  send_options: sync\n");
    auto p = child_process::spawn(
        {"/bin/sh", "-c", std::string(TROUPE_HTTPD) + " --check-config " + moved + " 2>&1"});
    std::string out;
    while (auto line = p.read_line(std::chrono::seconds(20))) {
        out += *line + "\n";
    }
    CHECK(p.wait(std::chrono::seconds(10)) == 2);
    CHECK_THAT(out, Catch::Contains(moved + ":12:3: error: channel.send_options: unknown key 'send_options' "
                                            "(moved to manager.send_options)"));
    const auto fixed = s.write_config("fixed", "manager:\n  send_options: sync\n");
    auto q = child_process::spawn({TROUPE_HTTPD, "--check-config", fixed});
    std::string yaml;
    while (auto line = q.read_line(std::chrono::seconds(20))) {
        yaml += *line + "\n";
    }
    CHECK(q.wait(std::chrono::seconds(10)) == 0);
    CHECK_THAT(yaml, Catch::Contains("send_options: sync"));
}

namespace {

/// The backup manager's part of a node's /manager statistics.
nlohmann::json backup_stats(const httpd& n) {
    const auto r = get(n.admin(), "/manager");
    REQUIRE(r.status == 200);
    return nlohmann::json::parse(r.body)["backup"];
}

} // namespace

TEST_CASE("backup manager: a proxy fetches the session once for concurrent requests and becomes its primary",
          "[integration][httpd][backup]") {
    trio t({"manager.type=backup", "manager.send_options=sync"});
    std::string cookie;
    for (int i = 1; i <= 10; ++i) {
        const auto r = get(t.a->http(), "/counter", cookie);
        REQUIRE(r.status == 200);
        if (cookie.empty()) {
            cookie = cookie_of(r.set_cookie);
        }
    }
    REQUIRE(backup_stats(*t.a)["roles"]["primary"] == 1);
    // The proxy: of b and c, the one that holds no copy.
    const bool b_is_backup = backup_stats(*t.b)["roles"]["backup"] == 1;
    httpd& backup = b_is_backup ? *t.b : *t.c;
    httpd& proxy = b_is_backup ? *t.c : *t.b;
    REQUIRE(backup_stats(backup)["roles"]["backup"] == 1);
    REQUIRE(backup_stats(proxy)["roles"]["backup"] == 0);
    REQUIRE(backup_stats(proxy)["roles"]["primary"] == 0);

    // Eight requests at once on the proxy: one fetch, every one sees 10.
    std::vector<std::thread> readers;
    std::atomic<int> right{0};
    for (int i = 0; i < 8; ++i) {
        readers.emplace_back([&] {
            const auto r = get(proxy.http(), "/session", cookie);
            if (r.status == 200 && r.json()["attributes"]["counter"] == 10) {
                ++right;
            }
        });
    }
    for (auto& th : readers) {
        th.join();
    }
    CHECK(right == 8);
    const auto fetched = backup_stats(proxy);
    CHECK(fetched["fetches"]["started"] == 1);
    CHECK(fetched["fetches"]["found"] == 1);
    CHECK(fetched["roles"]["primary"] == 1);
    CHECK(backup_stats(*t.a)["roles"]["primary"] == 0);
    CHECK(backup_stats(*t.a)["relocations"] == 1);

    // It counts on from there, and a SIGKILL of the new primary loses nothing.
    const auto next = get(proxy.http(), "/counter", cookie);
    REQUIRE(next.status == 200);
    CHECK(next.json()["counter"] == 11);
    CHECK(next.set_cookie.empty()); // same session, same id
    proxy.proc->signal(SIGKILL);
    proxy.proc->wait(10s);
    const auto after = get(t.a->http(), "/counter", cookie);
    REQUIRE(after.status == 200);
    CHECK(after.json()["counter"] == 12);
}

// ---------------------------------------------------------------------------
// Through HAProxy (Debian's package), configured by tools/haproxy-config.

namespace {

/// An absolute path to `name` on PATH or in /usr/sbin (Debian puts haproxy there).
std::string find_program(const std::string& name) {
    std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
    dirs += ":/usr/sbin:/usr/bin";
    std::stringstream in(dirs);
    for (std::string dir; std::getline(in, dir, ':');) {
        const auto path = std::filesystem::path(dir) / name;
        if (!dir.empty() && ::access(path.c_str(), X_OK) == 0) {
            return path.string();
        }
    }
    return {};
}

/// tools/haproxy-config's output for these arguments.
std::string haproxy_config(const std::vector<std::string>& args) {
    std::vector<std::string> argv{find_program("python3"), std::string(TROUPE_SOURCE_DIR) + "/tools/haproxy-config"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = child_process::spawn(argv);
    std::string text;
    while (auto line = p.read_line(10s)) {
        text += *line + "\n";
    }
    REQUIRE(p.wait(10s) == 0);
    return text;
}

std::uint16_t free_port() {
    net::io_context io;
    tcp::acceptor a(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

/// One haproxy process in front of troupe-httpd nodes, started by path, ended by PID.
struct balancer {
    std::optional<child_process> proc;
    std::uint16_t port = free_port();

    balancer(const scratch& s, const std::vector<std::pair<std::string, std::uint16_t>>& servers) {
        const auto haproxy = find_program("haproxy");
        if (haproxy.empty()) {
            FAIL("haproxy not found: apt-get install haproxy (tools/test installs it)");
        }
        std::vector<std::string> args{"--bind=127.0.0.1:" + std::to_string(port)};
        for (const auto& [name, http] : servers) {
            args.push_back("--server=" + name + "=127.0.0.1:" + std::to_string(http));
        }
        const auto path = s.dir() / "haproxy.cfg";
        std::ofstream(path) << haproxy_config(args);
        proc.emplace(child_process::spawn({haproxy, "-db", "-f", path.string()}));
        // Up once a request passes to a node (its first checks take a second).
        const bool up = troupe::test::wait_until(
            [&] {
                try {
                    return get(port, "/healthz").status == 200;
                } catch (const std::exception&) {
                    return false;
                }
            },
            15s);
        REQUIRE(up);
    }
};

std::string id_of(const std::string& cookie) { return cookie.substr(cookie.find('=') + 1); }
std::string route_of(const std::string& id) { return id.substr(id.find('.') + 1); }
std::string base_of(const std::string& id) { return id.substr(0, id.find('.')); }

} // namespace

TEST_CASE("conf/examples/haproxy.cfg and the compose file's haproxy.cfg are what tools/haproxy-config writes",
          "[integration][haproxy]") {
    auto read = [](const std::string& relative) {
        std::ifstream in(std::string(TROUPE_SOURCE_DIR) + "/" + relative);
        std::stringstream file;
        file << in.rdbuf();
        return file.str();
    };
    CHECK(read("conf/examples/haproxy.cfg") ==
          haproxy_config({"--bind", "127.0.0.1:8080", "--server", "web-a=127.0.0.1:8081", "--server",
                          "web-b=127.0.0.1:8082", "--server", "web-c=127.0.0.1:8083", "--stats", "127.0.0.1:8404"}));
    CHECK(read("tools/container/haproxy.cfg") ==
          haproxy_config({"--bind", "0.0.0.0:8080", "--server", "web1=web1:8080", "--server", "web2=web2:8080",
                          "--server", "web3=web3:8080", "--stats", "0.0.0.0:8404", "--dns"}));
}

TEST_CASE("through HAProxy a SIGKILLed node's user goes on elsewhere with the counter intact, the id takes the "
          "new node's route and the user sticks there",
          "[integration][httpd][haproxy]") {
    trio t({"manager.send_options=sync"});
    balancer lb(t.s, {{"a", t.a->http()}, {"b", t.b->http()}, {"c", t.c->http()}});

    std::string cookie;
    std::string home;
    for (int i = 1; i <= 3; ++i) {
        const auto r = get(lb.port, "/counter", cookie);
        REQUIRE(r.status == 200);
        CHECK(r.json()["counter"] == i);
        if (cookie.empty()) {
            cookie = cookie_of(r.set_cookie);
            home = r.json()["node"];
        }
        CHECK(r.json()["node"] == home); // sticky by the id's route
    }
    REQUIRE(route_of(id_of(cookie)) == home);

    auto& victim = home == "a" ? t.a : home == "b" ? t.b : t.c;
    victim->proc->signal(SIGKILL);
    victim->proc->wait(10s);

    // Every request is served (HAProxy retries a refused connection on another
    // node) and counts on. Once the survivors have removed the dead node from
    // their view, the one serving the session gives it its own route and a
    // new cookie.
    std::int64_t expect = 4;
    std::string rewritten;
    std::string survivor;
    for (int i = 0; i < 100 && rewritten.empty(); ++i) {
        const auto r = get(lb.port, "/counter", cookie);
        REQUIRE(r.status == 200);
        CHECK(r.json()["counter"] == expect++);
        CHECK(r.json()["node"] != home);
        if (!r.set_cookie.empty()) {
            rewritten = cookie_of(r.set_cookie);
            survivor = r.json()["node"];
        } else {
            std::this_thread::sleep_for(50ms);
        }
    }
    REQUIRE_FALSE(rewritten.empty());
    CHECK(base_of(id_of(rewritten)) == base_of(id_of(cookie))); // the same session
    CHECK(route_of(id_of(rewritten)) == survivor);

    // The next requests stick to the survivor, without a new cookie.
    for (int i = 0; i < 3; ++i) {
        const auto r = get(lb.port, "/counter", rewritten);
        REQUIRE(r.status == 200);
        CHECK(r.json()["counter"] == expect++);
        CHECK(r.json()["node"] == survivor);
        CHECK(r.set_cookie.empty());
    }
    // A request that left with the old cookie before the new one arrived: the
    // balancer's hash sends it to the same survivor, where the old id is an alias.
    const auto late = get(lb.port, "/counter", cookie);
    REQUIRE(late.status == 200);
    CHECK(late.json()["counter"] == expect++);
    CHECK(cookie_of(late.set_cookie) == rewritten);
}

TEST_CASE("through HAProxy two concurrent requests racing the route rewrite end with one id and both "
          "increments",
          "[integration][httpd][haproxy]") {
    trio t; // async: two requests of one session at once are what this is about
    balancer lb(t.s, {{"a", t.a->http()}, {"b", t.b->http()}, {"c", t.c->http()}});
    std::string cookie;
    std::string home;
    for (int i = 1; i <= 2; ++i) {
        const auto r = get(lb.port, "/counter", cookie);
        REQUIRE(r.status == 200);
        if (cookie.empty()) {
            cookie = cookie_of(r.set_cookie);
            home = r.json()["node"];
        }
    }
    auto& victim = home == "a" ? t.a : home == "b" ? t.b : t.c;
    for (const auto* n : {&*t.a, &*t.b, &*t.c}) {
        CHECK(counter_seen(n->http(), cookie, 2) == 2); // async: on its way until there
    }
    victim->proc->signal(SIGKILL);
    victim->proc->wait(10s);
    // Once both survivors have removed it, the next request renames.
    for (const auto* n : {&*t.a, &*t.b, &*t.c}) {
        if (n != &*victim) {
            REQUIRE(n->await_alive(2));
        }
    }
    // Two requests with the old cookie at once (HAProxy's hash on the cookie
    // sends both to one survivor): one renames, the other finds the session
    // renamed or through the alias; both count, both answer the new id.
    std::vector<std::pair<int, std::string>> out(2); // status, Set-Cookie
    std::vector<std::int64_t> counters(2, 0);
    {
        std::vector<std::thread> racing;
        for (int k = 0; k < 2; ++k) {
            racing.emplace_back([&, k] {
                const auto r = get(lb.port, "/counter", cookie);
                out[k] = {r.status, r.set_cookie};
                if (r.status == 200) {
                    counters[k] = r.json()["counter"].get<std::int64_t>();
                }
            });
        }
        for (auto& th : racing) {
            th.join();
        }
    }
    REQUIRE(out[0].first == 200);
    REQUIRE(out[1].first == 200);
    CHECK(std::min(counters[0], counters[1]) == 3);
    CHECK(std::max(counters[0], counters[1]) == 4);
    REQUIRE_FALSE(out[0].second.empty());
    REQUIRE_FALSE(out[1].second.empty());
    const auto renamed = cookie_of(out[0].second);
    CHECK(cookie_of(out[1].second) == renamed); // one id
    CHECK(base_of(id_of(renamed)) == base_of(id_of(cookie)));
    CHECK(route_of(id_of(renamed)) != home);
    const auto next = get(lb.port, "/counter", renamed);
    REQUIRE(next.status == 200);
    CHECK(next.json()["counter"] == 5);
    CHECK(next.set_cookie.empty());
}

TEST_CASE("manager.skip_headers: a health check with the header neither creates nor touches a session",
          "[integration][httpd]") {
    scratch s;
    httpd n(s.write_config("a"), {"manager.skip_headers=[X-Health-Check]"});
    client c(n.http());
    // Without a cookie: no session, no cookie.
    auto with_header = [&](const std::string& cookie) {
        net::io_context io;
        beast::tcp_stream stream(io);
        stream.expires_after(io_timeout);
        stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), n.http()));
        http::request<http::string_body> r{http::verb::get, "/counter", 11};
        r.set(http::field::host, "127.0.0.1");
        r.set("x-health-check", "1"); // names are case-insensitive
        if (!cookie.empty()) {
            r.set(http::field::cookie, cookie);
        }
        http::write(stream, r);
        beast::flat_buffer b;
        http::response<http::string_body> res;
        http::read(stream, b, res);
        return res;
    };
    const auto skipped = with_header("");
    CHECK(skipped.result_int() == 200);
    CHECK(skipped[http::field::set_cookie].empty());
    CHECK(nlohmann::json::parse(skipped.body())["skipped"] == true);
    const auto counted = c.get("/counter");
    REQUIRE(counted.status == 200);
    const auto cookie = cookie_of(counted.set_cookie);
    const auto before = c.get("/session", cookie).json();
    std::this_thread::sleep_for(20ms);
    const auto with_cookie = with_header(cookie);
    CHECK(nlohmann::json::parse(with_cookie.body())["skipped"] == true);
    const auto after = c.get("/session", cookie).json();
    CHECK(after["attributes"]["counter"] == 1); // not counted
    CHECK(after["version"] == before["version"]);
    const auto stats = nlohmann::json::parse(get(n.admin(), "/manager").body);
    CHECK(stats["sessions"] == 1);
    CHECK(stats["requests_skipped"] == 2);
}

TEST_CASE("troupe-httpd answers 503 on every route, /healthz too, until its state transfer is over",
          "[integration][httpd]") {
    scratch s;
    // An older member that never sends the sessions (a channel member without
    // the manager): the joiner waits for them up to state_transfer_timeout.
    troupe::test::peer older(s.write_config("p"));
    const auto port = free_port();
    auto joiner = child_process::spawn({TROUPE_HTTPD, "--config", s.write_config("j"), "--set",
                                        "http.port=" + std::to_string(port), "--set",
                                        "membership.static=[" + older.endpoint() + "]", "--set",
                                        "manager.state_transfer_timeout=3s"});
    std::map<unsigned, int> seen;
    nlohmann::json starting;
    const bool served = troupe::test::wait_until(
        [&] {
            try {
                const auto r = get(port, "/healthz");
                ++seen[r.status];
                if (r.status == 503) {
                    starting = r.json();
                    // 503 while starting; a 200 only when the start ended in
                    // between (state_transfer_timeout ran out just then).
                    const auto counter = get(port, "/counter").status;
                    CHECK((counter == 503 || get(port, "/healthz").status == 200));
                }
                return r.status == 200;
            } catch (const std::exception&) {
                return false; // not listening yet
            }
        },
        20s);
    INFO("statuses seen: " << nlohmann::json(seen).dump());
    REQUIRE(served);
    CHECK(seen[503] > 0);
    CHECK(starting["state"] == "starting");
    CHECK(starting["ok"] == false);
    joiner.signal(SIGTERM);
    CHECK(joiner.wait(10s) == 0);
}
