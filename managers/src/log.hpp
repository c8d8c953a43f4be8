// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace troupe::managers {

/// The "troupe.managers" logger, created with the default logger's sinks the
/// first time. The library never touches the default logger itself.
inline std::shared_ptr<spdlog::logger> log() {
    static const std::shared_ptr<spdlog::logger> logger = [] {
        if (auto existing = spdlog::get("troupe.managers")) {
            return existing;
        }
        auto made = std::make_shared<spdlog::logger>("troupe.managers",
                                                     spdlog::default_logger()->sinks().begin(),
                                                     spdlog::default_logger()->sinks().end());
        made->set_level(spdlog::default_logger()->level());
        spdlog::register_logger(made);
        return made;
    }();
    return logger;
}

} // namespace troupe::managers
