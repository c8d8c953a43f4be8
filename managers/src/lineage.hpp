// SPDX-License-Identifier: Apache-2.0
#pragma once

// How two copies of one session are compared, identically on every node.
//
// A copy's stamp is (version, tag, acked). The version counts the steps
// (one per request that changed it). The tag names the lineage: every step
// mixes the writer's member id and the new version into the previous tag, so
// two copies at one version made by different writers (both sides of a
// partition served the session) have different tags, while every replica of
// one lineage computes the same tag without being told. `acked` is the last
// version of the lineage that may have been acknowledged to a client:
//  - the writer advances it when the request that made a step stands
//    (acknowledged under ack/sync, queued under async), never before;
//  - a member that applies a request's step sent to it (DELTA, CREATED,
//    ID_CHANGED) advances it to that step: the writer may acknowledge it on
//    the strength of this copy. A whole copy sent with no request's changes
//    (the backup manager's restores and moves) is one step more but carries
//    the sender's acked unchanged: it holds nothing a client was told of, so
//    a stale copy moved after a heal cannot outrank an acknowledged one;
//  - whole copies carry it (fetches, state transfer, reconciliation), and
//    two stamps of one copy keep the larger.
// So a failed request (a replica refused its step as stale, the node was cut
// off from most members, a destination did not answer) leaves acked where
// it was, however many such steps follow.
//
// The winner of two copies is the larger stamp, compared as
// (acked, version, tag):
//  - More acknowledged steps wins: the copy that may hold an acknowledged
//    change the other lacks. Steps no client was told about (a primary cut
//    off and failing every request until it notices) cannot outrank what
//    the others acknowledged meanwhile, and an old copy a move left behind
//    cannot outrank the latest one.
//  - Then more steps wins. Sessions are sticky: while a cluster is split, a
//    user's requests go to one side, so the copy that moved further is the
//    one the user last saw, and the other side's copy is an older view of it.
//    A failed request's step may stand this way: its client was told it
//    failed, so either outcome is allowed (never an acknowledged one lost).
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
