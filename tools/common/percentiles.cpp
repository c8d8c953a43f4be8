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
std::uint64_t nearest_rank(std::uint64_t n, std::uint64_t per_mille) {
    return std::clamp<std::uint64_t>((n * per_mille + 999) / 1000, 1, n);
}

double nearest_rank_us(const std::vector<std::int64_t>& sorted, std::uint64_t per_mille) {
    return static_cast<double>(sorted[nearest_rank(sorted.size(), per_mille) - 1]) / 1000.0;
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

namespace {

constexpr int sub_bits = 6; // 64 buckets per power of two
constexpr std::uint64_t sub_count = std::uint64_t{1} << sub_bits;
constexpr int max_exponent = 62;

std::size_t bucket_of(std::uint64_t v) {
    if (v < sub_count) {
        return static_cast<std::size_t>(v); // exact below 64 ns
    }
    const int e = 63 - __builtin_clzll(v); // >= sub_bits
    const std::uint64_t sub = (v >> (e - sub_bits)) & (sub_count - 1);
    return static_cast<std::size_t>(sub_count + static_cast<std::uint64_t>(e - sub_bits) * sub_count + sub);
}

std::uint64_t bucket_upper(std::size_t i) {
    if (i < sub_count) {
        return i;
    }
    const std::uint64_t k = i - sub_count;
    const int e = static_cast<int>(k / sub_count) + sub_bits;
    const std::uint64_t sub = k % sub_count;
    const std::uint64_t width = std::uint64_t{1} << (e - sub_bits);
    return ((sub_count + sub) << (e - sub_bits)) + width - 1;
}

} // namespace

ns_histogram::ns_histogram()
    : buckets_(sub_count + static_cast<std::size_t>(max_exponent - sub_bits + 1) * sub_count, 0) {}

void ns_histogram::add(std::int64_t ns) {
    const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
    ++buckets_[bucket_of(v)];
    ++count_;
    max_ = std::max(max_, static_cast<std::int64_t>(v));
}

latency_summary ns_histogram::summary() const {
    latency_summary s;
    if (count_ == 0) {
        return s;
    }
    s.samples = count_;
    const auto at = [this](std::uint64_t per_mille) {
        const std::uint64_t rank = nearest_rank(count_, per_mille);
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets_.size(); ++i) {
            seen += buckets_[i];
            if (seen >= rank) {
                const auto upper = std::min<std::uint64_t>(bucket_upper(i), static_cast<std::uint64_t>(max_));
                return static_cast<double>(upper) / 1000.0;
            }
        }
        return static_cast<double>(max_) / 1000.0;
    };
    s.p50_us = at(500);
    s.p90_us = at(900);
    s.p99_us = at(990);
    s.p999_us = at(999);
    s.max_us = static_cast<double>(max_) / 1000.0;
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
