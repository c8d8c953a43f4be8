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
    if (version == s.version_ + 1) {
        std::move_backward(s.ancestors_.begin(), s.ancestors_.end() - 1, s.ancestors_.end());
        s.ancestors_.front() = s.tag_;
    } else {
        s.ancestors_ = {};
    }
    s.version_ = version;
    s.tag_ = tag;
}

bool session_access::begin_use(session& s, wall_clock::time_point now) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return false;
    }
    s.accessed_ = std::max(s.accessed_, now);
    s.local_ = true;
    ++s.in_use_;
    return true;
}

std::optional<bool> session_access::set(session& s, std::string_view name, attribute value) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return std::nullopt;
    }
    auto it = s.attributes_.find(name);
    const bool existed = it != s.attributes_.end();
    if (existed) {
        it->second = std::move(value);
    } else {
        s.attributes_.emplace(std::string(name), std::move(value));
    }
    mark_dirty(s.dirty_, name);
    return existed;
}

std::optional<bool> session_access::remove(session& s, std::string_view name) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return std::nullopt;
    }
    auto it = s.attributes_.find(name);
    if (it == s.attributes_.end()) {
        return false;
    }
    s.attributes_.erase(it);
    mark_dirty(s.dirty_, name);
    return true;
}

std::optional<bool> session_access::update(session& s, std::string_view name,
                                           const std::function<attribute(const attribute*)>& fn) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return std::nullopt;
    }
    auto it = s.attributes_.find(name);
    const bool existed = it != s.attributes_.end();
    // fn may throw (a value that does not decode, the application's own error):
    // nothing changes then.
    attribute value = fn(existed ? &it->second : nullptr);
    if (existed) {
        it->second = std::move(value);
    } else {
        s.attributes_.emplace(std::string(name), std::move(value));
    }
    mark_dirty(s.dirty_, name);
    return existed;
}

bool session_access::set_max_inactive(session& s, std::chrono::seconds interval) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return false;
    }
    s.max_inactive_ = detail::interval(interval.count());
    s.max_inactive_dirty_ = true;
    return true;
}

bool session_access::invalidate(session& s) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return false;
    }
    s.valid_ = false;
    s.expired_ = false;
    return true;
}

void session_access::note_rename_locked(session& s) {
    if (s.announced_ && s.replicated_id_.empty()) {
        s.replicated_id_ = s.id_;
    }
}

void session_access::commit_local(session& s, bool ends_use) {
    std::lock_guard lock(s.mutex_);
    if (ends_use && s.in_use_ > 0) {
        --s.in_use_;
    }
    if (!s.valid_) {
        return;
    }
    if (!s.dirty_.empty() || s.max_inactive_dirty_ || !s.replicated_id_.empty() || !s.announced_) {
        ++s.version_;
        s.dirty_.clear();
        s.max_inactive_dirty_ = false;
        s.replicated_id_.clear();
        s.announced_ = true;
    }
    s.acked_ = s.version_; // no other copy: it stands as soon as made
}

