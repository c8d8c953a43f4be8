// SPDX-License-Identifier: Apache-2.0
#include "placement.hpp"

#include "mix.hpp"

#include <tuple>

namespace troupe::managers::detail::placement {

std::uint64_t weight(std::string_view session_id, std::string_view member_name) noexcept {
    // Each input through the finaliser before they meet: ids that share a
    // prefix, or names that differ in one character, still rank independently.
    return mix(mix(fnv1a(session_id)) ^ mix(fnv1a(member_name) + 1));
}

const membership::member* backup(std::string_view session_id, const membership::member_id& primary,
                                 std::span<const membership::member> members) noexcept {
    const membership::member* best = nullptr;
    std::uint64_t best_weight = 0;
    for (const auto& m : members) {
        if (m.id == primary) {
            continue;
        }
        const auto w = weight(session_id, m.name);
        if (best == nullptr || std::tie(w, m.name, m.id) > std::tie(best_weight, best->name, best->id)) {
            best = &m;
            best_weight = w;
        }
    }
    return best;
}

} // namespace troupe::managers::detail::placement
