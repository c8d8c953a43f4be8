// SPDX-License-Identifier: Apache-2.0
// The table of keys (see key_schema.hpp) and the questions the reader, the
// suggestions and to_yaml() ask of it.
#include "key_schema.hpp"

#include "detail.hpp"

#include <algorithm>

namespace troupe::conf::detail {

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

bool within(std::string_view group, std::string_view outer) {
    return outer.empty() || group == outer ||
           (group.size() > outer.size() && group.substr(0, outer.size()) == outer &&
            group[outer.size()] == '.');
}

bool is_group(std::string_view path) {
    return !path.empty() && std::any_of(keys.begin(), keys.end(), [path](const key_spec& spec) {
        return within(spec.group, path);
    });
}

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

} // namespace troupe::conf::detail