outgoing session_access::take_outgoing(session& s, bool replicate_changes, wall_clock::time_point now,
                                       const membership::member_id& self, bool whole, bool ends_use) {
    outgoing o;
    std::lock_guard lock(s.mutex_);
    if (ends_use && s.in_use_ > 0) {
        --s.in_use_;
    }
    // A request's changes (or a pending rename, or a session never sent)
    // travel in these messages, also in a whole copy sent for a restore or a
    // move while a request had changed the session: the step then counts as
    // acknowledged once it stands (lineage.hpp).
    o.client_change = replicate_changes || !s.dirty_.empty() || s.max_inactive_dirty_ ||
                      !s.replicated_id_.empty() || !s.announced_;
    if (!s.handed_to_.is_nil() && s.handed_to_ != self && s.valid_) {
        // Another member serves it now: what this request changed was made on
        // a copy that is no longer the session's.
        s.dirty_.clear();
        s.max_inactive_dirty_ = false;
        o.superseded = true;
        o.version = s.version_;
        o.tag = s.tag_;
        return o;
    }
    if (!s.valid_) {
        if (s.announced_ && !s.expired_) {
            o.messages.push_back(wire::encode(wire::expired_msg{
                s.replicated_id_.empty() ? s.id_ : s.replicated_id_, s.version_, true}));
            o.types.push_back(wire::msg_type::expired);
            s.announced_ = false;
        }
        return o;
    }
    // A request superseded by a copy adopted while it ran: its changes were
    // made on a copy that is no longer the session's. Only a request's end
    // takes the count; a copy sent meanwhile claims no request's change.
    if (s.superseded_ > 0 && !ends_use) {
        o.client_change = replicate_changes || !s.replicated_id_.empty() || !s.announced_;
    }
    if (s.superseded_ > 0 && ends_use) {
        --s.superseded_;
        s.dirty_.clear();
        s.max_inactive_dirty_ = false;
        o.superseded = true;
        o.version = s.version_;
        o.tag = s.tag_;
        return o;
    }
    // One version step made here: the tag follows (lineage.hpp).
    auto step = [&] {
        const auto next = s.version_ + 1;
        step_locked(s, next, next_tag(s.tag_, self, next));
        // acked_ stays: it advances once the request stands (acknowledge).
    };
    const bool rename = s.announced_ && !s.replicated_id_.empty();
    if (whole && s.announced_) {
        // Always one step, changed or not: the copy (and the location that
        // follows it) is then newer than every copy made before the move, so
        // members holding those can tell that theirs is an old one. A pending
        // rename is part of it (the old id's end travels elsewhere).
        step();
        s.replicated_id_.clear();
        s.announced_ = false;
    }
    if (!s.announced_) {
        if (!replicate_changes && !whole) {
            o.touched_only = true;
            return o;
        }
        if (!whole || s.version_ == 0) {
            step(); // (a whole copy of an announced session stepped above)
        }
        wire::buffer b;
        b.reserve(wire::session_size(s.id_.size(), s.attributes_.size(), 0) + 64);
        wire::begin_created(b, {s.id_, ms_between(s.created_, now), ms_between(s.accessed_, now),
                                // acked: a member that takes a request's
                                // step may be the reason it is acknowledged;
                                // a copy with no request's changes claims
                                // no more than this copy's own.
                                s.max_inactive_.count(),
                                {s.version_, s.tag_, o.client_change ? s.version_ : s.acked_},
                                static_cast<std::uint32_t>(s.attributes_.size()), s.ancestors_});
        for (const auto& [name, a] : s.attributes_) {
            wire::append_attribute(b, name, a);
        }
        o.messages.push_back(std::move(b));
        o.types.push_back(wire::msg_type::created);
        s.announced_ = true;
        s.dirty_.clear();
        s.max_inactive_dirty_ = false;
        o.version = s.version_;
        o.tag = s.tag_;
        return o;
    }
    if (rename) {
        const auto before = s.version_;
        step();
        o.messages.push_back(wire::encode(wire::id_changed_msg{s.replicated_id_, s.id_, before, s.version_}));
        o.types.push_back(wire::msg_type::id_changed);
        s.replicated_id_.clear();
    }
    if ((replicate_changes || rename) && (!s.dirty_.empty() || s.max_inactive_dirty_)) {
        const auto before = s.version_;
        const auto before_tag = s.tag_;
        step();
        wire::buffer b;
        wire::begin_delta(b, s.id_, before, s.version_, before_tag, s.tag_,
                          static_cast<std::uint32_t>(s.dirty_.size() + (s.max_inactive_dirty_ ? 1 : 0)));
        // The state of each changed name now, not what each request wrote: the
        // last delta in version order then always leaves replicas where we are.
        for (const auto& name : s.dirty_) {
            auto it = s.attributes_.find(name);
            if (it != s.attributes_.end()) {
                wire::append_set(b, name, it->second);
            } else {
                wire::append_remove(b, name);
            }
        }
        if (s.max_inactive_dirty_) {
            wire::append_max_inactive(b, s.max_inactive_.count());
        }
        s.dirty_.clear();
        s.max_inactive_dirty_ = false;
        o.messages.push_back(std::move(b));
        o.types.push_back(wire::msg_type::delta);
    }
    o.touched_only = o.messages.empty();
    o.version = s.version_;
    o.tag = s.tag_;
    return o;
}

