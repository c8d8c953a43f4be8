// SPDX-License-Identifier: Apache-2.0
#include "stats_interceptor.hpp"

#include <sstream>

namespace troupe::engine {

void stats_interceptor::on_send(const outgoing_message& m) {
    sends_.fetch_add(1, std::memory_order_relaxed);
    messages_out_.fetch_add(m.destinations, std::memory_order_relaxed);
    bytes_out_.fetch_add(m.payload.size() * m.destinations, std::memory_order_relaxed);
}

void stats_interceptor::on_sent(const outgoing_message&, const send_result& r) {
    if (r.failures.empty()) {
        return;
    }
    std::lock_guard lock(mutex_);
    for (const auto& f : r.failures) {
        ++failures_by_kind_[f.ec.message()];
    }
}

stats_interceptor::shard& stats_interceptor::shard_for(const membership::member& m) {
    // Messages come in runs from one connection: remember the last member seen
    // on this thread and skip the locked lookup while it repeats.
    struct cache {
        const stats_interceptor* owner = nullptr;
        const membership::member* member = nullptr;
        std::string name;
        shard* hit = nullptr;
    };
    thread_local cache last;
    if (last.owner == this && last.member == &m && last.name == m.name) {
        return *last.hit;
    }
    std::lock_guard lock(mutex_);
    auto& slot = in_shards_[{m.name, std::this_thread::get_id()}];
    if (!slot) {
        slot = std::make_unique<shard>();
    }
    last = cache{this, &m, m.name, slot.get()};
    return *slot;
}

bool stats_interceptor::on_receive(const incoming_message& m) {
    auto& s = shard_for(m.from);
    // Single writer (see shard): no locked add.
    s.messages.store(s.messages.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    s.bytes.store(s.bytes.load(std::memory_order_relaxed) + m.payload.size(), std::memory_order_relaxed);
    return true;
}

std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> stats_interceptor::in_by_member_locked() const {
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> sums;
    for (const auto& [key, s] : in_shards_) {
        auto& [messages, bytes] = sums[key.first];
        messages += s->messages.load(std::memory_order_relaxed);
        bytes += s->bytes.load(std::memory_order_relaxed);
    }
    return sums;
}

nlohmann::json stats_interceptor::to_json() const {
    nlohmann::json j;
    j["sends"] = sends_.load();
    j["messages_out"] = messages_out_.load();
    j["bytes_out"] = bytes_out_.load();
    j["listener_failures"] = listener_failures_.load();
    j["no_listener"] = no_listener_.load();
    std::lock_guard lock(mutex_);
    j["send_failures"] = nlohmann::json::object();
    for (const auto& [kind, n] : failures_by_kind_) {
        j["send_failures"][kind] = n;
    }
    std::uint64_t messages_in = 0;
    std::uint64_t bytes_in = 0;
    j["in_by_member"] = nlohmann::json::object();
    for (const auto& [name, counts] : in_by_member_locked()) {
        j["in_by_member"][name] = {{"messages", counts.first}, {"bytes", counts.second}};
        messages_in += counts.first;
        bytes_in += counts.second;
    }
    j["messages_in"] = messages_in;
    j["bytes_in"] = bytes_in;
    return j;
}

std::string stats_interceptor::to_metrics() const {
    std::ostringstream out;
    out << "# TYPE troupe_sends_total counter\ntroupe_sends_total " << sends_.load() << "\n";
    out << "# TYPE troupe_messages_out_total counter\ntroupe_messages_out_total "
        << messages_out_.load() << "\n";
    out << "# TYPE troupe_bytes_out_total counter\ntroupe_bytes_out_total " << bytes_out_.load()
        << "\n";
    out << "# TYPE troupe_listener_failures_total counter\ntroupe_listener_failures_total "
        << listener_failures_.load() << "\n";
    out << "# TYPE troupe_no_listener_total counter\ntroupe_no_listener_total "
        << no_listener_.load() << "\n";
    std::lock_guard lock(mutex_);
    out << "# TYPE troupe_send_failures_total counter\n";
    for (const auto& [kind, n] : failures_by_kind_) {
        out << "troupe_send_failures_total{kind=\"" << kind << "\"} " << n << "\n";
    }
    out << "# TYPE troupe_messages_in_total counter\n";
    out << "# TYPE troupe_bytes_in_total counter\n";
    for (const auto& [name, counts] : in_by_member_locked()) {
        out << "troupe_messages_in_total{member=\"" << name << "\"} " << counts.first << "\n";
        out << "troupe_bytes_in_total{member=\"" << name << "\"} " << counts.second << "\n";
    }
    return out.str();
}

} // namespace troupe::engine
