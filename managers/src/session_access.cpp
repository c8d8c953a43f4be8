// SPDX-License-Identifier: Apache-2.0
#include "session_access.hpp"

#include "lineage.hpp"

#include <algorithm>

namespace troupe::managers::detail {

namespace {

std::uint64_t ms_between(wall_clock::time_point earlier, wall_clock::time_point later) {
    if (later <= earlier) {
        return 0;
    }
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(later - earlier).count());
}

// Ages and intervals from the wire are clamped to a century: chrono arithmetic
// in nanoseconds overflows (undefined behaviour) a little beyond 290 years.
constexpr std::uint64_t century_ms = 100ULL * 365 * 24 * 3600 * 1000;

std::chrono::milliseconds age(std::uint64_t ms) {
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(ms, century_ms)));
}

std::chrono::seconds interval(std::int64_t s) {
    return std::chrono::seconds(std::min<std::int64_t>(s, static_cast<std::int64_t>(century_ms / 1000)));
}

void mark_dirty(std::vector<std::string>& dirty, std::string_view name) {
    if (std::find(dirty.begin(), dirty.end(), name) == dirty.end()) {
        dirty.emplace_back(name);
    }
}

} // namespace

void session_access::step_locked(session& s, std::uint64_t version, std::uint64_t tag) {
    if (version == s.d_->version + 1) {
        std::move_backward(s.d_->ancestors.begin(), s.d_->ancestors.end() - 1, s.d_->ancestors.end());
        s.d_->ancestors.front() = s.d_->tag;
    } else {
        s.d_->ancestors = {};
    }
    s.d_->version = version;
    s.d_->tag = tag;
}

bool session_access::begin_use(session& s, wall_clock::time_point now) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return false;
    }
    s.d_->accessed = std::max(s.d_->accessed, now);
    s.d_->local = true;
    ++s.d_->in_use;
    return true;
}

std::optional<bool> session_access::set(session& s, std::string_view name, attribute value) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return std::nullopt;
    }
    auto it = s.d_->attributes.find(name);
    const bool existed = it != s.d_->attributes.end();
    if (existed) {
        it->second = std::move(value);
    } else {
        s.d_->attributes.emplace(std::string(name), std::move(value));
    }
    mark_dirty(s.d_->dirty, name);
    return existed;
}

std::optional<bool> session_access::remove(session& s, std::string_view name) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return std::nullopt;
    }
    auto it = s.d_->attributes.find(name);
    if (it == s.d_->attributes.end()) {
        return false;
    }
    s.d_->attributes.erase(it);
    mark_dirty(s.d_->dirty, name);
    return true;
}

std::optional<bool> session_access::update(session& s, std::string_view name,
                                           const std::function<attribute(const attribute*)>& fn) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return std::nullopt;
    }
    auto it = s.d_->attributes.find(name);
    const bool existed = it != s.d_->attributes.end();
    // fn may throw (a value that does not decode, the application's own error):
    // nothing changes then.
    attribute value = fn(existed ? &it->second : nullptr);
    if (existed) {
        it->second = std::move(value);
    } else {
        s.d_->attributes.emplace(std::string(name), std::move(value));
    }
    mark_dirty(s.d_->dirty, name);
    return existed;
}

bool session_access::set_max_inactive(session& s, std::chrono::seconds interval) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return false;
    }
    s.d_->max_inactive = detail::interval(interval.count());
    s.d_->max_inactive_dirty = true;
    return true;
}

bool session_access::invalidate(session& s) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return false;
    }
    s.d_->valid = false;
    s.d_->expired = false;
    return true;
}

void session_access::note_rename_locked(session& s) {
    if (s.d_->announced && s.d_->replicated_id.empty()) {
        s.d_->replicated_id = s.d_->id;
    }
}

