// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <type_traits>

namespace troupe::managers {

/// What a session call failed with, category "troupe.session": the
/// `error_code` of the non-throwing and asynchronous forms, and the code of
/// a session_error thrown by the throwing forms.
enum class errc {
    /// An ack/sync replication of the request's change failed, with
    /// on_replication_failure = fail (the change stays here; see the detail).
    replication_failed = 1,
    /// The cookie names a session that exists in the cluster but could not be
    /// had in time (the backup manager's fetch got no answer): answer 503,
    /// never start an empty session in its place.
    session_unavailable,
    /// An attribute's stored bytes do not decode as the type asked for, or
    /// carry a type name this build does not know (that attribute only).
    decode_failed,
    /// A value Boost.Serialization could not save (nothing was stored).
    encode_failed,
    /// The manager is stopped (or stopping): it begins no more requests.
    stopped,
    /// Invalid manager settings (the detail lists every problem).
    invalid_config,
};

/// The "troupe.session" category.
const boost::system::error_category& session_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), session_category()};
}

/// The one exception type of the throwing forms (begin_request(), end(),
/// make_manager(), session_handle's get/set/modify): code() is an errc, what()
/// adds the detail. A boost::system::system_error, so code that already
/// catches those (or std::runtime_error, or std::exception) catches it.
class session_error : public boost::system::system_error {
public:
    session_error(errc e, const std::string& detail)
        : boost::system::system_error(make_error_code(e), detail) {}
    session_error(boost::system::error_code ec, const std::string& detail)
        : boost::system::system_error(ec, detail) {}
};

/// Why a manager message from another member was rejected, category
/// "troupe.managers". A rejected message is counted and logged; the node goes
/// on serving. (Wire-level: no embedding call returns these.)
enum class error {
    truncated = 1,         ///< fewer bytes than a length or field needs
    bad_magic,             ///< not a session message
    unsupported_version,   ///< a codec version this build does not read
    unknown_type,          ///< a message type this build does not know
    bad_value,             ///< a field out of its range (empty id, unknown kind, after <= before)
    too_long,              ///< a length or count beyond its limit
    trailing_bytes,        ///< bytes left after the message
};

/// The "troupe.managers" category (wire-level rejections).
const boost::system::error_category& managers_category() noexcept;

inline boost::system::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), managers_category()};
}

} // namespace troupe::managers

/// Both enums convert to boost::system::error_code implicitly.
template <>
struct boost::system::is_error_code_enum<troupe::managers::error> : std::true_type {};
template <>
struct boost::system::is_error_code_enum<troupe::managers::errc> : std::true_type {};
