// SPDX-License-Identifier: Apache-2.0
// troupe-bench reconcile: a healed partition (issue 11). Three member processes,
// each a channel and one delta manager (async), run one per node namespace of a
// tools/netlab lab, so that real TCP crosses a real bridge. This process drives
// them through their stdin and cuts and heals node 1's link: {m1} | {m2, m3}.
// Each phase runs on fresh members and prints one JSON line:
//
//   little_changed  m1 makes --sessions sessions of --size bytes, and they are
//                   replicated to all three. m1 is cut off. While apart, m2 rewrites
//                   --changed of them (a fraction) and m1 makes as many new ones.
//                   m1 only creates because it sees a minority, so a request for an
//                   existing session there waits for the others (delta
//                   reconciliation, case 8). Then the link heals.
//   all_changed     nothing is shared: while apart, each side makes --sessions new
//                   sessions. Then the link heals, and every copy has to cross.
//
// The clock starts at the view merge: the first "alive" event, on any node, about
// a member of the other side. It stops when the last node is done: it holds the
// expected number of sessions, has finished a digest exchange with every member
// of the other side, and has none in progress and no copy still awaited.
// The copies are then compared (id, version, attribute bytes) on all three nodes.
//
// Reported:
//  - converge_ms (target <= 1000);
//  - wire_bytes: the members' outbound streams, frames included, in that window;
//  - digest_bytes: the digest chunks the managers sent, and copy_bytes: the
//    whole copies they sent in answer to fetches (the managers' own counters);
//  - digest_fraction: digest_bytes / (digest exchanges x data held per node),
//    which answers "digests must be a small fraction of the data when little changed".
//
// Exits 1 when the copies are not identical at the end or a node did not converge
// within --timeout (a slow convergence is only reported: within_target).
// Needs root, because it uses network namespaces. Without root it prints a "skipped"
// line and exits 77, as the lab tests do. The lab is destroyed when the run ends,
// including after a failure. A run killed by SIGKILL leaves it behind; the first log
// line names the lab and the command that removes it.
//
// Roles: `_reconcile_member` (hidden) is one member process.
#include "bench_util.hpp"
#include "common/child_process.hpp"
#include "netlab_lab.hpp"
#include "session_member.hpp"

#include <troupe/troupe.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace troupe::bench {

int reconcile_main(flag_parser& flags);
int reconcile_member_main(flag_parser& flags);

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const std::string bench_context = "bench-reconcile";
constexpr auto ready_timeout = 60s;
constexpr auto view_timeout = 60s;    ///< the failure detector removes (or readmits) the other side
constexpr auto settle_timeout = 120s; ///< replication settles before the cut, and within a side during it
constexpr std::uint16_t base_port = 4000; ///< a namespace per node: the port is free in each
constexpr std::size_t member_count = 3;   ///< {m1} | {m2, m3}: issue 11's three nodes

struct reconcile_options {
    std::size_t sessions = 10000;
    std::size_t size = 1024;
    double changed = 0.01; ///< little_changed: the fraction rewritten on one side and new on the other
    bool little_changed = true;
    bool all_changed = true;
    std::uint32_t io_threads = 1;
    std::int64_t timeout_ms = 30000; ///< from arming to every node done, at most
    std::uint32_t poll_ms = 2;       ///< a member checks whether it is done this often
    std::string netlab = TROUPE_NETLAB;
    std::string cpus;
};

// ---------------------------------------------------------------------------
// Member role

conf::cluster_config member_config(const std::string& cluster, const std::string& node, const std::string& address,
                                   std::uint16_t port, std::uint32_t io_threads,
                                   const std::vector<conf::host_port>& peers) {
    conf::cluster_config c;
    c.cluster.name = cluster;
    c.cluster.node = node;
    c.receiver.address = address; // the node's lab address
    c.receiver.port = port;
    c.receiver.auto_bind = 1;
    c.receiver.threads = io_threads;
    c.admin.enabled = false;
    c.logging.level = "warn";
    // Static members, checked with TCP pings: after the cut they are removed, and
    // after the heal they are readmitted, by the real failure detector.
    c.membership.multicast.enabled = false;
    c.membership.static_members = peers;
    // 10,000 sessions of 1 KiB are created as fast as possible. Senders wait for room in
    // the queue instead of failing.
    c.sender.block_timeout = std::chrono::milliseconds(30000);
    auto diagnostics = conf::validate(c);
    if (!diagnostics.empty()) {
        throw conf::config_error(std::move(diagnostics));
    }
    return c;
}

