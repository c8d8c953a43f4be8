// SPDX-License-Identifier: Apache-2.0
#pragma once

// The hash steps every node must compute alike (lineage tags, placement).
// Fixed forever: changing one changes what nodes of two builds agree on.

#include <cstdint>
#include <string_view>

namespace troupe::managers::detail {

/// splitmix64's finaliser: every input bit reaches every output bit.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// FNV-1a over the bytes of `s`.
constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : s) {
        h = (h ^ static_cast<std::uint8_t>(c)) * 0x100000001b3ULL;
    }
    return h;
}

} // namespace troupe::managers::detail
