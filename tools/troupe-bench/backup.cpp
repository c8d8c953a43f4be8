// SPDX-License-Identifier: Apache-2.0
// troupe-bench backup: the backup manager beside the delta manager, members on
// 127.0.0.1, each a channel plus one manager (sync) driven over stdin. One JSON
// line per measurement:
//
//   cost     for 2, 4 and 8 members (--cost-members): the first member serves
//            --requests requests (each rewrites a --size attribute of one of its
//            --sessions sessions); messages and bytes every member sent per
//            request (the channels' messages_out/bytes_out), requests/s, p50/p99,
//            and each member's CPU per request (getrusage). Backup should stay
//            flat as the cluster grows, delta grow with it. --callers N: N
//            request threads; --pin-primary: the serving member alone on CPU 0.
//   fetch    (backup) the first member serves sessions the second one made: the
//            fetch-on-miss latency (begin_request) and the whole request's, p50
//            and p99, beside the raw loopback round trip measured in the run.
//   restore  (backup) --restore-sessions spread over --members members; the last
//            one is SIGKILLed; milliseconds until every survivor has dropped it
//            and every session has a primary and a second copy again.
//   memory   --fill sessions spread over --members members: resident set added
//            per member, against delta's in the same run.
//
// --lab: every member in its own tools/netlab namespace, at its lab address
// (root; exits 77 otherwise). The raw round trip stays on the host's loopback.
//
// Roles: `_backup_member` (hidden) is one member process.
#include "bench_util.hpp"
#include "common/percentiles.hpp"
#include "netlab_lab.hpp"
#include "raw.hpp"
#include "session_member.hpp"

#include <troupe/troupe.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace troupe::bench {

int backup_bench_main(flag_parser& flags);
int backup_member_main(flag_parser& flags);

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const std::string context = "bench";

struct backup_options {
    std::vector<std::string> managers{"delta", "backup"};
    std::vector<std::size_t> cost_members{2, 4, 8};
    std::size_t members = 4;          ///< members of the fetch, restore and memory clusters
    std::size_t size = 1024;          ///< attribute bytes per session
    std::uint64_t requests = 20000;   ///< measured requests of the cost phase
    std::uint64_t warmup = 2000;
    std::size_t sessions = 1000;      ///< sessions the cost phase's requests go round
    std::size_t callers = 1;          ///< cost phase: request threads on the first member
    bool pin_primary = false;         ///< the first member alone on CPU 0, everything else on CPU 1
    std::size_t fetches = 2000;       ///< sessions fetched in the fetch phase
    std::size_t restore_sessions = 10000;
    std::size_t fill = 100000;        ///< sessions of the memory phase, over all members
    bool cost = true;
    bool fetch = true;
    bool restore = true;
    bool memory = true;
    bool with_raw = true;
    std::string cpus;
    std::string netlab = TROUPE_NETLAB;
    bool in_lab = false;               ///< --lab: one member per tools/netlab namespace
    const netlab_lab* lab = nullptr;   ///< set while the lab exists
};

std::vector<std::size_t> parse_counts(const std::string& list, const char* flag) {
    std::vector<std::size_t> out;
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        std::size_t used = 0;
        unsigned long n = 0;
        try {
            n = std::stoul(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != item.size() || n < 2 || n > 16) {
            throw usage_error(std::string(flag) + ": member counts 2..16, comma-separated; got '" + item + "'");
        }
        out.push_back(n);
    }
    if (out.empty()) {
        throw usage_error(std::string(flag) + ": at least one member count");
    }
    return out;
}

// ---------------------------------------------------------------------------
// Member role

struct timings {
    std::vector<std::int64_t> begin_ns; ///< begin_request (a fetch, for a session held elsewhere)
    std::vector<std::int64_t> total_ns; ///< the whole request, end() included
};

/// CPU time this process has used, user and system, microseconds.
std::int64_t cpu_us() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const auto us = [](const timeval& v) { return std::int64_t{v.tv_sec} * 1'000'000 + v.tv_usec; };
    return us(u.ru_utime) + us(u.ru_stime);
}

json summarize(timings& t) {
    const auto b = tools::summarize_ns(t.begin_ns);
    const auto r = tools::summarize_ns(t.total_ns);
    return {{"begin_p50_us", b.p50_us}, {"begin_p99_us", b.p99_us}, {"p50_us", r.p50_us},
            {"p99_us", r.p99_us},       {"max_us", r.max_us}};
}