managers::manager_config manager_settings() {
    managers::manager_config c;
    c.type = "delta";
    c.context = bench_context;
    c.send_options = engine::send_options::async;
    c.filter = "";
    c.route_rewrite = false; // sessions are followed by id from member to member
    c.max_inactive = std::chrono::seconds(3600); // nothing expires during a run
    c.notify_listeners_on_replication = false;
    return c;
}

/// Bytes written on every outbound member stream so far (frames included),
/// from the channel's statistics (GET /stats "peers").
std::uint64_t stream_bytes_out(const engine::channel& c) {
    const auto j = json::parse(c.stats_json());
    std::uint64_t sum = 0;
    for (const auto& p : j.at("peers")) {
        sum += p.value("bytes_out", std::uint64_t{0});
    }
    return sum;
}

/// The first "alive" event about each member of the other side after arming.
struct merge_watch {
    std::mutex mutex;
    bool armed = false;
    std::set<std::string> across;
    std::map<std::string, std::int64_t> alive_ns; ///< by member name
};

/// What the watcher thread found. Read only after it has been joined.
struct watch_result {
    bool converged = false;
    std::int64_t converged_ns = 0;
    json stats;           ///< the manager's statistics, when it was done (or gave up)
    std::uint64_t bytes_out = 0;
};

struct member_state {
    std::unique_ptr<engine::channel> channel;
    std::unique_ptr<managers::session_manager> manager;
    std::shared_ptr<merge_watch> merge = std::make_shared<merge_watch>();
    json base_stats;
    std::uint64_t base_bytes_out = 0;
    std::thread watcher;
    watch_result result;
};

json fill(managers::session_manager& m, const json& cmd) {
    const auto count = cmd.at("count").get<std::size_t>();
    const auto data = payload(cmd.at("size").get<std::size_t>(), 1);
    const auto t0 = now_ns();
    for (std::size_t i = 0; i < count; ++i) {
        auto r = m.begin_request("", "/bench");
        r.session(true)->set("data", data);
        r.end(); // a dropped scope would not wait for the acks
    }
    return {{"done", true}, {"seconds", static_cast<double>(now_ns() - t0) / 1e9}};
}

/// Rewrites the 1 KiB attribute of the first `count` sessions, in id order, one
/// request each (each is one version step).
json rewrite(managers::session_manager& m, const json& cmd) {
    auto ids = m.session_ids();
    std::sort(ids.begin(), ids.end());
    ids.resize(std::min(ids.size(), cmd.at("count").get<std::size_t>()));
    auto data = payload(cmd.at("size").get<std::size_t>(), 2);
    std::uint64_t missing = 0;
    std::uint64_t failures = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        auto r = m.begin_request(ids[i], "/bench");
        auto* s = r.session();
        if (s == nullptr) {
            ++missing;
            continue;
        }
        data[i % data.size()] = static_cast<std::uint8_t>(i);
        s->set("data", data);
        boost::system::error_code ec;
        if (r.end(ec); ec) {
            ++failures;
        }
    }
    return {{"done", true}, {"rewritten", ids.size() - missing}, {"missing", missing}, {"failures", failures}};
}

/// "alive": members alive in this node's view; "in_view": alive or suspect
/// (a suspect is still being verified, not removed yet).
json view(const member_state& st) {
    json alive = json::array();
    json in_view = json::array();
    for (const auto& m : st.channel->members()) {
        in_view.push_back(m.name);
        if (m.state == membership::member_state::alive) {
            alive.push_back(m.name);
        }
    }
    return {{"done", true}, {"alive", alive}, {"in_view", in_view}, {"sessions", st.manager->size()}};
}

