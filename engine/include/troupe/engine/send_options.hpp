// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>

namespace troupe::engine::send_options {

/// Tribes' numbers, kept for familiarity.
inline constexpr std::uint32_t ack = 2;   ///< returns when every destination validated the frame
inline constexpr std::uint32_t sync = 6;  ///< returns when every destination's listener processed it
inline constexpr std::uint32_t async = 8; ///< returns when queued on each member's ordered stream

/// The ack bit (2) is set: the sender waits for each destination's ACK.
inline constexpr bool wants_ack(std::uint32_t options) noexcept { return (options & 2u) != 0; }
/// The sync bit (4) is set: the ACK comes after the listener returned.
inline constexpr bool wants_processed(std::uint32_t options) noexcept { return (options & 4u) != 0; }

} // namespace troupe::engine::send_options
