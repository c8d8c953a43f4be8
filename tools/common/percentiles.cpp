// SPDX-License-Identifier: Apache-2.0
#include "common/percentiles.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <sys/resource.h>

namespace troupe::tools {
namespace {

// Nearest rank: the smallest sample with at least q of the samples at or below
// it, rank = ceil(q * n). q is per-mille so the rank is exact integer arithmetic
// (0.999 * 1000 is not exactly 999 in floating point).
double nearest_rank_us(const std::vector<std::int64_t>& sorted, std::uint64_t per_mille) {
    const std::uint64_t n = sorted.size();
    std::uint64_t rank = (n * per_mille + 999) / 1000;
    rank = std::clamp<std::uint64_t>(rank, 1, n);
    return static_cast<double>(sorted[rank - 1]) / 1000.0;
}

} // namespace

latency_summary summarize_ns(std::vector<std::int64_t>& ns) {
    latency_summary s;
    if (ns.empty()) {
        return s;
    }
    std::sort(ns.begin(), ns.end());
    s.samples = ns.size();
    s.p50_us = nearest_rank_us(ns, 500);
    s.p90_us = nearest_rank_us(ns, 900);
    s.p99_us = nearest_rank_us(ns, 990);
    s.p999_us = nearest_rank_us(ns, 999);
    s.max_us = static_cast<double>(ns.back()) / 1000.0;
    return s;
}

long peak_rss_kib_self() {
    // VmHWM first: it belongs to this process image only. ru_maxrss is carried
    // over exec from the image that forked us (Linux keeps the larger of the two),
    // so a re-executed child of a big parent would report the parent's peak.
    if (std::FILE* f = std::fopen("/proc/self/status", "re")) {
        char line[256];
        long kib = -1;
        while (std::fgets(line, sizeof line, f) != nullptr) {
            if (std::strncmp(line, "VmHWM:", 6) == 0) {
                kib = std::strtol(line + 6, nullptr, 10);
                break;
            }
        }
        std::fclose(f);
        if (kib > 0) {
            return kib;
        }
    }
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) != 0) {
        return 0;
    }
    return usage.ru_maxrss; // KiB on Linux
}

} // namespace troupe::tools
