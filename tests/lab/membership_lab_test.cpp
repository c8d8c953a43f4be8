// SPDX-License-Identifier: Apache-2.0
// Membership with one troupe-node per network namespace: convergence, crashes,
// freezes, clean stops, partitions, heartbeat loss, foreign clusters and garbage
// on the multicast port. Outcomes only: the timings are measured by
// tools/membership-bench.
#include "lab_fixture.hpp"

#include <algorithm>
#include <csignal>
#include <sstream>

using namespace troupe::lab;

namespace {

std::vector<std::string> names(const std::vector<int>& indices) {
    std::vector<std::string> out;
    for (int i : indices) {
        out.push_back("n" + std::to_string(i));
    }
    return out;
}

std::vector<int> range(int from, int to) {
    std::vector<int> out;
    for (int i = from; i <= to; ++i) {
        out.push_back(i);
    }
    return out;
}

std::vector<int> without(std::vector<int> v, int x) {
    std::erase(v, x);
    return v;
}

/// Every node of `indices` lists exactly `expected` (one entry each), all alive.
bool all_see(lab& l, const std::vector<int>& indices, const std::vector<std::string>& expected) {
    for (int i : indices) {
        if (!exactly_alive(l.at(i).members(), expected)) {
            return false;
        }
    }
    return true;
}

/// Every node of `indices` shows `member` in `state`.
bool all_show(lab& l, const std::vector<int>& indices, const std::string& member, const std::string& state) {
    for (int i : indices) {
        if (state_of(l.at(i).members(), member) != state) {
            return false;
        }
    }
    return true;
}

/// The views of `indices`, for failure messages.
std::string views(lab& l, const std::vector<int>& indices) {
    std::ostringstream out;
    for (int i : indices) {
        out << "  n" << i << " sees " << names_of(l.at(i).members()) << "\n";
    }
    return out.str();
}

/// The events of `indices` about members in `states`, for checks and messages.
std::vector<member_event> events_in(lab& l, const std::vector<int>& indices, const std::set<std::string>& states) {
    std::vector<member_event> out;
    for (int i : indices) {
        for (const auto& e : l.at(i).events()) {
            if (states.count(e.state) != 0) {
                out.push_back(e);
            }
        }
    }
    return out;
}

std::string describe(const std::vector<member_event>& events) {
    std::ostringstream out;
    for (const auto& e : events) {
        out << "  " << e.node << ": " << e.member << " " << e.state << " (" << e.reason << ")\n";
    }
    return out.str();
}

/// On every node of `indices`, the latest event about each other one says alive.
bool events_whole(lab& l, const std::vector<int>& indices) {
    for (int i : indices) {
        std::map<std::string, std::string> last;
        for (const auto& e : l.at(i).events()) {
            last[e.member] = e.state;
        }
        for (int j : indices) {
            if (j != i && last["n" + std::to_string(j)] != "alive") {
                return false;
            }
        }
    }
    return true;
}

/// Waits until every node of `indices` sees exactly those, alive, and the event
/// streams caught up with that (so later checks see only later events).
bool converge(lab& l, const std::vector<int>& indices) {
    return l.wait_for([&] { return all_see(l, indices, names(indices)); }, 60s, 300ms) &&
           l.wait_for([&] { return events_whole(l, indices); }, 10s, 50ms);
}

/// Starts nodes 1..n (multicast) and waits until they all see each other.
void start_converged(lab& l, int n, const std::map<int, node_options>& options = {}) {
    const auto all = range(1, n);
    l.start(all, options);
    const bool converged = converge(l, all);
    INFO("the nodes did not converge:\n" << views(l, all));
    REQUIRE(converged);
}

int loss_seconds() {
    if (const char* s = std::getenv("TROUPE_LAB_LOSS_SECONDS")) {
        return std::max(1, std::atoi(s));
    }
    return 30;
}

} // namespace