void session_access::commit_local(session& s, bool ends_use) {
    std::lock_guard lock(s.d_->mutex);
    if (ends_use && s.d_->in_use > 0) {
        --s.d_->in_use;
    }
    if (!s.d_->valid) {
        return;
    }
    if (!s.d_->dirty.empty() || s.d_->max_inactive_dirty || !s.d_->replicated_id.empty() || !s.d_->announced) {
        ++s.d_->version;
        s.d_->dirty.clear();
        s.d_->max_inactive_dirty = false;
        s.d_->replicated_id.clear();
        s.d_->announced = true;
    }
    s.d_->acked = s.d_->version; // no other copy: it stands as soon as made
}

outgoing session_access::take_outgoing(session& s, bool replicate_changes, wall_clock::time_point now,
                                       const membership::member_id& self, bool whole, bool ends_use) {
    outgoing o;
    std::lock_guard lock(s.d_->mutex);
    if (ends_use && s.d_->in_use > 0) {
        --s.d_->in_use;
    }
    // A request's changes (or a pending rename, or a session never sent)
    // travel in these messages, also in a whole copy sent for a restore or a
    // move while a request had changed the session: the step then counts as
    // acknowledged once it stands (lineage.hpp).
    o.client_change = replicate_changes || !s.d_->dirty.empty() || s.d_->max_inactive_dirty ||
                      !s.d_->replicated_id.empty() || !s.d_->announced;
    if (!s.d_->handed_to.is_nil() && s.d_->handed_to != self && s.d_->valid) {
        // Another member serves it now: what this request changed was made on
        // a copy that is no longer the session's.
        s.d_->dirty.clear();
        s.d_->max_inactive_dirty = false;
        o.superseded = true;
        o.version = s.d_->version;
        o.tag = s.d_->tag;
        return o;
    }
    if (!s.d_->valid) {
        if (s.d_->announced && !s.d_->expired) {
            o.messages.push_back(wire::encode(wire::expired_msg{
                s.d_->replicated_id.empty() ? s.d_->id : s.d_->replicated_id, s.d_->version, true}));
            o.types.push_back(wire::msg_type::expired);
            s.d_->announced = false;
        }
        return o;
    }
    // A request superseded by a copy adopted while it ran: its changes were
    // made on a copy that is no longer the session's. Only a request's end
    // takes the count; a copy sent meanwhile claims no request's change.
    if (s.d_->superseded > 0 && !ends_use) {
        o.client_change = replicate_changes || !s.d_->replicated_id.empty() || !s.d_->announced;
    }
    if (s.d_->superseded > 0 && ends_use) {
        --s.d_->superseded;
        s.d_->dirty.clear();
        s.d_->max_inactive_dirty = false;
        o.superseded = true;
        o.version = s.d_->version;
        o.tag = s.d_->tag;
        return o;
    }
    // One version step made here: the tag follows (lineage.hpp).
    auto step = [&] {
        const auto next = s.d_->version + 1;
        step_locked(s, next, next_tag(s.d_->tag, self, next));
        // acked_ stays: it advances once the request stands (acknowledge).
    };
    const bool rename = s.d_->announced && !s.d_->replicated_id.empty();
    if (whole && s.d_->announced) {
        // Always one step, changed or not: the copy (and the location that
        // follows it) is then newer than every copy made before the move, so
        // members holding those can tell that theirs is an old one. A pending
        // rename is part of it (the old id's end travels elsewhere).
        step();
        s.d_->replicated_id.clear();
        s.d_->announced = false;
    }
    if (!s.d_->announced) {
        if (!replicate_changes && !whole) {
            o.touched_only = true;
            return o;
        }
        if (!whole || s.d_->version == 0) {
            step(); // (a whole copy of an announced session stepped above)
        }
        wire::buffer b;
        b.reserve(wire::session_size(s.d_->id.size(), s.d_->attributes.size(), 0) + 64);
        wire::begin_created(b, {s.d_->id, ms_between(s.d_->created, now), ms_between(s.d_->accessed, now),
                                // acked: a member that takes a request's
                                // step may be the reason it is acknowledged;
                                // a copy with no request's changes claims
                                // no more than this copy's own.
                                s.d_->max_inactive.count(),
                                {s.d_->version, s.d_->tag, o.client_change ? s.d_->version : s.d_->acked},
                                static_cast<std::uint32_t>(s.d_->attributes.size()), s.d_->ancestors});
        for (const auto& [name, a] : s.d_->attributes) {
            wire::append_attribute(b, name, a);
        }
        o.messages.push_back(std::move(b));
        o.types.push_back(wire::msg_type::created);
        s.d_->announced = true;
        s.d_->dirty.clear();
        s.d_->max_inactive_dirty = false;
        o.version = s.d_->version;
        o.tag = s.d_->tag;
        return o;
    }
    if (rename) {
        const auto before = s.d_->version;
        step();
        o.messages.push_back(wire::encode(wire::id_changed_msg{s.d_->replicated_id, s.d_->id, before, s.d_->version}));
        o.types.push_back(wire::msg_type::id_changed);
        s.d_->replicated_id.clear();
    }
    if ((replicate_changes || rename) && (!s.d_->dirty.empty() || s.d_->max_inactive_dirty)) {
        const auto before = s.d_->version;
        const auto before_tag = s.d_->tag;
        step();
        wire::buffer b;
        wire::begin_delta(b, s.d_->id, before, s.d_->version, before_tag, s.d_->tag,
                          static_cast<std::uint32_t>(s.d_->dirty.size() + (s.d_->max_inactive_dirty ? 1 : 0)));
        // The state of each changed name now, not what each request wrote: the
        // last delta in version order then always leaves replicas where we are.
        for (const auto& name : s.d_->dirty) {
            auto it = s.d_->attributes.find(name);
            if (it != s.d_->attributes.end()) {
                wire::append_set(b, name, it->second);
            } else {
                wire::append_remove(b, name);
            }
        }
        if (s.d_->max_inactive_dirty) {
            wire::append_max_inactive(b, s.d_->max_inactive.count());
        }
        s.d_->dirty.clear();
        s.d_->max_inactive_dirty = false;
        o.messages.push_back(std::move(b));
        o.types.push_back(wire::msg_type::delta);
    }
    o.touched_only = o.messages.empty();
    o.version = s.d_->version;
    o.tag = s.d_->tag;
    return o;
}

