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
struct diagnostic {
    std::string file;   ///< file name, or "--set" for a command-line override
    int line = 0;       ///< 1-based; 0 when there is no position (config built in code)
    int column = 0;     ///< 1-based
    std::string path;   ///< key path, e.g. "sender.ack_timeout"; empty for file-level errors
    std::string message;

    std::string str() const;
};

/// Thrown by the loaders; holds every diagnostic, not just the first.
class config_error : public std::runtime_error {
public:
    explicit config_error(std::vector<diagnostic> diagnostics);
    const std::vector<diagnostic>& diagnostics() const noexcept { return diagnostics_; }

private:
    std::vector<diagnostic> diagnostics_;
};

/// Reads and validates a cluster file. `overrides` are `key.path=value` strings
/// (troupe-node --set); the value is parsed as YAML (`membership.static=[a:1, b:2]`).
/// @throws config_error with all diagnostics.
cluster_config load_file(const std::string& path, const std::vector<std::string>& overrides = {});

/// Same as load_file, from text; `name` is used as the file name in diagnostics.
cluster_config load_string(std::string_view yaml, const std::string& name = "<string>",
                           const std::vector<std::string>& overrides = {});

/// Semantic rules over a config (from a file or built in code). Positions are
/// left 0; the file loaders fill them in.
std::vector<diagnostic> validate(const cluster_config& config);

/// The effective config as YAML, every key present (troupe-node --check-config).
std::string to_yaml(const cluster_config& config);

/// "500ms", "3s", "30m", "1h", "250us" are not allowed (ms is the unit floor).
/// @return false if `text` is not a duration.
bool parse_duration(std::string_view text, duration& out);

/// "64MiB", "512KiB", "1GiB", "1000", "10kB", "1MB".
/// @return false if `text` is not a size.
bool parse_size(std::string_view text, std::uint64_t& out);

/// "async" | "ack" | "sync" or 8 | 2 | 6 (any combination of the option bits 2|4|8 that
/// makes sense: 4 requires 2). @return false otherwise.
bool parse_send_options(std::string_view text, std::uint32_t& out);

/// "async", "ack", "sync", or the number when it is none of these.
std::string send_options_name(std::uint32_t options);

std::string format_duration(duration d);
std::string format_size(std::uint64_t bytes);

} // namespace troupe::conf