TEST_CASE("five nodes started at once converge: every node lists all five alive", "[lab]") {
    skip_unless_root();
    lab l(5);
    start_converged(l, 5);
    // Every node also reported each of the others alive on its event stream.
    auto alive_seen = [&](int i) {
        std::set<std::string> seen;
        for (const auto& e : l.at(i).events()) {
            if (e.state == "alive") {
                seen.insert(e.member);
            }
        }
        return seen;
    };
    auto expected = [&](int i) {
        const auto others = names(without(range(1, 5), i));
        return std::set<std::string>(others.begin(), others.end());
    };
    l.wait_for(
        [&] {
            for (int i : range(1, 5)) {
                if (alive_seen(i) != expected(i)) {
                    return false;
                }
            }
            return true;
        },
        10s, 50ms);
    for (int i : range(1, 5)) {
        INFO("n" << i << " events:\n" << describe(l.at(i).events()));
        CHECK(alive_seen(i) == expected(i));
    }
    CHECK(events_in(l, range(1, 5), {"gone", "left"}).empty());
}

TEST_CASE("a SIGKILLed node is removed by every survivor", "[lab]") {
    skip_unless_root();
    lab l(5);
    start_converged(l, 5);
    const auto survivors = range(1, 4);
    l.at(5).signal(SIGKILL);
    REQUIRE(l.at(5).wait(10s) == 128 + SIGKILL);
    const bool removed = l.wait_for([&] { return all_show(l, survivors, "n5", "gone"); }, 60s, 300ms);
    INFO(views(l, survivors));
    CHECK(removed);
    // Nobody else was removed, and every survivor said so on its event stream.
    for (const auto& e : events_in(l, survivors, {"gone", "left"})) {
        INFO(e.node << ": " << e.member << " " << e.state << " (" << e.reason << ")");
        CHECK(e.member == "n5");
        CHECK(e.state == "gone");
    }
    for (int i : survivors) {
        CHECK(l.at(i).running());
    }
}

TEST_CASE("a node killed and restarted at once on the same address replaces its old incarnation",
          "[lab]") {
    skip_unless_root();
    lab l(5);
    start_converged(l, 5);
    const auto survivors = range(1, 4);
    const auto old_id = l.at(5).id();
    l.at(5).signal(SIGKILL);
    REQUIRE(l.at(5).wait(10s) == 128 + SIGKILL);
    l.forget(5);
    l.start({5});
    const auto new_id = l.at(5).id();
    REQUIRE(new_id != old_id);
    const auto all = range(1, 5);
    const bool whole = l.wait_for([&] { return all_see(l, all, names(all)); }, 60s, 300ms);
    INFO(views(l, all));
    CHECK(whole);
    // Everywhere one n5, the new one; the old one was reported gone.
    for (int i : survivors) {
        const auto e = entries(l.at(i).members(), "n5");
        REQUIRE(e.size() == 1);
        CHECK(e.front().value("id", "") == new_id);
    }
    auto replaced = [&](int i) {
        bool old_gone = false;
        bool new_alive = false;
        for (const auto& e : l.at(i).events()) {
            old_gone = old_gone || (e.id == old_id && e.state == "gone");
            new_alive = new_alive || (e.id == new_id && e.state == "alive");
        }
        return old_gone && new_alive;
    };
    l.wait_for([&] { return std::all_of(survivors.begin(), survivors.end(), replaced); }, 10s, 50ms);
    for (int i : survivors) {
        INFO("n" << i << " events:\n" << describe(l.at(i).events()));
        CHECK(replaced(i));
    }
}

