// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/attribute.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::managers {

/// The clock of session times (creation, access, expiry).
using wall_clock = std::chrono::system_clock;

/// One change carried by a delta: an attribute set or removed, or a new max
/// inactive interval. A delta carries, for every name a request touched, the
/// session's state of that name when the delta was made (not the request's own
/// writes), so that applying deltas in version order always ends in the
/// primary's state, whatever the interleaving of concurrent requests.
struct change {
    enum class kind : std::uint8_t { set = 0, remove = 1, max_inactive = 2 };
    kind what = kind::set;
    std::string name;         ///< attribute name (set and remove)
    attribute value;          ///< set only
    std::int64_t seconds = 0; ///< max_inactive only

    friend bool operator==(const change&, const change&) = default;
};

namespace detail {
struct session_access;
}

/// A user session as a manager holds it: id (128 random bits as hex, '.', node
/// name), times, attributes kept as bytes, and a version that advances by one
/// with each delta. Request handlers use session_handle, which records changes;
/// this class is the read-only view (for /session pages, tools and tests).
///
/// @par Thread safety
/// Every member function locks: concurrent requests on one session never tear
/// it, and two requests that set different attributes both keep their writes.
class session {
public:
    /// Made by the managers (a request's create, a replica, a transfer).
    session(std::string id, wall_clock::time_point created, std::chrono::seconds max_inactive);
    ~session();
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    /// The current id.
    std::string id() const;
    /// When it was created (manager_config::now's clock).
    wall_clock::time_point created() const;
    /// When a request last used it.
    wall_clock::time_point last_accessed() const;
    /// Zero or negative: never expires.
    std::chrono::seconds max_inactive() const;
    /// Advances by one with every delta (created = 1 once replicated).
    std::uint64_t version() const;
    /// False once invalidated or expired.
    bool valid() const;
    /// A copy of one attribute's type tag and bytes; nullopt when absent
    /// (decode_attribute<T>() or session_handle::get<T>() type it).
    std::optional<attribute> get(std::string_view name) const;
    /// Whether the attribute is set.
    bool contains(std::string_view name) const;
    /// A copy of every attribute, by name.
    std::map<std::string, attribute, std::less<>> attributes() const;
    /// The names of the attributes set, sorted.
    std::vector<std::string> attribute_names() const;

private:
    friend struct detail::session_access;

    /// Everything else: the times, attributes and version, and what
    /// replication keeps per copy (lineage, roles). Defined in the managers'
    /// private session_state.hpp: no part of the API.
    struct state;
    std::unique_ptr<state> d_;
};

} // namespace troupe::managers
