// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/session.hpp>

namespace troupe::managers {

session::session(std::string id, wall_clock::time_point created, std::chrono::seconds max_inactive)
    : id_(std::move(id))
    , created_(created)
    , accessed_(created)
    , max_inactive_(max_inactive) {}

std::string session::id() const {
    std::lock_guard lock(mutex_);
    return id_;
}

wall_clock::time_point session::created() const {
    std::lock_guard lock(mutex_);
    return created_;
}

wall_clock::time_point session::last_accessed() const {
    std::lock_guard lock(mutex_);
    return accessed_;
}

std::chrono::seconds session::max_inactive() const {
    std::lock_guard lock(mutex_);
    return max_inactive_;
}

std::uint64_t session::version() const {
    std::lock_guard lock(mutex_);
    return version_;
}

bool session::valid() const {
    std::lock_guard lock(mutex_);
    return valid_;
}

std::optional<attribute> session::get(std::string_view name) const {
    std::lock_guard lock(mutex_);
    auto it = attributes_.find(name);
    if (it == attributes_.end()) {
        return std::nullopt;
    }
    return it->second;
}

bool session::contains(std::string_view name) const {
    std::lock_guard lock(mutex_);
    return attributes_.find(name) != attributes_.end();
}

std::map<std::string, attribute, std::less<>> session::attributes() const {
    std::lock_guard lock(mutex_);
    return attributes_;
}

std::vector<std::string> session::attribute_names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> names;
    names.reserve(attributes_.size());
    for (const auto& [name, value] : attributes_) {
        names.push_back(name);
    }
    return names;
}

} // namespace troupe::managers
