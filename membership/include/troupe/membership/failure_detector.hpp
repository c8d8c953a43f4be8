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

    void append(detector_actions&& other);
};

struct detector_stats {
    std::uint64_t suspicions = 0;
    std::uint64_t false_suspicions_avoided = 0;
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
/// None; the channel serialises every call.
class failure_detector {
public:
    using clock = std::chrono::steady_clock;

    struct member_info {
        clock::time_point last_heard{};
        bool heartbeats = false; ///< heard over multicast at least once: silence matters
        bool verifying = false;
        std::string suspected_because;
        clock::time_point suspected_at{};
        std::uint64_t suspicions = 0;
    };

    failure_detector(member_id self, std::chrono::milliseconds drop_time);

    detector_actions heard(const heartbeat& hb, clock::time_point now);
    detector_actions connected(const member& m, clock::time_point now);
    detector_actions disconnected(const member_id& id, const std::string& reason, clock::time_point now);
    detector_actions send_failed(const member_id& id, const std::string& reason, clock::time_point now);
    detector_actions leaving(const member_id& id, const std::string& reason, clock::time_point now);
    detector_actions verified(const member_id& id, bool alive, const std::string& reason,
                              clock::duration took, clock::time_point now);
    detector_actions tick(clock::time_point now);

    const member_table& table() const noexcept { return table_; }
    std::optional<member_info> info(const member_id& id) const;
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
