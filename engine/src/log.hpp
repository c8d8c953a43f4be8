// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/logger.hpp>

#include <spdlog/spdlog.h>

namespace troupe::engine {

/// The engine's logger, "troupe.engine" (conf::named_logger: an embedder may
/// register its own under that name before the engine first logs). Looks the
/// registry up per call: hot paths keep the pointer.
inline std::shared_ptr<spdlog::logger> engine_log() { return conf::named_logger("troupe.engine"); }

} // namespace troupe::engine
