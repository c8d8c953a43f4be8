// SPDX-License-Identifier: Apache-2.0
// What the admin endpoint shows of the channel: GET /members and GET /stats as
// JSON, GET /metrics as Prometheus text.
#include "channel_impl.hpp"

#include <troupe/transport/peer_stats.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>

namespace troupe::engine {

nlohmann::json channel::impl::membership_json() const {
    nlohmann::json j;
    j["discovery"] = discovery ? std::string(discovery->name()) : "static";
    if (dns) {
        auto& o = j["dns"];
        o["name"] = config.membership.dns.name;
        for (const auto& [name, n] : dns->counters()) {
            o[name.substr(4)] = n; // "dns_lookups" -> dns.lookups
        }
        std::lock_guard lock(mutex);
        o["added"] = dns_added;
        o["dropped"] = dns_dropped;
        o["listed"] = dns_listed.size();
    }
    j["heartbeats_rejected"] = nlohmann::json::object();
    if (discovery) {
        for (const auto& [name, n] : discovery->counters()) {
            const std::string prefix = "heartbeats_rejected.";
            if (name.rfind(prefix, 0) == 0) {
                j["heartbeats_rejected"][name.substr(prefix.size())] = n;
            } else {
                j[name] = n;
            }
        }
    }
    const auto now = membership::failure_detector::clock::now();
    std::lock_guard lock(mutex);
    const auto& st = detector->stats();
    j["suspicions"] = st.suspicions;
    j["false_suspicions_avoided"] = st.false_suspicions_avoided;
    j["removals"] = st.removals;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : detector->table().all()) {
        nlohmann::json row{{"name", e.m.name},
                           {"endpoint", e.m.endpoint()},
                           {"state", std::string(membership::to_string(e.m.state))},
                           {"reason", e.m.reason}};
        if (auto inf = detector->info(e.m.id)) {
            row["suspicions"] = inf->suspicions;
            row["heartbeats"] = inf->heartbeats;
            row["last_heartbeat_age_ms"] =
                inf->heartbeats
                    ? std::chrono::duration_cast<std::chrono::milliseconds>(now - inf->last_heard).count()
                    : -1;
        }
        list.push_back(std::move(row));
    }
    j["members"] = std::move(list);
    return j;
}

std::string channel::members_json() const {
    auto& d = *impl_;
    const auto now = std::chrono::steady_clock::now();
    nlohmann::json arr = nlohmann::json::array();
    auto row = [](const member& m, bool self, std::int64_t since_ms) {
        return nlohmann::json{{"name", m.name},
                              {"endpoint", m.endpoint()},
                              {"state", std::string(membership::to_string(m.state))},
                              {"self", self},
                              {"id", m.id.str()},
                              {"incarnation", m.incarnation},
                              {"since_ms", since_ms},
                              {"reason", m.reason}};
    };
    arr.push_back(row(d.self, true,
                      std::chrono::duration_cast<std::chrono::milliseconds>(now - d.started_at).count()));
    std::lock_guard lock(d.mutex);
    for (const auto& e : d.detector->table().all()) {
        arr.push_back(row(e.m, false,
                          std::chrono::duration_cast<std::chrono::milliseconds>(now - e.since).count()));
    }
    return arr.dump();
}

namespace {

nlohmann::json peer_json(const std::string& endpoint, const peer_sender& s) {
    const auto& st = s.stats();
    nlohmann::json buckets = nlohmann::json::object();
    for (std::size_t i = 0; i < transport::ack_latency_bounds_us.size(); ++i) {
        const auto bound = transport::ack_latency_bounds_us[i];
        buckets[bound == UINT64_MAX ? std::string("+Inf") : std::to_string(bound)] =
            st.ack_latency_buckets[i].load();
    }
    return {{"endpoint", endpoint},
            {"connected", s.connected()},
            {"queue_bytes", s.queued_bytes()},
            {"frames_out", st.frames_out.load()},
            {"bytes_out", st.bytes_out.load()},
            {"writes", st.writes.load()},
            {"acks", st.acks.load()},
            {"nacks", st.nacks.load()},
            {"ack_timeouts", st.ack_timeouts.load()},
            {"connection_losses", st.connection_losses.load()},
            {"possibly_lost", st.possibly_lost.load()},
            {"dropped", st.dropped.load()},
            {"queue_full", st.queue_full.load()},
            {"connects", st.connects.load()},
            {"connect_failures", st.connect_failures.load()},
            {"handshake_failures", st.handshake_failures.load()},
            {"pings", st.pings.load()},
            {"caller_read_acks", st.caller_read_acks.load()},
            {"direct_entries", st.direct_entries.load()},
            {"ack_latency_us", {{"sum", st.ack_latency_sum_us.load()}, {"buckets", buckets}}}};
}

} // namespace

