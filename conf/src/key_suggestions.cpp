// SPDX-License-Identifier: Apache-2.0
// "Did you mean": the suggestion an unknown key's diagnostic carries.
#include "key_suggestions.hpp"

#include "detail.hpp"
#include "key_schema.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::conf::detail {
namespace {

// Keys that used to exist: an old file gets told where the setting went.
// clang-format off
struct moved_key {
    std::string_view from;
    std::string_view to;
};

constexpr std::array<moved_key, 3> moved_keys{{
    {"membership.drop_time", "membership.multicast.drop_time"},
    {"sender.keepalive", "membership.failure_detector.ping_interval"},
    // It was documented as the managers' default, yet the managers read only
    // manager.send_options: one key, so a file cannot say two things.
    {"channel.send_options", "manager.send_options"},
}};
// clang-format on

// "Did you mean": optimal string alignment distance (Levenshtein plus adjacent
// swaps, the commonest typing slip), compared case-insensitively.

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t n = a.size();
    const std::size_t m = b.size();
    std::vector<std::size_t> d((n + 1) * (m + 1));
    const auto at = [m](std::size_t i, std::size_t j) { return i * (m + 1) + j; };
    for (std::size_t i = 0; i <= n; ++i) {
        d[at(i, 0)] = i;
    }
    for (std::size_t j = 0; j <= m; ++j) {
        d[at(0, j)] = j;
    }
    for (std::size_t i = 1; i <= n; ++i) {
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[at(i, j)] =
                std::min({d[at(i - 1, j)] + 1, d[at(i, j - 1)] + 1, d[at(i - 1, j - 1)] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1])) {
                d[at(i, j)] = std::min(d[at(i, j)], d[at(i - 2, j - 2)] + 1);
            }
        }
    }
    return d[at(n, m)];
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    return prefix.size() <= text.size() &&
           edit_distance(text.substr(0, prefix.size()), prefix) == 0;
}

// The closest candidate, if close enough to be a likely slip: one edit; else
// one name being a prefix of the other (`static_members` for `static`, `log`
// for `logging`, `cookie_name` for `cookie` rather than `cookie_path`); else at
// most one edit per three characters.
std::string_view nearest(std::string_view key, const std::vector<std::string_view>& candidates) {
    std::string_view best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (const auto candidate : candidates) {
        const std::size_t distance = edit_distance(key, candidate);
        const std::size_t longest = std::max(key.size(), candidate.size());
        if (distance * 3 <= longest && distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    if (best_distance <= 1) {
        return best;
    }
    // A key cut short (`cookie_sec`) names the key it begins; a key with more
    // on it (`cookie_name`) the longest key it begins with.
    constexpr std::size_t min_prefix = 3;
    if (key.size() >= min_prefix) {
        for (const auto candidate : candidates) {
            if (starts_with_nocase(candidate, key)) {
                return candidate;
            }
        }
    }
    std::string_view longest;
    for (const auto candidate : candidates) {
        if (candidate.size() >= min_prefix && candidate.size() > longest.size() &&
            starts_with_nocase(key, candidate)) {
            longest = candidate;
        }
    }
    return longest.empty() ? best : longest;
}

// A key written in the wrong map (`drop_time` under `sender`, `static` or
// `multicast` at the top) is pointed to its home, when it has exactly one.
std::string home_of(std::string_view name) {
    std::set<std::string, std::less<>> homes;
    for (const auto& spec : keys) {
        if (spec.key == name) {
            homes.insert(full_path(spec));
        }
        // Inner maps are homes too (the top-level ones are suggested by nearest()).
        const std::string_view group = spec.group;
        for (auto dot = group.find('.'); dot != std::string_view::npos;
             dot = group.find('.', dot + 1)) {
            const auto inner = group.substr(0, group.find('.', dot + 1));
            if (inner.substr(dot + 1) == name) {
                homes.insert(std::string(inner));
            }
        }
    }
    return homes.size() == 1 ? *homes.begin() : std::string();
}

} // namespace

std::string unknown_key(std::string_view key, std::string_view group) {
    std::string message = "unknown key " + quote(key);
    const auto path = dotted(group, key);
    for (const auto& moved : moved_keys) {
        if (moved.from == path) {
            return message + " (moved to " + std::string(moved.to) + ")";
        }
    }
    std::string suggestion(nearest(key, child_names(group)));
    if (suggestion.empty()) {
        suggestion = home_of(key);
    }
    if (!suggestion.empty()) {
        message += " (did you mean " + quote(suggestion) + "?)";
    }
    return message;
}

} // namespace troupe::conf::detail
