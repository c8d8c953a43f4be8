// SPDX-License-Identifier: Apache-2.0
// troupe-bench sessions: replicated sessions between member processes on
// 127.0.0.1, each a channel plus delta managers (one per context), driven by
// this process over their stdin. Three measurements, one JSON line each:
//
//   replication  the first member serves requests (each rewrites a 1 KiB
//                attribute of one of its sessions) through a standard manager
//                (the baseline), then a delta manager with async and with sync
//                options: requests/s at the member, requests/s replicated (until
//                every other member applied the last delta), and the
//                per-request replication overhead (mean request time minus the
//                baseline's).
//   memory       the first member creates 100,000 sessions of 1 KiB; another
//                member's resident set before and after, per session, against
//                the budget 1.5 x attribute bytes + 256 B.
//   transfer     a new member joins and receives those sessions: seconds from
//                the start of its manager to the end of the state transfer.
//
// Roles: `_session_member` (hidden) is one member process.
#include "bench_util.hpp"
#include "common/percentiles.hpp"
#include "session_member.hpp"

#include <troupe/troupe.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace troupe::bench {

int sessions_main(flag_parser& flags);
int session_member_main(flag_parser& flags);

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const std::string async_context = "bench-async";
const std::string sync_context = "bench-sync";
const std::string fill_context = "bench-fill";
const std::string standard_context = "bench-standard";
constexpr auto ready_timeout = 600s; // a joiner is ready once it has every session

struct sessions_options {
    std::size_t members = 3;
    std::size_t size = 1024;          ///< attribute bytes per session
    std::uint64_t requests = 20000;   ///< measured requests per phase
    std::uint64_t warmup = 2000;      ///< requests before the measured ones
    std::size_t sessions = 1000;      ///< sessions the requests go round
    std::uint64_t fill = 100000;      ///< sessions for the memory and transfer measurements
    std::uint32_t io_threads = 1;
    bool replication = true;
    bool memory = true;
    bool transfer = true;
    std::string cpus;
};

// ---------------------------------------------------------------------------
// Member role

/// Replicated events a member has seen on one context (created sessions and
/// attribute writes applied from others), and when it saw the last.
struct replica_counter {
    std::atomic<std::uint64_t> events{0};
    std::atomic<std::int64_t> last_ns{0};
};

struct member_state {
    std::unique_ptr<engine::channel> channel;
    std::map<std::string, std::unique_ptr<managers::session_manager>> managers;
    std::map<std::string, std::unique_ptr<replica_counter>> counters;
};

managers::manager_config manager_settings(const std::string& context, std::uint32_t options, bool standard) {
    managers::manager_config c;
    c.type = standard ? "standard" : "delta";
    c.context = context;
    c.send_options = options;
    c.filter = "";
    c.route_rewrite = false; // sessions are followed by id from member to member
    c.max_inactive = std::chrono::seconds(3600);
    c.state_transfer_timeout = std::chrono::milliseconds(300000);
    c.notify_listeners_on_replication = true;
    return c;
}

std::vector<std::string> make_sessions(managers::session_manager& m, std::size_t n, std::size_t size) {
    std::vector<std::string> ids;
    ids.reserve(n);
    const auto data = payload(size, 1);
    for (std::size_t i = 0; i < n; ++i) {
        auto r = m.begin_request("", "/bench");
        r.session(true)->set("data", data);
        ids.push_back(r.session_id());
        r.end(); // a dropped scope would not wait for the acks
    }
    return ids;
}

json run_requests(managers::session_manager& m, const json& cmd) {
    const auto count = cmd.at("count").get<std::uint64_t>();
    const auto warmup = cmd.at("warmup").get<std::uint64_t>();
    const auto size = cmd.at("size").get<std::size_t>();
    const auto ids = make_sessions(m, cmd.at("sessions").get<std::size_t>(), size);
    auto data = payload(size, 2);
    std::uint64_t failures = 0;
    std::vector<std::int64_t> durations;
    durations.reserve(count);
    // "blocking": begin_request() and end() on this thread. "async": the
    // token forms, their handlers bound to an io_context this thread runs:
    // what a Beast server pays per request for never blocking.
    const bool async_api = cmd.value("api", "blocking") == "async";
    boost::asio::io_context io;
    auto one = [&](std::uint64_t i) {
        data[i % data.size()] = static_cast<std::uint8_t>(i);
        if (!async_api) {
            auto r = m.begin_request(ids[i % ids.size()], "/bench");
            r.session()->set("data", data);
            const auto res = r.end();
            failures += res.send && !res.send->ok() ? 1 : 0;
            return;
        }
        m.async_begin_request(
            {ids[i % ids.size()], "/bench", {}},
            boost::asio::bind_executor(io, [&](boost::system::error_code, managers::request_scope r) {
                r.session()->set("data", data);
                r.async_end(boost::asio::bind_executor(io, [&](boost::system::error_code ec, managers::end_result res) {
                    failures += ec || (res.send && !res.send->ok()) ? 1 : 0;
                }));
            }));
        io.run(); // until both handlers ran
        io.restart();
    };
    for (std::uint64_t i = 0; i < warmup; ++i) {
        one(i);
    }
    const auto start = now_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
        const auto t0 = now_ns();
        one(warmup + i);
        durations.push_back(now_ns() - t0);
    }
    const auto end = now_ns();
    const double mean_us =
        count ? static_cast<double>(std::accumulate(durations.begin(), durations.end(), std::int64_t{0})) / 1e3 /
                    static_cast<double>(count)
              : 0;
    const auto summary = tools::summarize_ns(durations);
    return {{"done", true},       {"start_ns", start},           {"end_ns", end},
            {"mean_us", mean_us}, {"p50_us", summary.p50_us},    {"p99_us", summary.p99_us},
            {"failures", failures}, {"max_us", summary.max_us}};
}

