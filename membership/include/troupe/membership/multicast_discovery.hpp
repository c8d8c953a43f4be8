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
/// Owns its socket and timer on a strand of the given io_context; stop() (or the
/// destructor) closes them.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: start()/stop() from one thread, not an
/// I/O thread of the io_context (stop() waits up to 1 s for one); announce() and
/// counters() from any thread. `heard` runs on the strand, one call at a time.
class multicast_discovery final : public discovery {
public:
    /// `self` is this member's heartbeat (id, incarnation, endpoint, node, payload).
    /// An empty `membership.multicast.interface` means `receiver.address`.
    multicast_discovery(boost::asio::io_context& io, const conf::cluster_config& config, heartbeat self);
    /// stop(false): closes the socket without a leaving heartbeat.
    ~multicast_discovery() override;

    /// "multicast".
    std::string_view name() const noexcept override { return "multicast"; }
    /// Opens and joins the group on the caller's thread, then beats every `frequency`.
    /// @throws boost::system::system_error if the group or interface address is not
    /// valid IPv4 (errc::invalid_argument for a non-multicast group) or the socket
    /// cannot be opened, bound or joined.
    void start(heard_handler heard) override;
    /// Beats now, unless one went out less than 20 ms ago (a burst of newcomers
    /// gets one answer). Does nothing after stop().
    void announce() override;
    /// With `leaving`, a last heartbeat flagged leaving goes out first. Idempotent;
    /// waits up to 1 s for the strand.
    void stop(bool leaving) override;
    /// heartbeats_sent, _received, _own, heartbeat_send_errors and
    /// heartbeats_rejected.<reason> (a to_string(heartbeat_error) key, other_cluster,
    /// no_common_version).
    std::vector<std::pair<std::string, std::uint64_t>> counters() const override;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace troupe::membership
