// SPDX-License-Identifier: Apache-2.0
#pragma once

// How two copies of one session are compared, identically on every node.
//
// A copy's stamp is (version, confirmed, tag). The version counts the steps
// (one per request that changed it). The tag names the lineage: every step
// mixes the writer's member id and the new version into the previous tag, so
// two copies at one version made by different writers (both sides of a
// partition served the session) have different tags, while every replica of
// one lineage computes the same tag without being told.
//
// The winner of two copies is the larger stamp, compared as
// (confirmed, version, tag):
//  - A confirmed copy beats an unconfirmed one. A copy is unconfirmed when
//    the request that made its last step failed (a replica refused it as
//    built on a stale copy, the node was cut off from most of the cluster,
//    or replication failed under on_replication_failure: fail): that step
//    was never acknowledged to a client, while any other copy may hold
//    acknowledged ones.
//  - More steps wins. Sessions are sticky: while a cluster is split, a user's
//    requests go to one side, so the copy that moved further is the one the
//    user last saw, and the other side's copy is an older view of it.
//  - Otherwise the larger tag: arbitrary but the same on every node, with no
//    clock involved.
// A member that replaces its copy by one whose recent ancestors (carried in
// whole copies) do not include it knows the two diverged: it counts a
// conflict and logs the session id.

#include "wire.hpp"

#include <troupe/membership/member.hpp>

#include <cstdint>

namespace troupe::managers::detail {

/// The tag after `writer` made `version` on top of a copy tagged `tag`.
std::uint64_t next_tag(std::uint64_t tag, const membership::member_id& writer, std::uint64_t version) noexcept;

/// True when copy `a` wins over copy `b` (see above).
bool wins(const wire::stamp& a, const wire::stamp& b) noexcept;

} // namespace troupe::managers::detail