class member {
public:
    member(std::unique_ptr<engine::channel> channel, std::unique_ptr<managers::session_manager> manager)
        : channel_(std::move(channel)), manager_(std::move(manager)) {}

    ~member() {
        manager_->stop();
        manager_.reset();
        channel_->stop();
    }

    json answer(const json& cmd) {
        const auto what = cmd.value("cmd", "");
        if (what == "fill") {
            return fill(cmd);
        }
        if (what == "requests") {
            return requests(cmd);
        }
        if (what == "fetch") {
            return fetch(cmd);
        }
        if (what == "stats") {
            return {{"done", true},
                    {"manager", json::parse(manager_->stats_json())},
                    {"channel", json::parse(channel_->stats_json())["channel"]},
                    {"members", channel_->members().size()},
                    {"size", manager_->size()},
                    {"cpu_us", cpu_us()}};
        }
        if (what == "rss") {
            return {{"done", true}, {"rss_kib", rss_kib()}, {"size", manager_->size()}};
        }
        return {{"done", true}, {"error", "unknown command " + what}};
    }

private:
    json fill(const json& cmd) {
        const auto count = cmd.at("count").get<std::size_t>();
        const auto data = payload(cmd.at("size").get<std::size_t>(), 1);
        json ids = json::array();
        const auto t0 = now_ns();
        std::uint64_t failures = 0;
        for (std::size_t i = 0; i < count; ++i) {
            boost::system::error_code ec; // counted, never thrown: a member must not die of a refusal
            auto r = manager_->begin_request({"", "/bench", {}}, ec);
            r.session(true)->set("data", data);
            own_.push_back(r.session_id());
            if (cmd.value("ids", false)) {
                ids.push_back(own_.back());
            }
            const auto res = r.end(ec);
            failures += ec || (res.send && !res.send->ok()) ? 1 : 0;
        }
        return {{"done", true},
                {"seconds", static_cast<double>(now_ns() - t0) / 1e9},
                {"failures", failures},
                {"ids", ids}};
    }

    /// `count` requests (after `warmup`) from `callers` threads at once, each
    /// rewriting the payload of its own share of the sessions (no two callers
    /// share a session, so none waits for another's request).
    json requests(const json& cmd) {
        const auto count = cmd.at("count").get<std::uint64_t>();
        const auto warmup = cmd.at("warmup").get<std::uint64_t>();
        const auto callers = std::max<std::size_t>(1, cmd.value("callers", std::size_t{1}));
        if (own_.size() < callers) {
            return {{"done", true}, {"error", "requests: fill at least one session per caller first"}};
        }
        const auto size = cmd.at("size").get<std::size_t>();
        const auto share = own_.size() / callers;
        std::vector<timings> per(callers);
        std::atomic<std::uint64_t> failures{0};
        auto run = [&](std::uint64_t n, bool measured) {
            std::vector<std::thread> threads;
            for (std::size_t c = 0; c < callers; ++c) {
                threads.emplace_back([&, c] {
                    auto data = payload(size, 2 + c);
                    for (std::uint64_t i = c; i < n; i += callers) {
                        const auto t0 = now_ns();
                        boost::system::error_code ec; // unavailable or refused: counted, not thrown
                        auto r = manager_->begin_request({own_[c + callers * (i / callers % share)], "/bench", {}}, ec);
                        auto* s = r.session();
                        if (s == nullptr) {
                            failures.fetch_add(1);
                            continue;
                        }
                        data[i % data.size()] = static_cast<std::uint8_t>(i);
                        s->set("data", data);
                        const auto res = r.end(ec);
                        failures.fetch_add(ec || (res.send && !res.send->ok()) ? 1 : 0);
                        if (measured) {
                            per[c].total_ns.push_back(now_ns() - t0);
                        }
                    }
                });
            }
            for (auto& th : threads) {
                th.join();
            }
        };
        run(warmup, false);
        const auto start = now_ns();
        run(count, true);
        const auto end = now_ns();
        timings t;
        for (auto& one : per) {
            t.total_ns.insert(t.total_ns.end(), one.total_ns.begin(), one.total_ns.end());
        }
        auto out = summarize(t);
        out.update(
            {{"done", true}, {"failures", failures.load()}, {"seconds", static_cast<double>(end - start) / 1e9}});
        return out;
    }

