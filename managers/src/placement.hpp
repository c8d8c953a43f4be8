// SPDX-License-Identifier: Apache-2.0
#pragma once

// Where the second copy of a session lives under the backup manager:
// rendezvous (highest-random-weight) hashing. Every member ranks the members
// for a session id by weight(id, member name) and so agrees on the backup
// without a message: the best-ranked member other than the primary.
//  - Even: each member is the best-ranked for about 1/n of the ids.
//  - Minimal movement: a member that leaves moves only the backups it held
//    (each to the next in that session's ranking); one that joins takes about
//    1/(n+1) of the backups and nothing else moves.
//  - By name (cluster.node, unique as the session-id route suffix), not by
//    member id: a restarted node is ranked where it was, so a rolling restart
//    puts each backup back where it had been.
// Unlike Tomcat's BackupManager (round-robin over the map's members in hash
// map order), no node's view of the order matters, only the set of members.

#include <troupe/membership/member.hpp>

#include <cstdint>
#include <span>
#include <string_view>

namespace troupe::managers::detail::placement {

/// The rank of `member_name` for `session_id` (higher is preferred). Fixed
/// across builds: nodes of two versions in one cluster must agree.
std::uint64_t weight(std::string_view session_id, std::string_view member_name) noexcept;

/// The member to hold the backup of `session_id` when `primary` serves it:
/// the highest weight among `members` other than `primary` (members with the
/// same name, e.g. an old and a new incarnation during a restart, are ranked
/// by id). Null when there is no other member. `members` may include
/// `primary` and this node; the order does not matter.
const membership::member* backup(std::string_view session_id, const membership::member_id& primary,
                                 std::span<const membership::member> members) noexcept;

} // namespace troupe::managers::detail::placement
