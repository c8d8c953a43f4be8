// SPDX-License-Identifier: Apache-2.0
#include "detail.hpp"

#include <troupe/conf/load.hpp>
#include <troupe/conf/manager_rules.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::conf {
namespace detail {
namespace {

// Names travel in every HELLO and heartbeat, and the node name ends every
// session id: keep them short and free of anything that needs escaping.
constexpr std::size_t max_name_bytes = 64;
// HMAC keys shorter than this are guessable; 16 bytes is the usual floor.
constexpr std::size_t min_secret_bytes = 16;
constexpr std::uint32_t max_threads = 64;
constexpr std::uint32_t max_reader_threads = 1024;
// Lingering trades async delivery delay for fewer writes; beyond 100 ms it is only delay.
constexpr std::uint32_t max_linger_us = 100000;
constexpr std::uint64_t min_message = std::uint64_t{1} << 10;
constexpr std::uint64_t max_message = std::uint64_t{1} << 30;
constexpr std::uint64_t min_queue_limit = std::uint64_t{64} << 10;
constexpr std::uint32_t max_port = 65535;
constexpr std::uint32_t max_ttl = 255;
// A heartbeat must fit one datagram under 1,400 bytes, next to the names, the
// endpoint and the HMAC tag: the payload gets at most 512 bytes of it, in a
// bounded number of small entries.
constexpr std::size_t max_payload_entries = 16;
constexpr std::size_t max_payload_key = 32;
constexpr std::size_t max_payload_value = 128;
constexpr std::size_t max_payload_bytes = 512;

bool is_name_char(char c, bool allow_dot) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || (allow_dot && c == '.');
}

bool is_name(std::string_view text, bool allow_dot) {
    return std::all_of(text.begin(), text.end(),
                       [allow_dot](char c) { return is_name_char(c, allow_dot); });
}

bool is_any_address(std::string_view address) {
    return address == "0.0.0.0" || address == "::" || address == "[::]";
}

// Dotted quad in inet_pton's strict form: four decimal parts of 0..255, no
// leading zeros (which some parsers read as octal).
std::optional<std::array<std::uint8_t, 4>> parse_ipv4(std::string_view text) {
    constexpr std::uint64_t max_octet = 255;
    std::array<std::uint8_t, 4> octets{};
    for (std::size_t i = 0; i < octets.size(); ++i) {
        const auto dot = text.find('.');
        if ((dot == std::string_view::npos) != (i + 1 == octets.size())) {
            return std::nullopt;
        }
        const auto part = text.substr(0, dot);
        std::uint64_t value = 0;
        if (part.size() > 3 || (part.size() > 1 && part.front() == '0') ||
            !read_uint(part, max_octet, value)) {
            return std::nullopt;
        }
        octets[i] = static_cast<std::uint8_t>(value);
        text = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
    }
    return octets;
}

bool is_ipv4_multicast(std::string_view text) {
    constexpr std::uint8_t first = 224;
    constexpr std::uint8_t last = 239;
    const auto octets = parse_ipv4(text);
    return octets && (*octets)[0] >= first && (*octets)[0] <= last;
}

std::string static_path(std::size_t index) {
    return "membership.static[" + std::to_string(index) + "]";
}

class checker {
public:
    explicit checker(const std::set<std::string, std::less<>>& unreliable)
        : unreliable_(unreliable) {}

    /// False when a rule would judge a value the file did not manage to set.
    bool trusted(std::initializer_list<std::string_view> paths) const {
        return std::none_of(paths.begin(), paths.end(), [this](std::string_view path) {
            return unreliable_.find(path) != unreliable_.end();
        });
    }

    void fail(std::string path, std::string message, std::string related = {}) {
        finding f;
        f.diag.path = std::move(path);
        f.diag.message = std::move(message);
        f.related = std::move(related);
        findings_.push_back(std::move(f));
    }

    void positive(std::string_view path, duration value) {
        if (trusted({path}) && value.count() <= 0) {
            fail(std::string(path), "must be greater than 0 (got " + format_duration(value) + ")");
        }
    }

