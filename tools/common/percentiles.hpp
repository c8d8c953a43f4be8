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

/// Largest resident set of this process so far, KiB (VmHWM; ru_maxrss survives exec on Linux).
long peak_rss_kib_self();

} // namespace troupe::tools
