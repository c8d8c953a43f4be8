// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace troupe::membership {

/// Member candidates from DNS (`membership.dns`), as container platforms
/// publish them: a Kubernetes headless service, a Compose service name, Consul
/// DNS (JGroups' DNS_PING and Hazelcast's DNS lookup do the same). The name's
/// A and AAAA records are resolved every `interval` through the system's
/// resolver (/etc/resolv.conf, as every process in the container sees it);
/// each address is a candidate the channel dials and verifies like a static
/// member.
///
/// A lookup that fails (a timeout, SERVFAIL, NXDOMAIN, no records) changes
/// nothing: the last answer stands, so a DNS hiccup never drops the cluster.
/// Only an answer with records replaces the list.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: start()/stop() from one thread, not an
/// I/O thread of the io_context; counters() from any thread. `found` runs on an
/// I/O thread of the given io_context, one call at a time.
class dns_discovery {
public:
    /// The addresses (sorted, unique, IPv4 dotted or IPv6 text) of the latest answer.
    using found_handler = std::function<void(const std::vector<std::string>& addresses)>;

    /// Will resolve `settings.name`; nothing happens until start().
    dns_discovery(boost::asio::io_context& io, conf::dns_section settings);
    /// Calls stop().
    ~dns_discovery();

    /// Resolves now, then every interval. Once only: no restart after stop().
    void start(found_handler found);
    /// Cancels the timer and any lookup in flight; `found` is not called after it returns.
    /// Idempotent. Waits up to 1 s for the io_context to apply it: that promise holds
    /// only when another thread runs the io_context.
    void stop();
    /// Counters as "name": value pairs, for /stats and /metrics.
    std::vector<std::pair<std::string, std::uint64_t>> counters() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace troupe::membership