session_access::roles session_access::roles_of(const session& s) {
    std::lock_guard lock(s.d_->mutex);
    return {s.d_->primary, s.d_->handed_to, s.d_->copy_at, s.d_->was_copy_at, s.d_->doubted_backup};
}

void session_access::make_primary(session& s, const membership::member_id& self) {
    std::lock_guard lock(s.d_->mutex);
    s.d_->primary = true;
    s.d_->handed_to = self;
    s.d_->doubted_backup = {};
}

void session_access::make_backup(session& s) {
    std::lock_guard lock(s.d_->mutex);
    s.d_->primary = false;
    s.d_->handed_to = {};
    s.d_->copy_at = {};
    s.d_->was_copy_at = {};
    s.d_->doubted_backup = {};
}

void session_access::hand_over(session& s, const membership::member_id& to) {
    std::lock_guard lock(s.d_->mutex);
    s.d_->primary = false;
    s.d_->handed_to = to;
    s.d_->copy_at = {};
    s.d_->was_copy_at = {};
    s.d_->doubted_backup = {};
}

bool session_access::demote(session& s, const membership::member_id& in_step) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->primary) {
        return false;
    }
    s.d_->primary = false;
    s.d_->handed_to = {};
    s.d_->doubted_backup = !in_step.is_nil()           ? in_step
                           : !s.d_->copy_at.is_nil() ? s.d_->copy_at
                                                     : s.d_->was_copy_at;
    s.d_->copy_at = {};
    s.d_->was_copy_at = {};
    s.d_->superseded = s.d_->in_use;
    return true;
}

