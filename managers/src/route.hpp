// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/session.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace troupe::managers::detail {

// A session id is 32 hex digits of randomness, '.', and the route: the name
// of the member that made it (or last took it over), which balancers stick to.

/// The route of `id` (after the first '.'), or "" when it has none.
std::string_view route_of(std::string_view id);
/// `id` with `route` in place of its own; nullopt when `id` has no route.
std::optional<std::string> with_route(std::string_view id, std::string_view route);
/// Whether `to` is `from` with another route: a route rewrite, not a rotation
/// (a rotation draws new randomness, and its old id must stop working at once).
bool same_but_route(std::string_view from, std::string_view to);

/// Old ids of route-rewritten sessions, each an alias of the new id for a
/// bounded time, so that a request that left the client before the new
/// cookie arrived still finds its session. Bounded in entries too: past
/// max_entries an alias is not kept (counted), the request then misses.
///
/// @par Thread safety
/// Every member function may be called from any thread.
class alias_table {
public:
    static constexpr std::size_t max_entries = 100000;

    explicit alias_table(std::chrono::milliseconds lifetime)
        : lifetime_(lifetime) {}

    /// `from` now names `to`, until `now` + lifetime. @return false when not kept.
    bool add(const std::string& from, const std::string& to, wall_clock::time_point now);
    /// The id `id` is an alias of at `now`, if any.
    std::optional<std::string> find(const std::string& id, wall_clock::time_point now) const;
    void erase(const std::string& from);
    /// Erases `from` only while it is an alias of `to`.
    void erase_if_to(const std::string& from, const std::string& to);
    std::size_t size() const;
    std::uint64_t refused() const;

private:
    struct entry {
        std::string to;
        wall_clock::time_point until;
    };
    void prune_locked(wall_clock::time_point now);

    const std::chrono::milliseconds lifetime_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, entry> entries_;
    wall_clock::time_point next_prune_{};
    std::uint64_t refused_ = 0;
};

} // namespace troupe::managers::detail
