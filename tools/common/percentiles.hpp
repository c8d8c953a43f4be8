// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <vector>

namespace troupe::tools {

struct latency_summary {
    double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
    std::uint64_t samples = 0;
};

/// Nearest-rank percentiles of samples in nanoseconds, reported in µs. Sorts `ns`.
latency_summary summarize_ns(std::vector<std::int64_t>& ns);

/// Percentiles of any number of samples in a fixed 19 KiB: log-linear buckets,
/// 64 per power of two, so a reported percentile is at most 1/64 (1.6 %) above
/// the true one (max is exact). For runs whose sample count is unbounded
/// (troupe-bench throughput --seconds), where keeping every sample would grow
/// the measuring process's RSS with the run's length.
class ns_histogram {
public:
    ns_histogram();
    void add(std::int64_t ns);
    std::uint64_t count() const noexcept { return count_; }
    /// Nearest rank over the buckets; each percentile is its bucket's upper bound
    /// (capped at the max seen).
    latency_summary summary() const;

private:
    std::vector<std::uint64_t> buckets_;
    std::uint64_t count_ = 0;
    std::int64_t max_ = 0;
};

/// Largest resident set of this process so far, KiB (VmHWM; ru_maxrss survives exec on Linux).
long peak_rss_kib_self();

} // namespace troupe::tools