json fill(managers::session_manager& m, const json& cmd) {
    const auto t0 = now_ns();
    make_sessions(m, cmd.at("count").get<std::size_t>(), cmd.at("size").get<std::size_t>());
    return {{"done", true}, {"seconds", static_cast<double>(now_ns() - t0) / 1e9}};
}

json watch(replica_counter& c, const json& cmd) {
    const auto target = cmd.at("target").get<std::uint64_t>();
    const auto deadline = now_ns() + cmd.at("timeout_ms").get<std::int64_t>() * 1'000'000;
    while (c.events.load() < target && now_ns() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    return {{"done", true}, {"events", c.events.load()}, {"last_ns", c.last_ns.load()}};
}

} // namespace

int session_member_main(flag_parser& flags) {
    std::size_t index = 0;
    std::string cluster;
    pid_t parent = 0;
    std::uint32_t io_threads = 1;
    std::vector<conf::host_port> peers;
    std::size_t wait_members = 0;
    while (flags.next()) {
        if (flags.is("--index")) {
            index = flags.integer<std::size_t>(1, 1000);
        } else if (flags.is("--cluster")) {
            cluster = flags.value();
        } else if (flags.is("--parent")) {
            parent = flags.integer<pid_t>(1, INT32_MAX);
        } else if (flags.is("--io-threads")) {
            io_threads = flags.integer<std::uint32_t>(1, 64);
        } else if (flags.is("--peer")) {
            peers.push_back(parse_peer(flags.value()));
        } else if (flags.is("--wait-members")) {
            wait_members = flags.integer<std::size_t>(0, 1000);
        } else {
            flags.unknown();
        }
    }
    if (cluster.empty() || index == 0 || parent == 0) {
        throw usage_error("_session_member: --cluster, --index and --parent are required");
    }
    die_with_parent(parent);

    member_state st;
    st.channel = std::make_unique<engine::channel>(
        session_member_config(cluster, "m" + std::to_string(index), io_threads, "127.0.0.1", peers));
    st.channel->start();
    const auto deadline = now_ns() + 30'000'000'000;
    while (st.channel->members().size() < wait_members && now_ns() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    const long rss_start = rss_kib();
    json transfer_ms = json::object();
    for (const auto& [context, options] : std::vector<std::pair<std::string, std::uint32_t>>{
             {async_context, engine::send_options::async},
             {sync_context, engine::send_options::sync},
             {fill_context, engine::send_options::async}}) {
        auto counter = std::make_unique<replica_counter>();
        auto* c = counter.get();
        const auto t0 = now_ns();
        auto m = managers::make_manager(*st.channel, manager_settings(context, options, false));
        transfer_ms[context] = static_cast<double>(now_ns() - t0) / 1e6;
        m->add_listener([c](const managers::session_event& e) {
            if (e.replicated && e.what != managers::session_event::kind::destroyed) {
                c->last_ns.store(now_ns());
                c->events.fetch_add(1);
            }
        });
        st.managers[context] = std::move(m);
        st.counters[context] = std::move(counter);
    }
    st.managers[standard_context] =
        managers::make_manager(*st.channel, manager_settings(standard_context, engine::send_options::async, true));
    json sizes = json::object();
    for (const auto& [context, m] : st.managers) {
        sizes[context] = m->size();
    }
    emit_line({{"ready", true},
               {"port", st.channel->port()},
               {"transfer_ms", transfer_ms},
               {"sessions", sizes},
               {"rss_start_kib", rss_start},
               {"rss_kib", rss_kib()},
               {"fill_stats", json::parse(st.managers[fill_context]->stats_json())["state_transfer"]}});

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
            } else if (what == "requests") {
                reply = run_requests(*st.managers.at(cmd.at("context").get<std::string>()), cmd);
            } else if (what == "fill") {
                reply = fill(*st.managers.at(fill_context), cmd);
            } else if (what == "watch") {
                reply = watch(*st.counters.at(cmd.at("context").get<std::string>()), cmd);
            } else if (what == "rss") {
                reply = {{"done", true}, {"rss_kib", rss_kib()}};
                for (const auto& [context, m] : st.managers) {
                    reply["sessions"][context] = m->size();
                }
            } else if (what == "stats") {
                reply = {{"done", true},
                         {"stats", json::parse(st.managers.at(cmd.at("context").get<std::string>())->stats_json())}};
            } else {
                reply = {{"done", true}, {"error", "unknown command " + what}};
            }
        } catch (const std::exception& e) {
            reply = {{"done", true}, {"error", e.what()}};
        }
        emit_line(reply);
    }
    for (auto& [context, m] : st.managers) {
        m->stop();
    }
    st.managers.clear();
    st.channel->stop();
    return 0;
}