TEST_CASE("a frozen (SIGSTOP) node is removed although its kernel accepts TCP and rejoins once after SIGCONT",
          "[lab]") {
    skip_unless_root();
    lab l(5);
    start_converged(l, 5);
    const auto survivors = range(1, 4);
    const auto id = l.at(5).id();
    l.at(5).signal(SIGSTOP);
    const bool removed = l.wait_for([&] { return all_show(l, survivors, "n5", "gone"); }, 60s, 300ms);
    {
        INFO("the frozen node was not removed:\n" << views(l, survivors));
        CHECK(removed);
    }
    for (const auto& e : events_in(l, survivors, {"gone", "left"})) {
        INFO(e.node << ": " << e.member << " " << e.state << " (" << e.reason << ")");
        CHECK(e.member == "n5");
    }

    l.at(5).signal(SIGCONT);
    const auto all = range(1, 5);
    const bool rejoined = l.wait_for([&] { return all_see(l, all, names(all)); }, 60s, 300ms);
    INFO("after SIGCONT:\n" << views(l, all));
    CHECK(rejoined);
    for (int i : all) {
        CHECK(l.at(i).running());
        // One entry for n5 everywhere, with the id it always had: no duplicate member.
        const auto e = entries(l.at(i).members(), "n5");
        REQUIRE(e.size() == 1);
        CHECK(e.front().value("id", "") == id);
    }
    // The survivors saw it come back: an alive event after the gone one.
    auto came_back = [&](int i) {
        bool gone = false;
        for (const auto& e : l.at(i).events()) {
            if (e.member != "n5") {
                continue;
            }
            if (e.state == "gone") {
                gone = true;
            } else if (e.state == "alive" && gone) {
                return true;
            }
        }
        return false;
    };
    l.wait_for([&] { return std::all_of(survivors.begin(), survivors.end(), came_back); }, 10s, 50ms);
    for (int i : survivors) {
        INFO("n" << i << " events:\n" << describe(l.at(i).events()));
        CHECK(came_back(i));
    }
}

TEST_CASE("a clean stop (SIGTERM) is removed at once through the leaving flag (state left)", "[lab]") {
    skip_unless_root();
    lab l(5);
    start_converged(l, 5);
    const auto survivors = range(1, 4);
    l.at(5).signal(SIGTERM);
    CHECK(l.at(5).wait(20s) == 0);
    const bool left = l.wait_for([&] { return all_show(l, survivors, "n5", "left"); }, 30s, 200ms);
    INFO(views(l, survivors));
    CHECK(left);
    const auto removals = events_in(l, survivors, {"gone", "left"});
    INFO(describe(removals));
    for (const auto& e : removals) {
        CHECK(e.member == "n5");
        CHECK(e.state == "left"); // never "gone" first
    }
}

TEST_CASE("a node cut off for 10 s and healed: both sides remove each other and then merge into one view",
          "[lab]") {
    skip_unless_root();
    lab l(5);
    start_converged(l, 5);
    const auto majority = range(1, 4);
    const auto all = range(1, 5);
    const auto cut_at = steady::now();
    l.cut(5);
    const bool split = l.wait_for(
        [&] {
            if (!all_show(l, majority, "n5", "gone")) {
                return false;
            }
            const auto v = l.at(5).members();
            for (const auto& n : names(majority)) {
                if (state_of(v, n) != "gone") {
                    return false;
                }
            }
            return true;
        },
        60s, 300ms);
    {
        INFO("during the cut:\n" << views(l, all));
        CHECK(split);
    }
    // Hold the cut for 10 s in all.
    if (const auto held = steady::now() - cut_at; held < 10s) {
        l.idle(std::chrono::duration_cast<std::chrono::milliseconds>(10s - held));
    }
    l.heal(5);
    const bool merged = l.wait_for([&] { return all_see(l, all, names(all)); }, 60s, 300ms);
    INFO("after healing:\n" << views(l, all));
    CHECK(merged);
    for (int i : all) {
        CHECK(l.at(i).running());
    }
}

namespace {

void no_removals_under_loss(int percent) {
    skip_unless_root();
    lab l(5);
    start_converged(l, 5);
    const auto all = range(1, 5);
    const int seconds = loss_seconds();
    l.drop(3, percent);
    l.idle(std::chrono::seconds(seconds));
    l.drop(3, 0);
    const auto removals = events_in(l, all, {"gone", "left"});
    INFO(percent << "% of n3's incoming UDP dropped for " << seconds << " s; removals:\n" << describe(removals));
    CHECK(removals.empty());
    INFO(views(l, all));
    CHECK(all_see(l, all, names(all)));
    // The detector had work to do and answered it over TCP (reported, not required).
    const auto st = l.at(3).stats();
    if (st.contains("membership")) {
        UNSCOPED_INFO("n3 membership stats: " << st["membership"].dump());
    }
}

} // namespace

