// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace troupe::ctl {

/// One leaf of a flattened JSON document: its dotted key path and its printed value.
using flat_entry = std::pair<std::string, std::string>;

/// Flattens `doc` into leaves sorted by key path.
///
/// Object keys and array indices are joined with '.' (`transport.peers.0.sent`). Strings print
/// without quotes, other scalars as JSON (`12`, `0.5`, `true`, `null`); an empty object or
/// array is a leaf printed as `{}` or `[]`. A scalar at the top level has the empty path.
std::vector<flat_entry> flatten(const nlohmann::json& doc);

/// The `stats` output: one `key.path  value` line per leaf of `stats`, sorted by key path, the
/// values aligned two spaces after the longest key. Empty for an empty object.
std::string format_stats(const nlohmann::json& stats);

/// The `members` table: a header `NAME  ENDPOINT  STATE  SELF  ID` and one row per element of
/// `members` (in the order given), columns separated by two spaces and padded to the widest
/// cell, without trailing blanks. SELF is `yes` or `no`; ID shows the first 8 characters of
/// the id. A missing or mistyped field prints as `-`.
///
/// @throws std::invalid_argument if `members` is not an array.
std::string format_members(const nlohmann::json& members);

} // namespace troupe::ctl
