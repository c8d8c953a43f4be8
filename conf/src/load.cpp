// SPDX-License-Identifier: Apache-2.0
#include "detail.hpp"

#include <troupe/conf/load.hpp>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <unistd.h>

namespace troupe::conf {

std::string diagnostic::str() const {
    std::string text = file;
    if (line > 0) {
        text += (text.empty() ? "" : ":") + std::to_string(line);
        if (column > 0) {
            text += ":" + std::to_string(column);
        }
    }
    if (!text.empty()) {
        text += ": ";
    }
    text += "error: ";
    if (!path.empty()) {
        text += path + ": ";
    }
    text += message;
    return text;
}

namespace {

std::string join(const std::vector<diagnostic>& diagnostics) {
    std::string text;
    for (const auto& d : diagnostics) {
        if (!text.empty()) {
            text += '\n';
        }
        text += d.str();
    }
    return text;
}

} // namespace

config_error::config_error(std::vector<diagnostic> diagnostics)
    : std::runtime_error(join(diagnostics))
    , diagnostics_(std::move(diagnostics)) {}

namespace detail {
namespace {

constexpr std::string_view set_file = "--set";

// ---------------------------------------------------------------------------
// The schema: one row per key. The reader, the suggestions for unknown keys
// and to_yaml() all walk this table, so a key added here is known everywhere.
// A row's group is the dotted path of the map holding the key (`sender`,
// `membership.multicast`); the rows of one group stay together, in file order,
// because to_yaml() opens and closes the maps as it walks the rows.

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

// clang-format off
const std::array<key_spec, 61> keys{{
    {"cluster", "name", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.cluster.name; }},
    {"cluster", "node", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.cluster.node; }},
    {"cluster", "secret", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.cluster.secret; }},
    {"receiver", "address", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.receiver.address; }},
    {"receiver", "port", kind::port,
     [](cluster_config& c) -> field_ptr { return &c.receiver.port; }},
    {"receiver", "auto_bind", kind::count,
     [](cluster_config& c) -> field_ptr { return &c.receiver.auto_bind; }},
    {"receiver", "threads", kind::count,
     [](cluster_config& c) -> field_ptr { return &c.receiver.threads; }},
    {"receiver", "reader_threads", kind::count,
     [](cluster_config& c) -> field_ptr { return &c.receiver.reader_threads; }},
    {"receiver", "idle_timeout", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.receiver.idle_timeout; }},
    {"membership", "static", kind::members,
     [](cluster_config& c) -> field_ptr { return &c.membership.static_members; }},
    {"membership.dns", "name", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.membership.dns.name; }},
    {"membership.dns", "port", kind::port,
     [](cluster_config& c) -> field_ptr { return &c.membership.dns.port; }},
    {"membership.dns", "interval", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.membership.dns.interval; }},
    {"membership.multicast", "enabled", kind::flag,
     [](cluster_config& c) -> field_ptr { return &c.membership.multicast.enabled; }},
    {"membership.multicast", "address", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.membership.multicast.address; }},
    {"membership.multicast", "port", kind::port,
     [](cluster_config& c) -> field_ptr { return &c.membership.multicast.port; }},
    {"membership.multicast", "interface", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.membership.multicast.interface; }},
    {"membership.multicast", "ttl", kind::count,
     [](cluster_config& c) -> field_ptr { return &c.membership.multicast.ttl; }},
    {"membership.multicast", "frequency", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.membership.multicast.frequency; }},
    {"membership.multicast", "drop_time", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.membership.multicast.drop_time; }},
    {"membership.failure_detector", "ping_interval", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.membership.failure_detector.ping_interval; }},
    {"membership.failure_detector", "verify_timeout", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.membership.failure_detector.verify_timeout; }},
    {"membership", "payload", kind::pairs,
     [](cluster_config& c) -> field_ptr { return &c.membership.payload; }},
    {"sender", "connect_timeout", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.sender.connect_timeout; }},
    {"sender", "ack_timeout", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.sender.ack_timeout; }},
    {"sender", "queue_limit", kind::size,
     [](cluster_config& c) -> field_ptr { return &c.sender.queue_limit; }},
    {"sender", "on_queue_full", kind::queue_policy,
     [](cluster_config& c) -> field_ptr { return &c.sender.on_queue_full; }},
    {"sender", "block_timeout", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.sender.block_timeout; }},
    {"sender", "reconnect_backoff_max", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.sender.reconnect_backoff_max; }},
    {"sender", "linger_us", kind::count,
     [](cluster_config& c) -> field_ptr { return &c.sender.linger_us; }},
    {"channel", "max_message", kind::size,
     [](cluster_config& c) -> field_ptr { return &c.channel.max_message; }},
    {"channel", "stop_timeout", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.channel.stop_timeout; }},
    {"admin", "enabled", kind::flag,
     [](cluster_config& c) -> field_ptr { return &c.admin.enabled; }},
    {"admin", "address", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.admin.address; }},
    {"admin", "port", kind::port,
     [](cluster_config& c) -> field_ptr { return &c.admin.port; }},
    {"http", "address", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.http.address; }},
    {"http", "port", kind::port,
     [](cluster_config& c) -> field_ptr { return &c.http.port; }},
    {"http", "threads", kind::count,
     [](cluster_config& c) -> field_ptr { return &c.http.threads; }},
    {"manager", "type", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.manager.type; }},
    {"manager", "context", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.manager.context; }},
    {"manager", "cookie", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.manager.cookie; }},
    {"manager", "cookie_secure", kind::flag,
     [](cluster_config& c) -> field_ptr { return &c.manager.cookie_secure; }},
    {"manager", "cookie_path", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.manager.cookie_path; }},
    {"manager", "cookie_same_site", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.manager.cookie_same_site; }},
    {"manager", "cookie_max_age", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.manager.cookie_max_age; }},
    {"manager", "filter", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.manager.filter; }},
    {"manager", "skip_paths", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.manager.skip_paths; }},
    {"manager", "skip_headers", kind::names,
     [](cluster_config& c) -> field_ptr { return &c.manager.skip_headers; }},
    {"manager", "route_rewrite", kind::flag,
     [](cluster_config& c) -> field_ptr { return &c.manager.route_rewrite; }},
    {"manager", "max_inactive", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.manager.max_inactive; }},
    {"manager", "send_options", kind::send_options,
     [](cluster_config& c) -> field_ptr { return &c.manager.send_options; }},
    {"manager", "on_replication_failure", kind::failure_policy,
     [](cluster_config& c) -> field_ptr { return &c.manager.on_replication_failure; }},
    {"manager", "notify_listeners_on_replication", kind::flag,
     [](cluster_config& c) -> field_ptr { return &c.manager.notify_listeners_on_replication; }},
    {"manager", "expire_sessions_on_shutdown", kind::flag,
     [](cluster_config& c) -> field_ptr { return &c.manager.expire_sessions_on_shutdown; }},
    {"manager", "state_transfer_timeout", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.manager.state_transfer_timeout; }},
    {"metrics.statsd", "address", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.metrics.statsd.address; }},
    {"metrics.statsd", "port", kind::port,
     [](cluster_config& c) -> field_ptr { return &c.metrics.statsd.port; }},
    {"metrics.statsd", "prefix", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.metrics.statsd.prefix; }},
    {"metrics.statsd", "interval", kind::duration,
     [](cluster_config& c) -> field_ptr { return &c.metrics.statsd.interval; }},
    {"logging", "level", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.logging.level; }},
    {"logging", "file", kind::text,
     [](cluster_config& c) -> field_ptr { return &c.logging.file; }},
}};

