// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace troupe::conf {

/// A library logger by name ("troupe.transport", "troupe.engine", ...), shared by
/// every component so that they all follow one rule: a logger the embedder
/// registered under that name first is used as is; otherwise one is created that
/// writes to the default logger's sinks, at the level spdlog's registry holds for
/// the name (so `SPDLOG_LEVEL=troupe.transport=debug` works once the program
/// called `spdlog::cfg::load_env_levels()`). The default logger, its patterns and
/// sinks are never changed.
///
/// Each call looks the name up in spdlog's registry (one mutex): hot paths keep
/// the returned pointer.
///
/// @par Thread safety
/// Safe from any thread.
std::shared_ptr<spdlog::logger> named_logger(const std::string& name);

} // namespace troupe::conf
