// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace troupe::tools {

/// One reading of a node's statistics, as statsd sends it.
struct statsd_reading {
    enum class kind {
        counter, ///< a running total: statsd gets the increase since the last send (`|c`)
        gauge,   ///< a value now (`|g`)
        timing,  ///< a running sum in ms and `count`: statsd gets the interval's mean (`|ms`)
    };
    std::string name;
    kind type = kind::counter;
    double value = 0;
    std::uint64_t count = 0; ///< timings only
};

/// The statsd lines for `now` after the readings in `last` (by name), which
/// it then replaces: counters by their increase, gauges as they are, timings
/// by their mean over the interval (none when nothing was timed).
std::vector<std::string> statsd_lines(const std::string& prefix, const std::vector<statsd_reading>& now,
                                      std::map<std::string, statsd_reading>& last);

/// Requests, members, replication acks, failures and ack latency from a
/// channel's stats_json().
std::vector<statsd_reading> channel_readings(const std::string& stats_json);
/// Sessions, requests, made, expired and replication failures from a session
/// manager's stats_json().
std::vector<statsd_reading> manager_readings(const std::string& stats_json);

/// Sends statsd lines over UDP (`metrics.statsd`), every interval, from a
/// thread of its own; one last time when it stops. A send that fails is
/// counted in the log, never fatal: statsd is best effort.
class statsd_reporter {
public:
    statsd_reporter(conf::statsd_section settings, std::function<std::vector<statsd_reading>()> read);
    ~statsd_reporter();
    statsd_reporter(const statsd_reporter&) = delete;
    statsd_reporter& operator=(const statsd_reporter&) = delete;

    void stop();

private:
    void run();
    void send_once();
    void warn(const std::string& what);

    conf::statsd_section settings_;
    std::function<std::vector<statsd_reading>()> read_;
    std::map<std::string, statsd_reading> last_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::optional<std::chrono::steady_clock::time_point> warned_at_; ///< reporter thread only
    std::uint64_t warnings_ = 0;
    std::thread thread_;
};

} // namespace troupe::tools