// Keys that used to exist: an old file gets told where the setting went.
struct moved_key {
    std::string_view from;
    std::string_view to;
};

constexpr std::array<moved_key, 3> moved_keys{{
    {"membership.drop_time", "membership.multicast.drop_time"},
    {"sender.keepalive", "membership.failure_detector.ping_interval"},
    // It was documented as the managers' default, yet the managers read only
    // manager.send_options: one key, so a file cannot say two things.
    {"channel.send_options", "manager.send_options"},
}};

// clang-format on

std::string dotted(std::string_view parent, std::string_view child) {
    std::string path(parent);
    if (!path.empty()) {
        path += '.';
    }
    path += child;
    return path;
}

std::string full_path(const key_spec& spec) {
    return dotted(spec.group, spec.key);
}

/// Whether `group` is `outer` or lies inside it; everything lies inside "".
bool within(std::string_view group, std::string_view outer) {
    return outer.empty() || group == outer ||
           (group.size() > outer.size() && group.substr(0, outer.size()) == outer &&
            group[outer.size()] == '.');
}

/// `membership.multicast` as {"membership", "multicast"}.
std::vector<std::string_view> split_group(std::string_view group) {
    std::vector<std::string_view> parts;
    while (!group.empty()) {
        const auto dot = group.find('.');
        parts.push_back(group.substr(0, dot));
        group = dot == std::string_view::npos ? std::string_view() : group.substr(dot + 1);
    }
    return parts;
}

/// Whether `path` names a map of the schema (`membership`, `membership.multicast`).
bool is_group(std::string_view path) {
    return !path.empty() && std::any_of(keys.begin(), keys.end(), [path](const key_spec& spec) {
        return within(spec.group, path);
    });
}

/// The names a map at `group` may hold, its keys and its inner maps, in file
/// order; "" is the file's top level.
std::vector<std::string_view> child_names(std::string_view group) {
    std::vector<std::string_view> names;
    const auto add = [&names](std::string_view name) {
        if (std::find(names.begin(), names.end(), name) == names.end()) {
            names.push_back(name);
        }
    };
    for (const auto& spec : keys) {
        if (spec.group == group) {
            add(spec.key);
        } else if (within(spec.group, group)) {
            const auto rest = group.empty() ? spec.group : spec.group.substr(group.size() + 1);
            add(rest.substr(0, rest.find('.')));
        }
    }
    return names;
}