TEST_CASE("30% incoming heartbeat loss on one node for 30 s: no member is removed anywhere", "[lab]") {
    no_removals_under_loss(30);
}

TEST_CASE("60% incoming heartbeat loss on one node for 30 s: no member is removed anywhere", "[lab]") {
    no_removals_under_loss(60);
}

TEST_CASE("a node with the wrong secret and one of another cluster never join", "[lab]") {
    skip_unless_root();
    lab l(5);
    const auto good = range(1, 3);
    std::map<int, node_options> o;
    for (int i : good) {
        o[i].secret = "lab-secret-0123456789";
    }
    o[4].secret = "not-the-lab-secret-0123";
    o[5].secret = "lab-secret-0123456789";
    o[5].cluster = l.cluster() + "_other";
    l.start(range(1, 5), o);
    const bool converged = converge(l, good);
    {
        INFO(views(l, range(1, 5)));
        REQUIRE(converged);
    }
    // Many heartbeat periods later, still nobody let them in.
    l.idle(10s);
    INFO(views(l, range(1, 5)));
    CHECK(all_see(l, good, names(good)));
    CHECK(exactly_alive(l.at(4).members(), {"n4"}));
    CHECK(exactly_alive(l.at(5).members(), {"n5"}));
    for (const auto& e : events_in(l, range(1, 5), {"alive", "suspect", "gone", "left"})) {
        INFO(e.node << ": " << e.member << " " << e.state);
        CHECK(e.member != "n4");
        CHECK(e.member != "n5");
        CHECK(e.node != "n4");
        CHECK(e.node != "n5");
    }
    // Their heartbeats were heard, refused and counted.
    for (int i : good) {
        INFO("n" << i << " stats: " << l.at(i).stats().value("membership", json::object()).dump());
        CHECK(heartbeats_rejected(l.at(i).stats()) > 0);
    }
    CHECK(heartbeats_rejected(l.at(4).stats()) > 0);
    CHECK(heartbeats_rejected(l.at(5).stats()) > 0);
}

namespace {

// Sent from inside a lab namespace only: captures a real heartbeat from the
// group, then sends random datagrams, every truncation of it, oversize copies and
// (with --bitflips) copies with one bit flipped, to the group, TTL 1.
constexpr const char* garbage_py = R"PY(
import json, random, socket, sys, time
group, port, ifaddr, seed, bitflips = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
rnd = random.Random(seed)
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
r.bind(("", port))
r.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(ifaddr))
r.settimeout(1.0)
sample = None
deadline = time.monotonic() + 15
while sample is None and time.monotonic() < deadline:
    try:
        d, a = r.recvfrom(65535)
        if a[0] != ifaddr and len(d) > 0:
            sample = d
    except socket.timeout:
        pass
if sample is None:
    print(json.dumps({"error": "no heartbeat heard"}))
    sys.exit(1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
sent = {"random": 0, "truncated": 0, "oversize": 0, "bitflip": 0, "sample_len": len(sample)}
def send(kind, data):
    s.sendto(data, (group, port))
    sent[kind] += 1
    time.sleep(0.002)
for _ in range(200):
    send("random", rnd.randbytes(rnd.randint(0, 1400)))
for n in range(len(sample)):
    send("truncated", sample[:n])
for size in (1400, 1401, 1500, 4000, 9000, 65000):
    if size > len(sample):
        send("oversize", sample + rnd.randbytes(size - len(sample)))
if bitflips:
    for _ in range(200):
        b = bytearray(sample)
        bit = rnd.randrange(len(b) * 8)
        b[bit // 8] ^= 1 << (bit % 8)
        send("bitflip", bytes(b))
print(json.dumps(sent))
)PY";

} // namespace