    /// Serves one request for each id (sessions another member made): each
    /// begin_request fetches the session, and the request makes this member its
    /// primary.
    json fetch(const json& cmd) {
        timings t;
        std::uint64_t missing = 0;
        std::uint64_t failures = 0;
        for (const auto& id : cmd.at("ids")) {
            const auto t0 = now_ns();
            boost::system::error_code ec;
            auto r = manager_->begin_request({id.get<std::string>(), "/bench", {}}, ec);
            const auto t1 = now_ns();
            auto* s = r.session();
            if (s == nullptr || ec) {
                ++missing;
                continue;
            }
            s->set("touched", std::int64_t{1});
            const auto res = r.end();
            failures += res.send && !res.send->ok() ? 1 : 0;
            t.begin_ns.push_back(t1 - t0);
            t.total_ns.push_back(now_ns() - t0);
        }
        auto out = summarize(t);
        out.update({{"done", true}, {"missing", missing}, {"failures", failures}});
        return out;
    }

    std::unique_ptr<engine::channel> channel_;
    std::unique_ptr<managers::session_manager> manager_;
    std::vector<std::string> own_; ///< sessions this member made
};

// ---------------------------------------------------------------------------
// Driver

std::vector<member_process> start_cluster(const backup_options& o, const std::string& manager, std::size_t n,
                                          const std::string& tag) {
    const std::string cluster = "bench-backup-" + std::to_string(::getpid()) + "-" + tag;
    std::vector<member_process> members;
    std::vector<std::string> addresses;
    for (std::size_t i = 1; i <= n; ++i) {
        // In the lab, member i runs in namespace i at its lab address.
        addresses.push_back(o.lab ? o.lab->addr(i) : std::string("127.0.0.1"));
        std::vector<std::string> argv{o.lab ? own_path() : std::string(self_exe),
                                      "_backup_member", "--index",   std::to_string(i),
                                      "--cluster", cluster,          "--parent",  std::to_string(::getpid()),
                                      "--manager", manager,          "--wait-members", std::to_string(i - 1),
                                      "--address", addresses.back()};
        if (o.pin_primary) {
            argv.insert(argv.end(), {"--cpus", i == 1 ? "0" : "1"});
        }
        for (std::size_t k = 0; k < members.size(); ++k) {
            argv.push_back("--peer");
            argv.push_back(addresses[k] + ":" + std::to_string(members[k].port));
        }
        if (o.lab) {
            argv = o.lab->in_node(i, argv);
        }
        members.push_back(member_process::start(argv, "m" + std::to_string(i), 120s));
    }
    // Every member sees every other one before anything is measured.
    const auto deadline = now_ns() + 30'000'000'000;
    for (auto& m : members) {
        while (m.ask({{"cmd", "stats"}}).at("members").get<std::size_t>() + 1 < n) {
            if (now_ns() > deadline) {
                throw std::runtime_error(m.name + " did not see all " + std::to_string(n) + " members in 30 s");
            }
            std::this_thread::sleep_for(20ms);
        }
    }
    return members;
}

/// Each member fills its share of `total` sessions, all at once.
void fill_everywhere(std::vector<member_process>& members, std::size_t total, std::size_t size) {
    for (std::size_t i = 0; i < members.size(); ++i) {
        const auto share = total / members.size() + (i < total % members.size() ? 1 : 0);
        members[i].process.write_line(json{{"cmd", "fill"}, {"count", share}, {"size", size}}.dump());
    }
    for (auto& m : members) {
        auto reply = await_json(m.process, "done", 600s);
        if (!reply || reply->contains("error")) {
            throw std::runtime_error(m.name + " did not fill its sessions");
        }
    }
}

/// Each member's CPU time so far (microseconds), in member order.
std::vector<std::int64_t> cpu_of(std::vector<member_process>& members) {
    std::vector<std::int64_t> out;
    for (auto& m : members) {
        out.push_back(m.ask({{"cmd", "stats"}}).at("cpu_us").get<std::int64_t>());
    }
    return out;
}

std::uint64_t channel_sum(std::vector<member_process>& members, const char* key) {
    std::uint64_t sum = 0;
    for (auto& m : members) {
        sum += m.ask({{"cmd", "stats"}}).at("channel").at(key).get<std::uint64_t>();
    }
    return sum;
}