namespace {

member_process spawn_member(const sessions_options& o, const std::string& cluster, std::size_t index,
                            const std::vector<member_process>& existing) {
    std::vector<std::string> argv{self_exe,       "_session_member", "--index",
                                  std::to_string(index), "--cluster", cluster,
                                  "--parent",     std::to_string(::getpid()), "--io-threads",
                                  std::to_string(o.io_threads), "--wait-members", std::to_string(existing.size())};
    for (const auto& m : existing) {
        argv.push_back("--peer");
        argv.push_back(std::to_string(m.port));
    }
    return member_process::start(argv, "m" + std::to_string(index), ready_timeout);
}

json replication_phase(const sessions_options& o, std::vector<member_process>& members, const std::string& context,
                       const char* options_name, const json* baseline, const char* api = "blocking") {
    auto& server = members.front();
    const auto r = server.ask({{"cmd", "requests"},
                               {"api", api},
                               {"context", context},
                               {"count", o.requests},
                               {"warmup", o.warmup},
                               {"sessions", o.sessions},
                               {"size", o.size}});
    const auto start = r.at("start_ns").get<std::int64_t>();
    const auto end = r.at("end_ns").get<std::int64_t>();
    json out{{"scenario", "sessions"},
             {"phase", "replication"},
             {"options", options_name},
             {"api", api},
             {"members", o.members},
             {"size", o.size},
             {"sessions", o.sessions},
             {"requests", o.requests},
             {"warmup", o.warmup},
             {"mean_us", round_to(r.at("mean_us").get<double>(), 2)},
             {"p50_us", r.at("p50_us")},
             {"p99_us", r.at("p99_us")},
             {"max_us", r.at("max_us")},
             {"send_failures", r.at("failures")},
             {"requests_per_sec", round_to(static_cast<double>(o.requests) / (static_cast<double>(end - start) / 1e9), 1)}};
    if (baseline == nullptr) {
        return out;
    }
    // Replicated: until every other member applied the last delta.
    std::int64_t last = end;
    std::uint64_t short_of = 0;
    // Replicated events count from the member's start: a context measured
    // twice (both APIs) waits for both runs' events.
    static std::map<std::string, std::uint64_t> events_before;
    const std::uint64_t target = (events_before[context] += o.sessions + o.warmup + o.requests);
    for (std::size_t i = 1; i < members.size(); ++i) {
        const auto w = members[i].ask(
            {{"cmd", "watch"}, {"context", context}, {"target", target}, {"timeout_ms", 120000}});
        last = std::max(last, w.at("last_ns").get<std::int64_t>());
        const auto events = w.at("events").get<std::uint64_t>();
        short_of += events < target ? target - events : 0;
    }
    out["replicated_requests_per_sec"] =
        round_to(static_cast<double>(o.requests) / (static_cast<double>(last - start) / 1e9), 1);
    out["replication_overhead_us"] = round_to(out["mean_us"].get<double>() - baseline->at("mean_us").get<double>(), 2);
    out["baseline_mean_us"] = baseline->at("mean_us");
    out["not_replicated"] = short_of;
    out["stats"] = server.ask({{"cmd", "stats"}, {"context", context}})["stats"]["replication"];
    return out;
}

} // namespace