const key_spec* find_key(std::string_view group, std::string_view key) {
    for (const auto& spec : keys) {
        if (spec.group == group && spec.key == key) {
            return &spec;
        }
    }
    return nullptr;
}

std::string_view expectation(kind type) {
    switch (type) {
    case kind::text:
        return "expected a string";
    case kind::port:
        return "expected an integer from 0 to 65535";
    case kind::count:
        return "expected an integer from 0 to 4294967295";
    case kind::duration:
        return duration_hint;
    case kind::size:
        return size_hint;
    case kind::flag:
        return "expected true or false";
    case kind::members:
        return "expected a list of host:port";
    case kind::names:
        return "expected a list of strings, like [X-Health-Check]";
    case kind::send_options:
        return send_options_hint;
    case kind::queue_policy:
        return "expected one of block, fail";
    case kind::failure_policy:
        return "expected one of log, fail";
    case kind::pairs:
        return "expected a map of strings, like {zone: a}";
    }
    return "expected a value";
}

// ---------------------------------------------------------------------------
// "Did you mean": optimal string alignment distance (Levenshtein plus adjacent
// swaps, the commonest typing slip), compared case-insensitively.

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t n = a.size();
    const std::size_t m = b.size();
    std::vector<std::size_t> d((n + 1) * (m + 1));
    const auto at = [m](std::size_t i, std::size_t j) { return i * (m + 1) + j; };
    for (std::size_t i = 0; i <= n; ++i) {
        d[at(i, 0)] = i;
    }
    for (std::size_t j = 0; j <= m; ++j) {
        d[at(0, j)] = j;
    }
    for (std::size_t i = 1; i <= n; ++i) {
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[at(i, j)] =
                std::min({d[at(i - 1, j)] + 1, d[at(i, j - 1)] + 1, d[at(i - 1, j - 1)] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                lower(a[i - 2]) == lower(b[j - 1])) {
                d[at(i, j)] = std::min(d[at(i, j)], d[at(i - 2, j - 2)] + 1);
            }
        }
    }
    return d[at(n, m)];
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    return prefix.size() <= text.size() &&
           edit_distance(text.substr(0, prefix.size()), prefix) == 0;
}

// The closest candidate, if close enough to be a likely slip: one edit; else
// one name being a prefix of the other (`static_members` for `static`, `log`
// for `logging`, `cookie_name` for `cookie` rather than `cookie_path`); else at
// most one edit per three characters.
std::string_view nearest(std::string_view key, const std::vector<std::string_view>& candidates) {
    std::string_view best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (const auto candidate : candidates) {
        const std::size_t distance = edit_distance(key, candidate);
        const std::size_t longest = std::max(key.size(), candidate.size());
        if (distance * 3 <= longest && distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    if (best_distance <= 1) {
        return best;
    }
    // A key cut short (`cookie_sec`) names the key it begins; a key with more
    // on it (`cookie_name`) the longest key it begins with.
    constexpr std::size_t min_prefix = 3;
    if (key.size() >= min_prefix) {
        for (const auto candidate : candidates) {
            if (starts_with_nocase(candidate, key)) {
                return candidate;
            }
        }
    }
    std::string_view longest;
    for (const auto candidate : candidates) {
        if (candidate.size() >= min_prefix && candidate.size() > longest.size() &&
            starts_with_nocase(key, candidate)) {
            longest = candidate;
        }
    }
    return longest.empty() ? best : longest;
}

// A key written in the wrong map (`drop_time` under `sender`, `static` or
// `multicast` at the top) is pointed to its home, when it has exactly one.
std::string home_of(std::string_view name) {
    std::set<std::string, std::less<>> homes;
    for (const auto& spec : keys) {
        if (spec.key == name) {
            homes.insert(full_path(spec));
        }
        // Inner maps are homes too (the top-level ones are suggested by nearest()).
        const std::string_view group = spec.group;
        for (auto dot = group.find('.'); dot != std::string_view::npos;
             dot = group.find('.', dot + 1)) {
            const auto inner = group.substr(0, group.find('.', dot + 1));
            if (inner.substr(dot + 1) == name) {
                homes.insert(std::string(inner));
            }
        }
    }
    return homes.size() == 1 ? *homes.begin() : std::string();
}

std::string unknown_key(std::string_view key, std::string_view group) {
    std::string message = "unknown key " + quote(key);
    const auto path = dotted(group, key);
    for (const auto& moved : moved_keys) {
        if (moved.from == path) {
            return message + " (moved to " + std::string(moved.to) + ")";
        }
    }
    std::string suggestion(nearest(key, child_names(group)));
    if (suggestion.empty()) {
        suggestion = home_of(key);
    }
    if (!suggestion.empty()) {
        message += " (did you mean " + quote(suggestion) + "?)";
    }
    return message;
}

// ---------------------------------------------------------------------------

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Map:
        return "a map";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Scalar:
        return quote(node.Scalar());
    default:
        return "nothing";
    }
}

