// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/member.hpp>

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace troupe::engine {

/// One destination that a send did not reach (or whose listener failed). `ec` is a
/// transport::error (category "troupe.transport"), or errc::operation_would_block
/// (generic category) for a blocking ack/sync send() made on an I/O thread.
struct member_failure {
    membership::member member;    ///< the destination; this node for a send refused as a whole
    boost::system::error_code ec; ///< transport::error::ack_timeout, remote_failure, queue_full, ...
    std::string detail;           ///< e.g. the remote listener's exception text
};

/// What a send achieved: a value, never an exception.
///
/// @par Thread safety
/// A plain value: distinct objects: safe. Shared objects: const members safe.
struct send_result {
    std::size_t destinations = 0;         ///< members addressed, failed ones included; 0: refused
    std::vector<member_failure> failures; ///< one per member not reached; empty: success

    /// No failure: every destination was reached (a send to nobody is ok too).
    [[nodiscard]] bool ok() const noexcept { return failures.empty(); }
    /// "node-b (127.0.0.1:4001): ack timeout; node-c (...): remote listener failed: boom"
    std::string describe() const;
};

} // namespace troupe::engine