int sessions_main(flag_parser& flags) {
    sessions_options o;
    while (flags.next()) {
        if (flags.is("--members")) {
            o.members = flags.integer<std::size_t>(2, 16);
        } else if (flags.is("--size")) {
            o.size = flags.integer<std::size_t>(1, std::size_t{1} << 20);
        } else if (flags.is("--requests")) {
            o.requests = flags.integer<std::uint64_t>(1, 100'000'000);
        } else if (flags.is("--warmup")) {
            o.warmup = flags.integer<std::uint64_t>(0, 100'000'000);
        } else if (flags.is("--sessions")) {
            o.sessions = flags.integer<std::size_t>(1, 10'000'000);
        } else if (flags.is("--fill")) {
            o.fill = flags.integer<std::uint64_t>(1, 10'000'000);
        } else if (flags.is("--io-threads")) {
            o.io_threads = flags.integer<std::uint32_t>(1, 64);
        } else if (flags.is("--skip")) {
            const auto what = flags.value();
            if (what == "replication") {
                o.replication = false;
            } else if (what == "memory") {
                o.memory = false;
            } else if (what == "transfer") {
                o.transfer = false;
            } else {
                throw usage_error("--skip: replication, memory or transfer, got '" + what + "'");
            }
        } else if (flags.is("--cpus")) {
            o.cpus = flags.value();
            parse_cpu_list(o.cpus);
        } else {
            flags.unknown();
        }
    }
    if (!o.cpus.empty()) {
        apply_cpus(o.cpus);
    }
    const std::string cluster = "bench-sessions-" + std::to_string(::getpid());
    std::vector<member_process> members;
    for (std::size_t i = 1; i <= o.members; ++i) {
        members.push_back(spawn_member(o, cluster, i, members));
    }
    spdlog::info("{} members up", members.size());

    if (o.replication) {
        const auto baseline = replication_phase(o, members, standard_context, "standard", nullptr);
        emit_line(baseline);
        // The token forms (async_begin_request, async_end) beside the
        // blocking ones: the API's own cost per request, without replication
        // (standard) and with it (async options).
        auto standard_async = replication_phase(o, members, standard_context, "standard", nullptr, "async");
        standard_async["api_overhead_us"] =
            round_to(standard_async["mean_us"].get<double>() - baseline["mean_us"].get<double>(), 2);
        emit_line(standard_async);
        const auto delta_async = replication_phase(o, members, async_context, "async", &baseline);
        emit_line(delta_async);
        auto delta_async_api = replication_phase(o, members, async_context, "async", &baseline, "async");
        delta_async_api["api_overhead_us"] =
            round_to(delta_async_api["mean_us"].get<double>() - delta_async["mean_us"].get<double>(), 2);
        emit_line(delta_async_api);
        emit_line(replication_phase(o, members, sync_context, "sync", &baseline));
    }
    if (o.memory || o.transfer) {
        auto& replica = members[1];
        const auto before = replica.ask({{"cmd", "rss"}}).at("rss_kib").get<long>();
        const auto t0 = now_ns();
        const auto filled = members.front().ask({{"cmd", "fill"}, {"count", o.fill}, {"size", o.size}});
        std::uint64_t events = 0;
        for (std::size_t i = 1; i < members.size(); ++i) {
            const auto w = members[i].ask(
                {{"cmd", "watch"}, {"context", fill_context}, {"target", o.fill}, {"timeout_ms", 300000}});
            events = i == 1 ? w.at("events").get<std::uint64_t>() : events;
        }
        const auto replicated_s = static_cast<double>(now_ns() - t0) / 1e9;
        const auto after = replica.ask({{"cmd", "rss"}});
        const auto after_kib = after.at("rss_kib").get<long>();
        const double per_session =
            static_cast<double>(after_kib - before) * 1024.0 / static_cast<double>(std::max<std::uint64_t>(events, 1));
        const double budget = 1.5 * static_cast<double>(o.size) + 256;
        if (o.memory) {
            emit_line({{"scenario", "sessions"},
                       {"phase", "memory"},
                       {"sessions", o.fill},
                       {"replicated", events},
                       {"size", o.size},
                       {"rss_before_kib", before},
                       {"rss_after_kib", after_kib},
                       {"bytes_per_session", round_to(per_session, 1)},
                       {"budget_bytes", budget},
                       {"within_budget", per_session <= budget},
                       {"fill_seconds", round_to(filled.at("seconds").get<double>(), 3)},
                       {"replicated_seconds", round_to(replicated_s, 3)}});
        }
        if (o.transfer) {
            auto joiner = spawn_member(o, cluster, members.size() + 1, members);
            const double ms = joiner.ready.at("transfer_ms").at(fill_context).get<double>();
            const auto received = joiner.ready.at("sessions").at(fill_context).get<std::uint64_t>();
            emit_line({{"scenario", "sessions"},
                       {"phase", "transfer"},
                       {"sessions", received},
                       {"expected", o.fill},
                       {"size", o.size},
                       {"seconds", round_to(ms / 1000.0, 3)},
                       {"target_seconds", 2},
                       {"within_target", ms <= 2000.0 && received == o.fill},
                       {"state_transfer", joiner.ready.at("fill_stats")},
                       {"joiner_rss_kib", joiner.ready.at("rss_kib")}});
            members.push_back(std::move(joiner));
        }
    }
    member_process::quit_all(members);
    return 0;
}

} // namespace troupe::bench