std::string expected(kind type, const YAML::Node& node) {
    return std::string(expectation(type)) + " (got " + describe(node) + ")";
}

/// Where a document's text comes from: the file, or one `--set` value, whose
/// marks count from the start of the value inside `key=value`.
struct source {
    std::string file;
    int line_base = 1;   ///< added to yaml-cpp's 0-based line
    int column_base = 1; ///< added to the 0-based column on the document's first line
};

struct position {
    std::string file;
    int line = 0;
    int column = 0;
};

position at(const source& src, const YAML::Mark& mark) {
    if (mark.is_null()) {
        return {src.file, 0, 0};
    }
    const int column_base = mark.line == 0 ? src.column_base : 1;
    return {src.file, src.line_base + mark.line, column_base + mark.column};
}

// yaml-cpp 0.7's LoadAll never returns for a stream such as "," or ",a": its
// parser reports an empty document without consuming the stray token, and LoadAll
// asks again, forever, allocating a node each time until memory runs out
// (yaml-cpp issue #1040, fixed only after 0.8.0). We need the first document and
// whether a second one starts, so the parser is asked for at most two.
class document_probe : public YAML::EventHandler {
public:
    int documents = 0;
    std::optional<YAML::Mark> second; ///< the second document's first node, as LoadAll marks it