struct role_sums {
    std::uint64_t primary = 0;
    std::uint64_t backup = 0;
    std::uint64_t single_copy = 0;
    std::int64_t restore_last_ms = -1;
    bool all_saw = true; ///< every member lists `expected_members` others
};

role_sums roles(std::vector<member_process*> members, std::size_t expected_others) {
    role_sums r;
    for (auto* m : members) {
        const auto s = m->ask({{"cmd", "stats"}});
        const auto& b = s.at("manager").at("backup");
        r.primary += b.at("roles").at("primary").get<std::uint64_t>();
        r.backup += b.at("roles").at("backup").get<std::uint64_t>();
        r.single_copy += b.at("single_copy").get<std::uint64_t>();
        r.restore_last_ms = std::max(r.restore_last_ms, b.value("restore_last_ms", std::int64_t{-1}));
        r.all_saw = r.all_saw && s.at("members").get<std::size_t>() == expected_others;
    }
    return r;
}

/// Waits (bounded) until every session has one primary and a second copy.
bool settled(std::vector<member_process*> members, std::size_t others, std::uint64_t sessions,
             std::chrono::seconds limit) {
    const auto deadline = now_ns() + std::chrono::nanoseconds(limit).count();
    while (now_ns() < deadline) {
        const auto r = roles(members, others);
        if (r.all_saw && r.primary == sessions && r.single_copy == 0) {
            return true;
        }
        std::this_thread::sleep_for(5ms);
    }
    return false;
}

std::vector<member_process*> pointers(std::vector<member_process>& members, std::size_t count) {
    std::vector<member_process*> out;
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back(&members[i]);
    }
    return out;
}

json cost_phase(const backup_options& o, const std::string& manager, std::size_t n) {
    auto members = start_cluster(o, manager, n, manager + "-cost-" + std::to_string(n));
    members[0].ask({{"cmd", "fill"}, {"count", o.sessions}, {"size", o.size}});
    std::this_thread::sleep_for(500ms); // the batched locations of the new sessions go out
    const auto messages0 = channel_sum(members, "messages_out");
    const auto bytes0 = channel_sum(members, "bytes_out");
    const auto cpu0 = cpu_of(members);
    const auto r = members[0].ask({{"cmd", "requests"},
                                   {"count", o.requests},
                                   {"warmup", o.warmup},
                                   {"size", o.size},
                                   {"callers", o.callers}});
    const auto messages = channel_sum(members, "messages_out") - messages0;
    const auto bytes = channel_sum(members, "bytes_out") - bytes0;
    const auto cpu1 = cpu_of(members);
    member_process::quit_all(members);
    // CPU per request: what each node's own CPUs would bound when every node
    // runs on its own machine (here all share two cores, so requests/s also
    // measures how the processes share them).
    const double served = static_cast<double>(o.requests + o.warmup);
    const double primary_cpu_us = static_cast<double>(cpu1[0] - cpu0[0]) / served;
    double others_cpu_us = 0;
    for (std::size_t i = 1; i < cpu1.size(); ++i) {
        others_cpu_us += static_cast<double>(cpu1[i] - cpu0[i]) / served;
    }
    return {{"scenario", "backup"},
            {"phase", "cost"},
            {"manager", manager},
            {"options", "sync"},
            {"members", n},
            {"callers", o.callers},
            {"size", o.size},
            {"sessions", o.sessions},
            {"requests", o.requests},
            {"requests_per_sec", round_to(static_cast<double>(o.requests) / r.at("seconds").get<double>(), 1)},
            {"messages_per_request", round_to(static_cast<double>(messages) / served, 3)},
            {"bytes_per_request", round_to(static_cast<double>(bytes) / served, 1)},
            {"primary_cpu_us_per_request", round_to(primary_cpu_us, 1)},
            {"others_cpu_us_per_request", round_to(others_cpu_us, 1)},
            {"requests_per_primary_cpu_sec", round_to(1e6 / std::max(primary_cpu_us, 0.001), 1)},
            {"p50_us", r.at("p50_us")},
            {"p99_us", r.at("p99_us")},
            {"failures", r.at("failures")}};
}