std::string channel::stats_json() const {
    auto& d = *impl_;
    nlohmann::json j;
    j["node"] = d.self.name;
    j["id"] = d.self.id.str();
    j["cluster"] = d.config.cluster.name;
    j["port"] = d.self.port;
    j["uptime_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - d.started_at)
                         .count();
    j["channel"] = d.stats->to_json();
    if (d.receiver) {
        const auto& r = d.receiver->stats();
        j["receiver"] = {{"accepted", r.accepted.load()},       {"open", r.open.load()},
                         {"reader_threads", r.reader_threads.load()},
                         {"frames_in", r.frames_in.load()},     {"bytes_in", r.bytes_in.load()},
                         {"data_in", r.data_in.load()},         {"acks_out", r.acks_out.load()},
                         {"nacks_out", r.nacks_out.load()},     {"bad_frames", r.bad_frames.load()},
                         {"handshake_refused", r.handshake_refused.load()},
                         {"auth_failures", r.auth_failures.load()},
                         {"handshake_timeouts", r.handshake_timeouts.load()},
                         {"idle_timeouts", r.idle_timeouts.load()}};
    }
    nlohmann::json peers = nlohmann::json::array();
    std::map<std::string, int> states;
    {
        std::lock_guard lock(d.mutex);
        for (const auto& [endpoint, slot] : d.peers) {
            auto p = peer_json(endpoint, *slot.sender);
            if (slot.current) {
                if (auto e = d.detector->table().find(*slot.current)) {
                    p["name"] = e->m.name;
                    p["state"] = std::string(membership::to_string(e->m.state));
                }
            }
            peers.push_back(std::move(p));
        }
        for (const auto& e : d.detector->table().all()) {
            ++states[std::string(membership::to_string(e.m.state))];
        }
    }
    j["peers"] = std::move(peers);
    j["members"] = states;
    j["membership"] = d.membership_json();
    return j.dump();
}

std::string channel::metrics_text() const {
    auto& d = *impl_;
    std::ostringstream out;
    out << d.stats->to_metrics();
    if (d.receiver) {
        const auto& r = d.receiver->stats();
        auto counter = [&](const char* name, std::uint64_t v) {
            out << "# TYPE " << name << " counter\n" << name << " " << v << "\n";
        };
        counter("troupe_receiver_connections_accepted_total", r.accepted.load());
        out << "# TYPE troupe_receiver_connections_open gauge\ntroupe_receiver_connections_open "
            << r.open.load() << "\n";
        out << "# TYPE troupe_receiver_reader_threads gauge\ntroupe_receiver_reader_threads "
            << r.reader_threads.load() << "\n";
        counter("troupe_receiver_frames_total", r.frames_in.load());
        counter("troupe_receiver_bytes_total", r.bytes_in.load());
        counter("troupe_receiver_bad_frames_total", r.bad_frames.load());
        counter("troupe_receiver_handshake_refused_total", r.handshake_refused.load());
        counter("troupe_receiver_auth_failures_total", r.auth_failures.load());
        counter("troupe_receiver_handshake_timeouts_total", r.handshake_timeouts.load());
        counter("troupe_receiver_idle_timeouts_total", r.idle_timeouts.load());
        counter("troupe_receiver_acks_total", r.acks_out.load());
        counter("troupe_receiver_nacks_total", r.nacks_out.load());
    }
    {
        const auto mj = d.membership_json();
        out << "# TYPE troupe_membership_suspicions_total counter\ntroupe_membership_suspicions_total "
            << mj["suspicions"] << "\n";
        out << "# TYPE troupe_membership_false_suspicions_avoided_total counter\n"
            << "troupe_membership_false_suspicions_avoided_total " << mj["false_suspicions_avoided"] << "\n";
        out << "# TYPE troupe_membership_removals_total counter\n";
        for (const auto& [reason, n] : mj["removals"].items()) {
            out << "troupe_membership_removals_total{reason=\"" << reason << "\"} " << n << "\n";
        }
        if (mj.contains("dns")) {
            const auto& o = mj["dns"];
            out << "# TYPE troupe_membership_dns_lookups_total counter\ntroupe_membership_dns_lookups_total "
                << o["lookups"] << "\n";
            out << "# TYPE troupe_membership_dns_failures_total counter\ntroupe_membership_dns_failures_total "
                << o["failures"] << "\n";
            out << "# TYPE troupe_membership_dns_addresses gauge\ntroupe_membership_dns_addresses " << o["addresses"]
                << "\n";
        }
        for (const char* key : {"heartbeats_sent", "heartbeats_received"}) {
            if (mj.contains(key)) {
                out << "# TYPE troupe_membership_" << key << "_total counter\ntroupe_membership_" << key
                    << "_total " << mj[key] << "\n";
            }
        }
        out << "# TYPE troupe_membership_heartbeats_rejected_total counter\n";
        for (const auto& [reason, n] : mj["heartbeats_rejected"].items()) {
            out << "troupe_membership_heartbeats_rejected_total{reason=\"" << reason << "\"} " << n << "\n";
        }
        out << "# TYPE troupe_membership_last_heartbeat_age_ms gauge\n";
        for (const auto& m : mj["members"]) {
            if (m.value("last_heartbeat_age_ms", -1) >= 0) {
                out << "troupe_membership_last_heartbeat_age_ms{member=\"" << m["name"].get<std::string>()
                    << "\"} " << m["last_heartbeat_age_ms"] << "\n";
            }
        }
    }
    std::lock_guard lock(d.mutex);
    std::map<std::string, int> states{{"alive", 0}, {"suspect", 0}, {"gone", 0}, {"left", 0}};
    for (const auto& e : d.detector->table().all()) {
        ++states[std::string(membership::to_string(e.m.state))];
    }
    out << "# TYPE troupe_members gauge\n";
    for (const auto& [state, n] : states) {
        out << "troupe_members{state=\"" << state << "\"} " << n << "\n";
    }
    const char* per_peer[][2] = {{"troupe_peer_frames_out_total", "counter"},
                                 {"troupe_peer_bytes_out_total", "counter"},
                                 {"troupe_peer_queue_bytes", "gauge"},
                                 {"troupe_peer_ack_timeouts_total", "counter"},
                                 {"troupe_peer_nacks_total", "counter"},
                                 {"troupe_peer_dropped_total", "counter"},
                                 {"troupe_peer_queue_full_total", "counter"}};
    for (const auto& [name, type] : per_peer) {
        out << "# TYPE " << name << " " << type << "\n";
        for (const auto& [endpoint, slot] : d.peers) {
            const auto& st = slot.sender->stats();
            std::uint64_t v = 0;
            const std::string n(name);
            if (n == "troupe_peer_frames_out_total") v = st.frames_out.load();
            else if (n == "troupe_peer_bytes_out_total") v = st.bytes_out.load();
            else if (n == "troupe_peer_queue_bytes") v = slot.sender->queued_bytes();
            else if (n == "troupe_peer_ack_timeouts_total") v = st.ack_timeouts.load();
            else if (n == "troupe_peer_nacks_total") v = st.nacks.load();
            else if (n == "troupe_peer_dropped_total") v = st.dropped.load();
            else v = st.queue_full.load();
            out << name << "{peer=\"" << endpoint << "\"} " << v << "\n";
        }
    }
    out << "# TYPE troupe_peer_ack_latency_us histogram\n";
    for (const auto& [endpoint, slot] : d.peers) {
        const auto& st = slot.sender->stats();
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < transport::ack_latency_bounds_us.size(); ++i) {
            cumulative += st.ack_latency_buckets[i].load();
            const auto bound = transport::ack_latency_bounds_us[i];
            out << "troupe_peer_ack_latency_us_bucket{peer=\"" << endpoint << "\",le=\""
                << (bound == UINT64_MAX ? std::string("+Inf") : std::to_string(bound)) << "\"} "
                << cumulative << "\n";
        }
        out << "troupe_peer_ack_latency_us_sum{peer=\"" << endpoint << "\"} "
            << st.ack_latency_sum_us.load() << "\n";
        out << "troupe_peer_ack_latency_us_count{peer=\"" << endpoint << "\"} " << cumulative << "\n";
    }
    return out.str();
}

} // namespace troupe::engine
