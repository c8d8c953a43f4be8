// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/heartbeat.hpp>
#include <troupe/membership/member_table.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe::membership {

/// What the caller must do after feeding the detector an observation.
struct detector_actions {
    std::vector<member> changes; ///< state changes to announce, in this order
    std::vector<member> verify;  ///< confirm these over TCP, then call verified()
    std::vector<std::pair<std::string, std::uint16_t>> connect; ///< open streams to these
    bool answer_heartbeat = false; ///< heard someone new: beat now, not at the next tick

    /// Adds `other`'s actions after these (order kept).
    void append(detector_actions&& other);
};

/// The detector's counters, for /stats and /metrics.
struct detector_stats {
    std::uint64_t suspicions = 0;               ///< times an alive member turned suspect
    std::uint64_t false_suspicions_avoided = 0; ///< suspects found alive (heartbeat or verification)
    std::map<std::string, std::uint64_t> removals; ///< by reason: verification_failed, left, restarted
};

/// The member state machine: alive -> suspect -> gone (or left). A member is
/// admitted only once a TCP handshake with it succeeds; heartbeat silence for
/// drop_time, a broken connection or a failed send make it suspect, and a
/// suspect is removed only when a TCP verification (connect + PING/PONG) fails.
/// A verification that succeeds keeps it, counted as a false suspicion avoided.
///
/// Pure logic: the caller supplies the time and performs the actions, so unit
/// tests drive it with a manual clock and no sockets.
///
/// @par Thread safety
/// Distinct objects: safe. Shared objects: unsafe; the channel serialises every
/// call under its mutex.
class failure_detector {
public:
    /// The clock of every `now` passed in; tests pass made-up time points.
    using clock = std::chrono::steady_clock;

    /// What the detector knows of one member besides its table entry.
    struct member_info {
        clock::time_point last_heard{};   ///< last heartbeat, handshake or answered PING
        bool heartbeats = false; ///< heard over multicast at least once: silence matters
        bool verifying = false;           ///< a TCP verification is in flight
        std::string suspected_because;    ///< the reason of the latest suspicion
        clock::time_point suspected_at{}; ///< when it was last suspected
        std::uint64_t suspicions = 0;     ///< times it was suspected
    };

    /// `self`: this node, whose own heartbeats heard() ignores. `drop_time`: the
    /// heartbeat silence that makes an alive member suspect.
    failure_detector(member_id self, std::chrono::milliseconds drop_time);

    /// A heartbeat: an unknown or gone sender is to be connected to (admitted only by
    /// connected()), a suspect one not being verified is alive again, a leaving one left.
    detector_actions heard(const heartbeat& hb, clock::time_point now);
    /// A handshake with `m` completed: it is alive, and an older incarnation at its
    /// endpoint is gone ("restarted").
    detector_actions connected(const member& m, clock::time_point now);
    /// Its connection broke: an alive member turns suspect and is to be verified.
    detector_actions disconnected(const member_id& id, const std::string& reason, clock::time_point now);
    /// A send to it failed (ack timeout, connection lost): as disconnected().
    detector_actions send_failed(const member_id& id, const std::string& reason, clock::time_point now);
    /// It said it leaves (BYE or a leaving heartbeat): an alive or suspect member has left.
    detector_actions leaving(const member_id& id, const std::string& reason, clock::time_point now);
    /// The outcome of a verification asked for in `verify`, which took `took`: a
    /// suspect is alive again, or gone. Ignored if it is no longer suspect.
    detector_actions verified(const member_id& id, bool alive, const std::string& reason,
                              clock::duration took, clock::time_point now);
    /// Periodic check: alive members heard by multicast and silent over drop_time
    /// turn suspect. Members known over TCP only are left to their connection.
    detector_actions tick(clock::time_point now);

    /// The members and their states.
    const member_table& table() const noexcept { return table_; }
    /// What is known of `id`; nullopt if nothing was ever heard of it.
    std::optional<member_info> info(const member_id& id) const;
    /// The counters so far.
    const detector_stats& stats() const noexcept { return stats_; }

private:
    detector_actions suspect(const member_id& id, const std::string& why, clock::time_point now);
    member_info& info_for(const member_id& id) { return infos_[id]; }

    member_id self_;
    std::chrono::milliseconds drop_time_;
    member_table table_;
    std::unordered_map<member_id, member_info, member_id_hash> infos_;
    detector_stats stats_;
};

} // namespace troupe::membership
