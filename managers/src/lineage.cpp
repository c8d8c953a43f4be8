// SPDX-License-Identifier: Apache-2.0
#include "lineage.hpp"

#include <tuple>

namespace troupe::managers::detail {

namespace {

// splitmix64's finaliser: every input bit reaches every output bit.
std::uint64_t mix(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

} // namespace

std::uint64_t next_tag(std::uint64_t tag, const membership::member_id& writer, std::uint64_t version) noexcept {
    std::uint64_t h = mix(tag ^ version);
    for (std::size_t i = 0; i < writer.bytes.size(); i += 8) {
        std::uint64_t word = 0;
        for (std::size_t j = 0; j < 8; ++j) {
            word = (word << 8) | writer.bytes[i + j];
        }
        h = mix(h ^ word);
    }
    return h;
}

bool wins(const wire::stamp& a, const wire::stamp& b) noexcept {
    return std::tuple(a.confirmed, a.version, a.tag) > std::tuple(b.confirmed, b.version, b.tag);
}

} // namespace troupe::managers::detail