TEST_CASE("random datagrams and truncated or oversize or altered heartbeats on the multicast port are "
          "ignored and counted and change no view",
          "[lab]") {
    skip_unless_root();
    std::string secret;
    bool bitflips = false;
    SECTION("without a secret") {}
    SECTION("with a secret (altered heartbeats fail the HMAC)") {
        secret = "lab-secret-0123456789";
        bitflips = true;
    }
    lab l(4);
    const auto nodes = range(1, 3);
    std::map<int, node_options> o;
    for (int i : nodes) {
        o[i].secret = secret;
    }
    l.start(nodes, o);
    const bool converged = converge(l, nodes);
    REQUIRE(converged);
    std::map<int, std::uint64_t> before;
    std::map<int, std::size_t> events_before;
    for (int i : nodes) {
        before[i] = heartbeats_rejected(l.at(i).stats());
        events_before[i] = l.at(i).events().size();
    }

    const auto script = (l.dir() / "garbage.py").string();
    {
        std::ofstream out(script);
        out << garbage_py;
    }
    // From node 4's namespace, which runs no troupe-node.
    const auto r = run(l.in_node(4, {"python3", script, "228.0.0.4", "45564", l.addr(4), "7", bitflips ? "1" : "0"}),
                       120s);
    INFO("garbage sender: " << r.out);
    REQUIRE(r.code == 0);
    const auto sent = json::parse(r.out, nullptr, false);
    REQUIRE(sent.is_object());
    const auto random_sent = sent.value("random", 0);

    // Counted: every node rejected at least half the random ones (UDP may drop some).
    const bool counted = l.wait_for(
        [&] {
            for (int i : nodes) {
                if (heartbeats_rejected(l.at(i).stats()) < before[i] + static_cast<std::uint64_t>(random_sent / 2)) {
                    return false;
                }
            }
            return true;
        },
        30s, 500ms);
    for (int i : nodes) {
        INFO("n" << i << " membership stats: " << l.at(i).stats().value("membership", json::object()).dump());
        CHECK(heartbeats_rejected(l.at(i).stats()) > before[i]);
    }
    CHECK(counted);
    // Ignored: nobody crashed, nobody changed its view, no event at all.
    l.idle(5s);
    INFO(views(l, nodes));
    CHECK(all_see(l, nodes, names(nodes)));
    for (int i : nodes) {
        CHECK(l.at(i).running());
        const auto& ev = l.at(i).events();
        const std::vector<member_event> after(ev.begin() + static_cast<std::ptrdiff_t>(events_before[i]), ev.end());
        INFO("n" << i << " events after the garbage:\n" << describe(after));
        CHECK(after.empty());
    }
}

TEST_CASE("static members over lab addresses (no multicast) converge and a cut member goes and comes back "
          "when healed",
          "[lab]") {
    skip_unless_root();
    lab l(3);
    const auto all = range(1, 3);
    std::map<int, node_options> o;
    for (int i : all) {
        o[i].multicast = false;
        for (int j : all) {
            o[i].static_members.push_back(l.endpoint(j));
        }
    }
    l.start(all, o);
    const bool converged = l.wait_for([&] { return all_see(l, all, names(all)); }, 60s, 300ms);
    {
        INFO(views(l, all));
        REQUIRE(converged);
    }
    l.cut(3);
    const bool removed = l.wait_for([&] { return all_show(l, {1, 2}, "n3", "gone"); }, 60s, 300ms);
    {
        INFO("during the cut:\n" << views(l, all));
        CHECK(removed);
    }
    l.heal(3);
    const bool back = l.wait_for([&] { return all_see(l, all, names(all)); }, 60s, 300ms);
    INFO("after healing:\n" << views(l, all));
    CHECK(back);
}

