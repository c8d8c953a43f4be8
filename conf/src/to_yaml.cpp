// SPDX-License-Identifier: Apache-2.0
// to_yaml(): a config written back as a cluster file, walking the key schema.
#include "detail.hpp"
#include "key_schema.hpp"

#include <troupe/conf/load.hpp>

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace troupe::conf {
namespace detail {
namespace {

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