std::uint64_t fnv1a(std::uint64_t h, const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/// Every valid session's id, version and attributes, in id order, as one hash:
/// equal on two nodes means that their copies are identical.
json fingerprint(const managers::session_manager& m) {
    auto ids = m.session_ids();
    std::sort(ids.begin(), ids.end());
    std::uint64_t h = 14695981039346656037ull;
    std::uint64_t count = 0;
    for (const auto& id : ids) {
        const auto s = m.find(id);
        if (!s || !s->valid()) {
            continue;
        }
        ++count;
        const auto version = s->version();
        h = fnv1a(h, id.data(), id.size() + 1); // with the '\0': ids cannot run into what follows
        h = fnv1a(h, &version, sizeof version);
        for (const auto& [name, a] : s->attributes()) {
            h = fnv1a(h, name.data(), name.size() + 1);
            h = fnv1a(h, a.type.data(), a.type.size() + 1);
            h = fnv1a(h, a.bytes.data(), a.bytes.size());
        }
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return {{"done", true}, {"count", count}, {"hash", hex}};
}

/// Snapshots the counters and starts the watcher thread. The watcher polls until
/// this node is done (see the top of the file) or the deadline passes. The member
/// listener records the first "alive" event about each member in `across`.
json arm(member_state& st, const json& cmd) {
    if (st.watcher.joinable()) {
        throw std::runtime_error("already armed");
    }
    {
        std::lock_guard lock(st.merge->mutex);
        st.merge->across = cmd.at("across").get<std::set<std::string>>();
        st.merge->alive_ns.clear();
        st.merge->armed = true;
    }
    st.base_stats = json::parse(st.manager->stats_json());
    st.base_bytes_out = stream_bytes_out(*st.channel);
    st.result = {};
    const auto expect_sessions = cmd.at("expect_sessions").get<std::size_t>();
    const auto expect_completed = st.base_stats.at("reconciliation").at("completed").get<std::uint64_t>() +
                                  cmd.at("expect_completed").get<std::uint64_t>();
    const auto poll = std::chrono::milliseconds(cmd.at("poll_ms").get<std::uint32_t>());
    const auto deadline = now_ns() + cmd.at("timeout_ms").get<std::int64_t>() * 1'000'000;
    st.watcher = std::thread([&st, expect_sessions, expect_completed, poll, deadline] {
        while (now_ns() < deadline) {
            // size() is cheap. The statistics are read only once the count matches.
            if (st.manager->size() == expect_sessions) {
                const auto t = now_ns();
                const auto s = json::parse(st.manager->stats_json());
                const auto& rc = s.at("reconciliation");
                if (rc.at("completed").get<std::uint64_t>() >= expect_completed &&
                    rc.at("in_progress").get<std::uint64_t>() == 0 &&
                    s.at("replication").at("awaiting").get<std::uint64_t>() == 0) {
                    st.result.converged = true;
                    st.result.converged_ns = t;
                    break;
                }
            }
            std::this_thread::sleep_for(poll);
        }
        // Counters are read when this node is done, before later pings add to them.
        st.result.stats = json::parse(st.manager->stats_json());
        st.result.bytes_out = stream_bytes_out(*st.channel);
    });
    return {{"done", true}};
}

/// Waits for the watcher (bounded by arm's deadline) and reports.
json await_result(member_state& st) {
    if (!st.watcher.joinable()) {
        throw std::runtime_error("not armed");
    }
    st.watcher.join();
    std::map<std::string, std::int64_t> alive;
    {
        std::lock_guard lock(st.merge->mutex);
        st.merge->armed = false;
        alive = st.merge->alive_ns;
    }
    std::int64_t first = 0;
    std::int64_t last = 0;
    for (const auto& [name, t] : alive) {
        first = first == 0 ? t : std::min(first, t);
        last = std::max(last, t);
    }
    const auto& end = st.result.stats;
    auto counter = [&](const char* section, const char* key) {
        return end.at(section).at(key).get<std::uint64_t>() - st.base_stats.at(section).at(key).get<std::uint64_t>();
    };
    // The line marker is "done". Whether this node converged is "converged".
    return {{"done", true},
            {"converged", st.result.converged},
            {"converged_ns", st.result.converged_ns},
            {"merge_ns", first},
            {"last_merge_ns", last},
            {"merged_with", alive.size()},
            {"sessions", st.manager->size()},
            {"bytes_out", st.result.bytes_out - st.base_bytes_out},
            {"digest_bytes", counter("replication", "digest_bytes_sent")},
            {"copy_bytes", counter("replication", "full_copy_bytes_sent")},
            {"reconciles", counter("reconciliation", "completed")},
            {"abandoned", counter("reconciliation", "abandoned")},
            {"fetches", counter("reconciliation", "fetches")},
            {"conflicts", counter("reconciliation", "conflicts")},
            {"digest_entries_sent", counter("replication", "digest_entries_sent")},
            {"digest_entries_received", counter("replication", "digest_entries_received")},
            {"full_copies_received", counter("replication", "full_copies_received")}};
}

} // namespace

int reconcile_member_main(flag_parser& flags) {
    std::size_t index = 0;
    std::string cluster;
    std::string address;
    std::uint16_t port = 0;
    pid_t parent = 0;
    std::uint32_t io_threads = 1;
    std::vector<conf::host_port> peers;
    while (flags.next()) {
        if (flags.is("--index")) {
            index = flags.integer<std::size_t>(1, 1000);
        } else if (flags.is("--cluster")) {
            cluster = flags.value();
        } else if (flags.is("--address")) {
            address = flags.value();
        } else if (flags.is("--port")) {
            port = flags.integer<std::uint16_t>(1, 65535);
        } else if (flags.is("--parent")) {
            parent = flags.integer<pid_t>(1, INT32_MAX);
        } else if (flags.is("--io-threads")) {
            io_threads = flags.integer<std::uint32_t>(1, 64);
        } else if (flags.is("--peer")) {
            peers.push_back(parse_peer(flags.value()));
        } else {
            flags.unknown();
        }
    }
    if (cluster.empty() || address.empty() || index == 0 || port == 0 || parent == 0) {
        throw usage_error("_reconcile_member: --cluster, --address, --port, --index and --parent are required");
    }
    // netlab exec execs (bash, then ip netns exec), so our parent is troupe-bench itself.
    die_with_parent(parent);

    member_state st;
    st.channel = std::make_unique<engine::channel>(
        member_config(cluster, "m" + std::to_string(index), address, port, io_threads, peers));
    st.channel->add_member_listener([merge = st.merge](const membership::member& m) {
        if (m.state != membership::member_state::alive) {
            return;
        }
        const auto t = now_ns();
        std::lock_guard lock(merge->mutex);
        if (merge->armed && merge->across.count(m.name) > 0) {
            merge->alive_ns.try_emplace(m.name, t);
        }
    });
    st.channel->start();
    st.manager = managers::make_manager(*st.channel, manager_settings());
    emit_line({{"ready", true}, {"name", st.channel->self().name}, {"port", st.channel->port()}});

    std::string line;
    while (std::getline(std::cin, line)) {
        const auto cmd = json::parse(line, nullptr, false);
        if (!cmd.is_object()) {
            emit_line({{"done", true}, {"error", "not JSON"}});
            continue;
        }
        const auto what = cmd.value("cmd", "");
        json reply;
        try {
            if (what == "quit") {
                break;
            } else if (what == "fill") {
                reply = fill(*st.manager, cmd);
            } else if (what == "rewrite") {
                reply = rewrite(*st.manager, cmd);
            } else if (what == "view") {
                reply = view(st);
            } else if (what == "fingerprint") {
                reply = fingerprint(*st.manager);
            } else if (what == "arm") {
                reply = arm(st, cmd);
            } else if (what == "await") {
                reply = await_result(st);
            } else {
                reply = {{"done", true}, {"error", "unknown command " + what}};
            }
        } catch (const std::exception& e) {
            reply = {{"done", true}, {"error", e.what()}};
        }
        emit_line(reply);
    }
    if (st.watcher.joinable()) {
        st.watcher.join(); // bounded by arm's deadline
    }
    st.manager->stop();
    st.manager.reset();
    st.channel->stop();
    return 0;
}

namespace {

// ---------------------------------------------------------------------------
// Driver

/// A member process plus the questions this scenario asks it.
struct reconcile_member : member_process {
    std::set<std::string> alive() { return ask({{"cmd", "view"}}).at("alive").get<std::set<std::string>>(); }
    std::set<std::string> in_view() { return ask({{"cmd", "view"}}).at("in_view").get<std::set<std::string>>(); }
    std::size_t sessions() { return ask({{"cmd", "view"}}).at("sessions").get<std::size_t>(); }
};

/// Polls `probe` every 50 ms until it holds or `limit` passes.
template <class Probe>
bool wait_until(std::chrono::milliseconds limit, Probe&& probe) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!probe()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

/// The members hold `count` sessions each, with identical copies.
bool identical(std::vector<reconcile_member*> members, std::size_t count) {
    std::optional<json> first;
    for (auto* m : members) {
        const auto f = m->ask({{"cmd", "fingerprint"}});
        if (f.at("count").get<std::size_t>() != count || (first && f.at("hash") != first->at("hash"))) {
            return false;
        }
        first = f;
    }
    return true;
}

void require(bool ok, const std::string& what) {
    if (!ok) {
        throw std::runtime_error(what);
    }
}

enum class phase { little_changed, all_changed };

json run_phase(const reconcile_options& o, const netlab_lab& lab, phase p, std::size_t round) {
    const bool little = p == phase::little_changed;
    const auto port = static_cast<std::uint16_t>(base_port + round); // a fresh port for each phase's members
    const std::string cluster = "bench-reconcile-" + std::to_string(::getpid()) + "-" + std::to_string(round);
    std::vector<std::string> addrs;
    for (std::size_t i = 1; i <= member_count; ++i) {
        addrs.push_back(lab.addr(i));
    }
    // All three start at once. Each lists all three (itself included).
    std::vector<reconcile_member> members;
    for (std::size_t i = 1; i <= member_count; ++i) {
        std::vector<std::string> cmd{own_path(), "_reconcile_member", "--index", std::to_string(i),
                                     "--cluster", cluster, "--address", addrs[i - 1], "--port", std::to_string(port),
                                     "--parent", std::to_string(::getpid()), "--io-threads", std::to_string(o.io_threads)};
        for (const auto& a : addrs) {
            cmd.push_back("--peer");
            cmd.push_back(a + ":" + std::to_string(port));
        }
        members.push_back({{tools::child_process::spawn(lab.in_node(i, cmd), /*pipe_stdin=*/true), "m" + std::to_string(i), 0, {}}});
    }
    for (auto& m : members) {
        require(await_json(m.process, "ready", ready_timeout).has_value(),
                m.name + " (pid " + std::to_string(m.process.pid()) + ") did not start");
    }
    auto& a = members[0]; // the cut-off side
    auto& b = members[1];
    auto& c = members[2];
    require(wait_until(view_timeout, [&] {
                return a.alive() == std::set<std::string>{"m2", "m3"} && b.alive() == std::set<std::string>{"m1", "m3"} &&
                       c.alive() == std::set<std::string>{"m1", "m2"};
            }),
            "the three members did not see each other");

    const std::size_t k = little ? std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(
                                                               static_cast<double>(o.sessions) * o.changed)))
                                 : o.sessions;
    if (little) {
        a.ask({{"cmd", "fill"}, {"count", o.sessions}, {"size", o.size}});
        require(wait_until(settle_timeout, [&] { return identical({&a, &b, &c}, o.sessions); }),
                "the sessions made before the cut did not reach every member");
    }

    spdlog::info("{}: cutting m1 off", little ? "little_changed" : "all_changed");
    lab.cut(1);
    // Wait until each side has *removed* the other (gone, not suspect). That makes
    // the heal a re-admission on both sides (reconciliation, case 4). A suspect
    // is still in view: healing while it is verified would make no re-admission.
    require(wait_until(view_timeout, [&] {
                return a.in_view().empty() && b.in_view() == std::set<std::string>{"m3"} &&
                       c.in_view() == std::set<std::string>{"m2"};
            }),
            "the sides did not remove each other after the cut");

    json rewritten;
    if (little) {
        rewritten = b.ask({{"cmd", "rewrite"}, {"count", k}, {"size", o.size}});
        a.ask({{"cmd", "fill"}, {"count", k}, {"size", o.size}});
    } else {
        a.ask({{"cmd", "fill"}, {"count", k}, {"size", o.size}});
        b.ask({{"cmd", "fill"}, {"count", k}, {"size", o.size}});
    }
    const std::size_t side = little ? o.sessions : k; // sessions on each side of the cut
    const std::size_t m1_holds = little ? o.sessions + k : k;
    require(wait_until(settle_timeout, [&] { return identical({&b, &c}, side) && a.sessions() == m1_holds; }),
            "the majority side did not settle during the cut");
    const std::size_t expect = little ? o.sessions + k : 2 * k;

    // m1 exchanges digests with m2 and with m3; each of those exchanges with m1.
    const std::int64_t budget_ms = o.timeout_ms;
    a.ask({{"cmd", "arm"}, {"across", json::array({"m2", "m3"})}, {"expect_sessions", expect}, {"expect_completed", 2},
           {"poll_ms", o.poll_ms}, {"timeout_ms", budget_ms}});
    for (auto* m : {&b, &c}) {
        m->ask({{"cmd", "arm"}, {"across", json::array({"m1"})}, {"expect_sessions", expect}, {"expect_completed", 1},
                {"poll_ms", o.poll_ms}, {"timeout_ms", budget_ms}});
    }
    const auto heal_ns = now_ns();
    lab.heal(1);
    std::vector<json> results;
    for (auto& m : members) {
        results.push_back(m.ask({{"cmd", "await"}}, std::chrono::milliseconds(budget_ms) + 30s));
    }
    const bool same = identical({&a, &b, &c}, expect);

    std::int64_t merge_ns = 0;
    std::int64_t last_merge_ns = 0;
    std::int64_t converged_ns = 0;
    bool converged = true;
    std::uint64_t wire_bytes = 0;
    std::uint64_t reconciles = 0;
    std::uint64_t digest_entries = 0;
    std::uint64_t fetches = 0;
    std::uint64_t conflicts = 0;
    std::uint64_t abandoned = 0;
    std::uint64_t digest_bytes = 0;
    std::uint64_t copy_bytes = 0;
    json per_member = json::array();
    for (std::size_t i = 0; i < results.size(); ++i) {
        const auto& r = results[i];
        const auto m = r.at("merge_ns").get<std::int64_t>();
        if (m != 0) {
            merge_ns = merge_ns == 0 ? m : std::min(merge_ns, m);
        }
        last_merge_ns = std::max(last_merge_ns, r.at("last_merge_ns").get<std::int64_t>());
        converged = converged && r.at("converged").get<bool>();
        converged_ns = std::max(converged_ns, r.at("converged_ns").get<std::int64_t>());
        wire_bytes += r.at("bytes_out").get<std::uint64_t>();
        reconciles += r.at("reconciles").get<std::uint64_t>();
        digest_entries += r.at("digest_entries_sent").get<std::uint64_t>();
        fetches += r.at("fetches").get<std::uint64_t>();
        conflicts += r.at("conflicts").get<std::uint64_t>();
        abandoned += r.at("abandoned").get<std::uint64_t>();
        digest_bytes += r.at("digest_bytes").get<std::uint64_t>();
        copy_bytes += r.at("copy_bytes").get<std::uint64_t>();
        per_member.push_back({{"name", members[i].name},
                              {"converged", r.at("converged")},
                              {"done_ms", r.at("converged").get<bool>() && merge_ns != 0
                                              ? json(round_to(static_cast<double>(r.at("converged_ns").get<std::int64_t>() - m) / 1e6, 1))
                                              : json(nullptr)},
                              {"bytes_out", r.at("bytes_out")},
                              {"reconciles", r.at("reconciles")},
                              {"fetches", r.at("fetches")},
                              {"digest_entries_sent", r.at("digest_entries_sent")},
                              {"full_copies_received", r.at("full_copies_received")}});
    }
    const double data_bytes = static_cast<double>(expect) * static_cast<double>(o.size); // held by each node
    // Copies that must cross: m1 needs the k that the other side has (rewritten or new),
    // and m2 and m3 each need m1's k new ones.
    const double needed_bytes = 3.0 * static_cast<double>(k) * static_cast<double>(o.size);
    const bool ok = converged && merge_ns != 0;
    const double converge_ms = ok ? static_cast<double>(converged_ns - merge_ns) / 1e6 : -1;
    json out{{"scenario", "reconcile"},
             {"phase", little ? "little_changed" : "all_changed"},
             {"members", member_count},
             {"cut", "{m1} | {m2, m3}"},
             {"network", "netlab"},
             {"options", "async"},
             {"size", o.size},
             {"sessions_per_side", side},
             {"changed", little ? json(k) : json(nullptr)},
             {"sessions_after", expect},
             {"identical", same},
             {"converged", converged},
             {"converge_ms", ok ? json(round_to(converge_ms, 1)) : json(nullptr)},
             {"target_ms", 1000},
             {"within_target", ok && same && converge_ms <= 1000.0},
             {"heal_to_merge_ms", merge_ns != 0 ? json(round_to(static_cast<double>(merge_ns - heal_ns) / 1e6, 1)) : json(nullptr)},
             {"merge_spread_ms", merge_ns != 0 ? json(round_to(static_cast<double>(last_merge_ns - merge_ns) / 1e6, 1)) : json(nullptr)},
             {"poll_ms", o.poll_ms},
             {"wire_bytes", wire_bytes},
             {"digest_bytes", digest_bytes},
             {"copy_bytes", copy_bytes},
             {"data_bytes_per_node", static_cast<std::uint64_t>(data_bytes)},
             {"needed_copy_bytes", static_cast<std::uint64_t>(needed_bytes)},
             {"digest_exchanges", reconciles},
             {"digest_entries", digest_entries},
             {"digest_fraction", reconciles ? json(round_to(static_cast<double>(digest_bytes) /
                                                                (static_cast<double>(reconciles) * data_bytes), 4))
                                            : json(nullptr)},
             {"wire_to_needed", round_to(static_cast<double>(wire_bytes) / needed_bytes, 2)},
             {"fetches", fetches},
             {"conflicts", conflicts},
             {"abandoned", abandoned},
             {"per_member", per_member}};
    if (little) {
        out["rewrite"] = rewritten;
    }
    for (auto& m : members) {
        m.process.write_line(json{{"cmd", "quit"}}.dump());
    }
    for (auto& m : members) {
        m.process.close_stdin();
        if (m.process.wait(30s) != 0) {
            spdlog::warn("member {} (pid {}) did not exit cleanly", m.name, m.process.pid());
        }
    }
    return out;
}

} // namespace

