// SPDX-License-Identifier: Apache-2.0
#include "lineage.hpp"

#include "mix.hpp"

#include <tuple>

namespace troupe::managers::detail {

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
    return std::tuple(a.acked, a.version, a.tag) > std::tuple(b.acked, b.version, b.tag);
}

} // namespace troupe::managers::detail