void session_access::set_copy_at(session& s, const membership::member_id& m) {
    std::lock_guard lock(s.d_->mutex);
    if (m.is_nil() && !s.d_->copy_at.is_nil()) {
        s.d_->was_copy_at = s.d_->copy_at;
    }
    s.d_->copy_at = m;
}

void session_access::copy_confirmed(session& s, const membership::member_id& previous,
                                    const membership::member_id& to) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->primary && !previous.is_nil() && s.d_->doubted_backup == previous) {
        s.d_->doubted_backup = to;
    }
}

void session_access::whole_copy_failed(session& s, const membership::member_id& previous) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->primary) {
        return; // demote or hand_over cleared copy_at and was_copy_at
    }
    if (!previous.is_nil()) {
        s.d_->was_copy_at = previous;
    } else if (!s.d_->copy_at.is_nil()) {
        s.d_->was_copy_at = s.d_->copy_at;
    }
    s.d_->copy_at = {};
}

bool session_access::acknowledge(session& s, std::uint64_t version, std::uint64_t tag) {
    std::lock_guard lock(s.d_->mutex);
    // Only while the copy still holds that step: a newer copy installed
    // meanwhile (another lineage) must not borrow this request's standing.
    if (!lineage_has_locked(s, version, tag)) {
        return false;
    }
    s.d_->acked = std::max(s.d_->acked, version);
    return true;
}

void session_access::mark_changed(session& s) {
    std::lock_guard lock(s.d_->mutex);
    s.d_->max_inactive_dirty = true;
}

std::optional<wire::buffer> session_access::take_expired(session& s) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->announced) {
        return std::nullopt;
    }
    s.d_->announced = false;
    return wire::encode(
        wire::expired_msg{s.d_->replicated_id.empty() ? s.d_->id : s.d_->replicated_id, s.d_->version, !s.d_->expired});
}

bool session_access::expire_if_idle(session& s, wall_clock::time_point now, std::chrono::milliseconds grace) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid || s.d_->in_use > 0 || s.d_->max_inactive.count() <= 0 ||
        s.d_->max_inactive > interval(INT64_MAX)) {
        return false;
    }
    const auto limit = std::chrono::duration_cast<wall_clock::duration>(s.d_->max_inactive) +
                       (s.d_->local ? wall_clock::duration::zero()
                                 : std::chrono::duration_cast<wall_clock::duration>(grace));
    if (now - s.d_->accessed <= limit) {
        return false;
    }
    s.d_->valid = false;
    s.d_->expired = true;
    return true;
}

bool session_access::expire(session& s) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return false;
    }
    s.d_->valid = false;
    s.d_->expired = true;
    return true;
}

bool session_access::local(const session& s) {
    std::lock_guard lock(s.d_->mutex);
    return s.d_->local;
}

bool session_access::announced(const session& s) {
    std::lock_guard lock(s.d_->mutex);
    return s.d_->announced;
}

