// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/logger.hpp>

#include <spdlog/spdlog.h>

namespace troupe::managers {

/// The "troupe.managers" logger (conf::named_logger), looked up once.
inline const std::shared_ptr<spdlog::logger>& log() {
    static const auto logger = conf::named_logger("troupe.managers");
    return logger;
}

} // namespace troupe::managers