int reconcile_main(flag_parser& flags) {
    reconcile_options o;
    while (flags.next()) {
        if (flags.is("--sessions")) {
            o.sessions = flags.integer<std::size_t>(1, 10'000'000);
        } else if (flags.is("--size")) {
            o.size = flags.integer<std::size_t>(1, std::size_t{1} << 20);
        } else if (flags.is("--changed")) {
            o.changed = flags.real(1e-6, 1.0);
        } else if (flags.is("--timeout")) {
            o.timeout_ms = static_cast<std::int64_t>(flags.real(1, 3600) * 1000);
        } else if (flags.is("--poll-ms")) {
            o.poll_ms = flags.integer<std::uint32_t>(1, 1000);
        } else if (flags.is("--io-threads")) {
            o.io_threads = flags.integer<std::uint32_t>(1, 64);
        } else if (flags.is("--netlab")) {
            o.netlab = flags.value();
        } else if (flags.is("--skip")) {
            const auto what = flags.value();
            if (what == "little_changed") {
                o.little_changed = false;
            } else if (what == "all_changed") {
                o.all_changed = false;
            } else {
                throw usage_error("--skip: little_changed or all_changed, got '" + what + "'");
            }
        } else if (flags.is("--cpus")) {
            o.cpus = flags.value();
            parse_cpu_list(o.cpus);
        } else {
            flags.unknown();
        }
    }
    if (::geteuid() != 0) {
        emit_line({{"scenario", "reconcile"}, {"skipped", "needs root: the partition is a tools/netlab link cut"}});
        return 77;
    }
    if (!o.cpus.empty()) {
        apply_cpus(o.cpus); // inherited through netlab exec by every member
    }
    netlab_lab lab(o.netlab, member_count, "rb");
    std::size_t round = 0;
    bool correct = true;
    for (const auto p : {phase::little_changed, phase::all_changed}) {
        if (p == phase::little_changed ? !o.little_changed : !o.all_changed) {
            continue;
        }
        const auto out = run_phase(o, lab, p, round++);
        emit_line(out);
        // Slow is reported (within_target); copies that differ are a failure.
        correct = correct && out.at("identical").get<bool>() && out.at("converged").get<bool>();
    }
    return correct ? 0 : 1;
}

} // namespace troupe::bench