    /// Like fail(), but the loader shows the position of `mark` (see finding).
    void fail_at(std::string mark, std::string path, std::string message) {
        fail(std::move(path), std::move(message));
        findings_.back().mark = std::move(mark);
    }

    void not_empty(std::string_view path, std::string_view value) {
        if (trusted({path}) && value.empty()) {
            fail(std::string(path), "must not be empty");
        }
    }

    std::vector<finding> take() { return std::move(findings_); }

private:
    const std::set<std::string, std::less<>>& unreliable_;
    std::vector<finding> findings_;
};

void check_cluster(const cluster_section& cluster, checker& c) {
    if (c.trusted({"cluster.name"})) {
        if (cluster.name.empty()) {
            c.fail("cluster.name", "must not be empty");
        } else if (cluster.name.size() > max_name_bytes) {
            c.fail("cluster.name",
                   "must be at most 64 bytes (got " + std::to_string(cluster.name.size()) + ")");
        } else if (!is_name(cluster.name, true)) {
            c.fail("cluster.name", "may contain only letters, digits, '.', '_' and '-' (got " +
                                       quote(cluster.name) + ")");
        }
    }
    // Empty is allowed here: it means "the host name", which load_file fills in.
    if (c.trusted({"cluster.node"})) {
        if (cluster.node.size() > max_name_bytes) {
            c.fail("cluster.node",
                   "must be at most 64 bytes (got " + std::to_string(cluster.node.size()) + ")");
        } else if (!is_name(cluster.node, false)) {
            c.fail("cluster.node",
                   "may contain only letters, digits, '_' and '-', no '.' since it ends "
                   "session ids (got " +
                       quote(cluster.node) + ")");
        }
    }
    // The secret itself is never echoed: diagnostics end up in logs.
    if (c.trusted({"cluster.secret"}) && !cluster.secret.empty() &&
        cluster.secret.size() < min_secret_bytes) {
        c.fail("cluster.secret", "must be at least 16 bytes when set (got " +
                                     std::to_string(cluster.secret.size()) + ")");
    }
}

void check_receiver(const receiver_section& receiver, checker& c) {
    c.not_empty("receiver.address", receiver.address);
    // Peers dial the address a node announces in HELLO and heartbeats: a wildcard
    // would send them to their own host.
    if (c.trusted({"receiver.address"}) && is_any_address(receiver.address)) {
        c.fail("receiver.address", "must be the address peers reach this node at, not a wildcard (got '" +
                                       receiver.address + "')");
    }
    if (c.trusted({"receiver.auto_bind"})) {
        if (receiver.auto_bind < 1) {
            c.fail("receiver.auto_bind", "must be at least 1 (got 0)");
        } else if (c.trusted({"receiver.port"}) && receiver.port != 0 &&
                   std::uint64_t{receiver.port} + receiver.auto_bind - 1 > max_port) {
            c.fail("receiver.auto_bind",
                   "must keep receiver.port + auto_bind - 1 within 65535 (got " +
                       std::to_string(receiver.port) + " + " + std::to_string(receiver.auto_bind) +
                       " - 1 = " +
                       std::to_string(std::uint64_t{receiver.port} + receiver.auto_bind - 1) + ")",
                   "receiver.port");
        }
    }
    if (c.trusted({"receiver.threads"}) &&
        (receiver.threads < 1 || receiver.threads > max_threads)) {
        c.fail("receiver.threads",
               "must be from 1 to 64 (got " + std::to_string(receiver.threads) + ")");
    }
    if (c.trusted({"receiver.reader_threads"}) && receiver.reader_threads > max_reader_threads) {
        c.fail("receiver.reader_threads", "must be from 0 to 1024 (got " +
                                              std::to_string(receiver.reader_threads) + ")");
    }
}

// Peers PING a member connection idle for their ping_interval (looked at every
// 100ms), so a healthy connection is never silent for two of them, nor for 1s:
// a shorter limit would close live peers.
void check_idle_timeout(const cluster_config& config, checker& c) {
    const auto idle = config.receiver.idle_timeout;
    const auto ping = config.membership.failure_detector.ping_interval;
    if (!c.trusted({"receiver.idle_timeout"}) || idle.count() == 0) {
        return;
    }
    if (idle.count() < 0) {
        c.fail("receiver.idle_timeout", "must not be negative (got " + format_duration(idle) + ")");
    } else if (idle < std::chrono::seconds(1)) {
        c.fail("receiver.idle_timeout",
               "must be 0 (never) or at least 1s (got " + format_duration(idle) + ")");
    } else if (c.trusted({"membership.failure_detector.ping_interval"}) && ping.count() > 0 &&
               idle <= 2 * ping) {
        c.fail("receiver.idle_timeout",
               "must be 0 (never) or exceed twice membership.failure_detector.ping_interval (got " +
                   format_duration(idle) + " <= 2 x " + format_duration(ping) + ")",
               "membership.failure_detector.ping_interval");
    }
}

void check_static(const std::vector<host_port>& members, checker& c) {
    if (c.trusted({"membership.static"})) {
        for (std::size_t i = 0; i < members.size(); ++i) {
            const auto path = static_path(i);
            if (!c.trusted({path})) {
                continue;
            }
            const auto text = host_port_text(members[i]);
            if (members[i].host.empty()) {
                c.fail(path, "host must not be empty (got " + quote(text) + ")");
                continue;
            }
            if (members[i].port == 0) {
                c.fail(path, "port must be from 1 to 65535 (got " + quote(text) + ")");
                continue;
            }
            for (std::size_t j = 0; j < i; ++j) {
                if (members[j] == members[i] && c.trusted({static_path(j)})) {
                    c.fail(path, text + " is listed twice (first as " + static_path(j) + ")");
                    break;
                }
            }
        }
    }
}

void check_multicast(const multicast_section& multicast, checker& c) {
    if (c.trusted({"membership.multicast.address"}) && !is_ipv4_multicast(multicast.address)) {
        c.fail("membership.multicast.address",
               "must be an IPv4 multicast address, 224.0.0.0 to 239.255.255.255 (got " +
                   quote(multicast.address) + ")");
    }
    // Empty means the receiver's address, which the membership resolves itself.
    if (c.trusted({"membership.multicast.interface"}) && !multicast.interface.empty() &&
        !parse_ipv4(multicast.interface)) {
        c.fail("membership.multicast.interface",
               "must be empty or an IPv4 address (got " + quote(multicast.interface) + ")");
    }
    if (c.trusted({"membership.multicast.ttl"}) && multicast.ttl > max_ttl) {
        c.fail("membership.multicast.ttl",
               "must be from 0 to 255 (got " + std::to_string(multicast.ttl) + ")");
    }
    c.positive("membership.multicast.frequency", multicast.frequency);
    // A member must miss more than one heartbeat before it is suspected. With
    // a frequency that is not positive, that rule has already failed.
    if (c.trusted({"membership.multicast.drop_time", "membership.multicast.frequency"}) &&
        multicast.frequency.count() > 0 && multicast.drop_time <= multicast.frequency) {
        c.fail("membership.multicast.drop_time",
               "must exceed membership.multicast.frequency (got " +
                   format_duration(multicast.drop_time) +
                   " <= " + format_duration(multicast.frequency) + ")",
               "membership.multicast.frequency");
    }
}

std::string payload_key_path(std::string_view key) {
    return "membership.payload." + std::string(key);
}

void check_payload(const std::vector<std::pair<std::string, std::string>>& payload, checker& c) {
    for (std::size_t i = 0; i < payload.size(); ++i) {
        const auto& [key, value] = payload[i];
        // An invalid key is no fit for a path: the entry is named in the message.
        if (key.empty() || key.size() > max_payload_key || !is_name(key, true)) {
            c.fail_at(payload_key_path(key), "membership.payload",
                      "key must be 1 to 32 bytes of letters, digits, '.', '_' and '-' (got " +
                          quote(key) + ")");
            continue;
        }
        // Only a config built in code can get here: the loader refuses a
        // duplicate key in the file.
        const auto first = payload.begin() + static_cast<std::ptrdiff_t>(i);
        if (std::any_of(payload.begin(), first,
                        [&k = key](const auto& earlier) { return earlier.first == k; })) {
            c.fail("membership.payload", "key " + quote(key) + " is listed twice");
            continue;
        }
        if (value.size() > max_payload_value) {
            c.fail(payload_key_path(key),
                   "must be at most 128 bytes (got " + std::to_string(value.size()) + ")");
        }
    }
    // Entries the file failed to set are missing: no count of them is right.
    if (!c.trusted({"membership.payload"})) {
        return;
    }
    if (payload.size() > max_payload_entries) {
        c.fail("membership.payload",
               "must have at most 16 entries (got " + std::to_string(payload.size()) + ")");
    }
    std::size_t total = 0;
    for (const auto& [key, value] : payload) {
        total += key.size() + value.size();
    }
    if (total > max_payload_bytes) {
        c.fail("membership.payload", "keys and values total " + std::to_string(total) +
                                         " bytes; at most 512 fit in a heartbeat");
    }
}

void check_sender(const cluster_config& config, checker& c) {
    const auto& sender = config.sender;
    c.positive("sender.connect_timeout", sender.connect_timeout);
    c.positive("sender.ack_timeout", sender.ack_timeout);
    // The limit may be below channel.max_message: a message larger than it is
    // admitted alone, once the queue is empty. Below 64KiB even small messages
    // would queue one at a time.
    if (c.trusted({"sender.queue_limit"}) && sender.queue_limit < min_queue_limit) {
        c.fail("sender.queue_limit", "must be at least 64KiB (got " + format_size(sender.queue_limit) + ")");
    }
    c.positive("sender.block_timeout", sender.block_timeout);
    c.positive("sender.reconnect_backoff_max", sender.reconnect_backoff_max);
    if (c.trusted({"sender.linger_us"}) && sender.linger_us > max_linger_us) {
        c.fail("sender.linger_us",
               "must be from 0 to 100000 (got " + std::to_string(sender.linger_us) + ")");
    }
}

void check_channel(const channel_section& channel, checker& c) {
    if (c.trusted({"channel.max_message"}) &&
        (channel.max_message < min_message || channel.max_message > max_message)) {
        c.fail("channel.max_message",
               "must be from 1KiB to 1GiB (got " + format_size(channel.max_message) + ")");
    }
    if (c.trusted({"channel.stop_timeout"}) && channel.stop_timeout.count() < 0) {
        c.fail("channel.stop_timeout",
               "must not be negative (got " + format_duration(channel.stop_timeout) + ")");
    }
}

void check_admin(const cluster_config& config, checker& c) {
    const auto& admin = config.admin;
    const auto& receiver = config.receiver;
    c.not_empty("admin.address", admin.address);
    // Both listeners would fight over the port; only flagged when they can
    // actually meet, i.e. on the same address or when one listens on all.
    const bool same_address = admin.address == receiver.address || is_any_address(admin.address) ||
                              is_any_address(receiver.address);
    if (c.trusted({"admin.enabled", "admin.port", "admin.address", "receiver.port",
                   "receiver.auto_bind", "receiver.address"}) &&
        admin.enabled && admin.port != 0 && receiver.port != 0 && same_address) {
        const std::uint64_t first = receiver.port;
        const std::uint64_t last = std::min<std::uint64_t>(
            max_port, first + std::max<std::uint32_t>(receiver.auto_bind, 1) - 1);
        if (admin.port >= first && admin.port <= last) {
            c.fail("admin.port",
                   "must be outside the receiver's ports " + std::to_string(first) + ".." +
                       std::to_string(last) + " (got " + std::to_string(admin.port) + ")",
                   "receiver.port");
        }
    }
}

// No rule ties http.port to the receiver's or the admin port: troupe-node
// ignores http.*, and a file valid for it must stay valid. In troupe-httpd a
// collision is a bind error at start, which names the address.
void check_http(const cluster_config& config, checker& c) {
    const auto& http = config.http;
    c.not_empty("http.address", http.address);
    if (c.trusted({"http.threads"}) && (http.threads < 1 || http.threads > max_threads)) {
        c.fail("http.threads", "must be from 1 to 64 (got " + std::to_string(http.threads) + ")");
    }
}

void check_manager(const cluster_config& config, checker& c) {
    const auto& manager = config.manager;
    // The same rules as managers::validate() (manager_rules.hpp).
    auto rule = [&](std::string_view key, const std::optional<std::string>& problem) {
        if (problem && c.trusted({key})) {
            c.fail(std::string(key), *problem);
        }
    };
    rule("manager.type", manager_rules::type_problem(manager.type));
    rule("manager.context", manager_rules::context_problem(manager.context));
    rule("manager.cookie", manager_rules::cookie_problem(manager.cookie));
    rule("manager.cookie_path", manager_rules::cookie_path_problem(manager.cookie_path));
    if (c.trusted({"manager.cookie_secure"})) {
        rule("manager.cookie_same_site",
             manager_rules::cookie_same_site_problem(manager.cookie_same_site, manager.cookie_secure));
    }
    if (c.trusted({"manager.cookie_max_age"})) {
        constexpr duration second{1000};
        if (manager.cookie_max_age.count() < 0 || manager.cookie_max_age.count() % second.count() != 0) {
            c.fail("manager.cookie_max_age", "must be a whole, non-negative number of seconds (got " +
                                                 format_duration(manager.cookie_max_age) + "); 0: no Max-Age");
        }
    }
    rule("manager.filter", manager_rules::filter_problem(manager.filter));
    rule("manager.skip_paths", manager_rules::filter_problem(manager.skip_paths));
    for (std::size_t i = 0; i < manager.skip_headers.size(); ++i) {
        rule("manager.skip_headers[" + std::to_string(i) + "]",
             manager_rules::header_name_problem(manager.skip_headers[i]));
    }
    // 0 means never (Tomcat's 0 or negative); the manager counts in seconds.
    if (c.trusted({"manager.max_inactive"})) {
        constexpr duration second{1000};
        if (manager.max_inactive.count() < 0) {
            c.fail("manager.max_inactive",
                   "must not be negative (got " + format_duration(manager.max_inactive) + ")");
        } else if (manager.max_inactive.count() % second.count() != 0) {
            c.fail("manager.max_inactive", "must be a whole number of seconds (got " +
                                               format_duration(manager.max_inactive) + ")");
        }
    }
    rule("manager.send_options", manager_rules::send_options_problem(manager.send_options));
    c.positive("manager.state_transfer_timeout", manager.state_transfer_timeout);
}

// A host name as RFC 1123 has it: dot-separated labels of letters, digits and
// inner '-', at most 63 characters each and 253 in all (a trailing dot allowed).
bool dns_name(std::string_view name) {
    if (!name.empty() && name.back() == '.') {
        name.remove_suffix(1);
    }
    if (name.empty() || name.size() > 253) {
        return false;
    }
    std::size_t start = 0;
    while (start <= name.size()) {
        const auto end = std::min(name.find('.', start), name.size());
        const auto label = name.substr(start, end - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
            !std::all_of(label.begin(), label.end(), [](char ch) {
                return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-';
            })) {
            return false;
        }
        start = end + 1;
    }
    return true;
}

void check_dns(const dns_section& dns, checker& c) {
    const dns_section defaults;
    if (dns.name.empty()) {
        // Any other dns key would be accepted and do nothing.
        if (c.trusted({"membership.dns.port", "membership.dns.interval"}) &&
            (dns.port != defaults.port || dns.interval != defaults.interval)) {
            c.fail("membership.dns.name",
                   "is empty, so DNS discovery is off and the other membership.dns settings do nothing; set "
                   "the name whose records list the members (e.g. troupe.shop.svc.cluster.local)");
        }
        return;
    }
    if (c.trusted({"membership.dns.name"}) && !dns_name(dns.name)) {
        c.fail("membership.dns.name", "must be a host name: dot-separated labels of letters, digits and inner "
                                      "'-', 63 characters each at most (got " + quote(dns.name) + ")");
    }
    constexpr duration min_interval{100};
    constexpr duration max_interval{3600000};
    if (c.trusted({"membership.dns.interval"}) && (dns.interval < min_interval || dns.interval > max_interval)) {
        c.fail("membership.dns.interval",
               "must be from 100ms to 1h (got " + format_duration(dns.interval) + ")");
    }
}

void check_statsd(const statsd_section& statsd, checker& c) {
    const statsd_section defaults;
    if (statsd.address.empty()) {
        // Any other statsd key would be accepted and do nothing.
        if (c.trusted({"metrics.statsd.port", "metrics.statsd.prefix", "metrics.statsd.interval"}) &&
            (statsd.port != defaults.port || statsd.prefix != defaults.prefix ||
             statsd.interval != defaults.interval)) {
            c.fail("metrics.statsd.address",
                   "is empty, so statsd is off and the other metrics.statsd settings do nothing; set the "
                   "statsd server's address (e.g. 127.0.0.1)");
        }
        return;
    }
    if (c.trusted({"metrics.statsd.address"}) && !parse_ipv4(statsd.address)) {
        c.fail("metrics.statsd.address",
               "must be an IPv4 address such as 127.0.0.1 (got " + quote(statsd.address) + ")");
    }
    if (c.trusted({"metrics.statsd.port"}) && statsd.port == 0) {
        c.fail("metrics.statsd.port", "must be from 1 to 65535 (got 0)");
    }
    constexpr std::size_t max_prefix = 100;
    const auto bad = std::find_if(statsd.prefix.begin(), statsd.prefix.end(), [](char ch) {
        return !(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.');
    });
    if (c.trusted({"metrics.statsd.prefix"}) &&
        (statsd.prefix.empty() || statsd.prefix.size() > max_prefix || bad != statsd.prefix.end() ||
         statsd.prefix.front() == '.' || statsd.prefix.back() == '.')) {
        c.fail("metrics.statsd.prefix", "must be 1 to 100 letters, digits, '_', '-' or inner '.' (got " +
                                            quote(statsd.prefix) + ")");
    }
    constexpr duration min_interval{100};
    if (c.trusted({"metrics.statsd.interval"}) && statsd.interval < min_interval) {
        c.fail("metrics.statsd.interval",
               "must be at least 100ms (got " + format_duration(statsd.interval) + ")");
    }
}

void check_logging(const logging_section& logging, checker& c) {
    if (!c.trusted({"logging.level"})) {
        return;
    }
    const auto* end = std::end(log_levels);
    if (std::find(std::begin(log_levels), end, logging.level) == end) {
        std::string list;
        for (const auto level : log_levels) {
            list += list.empty() ? "" : ", ";
            list += level;
        }
        c.fail("logging.level", "expected one of " + list + " (got " + quote(logging.level) + ")");
    }
}

} // namespace

std::vector<finding> check(const cluster_config& config,
                           const std::set<std::string, std::less<>>& unreliable) {
    checker c(unreliable);
    check_cluster(config.cluster, c);
    check_receiver(config.receiver, c);
    check_static(config.membership.static_members, c);
    check_multicast(config.membership.multicast, c);
    check_dns(config.membership.dns, c);
    c.positive("membership.failure_detector.ping_interval",
               config.membership.failure_detector.ping_interval);
    c.positive("membership.failure_detector.verify_timeout",
               config.membership.failure_detector.verify_timeout);
    check_idle_timeout(config, c);
    check_payload(config.membership.payload, c);
    check_sender(config, c);
    check_channel(config.channel, c);
    check_admin(config, c);
    check_http(config, c);
    check_manager(config, c);
    check_statsd(config.metrics.statsd, c);
    check_logging(config.logging, c);
    return c.take();
}

} // namespace detail

std::vector<diagnostic> validate(const cluster_config& config) {
    std::vector<diagnostic> diagnostics;
    for (auto& f : detail::check(config, {})) {
        diagnostics.push_back(std::move(f.diag));
    }
    return diagnostics;
}

} // namespace troupe::conf
