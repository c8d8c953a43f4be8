// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::membership {

/// 128 random bits drawn at start: a restarted node is a new member.
///
/// @par Thread safety
/// A plain value: distinct objects: safe. Shared objects: const members safe;
/// random() from any thread.
struct member_id {
    std::array<std::uint8_t, 16> bytes{}; ///< all zero: the nil id

    /// 16 bytes from OpenSSL's CSPRNG.
    /// @throws std::runtime_error if OpenSSL cannot supply them.
    static member_id random();
    /// All 16 bytes are zero (no member has that id).
    bool is_nil() const noexcept;
    std::string str() const; ///< 32 lowercase hex digits
    /// Byte-wise equality.
    friend bool operator==(const member_id&, const member_id&) = default;
    /// Byte-wise order, for sorted containers.
    friend auto operator<=>(const member_id&, const member_id&) = default;
};

/// Hash for unordered containers: the id's first bytes (already random).
struct member_id_hash {
    /// The id's first sizeof(std::size_t) bytes.
    std::size_t operator()(const member_id& id) const noexcept;
};

/// Where a member is in the failure detector's state machine. `alive`: a handshake
/// completed. `suspect`: silent or failing; still sent to while a TCP verification
/// runs. `gone`: verification failed, or a new incarnation took its endpoint.
/// `left`: it said it was leaving (BYE or a leaving heartbeat).
enum class member_state { alive, suspect, gone, left };

/// "alive", "suspect", "gone" or "left".
std::string_view to_string(member_state state) noexcept;

/// A member of the group as this node knows it.
///
/// @par Thread safety
/// A plain value: distinct objects: safe. Shared objects: const members safe.
struct member {
    member_id id;                  ///< unique per start of a node
    std::uint64_t incarnation = 0; ///< start time, ms since the epoch
    std::string name;              ///< cluster.node: the session-id route suffix
    std::string host;              ///< TCP endpoint of its receiver
    std::uint16_t port = 0;        ///< TCP port of its receiver
    member_state state = member_state::alive; ///< as of when this copy was taken
    std::string reason; ///< why it entered its current state (for logs and events)

    /// "host:port" of its receiver (no brackets for IPv6); the channel keys streams by it.
    std::string endpoint() const { return host + ":" + std::to_string(port); }
};

} // namespace troupe::membership
