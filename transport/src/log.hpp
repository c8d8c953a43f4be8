// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/logger.hpp>

#include <spdlog/spdlog.h>

namespace troupe::transport {

/// The "troupe.transport" logger (conf::named_logger), looked up once.
inline const std::shared_ptr<spdlog::logger>& log() {
    static const auto logger = conf::named_logger("troupe.transport");
    return logger;
}

} // namespace troupe::transport
