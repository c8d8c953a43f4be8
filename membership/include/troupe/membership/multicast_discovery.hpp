// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/membership/discovery.hpp>

#include <boost/asio/io_context.hpp>

#include <memory>

namespace troupe::membership {

/// UDP multicast heartbeats (Tribes' McastService): one datagram every
/// `frequency` on group:port out of the configured interface, and every valid
/// heartbeat of our cluster handed up. Our own, other clusters', unsigned or
/// forged ones and garbage are dropped and counted by reason.
///
/// On a loopback interface the TTL is forced to 0: the datagrams stay on this
/// host (IP_MULTICAST_LOOP delivers them to the other local members).
///
/// Owns its socket and timer on a strand of the given io_context.
class multicast_discovery final : public discovery {
public:
    /// `self` is this member's heartbeat (id, incarnation, endpoint, node, payload).
    multicast_discovery(boost::asio::io_context& io, const conf::cluster_config& config, heartbeat self);
    ~multicast_discovery() override;

    std::string_view name() const noexcept override { return "multicast"; }
    void start(heard_handler heard) override;
    void announce() override;
    void stop(bool leaving) override;
    std::vector<std::pair<std::string, std::uint64_t>> counters() const override;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace troupe::membership
