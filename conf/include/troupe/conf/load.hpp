// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::conf {

/// One problem in a cluster file, printed compiler-style:
/// `cluster.yaml:7:5: error: sender.ack_timeout: must be greater than 0 (got 0ms)`.
///
/// @par Thread safety
/// A plain value: distinct objects: safe. Shared objects: const members safe.
struct diagnostic {
    std::string file;   ///< file name, or "--set" for a command-line override
    int line = 0;       ///< 1-based; 0 when there is no position (config built in code)
    int column = 0;     ///< 1-based
    std::string path;   ///< key path, e.g. "sender.ack_timeout"; empty for file-level errors
    std::string message; ///< what is wrong, with the value given

    /// The compiler-style line above; parts without a value (file, line, path) are left out.
    std::string str() const;
};

/// Thrown by the loaders; holds every diagnostic, not just the first.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: safe (immutable once made).
class config_error : public std::runtime_error {
public:
    /// what() is every diagnostic's str(), one per line.
    explicit config_error(std::vector<diagnostic> diagnostics);
    /// Sorted: the file's by position, then the overrides', then those without a position.
    const std::vector<diagnostic>& diagnostics() const noexcept { return diagnostics_; }

private:
    std::vector<diagnostic> diagnostics_;
};

/// Reads and validates a cluster file. `overrides` are `key.path=value` strings
/// (troupe-node --set); the value is parsed as YAML (`membership.static=[a:1, b:2]`).
/// Unknown keys are errors at their own position; an empty `cluster.node` is filled
/// with the short host name. Safe from any thread.
/// @throws config_error with all diagnostics (an unreadable file is one of them).
cluster_config load_file(const std::string& path, const std::vector<std::string>& overrides = {});

/// Same as load_file, from text; `name` is used as the file name in diagnostics.
/// @throws config_error with all diagnostics.
cluster_config load_string(std::string_view yaml, const std::string& name = "<string>",
                           const std::vector<std::string>& overrides = {});

/// Semantic rules over a config (from a file or built in code). Positions are
/// left 0; the file loaders fill them in. Pure: safe from any thread.
/// @return every problem found; empty when the config is valid.
std::vector<diagnostic> validate(const cluster_config& config);

/// The effective config as YAML, every key present (troupe-node --check-config).
std::string to_yaml(const cluster_config& config);

/// "500ms", "3s", "30m", "1h": a unit is required, and "250us" is not allowed (ms is
/// the unit floor).
/// @return false if `text` is not a duration (`out` is then left unchanged).
bool parse_duration(std::string_view text, duration& out);

/// "64MiB", "512KiB", "1GiB", "1000", "10kB", "1MB".
/// @return false if `text` is not a size (`out` is then left unchanged).
bool parse_size(std::string_view text, std::uint64_t& out);

/// "async" | "ack" | "sync" or 8 | 2 | 6 (any combination of the option bits 2|4|8 that
/// makes sense: 4 requires 2). @return false otherwise.
bool parse_send_options(std::string_view text, std::uint32_t& out);

/// "async", "ack", "sync", or the number when it is none of these.
std::string send_options_name(std::uint32_t options);

/// The largest unit that divides `d` exactly ("90s", "5m"), so that it reads back equal.
std::string format_duration(duration d);
/// "4MiB" when a binary unit divides `bytes` exactly, else the plain number.
std::string format_size(std::uint64_t bytes);

} // namespace troupe::conf
