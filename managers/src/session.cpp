// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/session.hpp>

#include "session_state.hpp"

namespace troupe::managers {

session::session(std::string id, wall_clock::time_point created, std::chrono::seconds max_inactive)
    : d_(std::make_unique<state>(std::move(id), created, max_inactive)) {}

session::~session() = default;

std::string session::id() const {
    std::lock_guard lock(d_->mutex);
    return d_->id;
}

wall_clock::time_point session::created() const {
    std::lock_guard lock(d_->mutex);
    return d_->created;
}

wall_clock::time_point session::last_accessed() const {
    std::lock_guard lock(d_->mutex);
    return d_->accessed;
}

std::chrono::seconds session::max_inactive() const {
    std::lock_guard lock(d_->mutex);
    return d_->max_inactive;
}

std::uint64_t session::version() const {
    std::lock_guard lock(d_->mutex);
    return d_->version;
}

bool session::valid() const {
    std::lock_guard lock(d_->mutex);
    return d_->valid;
}

std::optional<attribute> session::get(std::string_view name) const {
    std::lock_guard lock(d_->mutex);
    auto it = d_->attributes.find(name);
    if (it == d_->attributes.end()) {
        return std::nullopt;
    }
    return it->second;
}

bool session::contains(std::string_view name) const {
    std::lock_guard lock(d_->mutex);
    return d_->attributes.find(name) != d_->attributes.end();
}

std::map<std::string, attribute, std::less<>> session::attributes() const {
    std::lock_guard lock(d_->mutex);
    return d_->attributes;
}

std::vector<std::string> session::attribute_names() const {
    std::lock_guard lock(d_->mutex);
    std::vector<std::string> names;
    names.reserve(d_->attributes.size());
    for (const auto& [name, value] : d_->attributes) {
        names.push_back(name);
    }
    return names;
}

} // namespace troupe::managers
