// SPDX-License-Identifier: Apache-2.0
#include "format.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string_view>

namespace troupe::ctl {

namespace {

constexpr std::string_view column_gap = "  ";
constexpr std::string_view missing = "-";
constexpr std::size_t short_id_length = 8;

std::string scalar_text(const nlohmann::json& value) {
    if (value.is_string()) {
        return value.get<std::string>();
    }
    // Replace rather than throw: a stray byte in a node's output must not hide the rest.
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void flatten_into(const nlohmann::json& value,
                  const std::string& path,
                  std::vector<flat_entry>& out) {
    const bool container = value.is_object() || value.is_array();
    if (!container || value.empty()) {
        out.emplace_back(path, scalar_text(value));
        return;
    }
    const auto child_path = [&path](const std::string& key) {
        return path.empty() ? key : path + "." + key;
    };
    if (value.is_object()) {
        for (const auto& [key, child] : value.items()) {
            flatten_into(child, child_path(key), out);
        }
    } else {
        for (std::size_t i = 0; i < value.size(); ++i) {
            flatten_into(value[i], child_path(std::to_string(i)), out);
        }
    }
}

std::string string_field(const nlohmann::json& member, const char* key) {
    if (!member.is_object()) {
        return std::string(missing);
    }
    const auto it = member.find(key);
    if (it == member.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
        return std::string(missing);
    }
    return it->get<std::string>();
}

std::string self_field(const nlohmann::json& member) {
    if (!member.is_object()) {
        return std::string(missing);
    }
    const auto it = member.find("self");
    if (it == member.end() || !it->is_boolean()) {
        return std::string(missing);
    }
    return it->get<bool>() ? "yes" : "no";
}

void append_padded(std::string& line, const std::string& cell, std::size_t width) {
    line += cell;
    line.append(width - cell.size(), ' ');
}

} // namespace

std::vector<flat_entry> flatten(const nlohmann::json& doc) {
    std::vector<flat_entry> out;
    flatten_into(doc, std::string(), out);
    std::sort(out.begin(), out.end());
    return out;
}

std::string format_stats(const nlohmann::json& stats) {
    if (stats.is_object() && stats.empty()) {
        return {}; // nothing to list, rather than a lone "{}"
    }
    const auto entries = flatten(stats);
    std::size_t key_width = 0;
    for (const auto& entry : entries) {
        key_width = std::max(key_width, entry.first.size());
    }
    std::string out;
    for (const auto& [key, value] : entries) {
        append_padded(out, key, key_width);
        out += column_gap;
        out += value;
        out += '\n';
    }
    return out;
}

std::string format_members(const nlohmann::json& members) {
    if (!members.is_array()) {
        throw std::invalid_argument("members: expected a JSON array");
    }
    constexpr std::size_t columns = 5;
    using row = std::array<std::string, columns>;

    std::vector<row> rows;
    rows.reserve(members.size() + 1);
    rows.push_back({"NAME", "ENDPOINT", "STATE", "SELF", "ID"});
    for (const auto& member : members) {
        std::string id = string_field(member, "id");
        if (id.size() > short_id_length) {
            id.resize(short_id_length);
        }
        rows.push_back({string_field(member, "name"), string_field(member, "endpoint"),
                        string_field(member, "state"), self_field(member), std::move(id)});
    }

    std::array<std::size_t, columns> widths{};
    for (const auto& r : rows) {
        for (std::size_t c = 0; c < columns; ++c) {
            widths[c] = std::max(widths[c], r[c].size());
        }
    }

    std::string out;
    for (const auto& r : rows) {
        for (std::size_t c = 0; c + 1 < columns; ++c) {
            append_padded(out, r[c], widths[c]);
            out += column_gap;
        }
        out += r[columns - 1]; // the last column is not padded: no trailing blanks
        out += '\n';
    }
    return out;
}

} // namespace troupe::ctl
