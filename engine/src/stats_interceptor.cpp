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

stats_interceptor::counters& stats_interceptor::counters_for(const membership::member& m) {
    // Messages come in runs from one connection: remember the last member seen
    // on this thread and skip the locked lookup while it repeats.
    struct cache {
        const stats_interceptor* owner = nullptr;
        const membership::member* member = nullptr;
        std::string name;
        counters* hit = nullptr;
    };
    thread_local cache last;
    if (last.owner == this && last.member == &m && last.name == m.name) {
        return *last.hit;
    }
    std::lock_guard lock(mutex_);
    auto& slot = in_by_member_[m.name];
    if (!slot) {
        slot = std::make_unique<counters>();
    }
    last = cache{this, &m, m.name, slot.get()};
    return *slot;
}

bool stats_interceptor::on_receive(const incoming_message& m) {
    messages_in_.fetch_add(1, std::memory_order_relaxed);
    bytes_in_.fetch_add(m.payload.size(), std::memory_order_relaxed);
    auto& c = counters_for(m.from);
    c.messages.fetch_add(1, std::memory_order_relaxed);
    c.bytes.fetch_add(m.payload.size(), std::memory_order_relaxed);
    return true;
}

nlohmann::json stats_interceptor::to_json() const {
    nlohmann::json j;
    j["sends"] = sends_.load();
    j["messages_out"] = messages_out_.load();
    j["bytes_out"] = bytes_out_.load();
    j["messages_in"] = messages_in_.load();
    j["bytes_in"] = bytes_in_.load();
    j["listener_failures"] = listener_failures_.load();
    j["no_listener"] = no_listener_.load();
    std::lock_guard lock(mutex_);
    j["send_failures"] = nlohmann::json::object();
    for (const auto& [kind, n] : failures_by_kind_) {
        j["send_failures"][kind] = n;
    }
    j["in_by_member"] = nlohmann::json::object();
    for (const auto& [name, c] : in_by_member_) {
        j["in_by_member"][name] = {{"messages", c->messages.load()}, {"bytes", c->bytes.load()}};
    }
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
    for (const auto& [name, c] : in_by_member_) {
        out << "troupe_messages_in_total{member=\"" << name << "\"} " << c->messages.load() << "\n";
        out << "troupe_bytes_in_total{member=\"" << name << "\"} " << c->bytes.load() << "\n";
    }
    return out.str();
}

} // namespace troupe::engine
