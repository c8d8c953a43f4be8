// SPDX-License-Identifier: Apache-2.0
// Reading a cluster file (and --set overrides) into a cluster_config: YAML to
// diagnostics with positions, then the semantic rules. The keys it knows are
// in key_schema.cpp, the suggestions for the ones it does not in
// key_suggestions.cpp.
#include "detail.hpp"
#include "key_schema.hpp"
#include "key_suggestions.hpp"

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

} // namespace troupe::conf
