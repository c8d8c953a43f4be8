// SPDX-License-Identifier: Apache-2.0
#pragma once

// The session cookie (RFC 6265): reading the session id from a request's
// Cookie header and writing the Set-Cookie that gives it to the client. Every
// front end needs both; troupe-httpd uses these.
//
// Thread safety: the functions are pure; a cookie_settings is a plain value.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace troupe::managers {

/// The cookie's SameSite attribute.
enum class cookie_same_site { lax, strict, none };

/// How the session cookie is named and written: manager.cookie,
/// manager.cookie_secure, manager.cookie_path, manager.cookie_same_site and
/// manager.cookie_max_age of the cluster file.
struct cookie_settings {
    std::string name = "TROUPE_SESSION"; ///< an RFC 6265 cookie-name (a token)
    std::string path = "/";              ///< Path; starts with '/', no ';'
    bool secure = false;                 ///< Secure: sent over HTTPS only
    bool http_only = true;               ///< HttpOnly: not readable by scripts
    cookie_same_site same_site = cookie_same_site::lax; ///< none needs secure
    /// Max-Age; zero: none, the cookie ends when the browser closes.
    std::chrono::seconds max_age{0};
};

/// The longest session id taken from a cookie (ids are 32 hex digits, '.', and
/// a node name of at most 64 bytes).
inline constexpr std::size_t max_cookie_session_id = 128;

/// The session id in cookie `name` of one Cookie header field value (e.g.
/// "theme=dark; TROUPE_SESSION=3f...9a.web1"), or "" when the cookie is absent
/// or its value is not a session id: empty, longer than max_cookie_session_id,
/// or holding anything but letters, digits, '.', '_' and '-' (optional double
/// quotes around the value are removed). When the name appears more than once
/// the first occurrence counts, as browsers send the most specific first.
/// Never throws; the view points into `cookie_header`.
std::string_view session_id_from_cookie(std::string_view cookie_header, std::string_view name) noexcept;

/// The Set-Cookie field value that gives the client session `id`:
/// "NAME=ID; Path=/; HttpOnly; SameSite=Lax" plus "; Secure" and
/// "; Max-Age=N" as set. `id` must be a session id (see above).
std::string set_cookie_value(std::string_view id, const cookie_settings& settings);

/// The Set-Cookie field value that removes the cookie (empty value,
/// Max-Age=0), for a session that ended.
std::string expired_cookie_value(const cookie_settings& settings);

/// "lax", "strict" or "none" (the cluster file's spelling).
std::string_view to_string(cookie_same_site s) noexcept;

} // namespace troupe::managers
