// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/conf/load.hpp>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

// Internals shared by the conf sources (load.cpp, validate.cpp, values.cpp,
// key_schema.cpp, key_suggestions.cpp, to_yaml.cpp) and the unit tests.
// The readers return the message a diagnostic shows, so that the public parse_*
// functions and the file loader cannot drift apart in what they accept.
namespace troupe::conf::detail {

/// `'text'`, with control and non-ASCII bytes escaped as \xNN so that a diagnostic
/// never writes raw terminal controls.
std::string quote(std::string_view text);

/// What each kind of value should look like: the start of its type-error message.
inline constexpr std::string_view duration_hint = "expected a duration like 500ms or 3s";
inline constexpr std::string_view size_hint = "expected a size like 64MiB, 512KiB or 1000";
inline constexpr std::string_view send_options_hint = "expected async, ack, sync or 8, 2, 6";

/// Each reader returns an empty string on success, else the whole message,
/// ending in `(got '<text>')`. `out` is left untouched on failure.
std::string read_duration(std::string_view text, duration& out);
std::string read_size(std::string_view text, std::uint64_t& out);
std::string read_send_options(std::string_view text, std::uint32_t& out);
std::string read_host_port(std::string_view text, host_port& out);

/// A decimal integer in 0..max: digits only (no sign, no spaces, no 0x).
bool read_uint(std::string_view text, std::uint64_t max, std::uint64_t& out);

/// `host:port`, with brackets around an IPv6 host.
std::string host_port_text(const host_port& member);

/// send_options_hint followed by `(got <got>)`; `got` is already quoted if need be.
std::string send_options_message(std::string_view got);

inline constexpr std::string_view log_levels[] = {"trace", "debug",    "info", "warn",
                                                  "error", "critical", "off"};

/// A rule broken by a config. `related` names the other key of a rule that ties
/// two keys together, so that the loader can point at it when `diag.path` is not
/// written in the file (it kept its default). `mark`, when set, is the path whose
/// position the loader shows instead of diag.path's: a payload key that is not a
/// valid name is reported as `membership.payload`, but at the key itself.
struct finding {
    diagnostic diag;
    std::string related;
    std::string mark;
};

/// validate() with a twist for the loader: rules touching a key in `unreliable`
/// (a key whose value in the file could not be read, so still holds its default)
/// are skipped, because their verdict would be about a value nobody wrote.
std::vector<finding> check(const cluster_config& config,
                           const std::set<std::string, std::less<>>& unreliable);

} // namespace troupe::conf::detail