    void OnDocumentStart(const YAML::Mark&) override { ++documents; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string&) override {
        node(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        node(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
        node(mark);
    }
    void OnMapEnd() override {}

private:
    void node(const YAML::Mark& mark) {
        if (documents == 2 && !second) {
            second = mark;
        }
    }
};

struct yaml_stream {
    std::optional<YAML::Node> first;  ///< empty when the text holds no document
    std::optional<YAML::Mark> second; ///< set when a second document starts
};

/// @throws YAML::Exception for a syntax error in the first two documents.
yaml_stream load_stream(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    document_probe probe;
    while (probe.documents < 2 && parser.HandleNextDocument(probe)) {
    }
    yaml_stream out;
    if (probe.documents > 0) {
        out.first = YAML::Load(text); // reads the first document only: always ends
    }
    if (probe.documents > 1) {
        out.second = probe.second.value_or(YAML::Mark{});
    }
    return out;
}

bool is_null_literal(std::string_view text) {
    return text == "~" || text == "null" || text == "Null" || text == "NULL";
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t");
    return text.substr(first, last - first + 1);
}

class reader {
public:
    void error(const position& where, std::string path, std::string message) {
        diagnostic d;
        d.file = where.file;
        d.line = where.line;
        d.column = where.column;
        d.path = std::move(path);
        d.message = std::move(message);
        diagnostics_.push_back(std::move(d));
    }

    void read_document(const YAML::Node& root, const source& src) {
        if (root.IsNull()) {
            return;
        }
        if (!root.IsMap()) {
            error(at(src, root.Mark()), "",
                  "expected a map of sections (got " + describe(root) + ")");
            return;
        }
        read_entries("", root, src);
    }

    void read_override(std::string_view text, int index) {
        const position start{std::string(set_file), index, 1};
        const auto equals = text.find('=');
        if (equals == std::string_view::npos || trim(text.substr(0, equals)).empty()) {
            error(start, "", "expected key=value (got " + quote(text) + ")");
            return;
        }
        const auto key = text.substr(0, equals);

        std::vector<std::pair<std::string_view, int>> parts; // name, 1-based column
        std::size_t begin = 0;
        while (true) {
            const auto dot = key.find('.', begin);
            const auto end = dot == std::string_view::npos ? key.size() : dot;
            parts.emplace_back(key.substr(begin, end - begin), static_cast<int>(begin) + 1);
            if (dot == std::string_view::npos) {
                break;
            }
            begin = dot + 1;
        }

        const auto column_of = [&](std::size_t part) {
            return position{std::string(set_file), index, parts[part].second};
        };
        // Down the maps (`membership`, `membership.multicast`) to a key, or to a
        // map when the key names one.
        std::string group;
        const key_spec* spec = nullptr;
        for (std::size_t i = 0; i < parts.size() && spec == nullptr; ++i) {
            const auto name = parts[i].first;
            const auto path = dotted(group, name);
            if (is_group(path)) {
                group = path;
                continue;
            }
            spec = find_key(group, name);
            if (spec == nullptr) {
                error(column_of(i), path, unknown_key(name, group));
                return;
            }
            if (i + 1 < parts.size()) {
                // A map of strings is one value: its entries have no paths of their own.
                const auto why = spec->type == kind::pairs
                                     ? path + " is set as a whole map, like " + path + "={zone: a}"
                                     : path + " has no keys";
                error(column_of(i + 1), std::string(key),
                      "unknown key " + quote(parts[i + 1].first) + " (" + why + ")");
                return;
            }
        }

        const auto value_text = text.substr(equals + 1);
        const source value_src{std::string(set_file), index, static_cast<int>(equals) + 2};
        const std::string path(key);
        YAML::Node value;
        try {
            auto documents = load_stream(std::string(value_text));
            if (documents.second) {
                error(at(value_src, *documents.second), path,
                      "expected one YAML value (got " + quote(value_text) + ")");
                return;
            }
            if (documents.first) {
                value = *documents.first;
            }
        } catch (const YAML::Exception& e) {
            error(at(value_src, e.mark), path, e.msg);
            return;
        }
        // `--set cluster.secret=#x` reads as a YAML comment, i.e. nothing: an
        // empty secret would then pass silently. Only an explicit null may.
        const auto trimmed = trim(value_text);
        if (value.IsNull() && !trimmed.empty() && !is_null_literal(trimmed)) {
            error(at(value_src, YAML::Mark{}), path,
                  "reads as an empty YAML value, quote it (got " + quote(value_text) + ")");
            return;
        }
        if (spec == nullptr) {
            // In a file an empty section means "all defaults"; on the command
            // line `--set sender=` would silently do nothing.
            if (value.IsNull()) {
                error(start, group, "expected a map (got nothing)");
                return;
            }
            read_group(group, start, value, value_src);
        } else {
            marks_[path] = start;
            read_value(*spec, start, value, value_src);
        }
    }

    cluster_config& config() { return config_; }

    std::vector<diagnostic>& diagnostics() { return diagnostics_; }

    const std::set<std::string, std::less<>>& unreliable() const { return unreliable_; }

    std::optional<position> mark_of(std::string_view path) const {
        const auto it = marks_.find(path);
        if (it == marks_.end()) {
            return std::nullopt;
        }
        return it->second;
    }

private:
    // Rejects keys that are not plain names and keys written twice in one map;
    // yaml-cpp keeps both copies of a duplicate, silently letting one win.
    bool is_new_key(const YAML::Node& key,
                    const position& key_pos,
                    std::string_view prefix,
                    std::map<std::string, int, std::less<>>& seen) {
        if (!key.IsScalar()) {
            error(key_pos, std::string(prefix), "expected a key name (got " + describe(key) + ")");
            return false;
        }
        const auto& name = key.Scalar();
        const std::string path = prefix.empty() ? name : dotted(prefix, name);
        const auto [it, inserted] = seen.emplace(name, key_pos.line);
        if (!inserted) {
            error(key_pos, path,
                  "duplicate key " + quote(name) + " (first at line " + std::to_string(it->second) +
                      ")");
            return false;
        }
        return true;
    }

    // The keys of the map at `group`; "" is the file's top level.
    void read_entries(std::string_view group, const YAML::Node& node, const source& src) {
        std::map<std::string, int, std::less<>> seen;
        for (const auto& entry : node) {
            const auto pos = at(src, entry.first.Mark());
            if (!is_new_key(entry.first, pos, group, seen)) {
                continue;
            }
            const auto& name = entry.first.Scalar();
            const auto path = dotted(group, name);
            if (is_group(path)) {
                read_group(path, pos, entry.second, src);
                continue;
            }
            const auto* spec = find_key(group, name);
            if (spec == nullptr) {
                error(pos, path, unknown_key(name, group));
                continue;
            }
            marks_[path] = pos;
            read_value(*spec, pos, entry.second, src);
        }
    }

    void read_group(const std::string& group,
                    const position& key_pos,
                    const YAML::Node& node,
                    const source& src) {
        marks_[group] = key_pos;
        // An empty map (every key commented out) keeps every default.
        if (node.IsNull()) {
            return;
        }
        if (!node.IsMap()) {
            error(at(src, node.Mark()), group, "expected a map (got " + describe(node) + ")");
            // Its keys keep their defaults, which no rule should judge as if written.
            for (const auto& spec : keys) {
                if (within(spec.group, group)) {
                    unreliable_.insert(full_path(spec));
                }
            }
            return;
        }
        read_entries(group, node, src);
    }

    void read_value(const key_spec& spec,
                    const position& key_pos,
                    const YAML::Node& value,
                    const source& src) {
        const std::string path = full_path(spec);
        // yaml-cpp marks an empty value at the next token, often on another
        // line; the key is where the reader should look.
        const position pos = value.IsNull() ? key_pos : at(src, value.Mark());
        const auto field = spec.field(config_);
        std::string problem;
        bool complete = true; // false when a part was unreadable, and reported
        if (spec.type == kind::members) {
            problem = read_members(*std::get<std::vector<host_port>*>(field), value, src);
        } else if (spec.type == kind::names) {
            problem = read_names(*std::get<std::vector<std::string>*>(field), path, value, src, complete);
        } else if (spec.type == kind::pairs) {
            problem = read_pairs(*std::get<string_pairs*>(field), path, value, src, complete);
        } else if (spec.type == kind::text && value.IsNull()) {
            *std::get<std::string*>(field) = std::string();
        } else if (!value.IsScalar()) {
            problem = expected(spec.type, value);
        } else {
            problem = read_scalar(spec.type, field, value);
        }
        if (problem.empty() && complete) {
            unreliable_.erase(path);
        } else {
            if (!problem.empty()) {
                error(pos, path, std::move(problem));
            }
            unreliable_.insert(path);
        }
    }

    static std::string read_scalar(kind type, const field_ptr& field, const YAML::Node& value) {
        const auto& text = value.Scalar();
        std::uint64_t number = 0;
        switch (type) {
        case kind::text:
            *std::get<std::string*>(field) = text;
            return {};
        case kind::port:
            if (!read_uint(text, std::numeric_limits<std::uint16_t>::max(), number)) {
                return expected(type, value);
            }
            *std::get<std::uint16_t*>(field) = static_cast<std::uint16_t>(number);
            return {};
        case kind::count:
            if (!read_uint(text, std::numeric_limits<std::uint32_t>::max(), number)) {
                return expected(type, value);
            }
            *std::get<std::uint32_t*>(field) = static_cast<std::uint32_t>(number);
            return {};
        case kind::duration:
            return read_duration(text, *std::get<duration*>(field));
        case kind::size:
            return read_size(text, *std::get<std::uint64_t*>(field));
        case kind::send_options:
            return read_send_options(text, *std::get<std::uint32_t*>(field));
        case kind::flag:
            // Only the YAML 1.2 spellings: `yes`/`no`/`on`/`off` are YAML 1.1
            // booleans that surprise people (and yaml-cpp would accept them).
            if (text == "true" || text == "True" || text == "TRUE") {
                *std::get<bool*>(field) = true;
                return {};
            }
            if (text == "false" || text == "False" || text == "FALSE") {
                *std::get<bool*>(field) = false;
                return {};
            }
            return expected(type, value);
        case kind::queue_policy:
            if (text == "block") {
                *std::get<queue_full_policy*>(field) = queue_full_policy::block;
                return {};
            }
            if (text == "fail") {
                *std::get<queue_full_policy*>(field) = queue_full_policy::fail;
                return {};
            }
            return expected(type, value);
        case kind::failure_policy:
            if (text == "log") {
                *std::get<replication_failure_policy*>(field) = replication_failure_policy::log;
                return {};
            }
            if (text == "fail") {
                *std::get<replication_failure_policy*>(field) = replication_failure_policy::fail;
                return {};
            }
            return expected(type, value);
        case kind::members:
        case kind::names:
        case kind::pairs:
            break;
        }
        return expected(type, value);
    }

    // A list of strings; each entry's position is marked under `<path>[i]`,
    // where validate()'s findings about it point. An entry that is not a
    // string is reported and makes the list unreliable (`complete` false).
    std::string read_names(std::vector<std::string>& out,
                           const std::string& path,
                           const YAML::Node& value,
                           const source& src,
                           bool& complete) {
        if (!value.IsNull() && !value.IsSequence()) {
            return expected(kind::names, value);
        }
        const std::string prefix = path + "[";
        std::erase_if(marks_, [&](const auto& entry) {
            return entry.first.compare(0, prefix.size(), prefix) == 0;
        });
        std::vector<std::string> names;
        std::size_t index = 0;
        for (const auto& element : value) {
            const std::string entry_path = prefix + std::to_string(index++) + "]";
            const auto pos = at(src, element.Mark());
            marks_[entry_path] = pos;
            if (!element.IsScalar()) {
                error(pos, entry_path, "expected a string (got " + describe(element) + ")");
                unreliable_.insert(entry_path);
                complete = false;
            }
            // Kept even when unreadable, so that indexes match the file.
            names.push_back(element.IsScalar() ? element.Scalar() : std::string());
        }
        out = std::move(names);
        return {};
    }

    // Each entry gets its own path (`membership.static[2]`) and position, so that
    // validate()'s per-entry findings land on the right line.
    std::string
    read_members(std::vector<host_port>& out, const YAML::Node& value, const source& src) {
        if (!value.IsNull() && !value.IsSequence()) {
            return expected(kind::members, value);
        }
        const std::string prefix = "membership.static[";
        const auto stale = [&](const std::string& path) {
            return path.compare(0, prefix.size(), prefix) == 0;
        };
        std::erase_if(marks_, [&](const auto& entry) { return stale(entry.first); });
        std::erase_if(unreliable_, stale);

        std::vector<host_port> members;
        std::size_t index = 0;
        for (const auto& element : value) {
            const std::string path = prefix + std::to_string(index++) + "]";
            const auto pos = at(src, element.Mark());
            marks_[path] = pos;
            host_port member;
            std::string problem;
            if (!element.IsScalar()) {
                problem = "expected host:port (got " + describe(element) + ")";
            } else {
                problem = read_host_port(element.Scalar(), member);
            }
            if (!problem.empty()) {
                error(pos, path, std::move(problem));
                unreliable_.insert(path);
            }
            // Kept even when unreadable, so that indexes match the file.
            members.push_back(std::move(member));
        }
        out = std::move(members);
        return {};
    }

    // A map of names to strings, in file order. Each entry's key position is
    // marked under `<path>.<name>`, where validate()'s findings about it point.
    // An entry that cannot be read is left out and makes the whole map
    // unreliable (`complete` false), so that no rule counts a partial map.
    std::string read_pairs(string_pairs& out,
                           const std::string& path,
                           const YAML::Node& value,
                           const source& src,
                           bool& complete) {
        if (!value.IsNull() && !value.IsMap()) {
            return expected(kind::pairs, value);
        }
        const std::string prefix = path + ".";
        std::erase_if(marks_, [&](const auto& entry) {
            return entry.first.compare(0, prefix.size(), prefix) == 0;
        });

        string_pairs pairs;
        std::map<std::string, int, std::less<>> seen;
        for (const auto& entry : value) {
            const auto pos = at(src, entry.first.Mark());
            if (!is_new_key(entry.first, pos, path, seen)) {
                complete = false;
                continue;
            }
            const auto& name = entry.first.Scalar();
            const auto& element = entry.second;
            if (!element.IsNull() && !element.IsScalar()) {
                error(at(src, element.Mark()), dotted(path, name),
                      "expected a string (got " + describe(element) + ")");
                complete = false;
                continue;
            }
            marks_[dotted(path, name)] = pos;
            // `zone:` with nothing after it is an empty string, as for text keys.
            pairs.emplace_back(name, element.IsNull() ? std::string() : element.Scalar());
        }
        out = std::move(pairs);
        return {};
    }

    cluster_config config_;
    std::vector<diagnostic> diagnostics_;
    std::map<std::string, position, std::less<>> marks_;
    std::set<std::string, std::less<>> unreliable_;
};

std::string error_text(int code) {
    // std::strerror may share one buffer between threads; the category does not.
    return std::generic_category().message(code);
}

// The node name ends every session id, where a dot would be read as the start of
// the route suffix: `web1.example.com` contributes `web1`, as `hostname -s` does.
std::optional<std::string> short_host_name(std::string& why) {
    std::array<char, 256> buffer{};
    if (::gethostname(buffer.data(), buffer.size() - 1) != 0) {
        why = error_text(errno);
        return std::nullopt;
    }
    std::string name(buffer.data());
    name = name.substr(0, name.find('.'));
    if (name.empty()) {
        why = "it is empty";
        return std::nullopt;
    }
    return name;
}

void sort_diagnostics(std::vector<diagnostic>& diagnostics, const std::string& file) {
    // File first, then the overrides in order; within each, by position, with
    // the ones that have no position (keys left at their default) last.
    const auto rank = [&file](const diagnostic& d) {
        const int group = d.file == file ? 0 : 1;
        const int line = d.line == 0 ? std::numeric_limits<int>::max() : d.line;
        return std::tuple{group, line, d.column};
    };
    std::stable_sort(
        diagnostics.begin(), diagnostics.end(),
        [&rank](const diagnostic& a, const diagnostic& b) { return rank(a) < rank(b); });
}

// The file, then the overrides. Returns whether the file was read whole: only
// then are the semantic rules worth running, since after a syntax error they
// would judge defaults nobody wrote.
bool read_sources(reader& r,
                  std::optional<std::string_view> text,
                  std::string_view read_failure,
                  const std::string& name,
                  const std::vector<std::string>& overrides) {
    const source file_src{name, 1, 1};
    bool complete = text.has_value();
    if (!text) {
        r.error({name, 0, 0}, "", "cannot read file: " + std::string(read_failure));
    } else {
        try {
            const auto documents = load_stream(std::string(*text));
            if (documents.first) {
                r.read_document(*documents.first, file_src);
            }
            if (documents.second) {
                r.error(at(file_src, *documents.second), "",
                        "expected one YAML document (found a second one)");
            }
        } catch (const YAML::Exception& e) {
            r.error(at(file_src, e.mark), "", e.msg);
            complete = false;
        }
    }
    // Overrides are checked even when the file is broken: every mistake at once.
    int index = 0;
    for (const auto& o : overrides) {
        r.read_override(o, ++index);
    }
    return complete;
}

void apply_rules(reader& r, const std::string& name) {
    auto& config = r.config();
    bool from_host = false;
    if (config.cluster.node.empty()) {
        std::string why;
        if (auto host = short_host_name(why)) {
            config.cluster.node = *host;
            from_host = true;
        } else {
            r.error({name, 0, 0}, "cluster.node",
                    "not set, and the host name cannot stand in (" + why + ")");
        }
    }
    for (auto& f : check(config, r.unreliable())) {
        auto where = f.mark.empty() ? std::nullopt : r.mark_of(f.mark);
        if (!where) {
            where = r.mark_of(f.diag.path);
        }
        if (!where && !f.related.empty()) {
            where = r.mark_of(f.related);
        }
        const position pos = where.value_or(position{name, 0, 0});
        if (from_host && f.diag.path == "cluster.node") {
            f.diag.message += " (taken from the host name: set cluster.node)";
        }
        r.error(pos, std::move(f.diag.path), std::move(f.diag.message));
    }
}

/// `text` is empty when the file could not be read; `read_failure` says why.
cluster_config load(std::optional<std::string_view> text,
                    std::string_view read_failure,
                    const std::string& name,
                    const std::vector<std::string>& overrides) {
    reader r;
    if (read_sources(r, text, read_failure, name, overrides)) {
        apply_rules(r, name);
    }
    auto& diagnostics = r.diagnostics();
    if (!diagnostics.empty()) {
        sort_diagnostics(diagnostics, name);
        throw config_error(std::move(diagnostics));
    }
    return std::move(r.config());
}

std::optional<std::string> read_whole_file(const std::string& path, std::string& why) {
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rbe"),
                                                               &std::fclose);
    if (!file) {
        why = error_text(errno);
        return std::nullopt;
    }
    std::string content;
    std::array<char, 16384> buffer{};
    while (true) {
        const auto n = std::fread(buffer.data(), 1, buffer.size(), file.get());
        content.append(buffer.data(), n);
        if (n < buffer.size()) {
            break;
        }
    }
    // A directory opens fine and only fails here, with EISDIR.
    if (std::ferror(file.get()) != 0) {
        why = error_text(errno);
        return std::nullopt;
    }
    return content;
}

void emit_value(YAML::Emitter& out, const key_spec& spec, const field_ptr& field) {
    switch (spec.type) {
    case kind::text:
        out << *std::get<std::string*>(field);
        break;
    case kind::port:
        out << *std::get<std::uint16_t*>(field);
        break;
    case kind::count:
        out << *std::get<std::uint32_t*>(field);
        break;
    case kind::duration:
        out << format_duration(*std::get<duration*>(field));
        break;
    case kind::size:
        out << format_size(*std::get<std::uint64_t*>(field));
        break;
    case kind::flag:
        out << *std::get<bool*>(field);
        break;
    case kind::send_options:
        out << send_options_name(*std::get<std::uint32_t*>(field));
        break;
    case kind::queue_policy:
        out << (*std::get<queue_full_policy*>(field) == queue_full_policy::block ? "block"
                                                                                 : "fail");
        break;
    case kind::failure_policy:
        out << (*std::get<replication_failure_policy*>(field) == replication_failure_policy::log
                    ? "log"
                    : "fail");
        break;
    case kind::members: {
        const auto& members = *std::get<std::vector<host_port>*>(field);
        if (members.empty()) {
            out << YAML::Flow;
        }
        out << YAML::BeginSeq;
        for (const auto& member : members) {
            out << host_port_text(member);
        }
        out << YAML::EndSeq;
        break;
    }
    case kind::names: {
        const auto& names = *std::get<std::vector<std::string>*>(field);
        out << YAML::Flow << YAML::BeginSeq;
        for (const auto& name : names) {
            out << name;
        }
        out << YAML::EndSeq;
        break;
    }
    case kind::pairs: {
        const auto& pairs = *std::get<string_pairs*>(field);
        if (pairs.empty()) {
            out << YAML::Flow;
        }
        out << YAML::BeginMap;
        for (const auto& [name, value] : pairs) {
            out << YAML::Key << name << YAML::Value << value;
        }
        out << YAML::EndMap;
        break;
    }
    }
}

} // namespace
} // namespace detail