session_access::roles session_access::roles_of(const session& s) {
    std::lock_guard lock(s.mutex_);
    return {s.primary_, s.handed_to_, s.copy_at_, s.doubted_backup_};
}

void session_access::make_primary(session& s, const membership::member_id& self) {
    std::lock_guard lock(s.mutex_);
    s.primary_ = true;
    s.handed_to_ = self;
    s.doubted_backup_ = {};
}

void session_access::make_backup(session& s) {
    std::lock_guard lock(s.mutex_);
    s.primary_ = false;
    s.handed_to_ = {};
    s.copy_at_ = {};
    s.doubted_backup_ = {};
}

void session_access::hand_over(session& s, const membership::member_id& to) {
    std::lock_guard lock(s.mutex_);
    s.primary_ = false;
    s.handed_to_ = to;
    s.copy_at_ = {};
    s.doubted_backup_ = {};
}

bool session_access::demote(session& s) {
    std::lock_guard lock(s.mutex_);
    if (!s.primary_) {
        return false;
    }
    s.primary_ = false;
    s.handed_to_ = {};
    s.doubted_backup_ = s.copy_at_;
    s.copy_at_ = {};
    s.superseded_ = s.in_use_;
    return true;
}

void session_access::set_copy_at(session& s, const membership::member_id& m) {
    std::lock_guard lock(s.mutex_);
    s.copy_at_ = m;
}

bool session_access::acknowledge(session& s, std::uint64_t version, std::uint64_t tag) {
    std::lock_guard lock(s.mutex_);
    // Only while the copy still holds that step: a newer copy installed
    // meanwhile (another lineage) must not borrow this request's standing.
    if (!lineage_has_locked(s, version, tag)) {
        return false;
    }
    s.acked_ = std::max(s.acked_, version);
    return true;
}

std::optional<wire::buffer> session_access::take_expired(session& s) {
    std::lock_guard lock(s.mutex_);
    if (!s.announced_) {
        return std::nullopt;
    }
    s.announced_ = false;
    return wire::encode(
        wire::expired_msg{s.replicated_id_.empty() ? s.id_ : s.replicated_id_, s.version_, !s.expired_});
}

bool session_access::expire_if_idle(session& s, wall_clock::time_point now, std::chrono::milliseconds grace) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_ || s.in_use_ > 0 || s.max_inactive_.count() <= 0 ||
        s.max_inactive_ > interval(INT64_MAX)) {
        return false;
    }
    const auto limit = std::chrono::duration_cast<wall_clock::duration>(s.max_inactive_) +
                       (s.local_ ? wall_clock::duration::zero()
                                 : std::chrono::duration_cast<wall_clock::duration>(grace));
    if (now - s.accessed_ <= limit) {
        return false;
    }
    s.valid_ = false;
    s.expired_ = true;
    return true;
}

bool session_access::expire(session& s) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return false;
    }
    s.valid_ = false;
    s.expired_ = true;
    return true;
}

bool session_access::local(const session& s) {
    std::lock_guard lock(s.mutex_);
    return s.local_;
}

bool session_access::announced(const session& s) {
    std::lock_guard lock(s.mutex_);
    return s.announced_;
}

