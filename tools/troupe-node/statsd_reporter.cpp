// SPDX-License-Identifier: Apache-2.0
#include "statsd_reporter.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>

namespace troupe::tools {

namespace {

/// Lines per datagram up to this size: fits a 1500-byte Ethernet frame with
/// room for headers, as statsd clients commonly do.
constexpr std::size_t max_datagram = 1432;

std::string number(double v) {
    char buf[64];
    if (std::fabs(v - std::round(v)) < 1e-9) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
    } else {
        std::snprintf(buf, sizeof buf, "%.3f", v);
    }
    return buf;
}

/// The stats text as a JSON object; an empty one if it is not one.
nlohmann::json parse_object(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    return j.is_object() ? j : nlohmann::json::object();
}

/// j[key] when it is an object, else nullptr.
const nlohmann::json* object_at(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_object() ? &*it : nullptr;
}

double total(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

} // namespace

std::vector<std::string> statsd_lines(const std::string& prefix, const std::vector<statsd_reading>& now,
                                      std::map<std::string, statsd_reading>& last) {
    std::vector<std::string> lines;
    for (const auto& r : now) {
        const auto name = prefix + "." + r.name;
        const auto before = last.find(r.name);
        switch (r.type) {
        case statsd_reading::kind::counter: {
            // A total summed over peers goes down when a long-gone peer is
            // forgotten: that interval counts nothing rather than the rest's
            // whole lifetime again.
            const double base = before == last.end() ? 0 : before->second.value;
            lines.push_back(name + ":" + number(r.value > base ? r.value - base : 0) + "|c");
            break;
        }
        case statsd_reading::kind::gauge: lines.push_back(name + ":" + number(r.value) + "|g"); break;
        case statsd_reading::kind::timing: {
            const bool first = before == last.end();
            const auto count = first || before->second.count > r.count ? 0 : r.count - before->second.count;
            const double sum = first ? 0 : r.value - before->second.value;
            if (count > 0 && sum >= 0) {
                lines.push_back(name + ":" + number(sum / static_cast<double>(count)) + "|ms");
            }
            break;
        }
        }
        last[r.name] = r;
    }
    return lines;
}

std::vector<statsd_reading> channel_readings(const std::string& stats_json) {
    using k = statsd_reading::kind;
    const auto j = parse_object(stats_json);
    const auto* members = object_at(j, "members");
    const double alive = members != nullptr ? total(*members, "alive") : 0;
    double acks = 0, nacks = 0, timeouts = 0, losses = 0, latency_us = 0;
    std::uint64_t timed = 0;
    if (const auto peers = j.find("peers"); peers != j.end() && peers->is_array()) {
        for (const auto& p : *peers) {
            acks += total(p, "acks");
            nacks += total(p, "nacks");
            timeouts += total(p, "ack_timeouts");
            losses += total(p, "connection_losses");
            const auto* latency = object_at(p, "ack_latency_us");
            const auto* buckets = latency != nullptr ? object_at(*latency, "buckets") : nullptr;
            if (buckets != nullptr) {
                latency_us += total(*latency, "sum");
                for (const auto& [bound, n] : buckets->items()) {
                    timed += n.is_number() ? n.get<std::uint64_t>() : 0;
                }
            }
        }
    }
    return {{"members", k::gauge, alive, 0},
            {"replication.acks", k::counter, acks, 0},
            {"replication.nacks", k::counter, nacks, 0},
            {"replication.ack_timeouts", k::counter, timeouts, 0},
            {"replication.connection_losses", k::counter, losses, 0},
            {"replication.ack_latency", k::timing, latency_us / 1000.0, timed}};
}

std::vector<statsd_reading> manager_readings(const std::string& stats_json) {
    using k = statsd_reading::kind;
    const auto j = parse_object(stats_json);
    const auto* r = object_at(j, "replication");
    const double failures = r == nullptr ? 0
                                         : total(*r, "requests_given_up") + total(*r, "async_send_failures") +
                                               total(*r, "requests_refused");
    return {{"sessions", k::gauge, total(j, "sessions"), 0},
            {"requests", k::counter, total(j, "requests"), 0},
            {"sessions.created", k::counter, total(j, "created"), 0},
            {"sessions.expired", k::counter, total(j, "expired"), 0},
            {"replication.failures", k::counter, failures, 0}};
}

statsd_reporter::statsd_reporter(conf::statsd_section settings, std::function<std::vector<statsd_reading>()> read)
    : settings_(std::move(settings))
    , read_(std::move(read)) {
    // The first reading is the base: the first send carries what happened since.
    (void)statsd_lines(settings_.prefix, read_(), last_);
    thread_ = std::thread([this] { run(); });
}

statsd_reporter::~statsd_reporter() { stop(); }

void statsd_reporter::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            return;
        }
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void statsd_reporter::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        cv_.wait_for(lock, settings_.interval, [this] { return stopping_; });
        lock.unlock();
        try {
            send_once(); // also once more on the way out
        } catch (const std::exception& e) {
            // Best effort: a reading that cannot be taken (stats that do not
            // encode) skips this interval, never the node.
            warn(std::string("could not read the statistics: ") + e.what());
        }
        lock.lock();
    }
}

void statsd_reporter::send_once() {
    namespace net = boost::asio;
    const auto lines = statsd_lines(settings_.prefix, read_(), last_);
    boost::system::error_code ec;
    net::io_context io;
    net::ip::udp::socket socket(io);
    const auto address = net::ip::make_address_v4(settings_.address, ec); // checked by conf
    if (!ec) {
        socket.open(net::ip::udp::v4(), ec);
    }
    const net::ip::udp::endpoint to(address, settings_.port);
    std::string datagram;
    std::size_t failed = 0;
    auto flush = [&] {
        if (!datagram.empty() && !ec) {
            boost::system::error_code send_ec;
            socket.send_to(net::buffer(datagram), to, 0, send_ec);
            failed += send_ec ? 1 : 0;
        }
        datagram.clear();
    };
    for (const auto& line : lines) {
        if (!datagram.empty() && datagram.size() + 1 + line.size() > max_datagram) {
            flush();
        }
        datagram += datagram.empty() ? "" : "\n";
        datagram += line;
    }
    flush();
    if (ec || failed > 0) {
        warn("could not send to " + settings_.address + ":" + std::to_string(settings_.port) + ": " +
             (ec ? ec.message() : std::to_string(failed) + " datagram(s) failed"));
    }
}

void statsd_reporter::warn(const std::string& what) {
    // The first time, then at most once a minute with how many since.
    const auto now = std::chrono::steady_clock::now();
    ++warnings_;
    if (warned_at_ && now - *warned_at_ < std::chrono::minutes(1)) {
        return;
    }
    spdlog::warn("statsd: {} ({} such since the last line)", what, warnings_ - 1);
    warned_at_ = now;
    warnings_ = 0;
}

} // namespace troupe::tools
