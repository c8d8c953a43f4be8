// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace troupe::membership {

/// The "troupe.membership" logger, created with the default logger's sinks the
/// first time. The library never touches the default logger itself.
inline std::shared_ptr<spdlog::logger> log() {
    static const std::shared_ptr<spdlog::logger> logger = [] {
        if (auto existing = spdlog::get("troupe.membership")) {
            return existing;
        }
        auto made = std::make_shared<spdlog::logger>("troupe.membership",
                                                     spdlog::default_logger()->sinks().begin(),
                                                     spdlog::default_logger()->sinks().end());
        made->set_level(spdlog::default_logger()->level());
        spdlog::register_logger(made);
        return made;
    }();
    return logger;
}

} // namespace troupe::membership
