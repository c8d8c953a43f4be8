// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>

namespace troupe::engine::detail {

inline constexpr const char* engine_logger_name = "troupe.engine";

} // namespace troupe::engine::detail

namespace troupe::engine {

/// The engine's named logger, "troupe.engine".
///
/// An embedder (or a tool) may register its own logger under that name before the engine
/// first logs; otherwise one is created that writes to the default logger's sinks, with the
/// level the registry holds for the name (so `SPDLOG_LEVEL=troupe.engine=debug` works once
/// the tool called `spdlog::cfg::load_env_levels()`). The default logger, patterns and sinks
/// are never changed.
///
/// Each call looks the logger up in spdlog's registry (one mutex), so a hot path should keep
/// the returned pointer instead of calling this per message.
///
/// @par Thread safety
/// Safe from any thread.
inline std::shared_ptr<spdlog::logger> engine_log() {
    // Held across lookup and creation, so two engine threads cannot both create the logger.
    static std::mutex creation_mutex;
    std::lock_guard<std::mutex> lock(creation_mutex);

    if (auto existing = spdlog::get(detail::engine_logger_name)) {
        return existing;
    }

    // initialize_logger() applies the registry's level for our name (SPDLOG_LEVEL), but it
    // also installs the registry's formatter on every sink of the logger it is given. So a
    // sink-less probe learns the level, and the real logger shares the default logger's sinks
    // untouched; nothing ever mutates the sink list of a logger others can already see.
    auto probe = std::make_shared<spdlog::logger>(detail::engine_logger_name);
    spdlog::initialize_logger(probe);

    auto fallback = spdlog::default_logger();
    auto created = fallback ? std::make_shared<spdlog::logger>(detail::engine_logger_name,
                                                               fallback->sinks().begin(),
                                                               fallback->sinks().end())
                            : std::make_shared<spdlog::logger>(detail::engine_logger_name);
    created->set_level(probe->level());
    created->flush_on(probe->flush_level());

    // With automatic registration on, the probe now holds the name; with it off, nothing does.
    auto registered = spdlog::get(detail::engine_logger_name);
    if (registered == probe) {
        spdlog::drop(detail::engine_logger_name);
    } else if (registered != nullptr) {
        return registered;
    }
    try {
        spdlog::register_logger(created);
    } catch (const spdlog::spdlog_ex&) {
        // Someone registered the name outside this function meanwhile; theirs wins.
        if (auto theirs = spdlog::get(detail::engine_logger_name)) {
            return theirs;
        }
    }
    return created;
}

} // namespace troupe::engine
