// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/membership/member.hpp>

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace troupe::engine {

/// One destination that a send did not reach (or whose listener failed).
struct member_failure {
    membership::member member;
    boost::system::error_code ec; ///< transport::error::ack_timeout, remote_failure, queue_full, ...
    std::string detail;           ///< e.g. the remote listener's exception text
};

/// What a send achieved: a value, never an exception.
struct send_result {
    std::size_t destinations = 0;
    std::vector<member_failure> failures;

    [[nodiscard]] bool ok() const noexcept { return failures.empty(); }
    /// "node-b (127.0.0.1:4001): ack timeout; node-c (...): remote listener failed: boom"
    std::string describe() const;
};

} // namespace troupe::engine
