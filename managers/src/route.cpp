// SPDX-License-Identifier: Apache-2.0
#include "route.hpp"

#include <iterator>

namespace troupe::managers::detail {

std::string_view route_of(std::string_view id) {
    const auto dot = id.find('.');
    return dot == std::string_view::npos ? std::string_view() : id.substr(dot + 1);
}

std::optional<std::string> with_route(std::string_view id, std::string_view route) {
    const auto dot = id.find('.');
    if (dot == std::string_view::npos) {
        return std::nullopt;
    }
    std::string out(id.substr(0, dot + 1));
    out += route;
    return out;
}

bool same_but_route(std::string_view from, std::string_view to) {
    const auto a = from.find('.');
    const auto b = to.find('.');
    return a != std::string_view::npos && a == b && from.substr(0, a) == to.substr(0, b) &&
           from.substr(a) != to.substr(b);
}

bool alias_table::add(const std::string& from, const std::string& to, wall_clock::time_point now) {
    if (lifetime_.count() <= 0) {
        return false;
    }
    std::lock_guard lock(mutex_);
    prune_locked(now);
    auto it = entries_.find(from);
    if (it == entries_.end() && entries_.size() >= max_entries) {
        ++refused_;
        return false;
    }
    entries_[from] = {to, now + lifetime_};
    // A rewrite back (a.x -> a.y, then a.y -> a.x) must not leave a loop.
    entries_.erase(to);
    return true;
}

std::optional<std::string> alias_table::find(const std::string& id, wall_clock::time_point now) const {
    std::lock_guard lock(mutex_);
    // Follow a chain of rewrites (x -> y -> z), a few steps at most.
    std::optional<std::string> found;
    const std::string* key = &id;
    for (int step = 0; step < 4; ++step) {
        const auto it = entries_.find(*key);
        if (it == entries_.end() || it->second.until <= now) {
            break;
        }
        found = it->second.to;
        key = &it->second.to;
    }
    return found;
}

void alias_table::erase(const std::string& from) {
    std::lock_guard lock(mutex_);
    entries_.erase(from);
}

void alias_table::erase_if_to(const std::string& from, const std::string& to) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(from); it != entries_.end() && it->second.to == to) {
        entries_.erase(it);
    }
}

std::size_t alias_table::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

std::uint64_t alias_table::refused() const {
    std::lock_guard lock(mutex_);
    return refused_;
}

void alias_table::prune_locked(wall_clock::time_point now) {
    // A full sweep at most once a second, full or not: adding stays O(1)
    // amortized (a full table refuses until the next sweep).
    if (now < next_prune_) {
        return;
    }
    next_prune_ = now + std::chrono::seconds(1);
    for (auto it = entries_.begin(); it != entries_.end();) {
        it = it->second.until <= now ? entries_.erase(it) : std::next(it);
    }
}

} // namespace troupe::managers::detail
