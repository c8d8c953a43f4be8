// SPDX-License-Identifier: Apache-2.0
#pragma once

// The rules for the `manager.*` values, in one place: the cluster file's
// validator (conf::check) and the managers' own validate() (for a
// manager_config built in code) both call these, so the two cannot disagree.
// Each returns what is wrong with a value, or nothing. All are pure functions, safe
// from any thread.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::conf::manager_rules {

/// The manager types a cluster file may name. The managers' registry has a
/// factory for each (a static_assert there keeps the two lists equal).
inline constexpr std::array<std::string_view, 3> types{"backup", "delta", "standard"};

/// A DATA frame carries the context in at most this many bytes.
inline constexpr std::size_t max_context_bytes = 255;

/// One of `types`; otherwise "expected one of backup, delta, standard (got 'x')".
std::optional<std::string> type_problem(std::string_view type);
/// The channel context: not empty, at most max_context_bytes.
std::optional<std::string> context_problem(std::string_view context);
/// RFC 6265 cookie-name: an RFC 2616 token (visible ASCII, no separators).
std::optional<std::string> cookie_problem(std::string_view cookie);
/// A cookie's Path attribute: starts with '/', visible ASCII without ';', at
/// most 1024 bytes.
std::optional<std::string> cookie_path_problem(std::string_view path);
/// SameSite: lax, strict or none; none only with Secure (browsers drop a
/// SameSite=None cookie without it).
std::optional<std::string> cookie_same_site_problem(std::string_view same_site, bool secure);
/// An HTTP header field name: an RFC 9110 token (visible ASCII, no separators).
std::optional<std::string> header_name_problem(std::string_view name);
/// An ECMAScript std::regex, or what is wrong and at which character.
std::optional<std::string> filter_problem(std::string_view filter);
/// The send option bits async 8, ack 2, sync 6 (2 | 4): 4 needs 2.
std::optional<std::string> send_options_problem(std::uint32_t bits);

} // namespace troupe::conf::manager_rules
