// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/request_scope.hpp>

#include "manager_base.hpp"
#include "session_access.hpp"

#include <memory>
#include <optional>
#include <string>

namespace troupe::managers {

/// What a request scope holds: its session, what the request did, and the
/// session_handle's backend (writes mark the session for the request's delta
/// and fire listeners).
struct request_scope::state final : detail::handle_backend {
    detail::manager_base* mgr = nullptr;
    bool replicates = true;
    std::shared_ptr<managers::session> s;
    std::optional<session_handle> handle;
    bool created = false;
    bool rotated = false;
    bool skipped = false;
    /// The session's route names a member out of the view: the first change
    /// the request makes gives it this member's route (rewrite_route).
    bool rewrite_pending = false;
    std::string cookie_id; ///< as the request named it (id_changed() compares)

    /// Before the request's first change: a read renames nothing (a rename is
    /// a replicated write, and one made by a mere read on another member,
    /// before this one's reached it, would fork the session in two ids).
    void before_change() {
        if (rewrite_pending) {
            rewrite_pending = false;
            auto old_id = s->id();
            if (mgr->rewrite_route(s)) {
                renamed_from = std::move(old_id);
            }
        }
    }
    std::string renamed_from; ///< the id this request's route rewrite left

    /// A request that renamed and then failed: the rename may not stand
    /// anywhere else, and the client keeps the old id, which must lead to
    /// the session where it goes on, not to this copy.
    void check_rename(end_result& r) const { undo_failed_rename(*mgr, s, renamed_from, r); }
    static void undo_failed_rename(detail::manager_base& mgr, const std::shared_ptr<managers::session>& s,
                                   const std::string& renamed_from, end_result& r) {
        if (!renamed_from.empty() && r.error) {
            mgr.rename_failed(s, renamed_from);
            r.rename_undone = true;
        }
    }
    bool unavailable = false; ///< the cookie's session exists somewhere but could not be had
    bool ended = false;
    end_result result;

    void set_attribute(std::string_view name, attribute value) override {
        before_change();
        if (auto existed = detail::session_access::set(*s, name, std::move(value))) {
            mgr->fire({*existed ? session_event::kind::attribute_replaced : session_event::kind::attribute_added,
                       s->id(), std::string(name), false, false});
        }
    }

    void remove_attribute(std::string_view name) override {
        before_change();
        if (auto existed = detail::session_access::remove(*s, name); existed && *existed) {
            mgr->fire({session_event::kind::attribute_removed, s->id(), std::string(name), false, false});
        }
    }

    void update_attribute(std::string_view name,
                          const std::function<attribute(const attribute*)>& fn) override {
        before_change();
        if (auto existed = detail::session_access::update(*s, name, fn)) {
            mgr->fire({*existed ? session_event::kind::attribute_replaced : session_event::kind::attribute_added,
                       s->id(), std::string(name), false, false});
        }
    }

    void set_max_inactive(std::chrono::seconds interval) override {
        before_change();
        detail::session_access::set_max_inactive(*s, interval);
    }

    void invalidate() override {
        if (detail::session_access::invalidate(*s)) {
            mgr->destroyed(s, s->id(), false, false);
        }
    }
};

} // namespace troupe::managers