apply_result session_access::apply_delta(session& s, const wire::delta_msg& d, wall_clock::time_point now,
                                         bool events, std::vector<session_event>& out) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return apply_result::invalid;
    }
    if (d.before != s.d_->version || d.before_tag != s.d_->tag) {
        if (d.after <= s.d_->version || d.before == s.d_->version) {
            // Here already (a late duplicate), or the writer built on a copy
            // this one has moved past or never was (it diverged).
            return lineage_has_locked(s, d.after, d.after_tag) ? apply_result::stale : apply_result::stale_base;
        }
        return apply_result::gap;
    }
    for (const auto& c : d.changes) {
        switch (c.what) {
        case change::kind::set: {
            auto it = s.d_->attributes.find(c.name);
            const bool existed = it != s.d_->attributes.end();
            if (existed) {
                it->second = c.value;
            } else {
                s.d_->attributes.emplace(c.name, c.value);
            }
            if (events) {
                out.push_back(session_event{existed ? session_event::kind::attribute_replaced
                                                    : session_event::kind::attribute_added,
                                            s.d_->id, c.name, true, false});
            }
            break;
        }
        case change::kind::remove:
            if (s.d_->attributes.erase(c.name) > 0 && events) {
                out.push_back(
                    session_event{session_event::kind::attribute_removed, s.d_->id, c.name, true, false});
            }
            break;
        case change::kind::max_inactive: s.d_->max_inactive = interval(c.seconds); break;
        }
    }
    step_locked(s, d.after, d.after_tag);
    s.d_->acked = d.after; // the writer may acknowledge it once we answer
    s.d_->accessed = std::max(s.d_->accessed, now);
    s.d_->local = false;
    s.d_->primary = false;
    s.d_->doubted_backup = {}; // another member serves it: its backup is that member's business
    s.d_->announced = true;
    return apply_result::applied;
}

bool session_access::install(session& s, const wire::full_session& f, wall_clock::time_point now,
                             install_mode mode, bool* diverged) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return false;
    }
    const wire::stamp mine{s.d_->version, s.d_->tag, s.d_->acked};
    if (f.version == s.d_->version && f.tag == s.d_->tag) {
        // The same copy: at most it learns that more of it was acknowledged.
        s.d_->acked = std::max(s.d_->acked, f.acked);
        return false;
    }
    // adopt: our last steps were not acknowledged (refused as stale), and the
    // other copy holds at least what ours may have acknowledged: only those
    // unacknowledged steps are dropped. Never an acknowledged one: then ours
    // wins and goes back to the refuser (on_newer_copy_locked).
    const bool adopt = mode == install_mode::adopt && s.d_->acked < s.d_->version && f.acked >= s.d_->acked;
    if (!wins(f.where(), mine) && !adopt) {
        return false;
    }
    s.d_->attributes.clear();
    for (const auto& [name, a] : f.attributes) {
        s.d_->attributes.insert_or_assign(name, a);
    }
    if (diverged != nullptr) {
        // Simply behind: our copy is one of the new copy's recent ancestors.
        const bool behind = s.d_->version < f.version && f.version - s.d_->version <= f.ancestors.size() &&
                            f.ancestors[f.version - s.d_->version - 1] == s.d_->tag;
        *diverged = !behind && (s.d_->version >= f.version || f.version - s.d_->version <= f.ancestors.size());
    }
    s.d_->version = f.version;
    s.d_->tag = f.tag;
    s.d_->ancestors = f.ancestors;
    // What requests changed was changed on the copy just replaced: those in
    // use are superseded, and names changed by one whose changes were not
    // sent yet (a filtered path's) must not go out with this copy's values.
    s.d_->superseded = s.d_->in_use;
    s.d_->dirty.clear();
    s.d_->max_inactive_dirty = false;
    s.d_->acked = f.acked;
    s.d_->max_inactive = interval(f.max_inactive_s);
    s.d_->created = now - age(f.created_age_ms);
    const auto accessed = now - age(f.idle_ms);
    if (accessed > s.d_->accessed) {
        s.d_->accessed = accessed;
        s.d_->local = false;
    }
    s.d_->announced = true;
    s.d_->primary = false;
    s.d_->doubted_backup = {}; // another member's copy won: so is its backup
    return true;
}

std::shared_ptr<session> session_access::from_full(const wire::full_session& f, wall_clock::time_point now) {
    auto s = std::make_shared<session>(f.id, now - age(f.created_age_ms), interval(f.max_inactive_s));
    for (const auto& [name, a] : f.attributes) {
        s->d_->attributes.insert_or_assign(name, a);
    }
    s->d_->accessed = now - age(f.idle_ms);
    s->d_->version = f.version;
    s->d_->tag = f.tag;
    s->d_->ancestors = f.ancestors;
    s->d_->acked = f.acked;
    s->d_->announced = true;
    s->d_->local = false;
    s->d_->primary = false;
    return s;
}