json fetch_phase(const backup_options& o) {
    auto members = start_cluster(o, "backup", o.members, "fetch");
    const auto made = members[1].ask({{"cmd", "fill"}, {"count", o.fetches}, {"size", o.size}, {"ids", true}});
    // The first member learns where they live: locations go out batched every
    // access_batch_interval (1 s by default).
    std::this_thread::sleep_for(1500ms);
    const auto r = members[0].ask({{"cmd", "fetch"}, {"ids", made.at("ids")}});
    const auto stats = members[0].ask({{"cmd", "stats"}}).at("manager").at("backup").at("fetches");
    member_process::quit_all(members);
    json out{{"scenario", "backup"}, {"phase", "fetch"},       {"members", o.members},
             {"size", o.size},       {"sessions", o.fetches},  {"fetch_p50_us", r.at("begin_p50_us")},
             {"fetch_p99_us", r.at("begin_p99_us")},           {"request_p50_us", r.at("p50_us")},
             {"request_p99_us", r.at("p99_us")},               {"missing", r.at("missing")},
             {"failures", r.at("failures")},                   {"manager_fetches", stats}};
    if (o.with_raw) {
        out["raw"] = raw_summary(measure_raw(embedded_raw_options(o.size)));
    }
    return out;
}

json restore_phase(const backup_options& o) {
    auto members = start_cluster(o, "backup", o.members, "restore");
    fill_everywhere(members, o.restore_sessions, o.size);
    const auto all = pointers(members, members.size());
    if (!settled(all, members.size() - 1, o.restore_sessions, 120s)) {
        throw std::runtime_error("restore: the sessions did not settle with two copies each in 120 s");
    }
    auto& victim = members.back();
    const auto t0 = now_ns();
    victim.process.signal(SIGKILL);
    victim.process.wait(10s);
    const auto survivors = pointers(members, members.size() - 1);
    const bool ok = settled(survivors, members.size() - 2, o.restore_sessions, 60s);
    const auto ms = static_cast<double>(now_ns() - t0) / 1e6;
    const auto after = roles(survivors, members.size() - 2);
    members.pop_back();
    member_process::quit_all(members);
    return {{"scenario", "backup"},
            {"phase", "restore"},
            {"members", o.members},
            {"size", o.size},
            {"sessions", o.restore_sessions},
            {"restored", ok},
            {"kill_to_two_copies_ms", round_to(ms, 1)},
            {"manager_restore_last_ms", after.restore_last_ms},
            {"target_ms", 1000},
            {"single_copy_after", after.single_copy},
            {"primaries_after", after.primary}};
}

json memory_phase(const backup_options& o, const std::string& manager) {
    auto members = start_cluster(o, manager, o.members, manager + "-memory");
    std::vector<long> before;
    for (auto& m : members) {
        before.push_back(m.ask({{"cmd", "rss"}}).at("rss_kib").get<long>());
    }
    const auto t0 = now_ns();
    fill_everywhere(members, o.fill, o.size);
    // Settled: delta, when every member holds every session; backup, when every
    // session has its primary and its backup.
    bool ok = false;
    const auto deadline = now_ns() + 300'000'000'000;
    while (!ok && now_ns() < deadline) {
        if (manager == "backup") {
            ok = settled(pointers(members, members.size()), members.size() - 1, o.fill, 1s);
        } else {
            ok = true;
            for (auto& m : members) {
                ok = ok && m.ask({{"cmd", "rss"}}).at("size").get<std::size_t>() >= o.fill;
            }
            std::this_thread::sleep_for(20ms);
        }
    }
    const auto seconds = static_cast<double>(now_ns() - t0) / 1e9;
    long added = 0;
    json per_member = json::array();
    for (std::size_t i = 0; i < members.size(); ++i) {
        const auto kib = members[i].ask({{"cmd", "rss"}}).at("rss_kib").get<long>() - before[i];
        per_member.push_back(kib);
        added += kib;
    }
    member_process::quit_all(members);
    const double mean_kib = static_cast<double>(added) / static_cast<double>(o.members);
    return {{"scenario", "backup"},
            {"phase", "memory"},
            {"manager", manager},
            {"members", o.members},
            {"sessions", o.fill},
            {"size", o.size},
            {"settled", ok},
            {"fill_seconds", round_to(seconds, 2)},
            {"rss_added_kib_per_member", per_member},
            {"rss_added_mib_mean", round_to(mean_kib / 1024.0, 1)},
            {"bytes_per_session_per_member", round_to(mean_kib * 1024.0 / static_cast<double>(o.fill), 1)}};
}

} // namespace

