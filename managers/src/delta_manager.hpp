// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "replication_core.hpp"

#include <optional>
#include <set>
#include <string>

namespace troupe::managers::detail {

/// `manager.type: delta`: every member holds every session of the context.
/// What it adds to the replication core: every member is a destination, and
/// a joiner catches up by a full state transfer.
///
/// Joining: when an older member exists, the manager asks the oldest for every
/// session (GET_ALL); chunks are installed as they come, while created / delta
/// / expired / accessed / id-changed messages are queued (by the core) and
/// replayed after TRANSFER_COMPLETE through the same version checks. GET_ALL is
/// never dropped: a member that is itself still receiving answers once it has
/// everything. Afterwards the joiner asks every other member for a digest and
/// fetches whatever it lacks, which closes the window in which a member could
/// send a delta before it knew the joiner. A source that leaves, has no such
/// context, or cannot be reached is replaced by the next oldest; the whole is
/// bounded by manager.state_transfer_timeout.
class delta_manager final : public replication_core {
public:
    using replication_core::replication_core;
    ~delta_manager() override { stop(); }

protected:
    std::string_view type_name() const noexcept override { return "delta"; }
    std::vector<membership::member_id> destinations(const session& s) const override;
    void begin_catch_up_locked(actions& a) override;
    bool catch_up_message_locked(const membership::member& from, wire::message& m, std::size_t bytes,
                                 actions& a) override;
    void member_alive_locked(const membership::member& m, actions& a) override;
    void member_departed_locked(const membership::member& m, actions& a) override;
    void catch_up_housekeeping_locked(std::chrono::steady_clock::time_point t, actions& a) override;
    void answer_full(const membership::member& from, const wire::get_all_msg& g) override;
    void add_catch_up_stats_locked(nlohmann::json& j) const override;

private:
    struct transfer_info {
        membership::member source;
        std::uint64_t request = 0;
        std::chrono::steady_clock::time_point started;
        std::chrono::steady_clock::time_point finished;
        std::uint64_t sessions = 0;
        std::uint64_t chunks = 0;
        std::uint64_t bytes = 0;
        std::string state = "none"; ///< none | running | done | timed_out | failed (/stats: or discovering)
        std::string detail;
        /// Asking failed because the source is not reachable yet: ask again then.
        std::optional<std::chrono::steady_clock::time_point> retry_at;
    };

    void start_transfer_locked(actions& a);
    /// Queues the GET_ALL(full) to the current source.
    void ask_source_locked(actions& a);
    void finish_transfer_locked(bool ok, const std::string& why, actions& a);
    void next_source_locked(const std::string& why, actions& a);
    void transfer_send_failed(std::uint64_t request, const engine::send_result& r);

    // Under repl_mutex_.
    bool transfer_done_ = false;
    transfer_info transfer_;
    std::set<membership::member_id> tried_;
};

} // namespace troupe::managers::detail