apply_result session_access::apply_delta(session& s, const wire::delta_msg& d, wall_clock::time_point now,
                                         bool events, std::vector<session_event>& out) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return apply_result::invalid;
    }
    if (d.before != s.version_ || d.before_tag != s.tag_) {
        if (d.after <= s.version_ || d.before == s.version_) {
            // Here already (a late duplicate), or the writer built on a copy
            // this one has moved past or never was (it diverged).
            return lineage_has_locked(s, d.after, d.after_tag) ? apply_result::stale : apply_result::stale_base;
        }
        return apply_result::gap;
    }
    for (const auto& c : d.changes) {
        switch (c.what) {
        case change::kind::set: {
            auto it = s.attributes_.find(c.name);
            const bool existed = it != s.attributes_.end();
            if (existed) {
                it->second = c.value;
            } else {
                s.attributes_.emplace(c.name, c.value);
            }
            if (events) {
                out.push_back(session_event{existed ? session_event::kind::attribute_replaced
                                                    : session_event::kind::attribute_added,
                                            s.id_, c.name, true, false});
            }
            break;
        }
        case change::kind::remove:
            if (s.attributes_.erase(c.name) > 0 && events) {
                out.push_back(
                    session_event{session_event::kind::attribute_removed, s.id_, c.name, true, false});
            }
            break;
        case change::kind::max_inactive: s.max_inactive_ = interval(c.seconds); break;
        }
    }
    step_locked(s, d.after, d.after_tag);
    s.acked_ = d.after; // the writer may acknowledge it once we answer
    s.accessed_ = std::max(s.accessed_, now);
    s.local_ = false;
    s.primary_ = false;
    s.doubted_backup_ = {}; // another member serves it: its backup is that member's business
    s.announced_ = true;
    return apply_result::applied;
}

bool session_access::install(session& s, const wire::full_session& f, wall_clock::time_point now,
                             install_mode mode, bool* diverged) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return false;
    }
    const wire::stamp mine{s.version_, s.tag_, s.acked_};
    if (f.version == s.version_ && f.tag == s.tag_) {
        // The same copy: at most it learns that more of it was acknowledged.
        s.acked_ = std::max(s.acked_, f.acked);
        return false;
    }
    // adopt: our last steps were not acknowledged (refused as stale), and the
    // other copy holds at least what ours may have acknowledged: only those
    // unacknowledged steps are dropped. Never an acknowledged one: then ours
    // wins and goes back to the refuser (on_newer_copy_locked).
    const bool adopt = mode == install_mode::adopt && s.acked_ < s.version_ && f.acked >= s.acked_;
    if (!wins(f.where(), mine) && !adopt) {
        return false;
    }
    s.attributes_.clear();
    for (const auto& [name, a] : f.attributes) {
        s.attributes_.insert_or_assign(name, a);
    }
    if (diverged != nullptr) {
        // Simply behind: our copy is one of the new copy's recent ancestors.
        const bool behind = s.version_ < f.version && f.version - s.version_ <= f.ancestors.size() &&
                            f.ancestors[f.version - s.version_ - 1] == s.tag_;
        *diverged = !behind && (s.version_ >= f.version || f.version - s.version_ <= f.ancestors.size());
    }
    s.version_ = f.version;
    s.tag_ = f.tag;
    s.ancestors_ = f.ancestors;
    // What requests changed was changed on the copy just replaced: those in
    // use are superseded, and names changed by one whose changes were not
    // sent yet (a filtered path's) must not go out with this copy's values.
    s.superseded_ = s.in_use_;
    s.dirty_.clear();
    s.max_inactive_dirty_ = false;
    s.acked_ = f.acked;
    s.max_inactive_ = interval(f.max_inactive_s);
    s.created_ = now - age(f.created_age_ms);
    const auto accessed = now - age(f.idle_ms);
    if (accessed > s.accessed_) {
        s.accessed_ = accessed;
        s.local_ = false;
    }
    s.announced_ = true;
    s.primary_ = false;
    s.doubted_backup_ = {}; // another member's copy won: so is its backup
    return true;
}