int backup_member_main(flag_parser& flags) {
    std::size_t index = 0;
    std::string cluster;
    std::string manager = "backup";
    pid_t parent = 0;
    std::vector<conf::host_port> peers;
    std::string address = "127.0.0.1";
    std::size_t wait_members = 0;
    while (flags.next()) {
        if (flags.is("--index")) {
            index = flags.integer<std::size_t>(1, 1000);
        } else if (flags.is("--cluster")) {
            cluster = flags.value();
        } else if (flags.is("--parent")) {
            parent = flags.integer<pid_t>(1, INT32_MAX);
        } else if (flags.is("--manager")) {
            manager = flags.value();
        } else if (flags.is("--peer")) {
            peers.push_back(parse_peer(flags.value()));
        } else if (flags.is("--address")) {
            address = flags.value();
        } else if (flags.is("--cpus")) {
            apply_cpus(flags.value());
        } else if (flags.is("--wait-members")) {
            wait_members = flags.integer<std::size_t>(0, 1000);
        } else {
            flags.unknown();
        }
    }
    if (cluster.empty() || index == 0 || parent == 0) {
        throw usage_error("_backup_member: --cluster, --index and --parent are required");
    }
    die_with_parent(parent);

    auto channel = std::make_unique<engine::channel>(
        session_member_config(cluster, "m" + std::to_string(index), 1, address, peers));
    channel->start();
    const auto deadline = now_ns() + 30'000'000'000;
    while (channel->members().size() < wait_members && now_ns() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    managers::manager_config c;
    c.type = manager;
    c.context = context;
    c.send_options = engine::send_options::sync;
    c.filter = "";
    c.route_rewrite = false; // sessions are followed by id from member to member
    c.max_inactive = std::chrono::seconds(3600);
    c.state_transfer_timeout = std::chrono::milliseconds(300000);
    auto m = managers::make_manager(*channel, c);
    const auto port = channel->port();
    member self(std::move(channel), std::move(m));
    emit_line({{"ready", true}, {"port", port}});

    std::string line;
    while (std::getline(std::cin, line)) {
        const auto cmd = json::parse(line, nullptr, false);
        if (!cmd.is_object()) {
            emit_line({{"done", true}, {"error", "not JSON"}});
            continue;
        }
        if (cmd.value("cmd", "") == "quit") {
            break;
        }
        json reply;
        try {
            reply = self.answer(cmd);
        } catch (const std::exception& e) {
            reply = {{"done", true}, {"error", e.what()}};
        }
        emit_line(reply);
    }
    return 0;
}

int backup_bench_main(flag_parser& flags) {
    backup_options o;
    while (flags.next()) {
        if (flags.is("--members")) {
            o.members = flags.integer<std::size_t>(3, 16);
        } else if (flags.is("--cost-members")) {
            o.cost_members = parse_counts(flags.value(), "--cost-members");
        } else if (flags.is("--managers")) {
            const auto v = flags.value();
            if (v == "delta,backup" || v == "backup,delta") {
                o.managers = {"delta", "backup"};
            } else if (v == "delta" || v == "backup") {
                o.managers = {v};
            } else {
                throw usage_error("--managers: delta, backup or delta,backup; got '" + v + "'");
            }
        } else if (flags.is("--size")) {
            o.size = flags.integer<std::size_t>(1, std::size_t{1} << 20);
        } else if (flags.is("--requests")) {
            o.requests = flags.integer<std::uint64_t>(1, 100'000'000);
        } else if (flags.is("--warmup")) {
            o.warmup = flags.integer<std::uint64_t>(0, 100'000'000);
        } else if (flags.is("--sessions")) {
            o.sessions = flags.integer<std::size_t>(1, 10'000'000);
        } else if (flags.is("--fetches")) {
            o.fetches = flags.integer<std::size_t>(1, 1'000'000);
        } else if (flags.is("--restore-sessions")) {
            o.restore_sessions = flags.integer<std::size_t>(1, 10'000'000);
        } else if (flags.is("--fill")) {
            o.fill = flags.integer<std::size_t>(1, 10'000'000);
        } else if (flags.is("--no-raw")) {
            o.with_raw = false;
        } else if (flags.is("--skip")) {
            const auto what = flags.value();
            if (what == "cost") {
                o.cost = false;
            } else if (what == "fetch") {
                o.fetch = false;
            } else if (what == "restore") {
                o.restore = false;
            } else if (what == "memory") {
                o.memory = false;
            } else {
                throw usage_error("--skip: cost, fetch, restore or memory, got '" + what + "'");
            }
        } else if (flags.is("--cpus")) {
            o.cpus = flags.value();
            parse_cpu_list(o.cpus);
        } else if (flags.is("--pin-primary")) {
            o.pin_primary = true;
        } else if (flags.is("--callers")) {
            o.callers = flags.integer<std::size_t>(1, 256);
        } else if (flags.is("--lab")) {
            o.in_lab = true;
        } else if (flags.is("--netlab")) {
            o.netlab = flags.value();
        } else {
            flags.unknown();
        }
    }
    if (o.pin_primary && !o.cpus.empty()) {
        throw usage_error("--pin-primary places the processes itself: leave out --cpus");
    }
    if (!o.cpus.empty()) {
        apply_cpus(o.cpus); // inherited by every member, through netlab exec too
    }
    if (o.pin_primary) {
        apply_cpus("1"); // the driver beside the other members; each member pins itself
    }
    std::optional<netlab_lab> lab;
    if (o.in_lab) {
        if (::geteuid() != 0) {
            emit_line({{"scenario", "backup"}, {"skipped", "--lab needs root: members run in tools/netlab namespaces"}});
            return 77;
        }
        std::size_t nodes = o.members;
        for (const auto n : o.cost_members) {
            nodes = std::max(nodes, n);
        }
        lab.emplace(o.netlab, nodes, "bb");
        o.lab = &*lab;
    }
    const bool with_backup = std::find(o.managers.begin(), o.managers.end(), "backup") != o.managers.end();
    // Exit 1 when a measurement saw something wrong (a failed request, a session
    // missing, copies not restored): timings are printed, never judged.
    int status = 0;
    auto check = [&status](bool ok, const char* what) {
        if (!ok) {
            spdlog::error("backup: {}", what);
            status = 1;
        }
    };
    if (o.cost) {
        std::map<std::string, std::map<std::size_t, json>> by;
        for (const auto n : o.cost_members) {
            for (const auto& manager : o.managers) {
                auto r = cost_phase(o, manager, n);
                emit_line(r);
                check(r["failures"].get<std::uint64_t>() == 0, "cost: requests failed");
                by[manager][n] = std::move(r);
            }
        }
        // The yardstick: with the most members, requests/s against the fewest.
        const auto lo = o.cost_members.front();
        const auto hi = o.cost_members.back();
        json summary{{"scenario", "backup"}, {"phase", "cost_summary"}, {"members", {lo, hi}}};
        for (const auto& [manager, rows] : by) {
            summary[manager] = {
                {"messages_per_request", {rows.at(lo)["messages_per_request"], rows.at(hi)["messages_per_request"]}},
                {"primary_cpu_ratio",
                 round_to(rows.at(hi)["requests_per_primary_cpu_sec"].get<double>() /
                              rows.at(lo)["requests_per_primary_cpu_sec"].get<double>(),
                          3)},
                {"requests_per_sec_ratio",
                 round_to(rows.at(hi)["requests_per_sec"].get<double>() / rows.at(lo)["requests_per_sec"].get<double>(),
                          3)}};
        }
        emit_line(summary);
    }
    if (o.fetch && with_backup) {
        const auto r = fetch_phase(o);
        emit_line(r);
        check(r["missing"].get<std::uint64_t>() == 0 && r["failures"].get<std::uint64_t>() == 0,
              "fetch: a session another member made was not found, or its request failed");
    }
    if (o.restore && with_backup) {
        const auto r = restore_phase(o);
        emit_line(r);
        check(r["restored"].get<bool>(), "restore: not every session had two copies again within 60 s");
    }
    if (o.memory) {
        std::map<std::string, double> mib;
        for (const auto& manager : o.managers) {
            auto r = memory_phase(o, manager);
            emit_line(r);
            check(r["settled"].get<bool>(), "memory: the filled sessions did not settle");
            mib[manager] = r["rss_added_mib_mean"].get<double>();
        }
        if (mib.count("delta") && mib.count("backup") && mib["delta"] > 0) {
            emit_line({{"scenario", "backup"},
                       {"phase", "memory_summary"},
                       {"backup_vs_delta", round_to(mib["backup"] / mib["delta"], 3)},
                       {"target", "about 2/4 with 4 members"}});
        }
    }
    return status;
}

} // namespace troupe::bench