void session_access::touch_remote(session& s, std::chrono::milliseconds idle, wall_clock::time_point now) {
    std::lock_guard lock(s.d_->mutex);
    const auto t = now - idle;
    if (t >= s.d_->accessed) {
        s.d_->accessed = t;
        s.d_->local = false;
    }
}

apply_result session_access::apply_rename_version(session& s, std::uint64_t before, std::uint64_t after,
                                                  const membership::member_id& from,
                                                  wall_clock::time_point now) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return apply_result::invalid;
    }
    if (before != s.d_->version) {
        return after <= s.d_->version ? apply_result::stale : apply_result::gap;
    }
    step_locked(s, after, next_tag(s.d_->tag, from, after));
    s.d_->acked = after;
    s.d_->accessed = std::max(s.d_->accessed, now);
    s.d_->local = false;
    return apply_result::applied;
}

std::optional<wire::stamp> session_access::valid_stamp(const session& s) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return std::nullopt;
    }
    return wire::stamp{s.d_->version, s.d_->tag, s.d_->acked};
}

bool session_access::lineage_has_locked(const session& s, std::uint64_t version, std::uint64_t tag) {
    if (s.d_->version == version) {
        return s.d_->tag == tag;
    }
    if (version > s.d_->version || s.d_->version - version > s.d_->ancestors.size()) {
        return false;
    }
    return s.d_->ancestors[s.d_->version - version - 1] == tag;
}

bool session_access::lineage_has(const session& s, std::uint64_t version, std::uint64_t tag) {
    std::lock_guard lock(s.d_->mutex);
    return lineage_has_locked(s, version, tag);
}

wire::full_session session_access::to_full(const session& s, wall_clock::time_point now) {
    std::lock_guard lock(s.d_->mutex);
    wire::full_session f;
    f.id = s.d_->id;
    f.created_age_ms = ms_between(s.d_->created, now);
    f.idle_ms = ms_between(s.d_->accessed, now);
    f.max_inactive_s = s.d_->max_inactive.count();
    f.version = s.d_->version;
    f.tag = s.d_->tag;
    f.acked = s.d_->acked;
    f.ancestors = s.d_->ancestors;
    f.attributes.reserve(s.d_->attributes.size());
    for (const auto& [name, a] : s.d_->attributes) {
        f.attributes.emplace_back(name, a);
    }
    return f;
}

bool session_access::add_to(const session& s, wire::counted_writer& out, wall_clock::time_point now) {
    std::lock_guard lock(s.d_->mutex);
    if (!s.d_->valid) {
        return false;
    }
    out.add_session({s.d_->id, ms_between(s.d_->created, now), ms_between(s.d_->accessed, now), s.d_->max_inactive.count(),
                     {s.d_->version, s.d_->tag, s.d_->acked}, static_cast<std::uint32_t>(s.d_->attributes.size()),
                     s.d_->ancestors},
                    [&s](wire::buffer& b) {
                        for (const auto& [name, a] : s.d_->attributes) {
                            wire::append_attribute(b, name, a);
                        }
                    });
    return true;
}

std::size_t session_access::wire_size(const session& s) {
    std::lock_guard lock(s.d_->mutex);
    std::size_t payload = 0;
    for (const auto& [name, a] : s.d_->attributes) {
        payload += name.size() + a.type.size() + a.bytes.size();
    }
    return wire::session_size(s.d_->id.size(), s.d_->attributes.size(), payload);
}


std::chrono::milliseconds session_access::idle(const session& s, wall_clock::time_point now) {
    std::lock_guard lock(s.d_->mutex);
    return std::chrono::milliseconds(ms_between(s.d_->accessed, now));
}

} // namespace troupe::managers::detail
