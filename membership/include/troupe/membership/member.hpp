// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::membership {

/// 128 random bits drawn at start: a restarted node is a new member.
struct member_id {
    std::array<std::uint8_t, 16> bytes{};

    static member_id random();
    bool is_nil() const noexcept;
    std::string str() const; ///< 32 lowercase hex digits
    friend bool operator==(const member_id&, const member_id&) = default;
    friend auto operator<=>(const member_id&, const member_id&) = default;
};

struct member_id_hash {
    std::size_t operator()(const member_id& id) const noexcept;
};

enum class member_state { alive, suspect, gone, left };

std::string_view to_string(member_state state) noexcept;

/// A member of the group as this node knows it.
struct member {
    member_id id;
    std::uint64_t incarnation = 0; ///< start time, ms since the epoch
    std::string name;              ///< cluster.node: the session-id route suffix
    std::string host;              ///< TCP endpoint of its receiver
    std::uint16_t port = 0;
    member_state state = member_state::alive;
    std::string reason; ///< why it entered its current state (for logs and events)

    std::string endpoint() const { return host + ":" + std::to_string(port); }
};

} // namespace troupe::membership
