// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/member_table.hpp>

#include <algorithm>

namespace troupe::membership {

std::vector<member> member_table::mark_alive(const member& m, clock::time_point now) {
    std::vector<member> changes;
    const auto endpoint = m.endpoint();
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->m.id != m.id && it->m.endpoint() == endpoint) {
            // A restart: the old incarnation is gone for good, whatever it was.
            if (it->m.state == member_state::alive || it->m.state == member_state::suspect) {
                it->m.state = member_state::gone;
                changes.push_back(it->m);
            }
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const entry& e) { return e.m.id == m.id; });
    if (it == entries_.end()) {
        entries_.push_back(entry{m, now});
        entries_.back().m.state = member_state::alive;
        changes.push_back(entries_.back().m);
    } else if (it->m.state != member_state::alive) {
        it->m = m;
        it->m.state = member_state::alive;
        it->since = now;
        changes.push_back(it->m);
    }
    return changes;
}

std::optional<member> member_table::set_state(const member_id& id, member_state state,
                                              clock::time_point now) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const entry& e) { return e.m.id == id; });
    if (it == entries_.end() || it->m.state == state) {
        return std::nullopt;
    }
    it->m.state = state;
    it->since = now;
    return it->m;
}

std::optional<member_table::entry> member_table::find(const member_id& id) const {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const entry& e) { return e.m.id == id; });
    if (it == entries_.end()) {
        return std::nullopt;
    }
    return *it;
}

std::optional<member_table::entry> member_table::find_endpoint(const std::string& endpoint) const {
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
        if (it->m.endpoint() == endpoint) {
            return *it;
        }
    }
    return std::nullopt;
}

std::vector<member> member_table::sendable() const {
    std::vector<member> out;
    for (const auto& e : entries_) {
        if (e.m.state == member_state::alive || e.m.state == member_state::suspect) {
            out.push_back(e.m);
        }
    }
    return out;
}

} // namespace troupe::membership
