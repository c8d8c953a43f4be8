// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

// The schema of the cluster file: one row per key. The reader (load.cpp), the
// suggestions for unknown keys (key_suggestions.cpp) and to_yaml() (to_yaml.cpp)
// all walk this table, so a key added here is known everywhere.
// A row's group is the dotted path of the map holding the key (`sender`,
// `membership.multicast`); the rows of one group stay together, in file order,
// because to_yaml() opens and closes the maps as it walks the rows.
namespace troupe::conf::detail {

enum class kind {
    text,
    port,
    count,
    duration,
    size,
    flag,
    members,
    names,
    send_options,
    queue_policy,
    failure_policy,
    pairs
};

using string_pairs = std::vector<std::pair<std::string, std::string>>;

using field_ptr = std::variant<std::string*,
                               std::uint16_t*,
                               std::uint32_t*,
                               std::uint64_t*,
                               duration*,
                               bool*,
                               std::vector<host_port>*,
                               std::vector<std::string>*,
                               queue_full_policy*,
                               replication_failure_policy*,
                               string_pairs*>;

struct key_spec {
    std::string_view group;
    std::string_view key;
    kind type;
    field_ptr (*field)(cluster_config&);
};

/// Every key of the file, in file order (defined in key_schema.cpp; a row added
/// there changes the count here too, or the two declarations conflict).
extern const std::array<key_spec, 61> keys;

/// `parent.child`, or `child` when `parent` is "" (the top level).
std::string dotted(std::string_view parent, std::string_view child);

/// The key's whole path: `membership.multicast.port`.
std::string full_path(const key_spec& spec);

/// Whether `group` is `outer` or lies inside it; everything lies inside "".
bool within(std::string_view group, std::string_view outer);

/// Whether `path` names a map of the schema (`membership`, `membership.multicast`).
bool is_group(std::string_view path);

/// The names a map at `group` may hold, its keys and its inner maps, in file
/// order; "" is the file's top level.
std::vector<std::string_view> child_names(std::string_view group);

/// The row of `key` in the map at `group`, or null when there is none.
const key_spec* find_key(std::string_view group, std::string_view key);

/// What a value of `type` should look like: the start of its type-error message.
std::string_view expectation(kind type);

} // namespace troupe::conf::detail