cluster_config load_string(std::string_view yaml,
                           const std::string& name,
                           const std::vector<std::string>& overrides) {
    return detail::load(yaml, {}, name, overrides);
}

cluster_config load_file(const std::string& path, const std::vector<std::string>& overrides) {
    std::string why;
    const auto content = detail::read_whole_file(path, why);
    if (!content) {
        return detail::load(std::nullopt, why, path, overrides);
    }
    return detail::load(*content, {}, path, overrides);
}

std::string to_yaml(const cluster_config& config) {
    // The schema hands out mutable pointers; a copy keeps `config` const.
    cluster_config copy = config;
    YAML::Emitter out;
    out << YAML::BeginMap;
    // The maps open on the way to each row: close those the row is not in,
    // then open the ones it is in and are not open yet.
    std::vector<std::string_view> open;
    for (const auto& spec : detail::keys) {
        const auto group = detail::split_group(spec.group);
        std::size_t common = 0;
        while (common < open.size() && common < group.size() && open[common] == group[common]) {
            ++common;
        }
        for (; open.size() > common; open.pop_back()) {
            out << YAML::EndMap;
        }
        for (; open.size() < group.size(); open.push_back(group[open.size()])) {
            out << YAML::Key << std::string(group[open.size()]) << YAML::Value << YAML::BeginMap;
        }
        out << YAML::Key << std::string(spec.key) << YAML::Value;
        detail::emit_value(out, spec, spec.field(copy));
    }
    for (; !open.empty(); open.pop_back()) {
        out << YAML::EndMap;
    }
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
}

} // namespace troupe::conf