std::shared_ptr<session> session_access::from_full(const wire::full_session& f, wall_clock::time_point now) {
    auto s = std::make_shared<session>(f.id, now - age(f.created_age_ms), interval(f.max_inactive_s));
    for (const auto& [name, a] : f.attributes) {
        s->attributes_.insert_or_assign(name, a);
    }
    s->accessed_ = now - age(f.idle_ms);
    s->version_ = f.version;
    s->tag_ = f.tag;
    s->ancestors_ = f.ancestors;
    s->acked_ = f.acked;
    s->announced_ = true;
    s->local_ = false;
    s->primary_ = false;
    return s;
}

void session_access::touch_remote(session& s, std::chrono::milliseconds idle, wall_clock::time_point now) {
    std::lock_guard lock(s.mutex_);
    const auto t = now - idle;
    if (t >= s.accessed_) {
        s.accessed_ = t;
        s.local_ = false;
    }
}

apply_result session_access::apply_rename_version(session& s, std::uint64_t before, std::uint64_t after,
                                                  const membership::member_id& from,
                                                  wall_clock::time_point now) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return apply_result::invalid;
    }
    if (before != s.version_) {
        return after <= s.version_ ? apply_result::stale : apply_result::gap;
    }
    step_locked(s, after, next_tag(s.tag_, from, after));
    s.acked_ = after;
    s.accessed_ = std::max(s.accessed_, now);
    s.local_ = false;
    return apply_result::applied;
}

std::optional<wire::stamp> session_access::valid_stamp(const session& s) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return std::nullopt;
    }
    return wire::stamp{s.version_, s.tag_, s.acked_};
}

bool session_access::lineage_has_locked(const session& s, std::uint64_t version, std::uint64_t tag) {
    if (s.version_ == version) {
        return s.tag_ == tag;
    }
    if (version > s.version_ || s.version_ - version > s.ancestors_.size()) {
        return false;
    }
    return s.ancestors_[s.version_ - version - 1] == tag;
}

bool session_access::lineage_has(const session& s, std::uint64_t version, std::uint64_t tag) {
    std::lock_guard lock(s.mutex_);
    return lineage_has_locked(s, version, tag);
}

wire::full_session session_access::to_full(const session& s, wall_clock::time_point now) {
    std::lock_guard lock(s.mutex_);
    wire::full_session f;
    f.id = s.id_;
    f.created_age_ms = ms_between(s.created_, now);
    f.idle_ms = ms_between(s.accessed_, now);
    f.max_inactive_s = s.max_inactive_.count();
    f.version = s.version_;
    f.tag = s.tag_;
    f.acked = s.acked_;
    f.ancestors = s.ancestors_;
    f.attributes.reserve(s.attributes_.size());
    for (const auto& [name, a] : s.attributes_) {
        f.attributes.emplace_back(name, a);
    }
    return f;
}

bool session_access::add_to(const session& s, wire::counted_writer& out, wall_clock::time_point now) {
    std::lock_guard lock(s.mutex_);
    if (!s.valid_) {
        return false;
    }
    out.add_session({s.id_, ms_between(s.created_, now), ms_between(s.accessed_, now), s.max_inactive_.count(),
                     {s.version_, s.tag_, s.acked_}, static_cast<std::uint32_t>(s.attributes_.size()),
                     s.ancestors_},
                    [&s](wire::buffer& b) {
                        for (const auto& [name, a] : s.attributes_) {
                            wire::append_attribute(b, name, a);
                        }
                    });
    return true;
}

std::size_t session_access::wire_size(const session& s) {
    std::lock_guard lock(s.mutex_);
    std::size_t payload = 0;
    for (const auto& [name, a] : s.attributes_) {
        payload += name.size() + a.type.size() + a.bytes.size();
    }
    return wire::session_size(s.id_.size(), s.attributes_.size(), payload);
}


std::chrono::milliseconds session_access::idle(const session& s, wall_clock::time_point now) {
    std::lock_guard lock(s.mutex_);
    return std::chrono::milliseconds(ms_between(s.accessed_, now));
}

} // namespace troupe::managers::detail