TEST_CASE("DNS discovery against dnsmasq: members come from the name's records, scale-out adds them, scale-in "
          "drops them once gone, and a DNS outage changes nothing",
          "[lab][dns]") {
    skip_unless_root();
    if (std::system("command -v dnsmasq > /dev/null 2>&1 || test -x /usr/sbin/dnsmasq") != 0) {
        std::puts("dnsmasq is not installed (Debian package dnsmasq-base); skipped");
        std::exit(77);
    }
    // Nodes 1..4 run troupe-node, node 5 the DNS server; every node's
    // resolv.conf names it (netlab resolv), nothing else discovers members.
    lab l(5);
    const auto hosts = l.dir() / "hosts";
    auto publish = [&](const std::vector<int>& listed) {
        std::ofstream out(hosts, std::ios::trunc);
        for (int i : listed) {
            out << l.addr(i) << " troupe.lab\n";
        }
    };
    publish({1, 2});
    child_process dns = child_process::spawn(l.in_node(
        5, {"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
            "--user=root", "--bind-interfaces", "--listen-address=" + l.addr(5), "--port=53",
            "--addn-hosts=" + hosts.string(), "--local-ttl=0", "--log-facility=-"}));
    auto reload = [&] { dns.signal(SIGHUP); }; // dnsmasq reads its hosts files again
    std::map<int, node_options> o;
    for (int i : range(1, 4)) {
        REQUIRE(run({TROUPE_NETLAB, "resolv", l.name(), std::to_string(i), l.addr(5)}).code == 0);
        o[i].multicast = false;
        o[i].sets = {"membership.dns.name=troupe.lab", "membership.dns.interval=200ms"};
    }
    auto dns_stats = [&](int i) { return l.at(i).stats()["membership"]["dns"]; };
    auto listed = [&](int i, std::uint64_t n) { return dns_stats(i).value("listed", std::uint64_t{0}) == n; };

    l.start({1, 2}, o);
    {
        const bool found = l.wait_for([&] { return all_see(l, {1, 2}, names({1, 2})); }, 60s, 300ms);
        INFO(views(l, {1, 2}) << dns_stats(1).dump());
        REQUIRE(found);
    }
    // Scale-out: two more records, two more members. n1 lists them from DNS
    // (not only from their dialling in).
    publish({1, 2, 3, 4});
    reload();
    l.start({3, 4}, o);
    {
        const bool grown = l.wait_for(
            [&] { return all_see(l, range(1, 4), names(range(1, 4))) && listed(1, 4) && listed(2, 4); }, 60s, 300ms);
        INFO(views(l, range(1, 4)) << dns_stats(1).dump());
        REQUIRE(grown);
    }
    // Scale-in: n4 stops and its record goes; once it is gone, nobody keeps dialling it.
    l.forget(4);
    {
        const bool gone = l.wait_for([&] { return all_show(l, range(1, 3), "n4", "gone"); }, 60s, 300ms);
        INFO(views(l, range(1, 3)));
        REQUIRE(gone);
    }
    publish({1, 2, 3});
    reload();
    {
        const bool dropped = l.wait_for(
            [&] { return listed(1, 3) && dns_stats(1).value("dropped", std::uint64_t{0}) >= 1; }, 30s, 300ms);
        INFO(dns_stats(1).dump());
        CHECK(dropped);
    }
    // A record that goes while its member is alive: verified, so it stays.
    publish({1, 2});
    reload();
    REQUIRE(l.wait_for([&] { return listed(1, 2); }, 30s, 300ms));
    // n4 stays listed as gone; n1..n3 alive everywhere.
    const auto three = names(range(1, 3));
    auto three_alive = [&] {
        return std::all_of(three.begin(), three.end(),
                           [&](const std::string& m) { return all_show(l, range(1, 3), m, "alive"); });
    };
    l.idle(1s);
    {
        INFO(views(l, range(1, 3)));
        CHECK(three_alive());
    }
    // The DNS server stops: lookups fail, the last answer stands, nobody is dropped.
    const auto failures = dns_stats(1).value("failures", std::uint64_t{0});
    dns.signal(SIGKILL);
    REQUIRE(dns.wait(5s));
    const bool failing = l.wait_for(
        [&] { return dns_stats(1).value("failures", std::uint64_t{0}) > failures; }, 30s, 300ms);
    CHECK(failing);
    INFO(views(l, range(1, 3)) << dns_stats(1).dump());
    CHECK(three_alive());
    CHECK(listed(1, 2));
}
