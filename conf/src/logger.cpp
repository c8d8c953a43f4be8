// SPDX-License-Identifier: Apache-2.0
#include <troupe/conf/logger.hpp>

#include <spdlog/logger.h>
#include <spdlog/spdlog.h>

#include <mutex>

namespace troupe::conf {

std::shared_ptr<spdlog::logger> named_logger(const std::string& name) {
    // Held across lookup and creation, so two threads cannot both create one.
    static std::mutex creation_mutex;
    std::lock_guard<std::mutex> lock(creation_mutex);

    if (auto existing = spdlog::get(name)) {
        return existing;
    }

    // initialize_logger() applies the registry's level for the name (SPDLOG_LEVEL),
    // but it also installs the registry's formatter on every sink of the logger it
    // is given. So a sink-less probe learns the level, and the real logger shares
    // the default logger's sinks untouched.
    auto probe = std::make_shared<spdlog::logger>(name);
    spdlog::initialize_logger(probe);

    auto fallback = spdlog::default_logger();
    auto created = fallback ? std::make_shared<spdlog::logger>(name, fallback->sinks().begin(),
                                                               fallback->sinks().end())
                            : std::make_shared<spdlog::logger>(name);
    created->set_level(probe->level());
    created->flush_on(probe->flush_level());

    // With automatic registration on, the probe now holds the name; with it off, nothing does.
    auto registered = spdlog::get(name);
    if (registered == probe) {
        spdlog::drop(name);
    } else if (registered != nullptr) {
        return registered;
    }
    try {
        spdlog::register_logger(created);
    } catch (const spdlog::spdlog_ex&) {
        // Someone registered the name outside this function meanwhile; theirs wins.
        if (auto theirs = spdlog::get(name)) {
            return theirs;
        }
    }
    return created;
}

} // namespace troupe::conf
