// SPDX-License-Identifier: Apache-2.0
// request_scope: one request's use of its session, from begin to end.
#include "request_scope_state.hpp"

#include "log.hpp"

namespace troupe::managers {

request_scope::request_scope(std::unique_ptr<state> s)
    : state_(std::move(s)) {}

request_scope::request_scope(request_scope&&) noexcept = default;

// A scope dropped without end() (a handler that threw, a server that forgot)
// is ended without waiting: its changes are sent with the configured options,
// and a failure is logged and counted as any replication failure is, but no
// thread blocks for the acks (an Asio thread here would stall every
// connection it serves).
void request_scope::end_unwaited() noexcept {
    if (!state_ || state_->ended) {
        return;
    }
    try {
        end_into(std::make_shared<detail::end_slot>());
    } catch (const std::exception& e) {
        log()->error("request scope: ending a dropped scope threw: {}", e.what());
    } catch (...) {
    }
}

request_scope& request_scope::operator=(request_scope&& other) noexcept {
    if (this != &other) {
        end_unwaited();
        state_ = std::move(other.state_);
    }
    return *this;
}

request_scope::~request_scope() {
    end_unwaited();
}

session_handle* request_scope::session(bool create) {
    if (!state_ || state_->ended) {
        return nullptr;
    }
    if (!state_->s) {
        if (!create || state_->unavailable || state_->skipped) {
            return nullptr; // never a silently empty session in place of one that exists
        }
        state_->s = state_->mgr->create_session();
        state_->created = true;
    }
    if (!state_->handle) {
        state_->handle.emplace(session_handle::key{}, state_->s, state_.get());
    }
    return &*state_->handle;
}

std::string request_scope::session_id() const {
    return state_ && state_->s ? state_->s->id() : std::string();
}

bool request_scope::unavailable() const noexcept { return state_ && state_->unavailable; }

bool request_scope::id_changed() const {
    // Also a route rewrite, or a cookie that named an alias of the id.
    return state_ && state_->s && (state_->created || state_->rotated || state_->s->id() != state_->cookie_id);
}

bool request_scope::skipped() const noexcept { return state_ && state_->skipped; }

void request_scope::rotate_id() {
    if (!state_ || state_->ended || !state_->s) {
        return;
    }
    if (state_->mgr->rotate(state_->s)) {
        state_->rotated = true;
    }
}

bool request_scope::replicates() const noexcept { return state_ && state_->replicates; }

end_result request_scope::end() {
    boost::system::error_code ec;
    auto r = end(ec);
    if (ec) {
        throw session_error(ec, r.detail);
    }
    return r;
}

end_result request_scope::end(boost::system::error_code& ec) {
    ec = {};
    if (!state_) {
        return {};
    }
    if (!state_->ended) {
        state_->ended = true;
        if (!state_->s) {
            return {};
        }
        // finish() ends the request's use of the session together with taking
        // its changes (session_access::take_outgoing).
        state_->result = state_->mgr->finish(state_->s, state_->replicates);
        state_->check_rename(state_->result);
    }
    ec = state_->result.error;
    return state_->result;
}

void request_scope::end_async(end_handler done) {
    auto slot = std::make_shared<detail::end_slot>();
    end_into(slot);
    detail::call_when_done(slot, std::move(done));
}

void request_scope::end_into(std::shared_ptr<detail::end_slot> slot) {
    if (!state_) {
        slot->complete({}, {});
        return;
    }
    if (state_->ended) {
        slot->complete(state_->result.error, state_->result);
        return;
    }
    state_->ended = true;
    if (!state_->s) {
        slot->complete({}, {});
        return;
    }
    if (state_->renamed_from.empty()) {
        state_->mgr->finish_async(state_->s, state_->replicates, std::move(slot));
        return;
    }
    // A route rewrite that fails is taken back before the caller hears of it.
    auto renamed = std::make_shared<detail::end_slot>();
    renamed->on_complete([mgr = state_->mgr, from = state_->renamed_from, s = state_->s,
                          slot = std::move(slot)](std::tuple<boost::system::error_code, end_result> t) {
        auto& r = std::get<1>(t);
        state::undo_failed_rename(*mgr, s, from, r);
        detail::deliver(slot, std::move(r));
    });
    state_->mgr->finish_async(state_->s, state_->replicates, std::move(renamed));
}

} // namespace troupe::managers
