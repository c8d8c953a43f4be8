// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/system/error_code.hpp>

#include <type_traits>

namespace troupe::managers {

/// Why a manager message was rejected, category "troupe.managers". A rejected
/// message is counted and logged; the node goes on serving.
enum class error {
    truncated = 1,         ///< fewer bytes than a length or field needs
    bad_magic,             ///< not a session message
    unsupported_version,   ///< a codec version this build does not read
    unknown_type,          ///< a message type this build does not know
    bad_value,             ///< a field out of its range (empty id, unknown kind, after <= before)
    too_long,              ///< a length or count beyond its limit
    trailing_bytes,        ///< bytes left after the message
};

const boost::system::error_category& managers_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), managers_category()};
}

} // namespace troupe::managers

template <>
struct boost::system::is_error_code_enum<troupe::managers::error> : std::true_type {};
