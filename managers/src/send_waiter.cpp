// SPDX-License-Identifier: Apache-2.0
#include "send_waiter.hpp"

#include <algorithm>

namespace troupe::managers::detail {

void laggard_set::add(const membership::member_id& m) {
    std::lock_guard lock(mutex_);
    ids_.insert(m);
}

void laggard_set::remove(const membership::member_id& m) {
    std::lock_guard lock(mutex_);
    ids_.erase(m);
}

bool laggard_set::contains(const membership::member_id& m) const {
    std::lock_guard lock(mutex_);
    return ids_.count(m) > 0;
}

void send_waiter::expect(const membership::member_id& member) {
    std::lock_guard lock(mutex_);
    ++members_[member].outstanding;
    ++remaining_;
}

bool send_waiter::settles_locked(clock::time_point now) const {
    if (remaining_ == 0) {
        return true;
    }
    const auto took = static_cast<std::size_t>(std::count_if(members_.begin(), members_.end(), [](const auto& m) {
        return m.second.outstanding == 0 && !m.second.failed;
    }));
    if (now < early_at_) {
        // Only known laggards outstanding: no reason to wait for them again,
        // once another member has the change (with two nodes, never: this
        // node alone would be "half").
        const bool only_laggards =
            laggards_ && took >= 1 && std::all_of(members_.begin(), members_.end(), [&](const auto& m) {
                return m.second.outstanding == 0 || laggards_->contains(m.first);
            });
        if (!only_laggards) {
            return false;
        }
    }
    // At least half of the group, this node included (two nodes: this one).
    return (took + 1) * 2 >= members_.size() + 1;
}

std::function<void()> send_waiter::settle_locked(clock::time_point now) {
    settled_ = true;
    // Members skipped by the early rule proper become laggards; settling by
    // the laggard shortcut marks nobody new (a late answer is not silence).
    if (laggards_ && remaining_ > 0 && now >= early_at_) {
        for (const auto& [id, m] : members_) {
            if (m.outstanding > 0) {
                laggards_->add(id);
            }
        }
    }
    cv_.notify_all();
    if (!on_done) {
        return {};
    }
    auto fire = std::move(on_done);
    on_done = nullptr;
    return [fire = std::move(fire), r = result_locked()]() mutable { fire(std::move(r)); };
}

void send_waiter::done(const membership::member_id& member, engine::send_result r) {
    std::function<void()> completion;
    std::function<void(const membership::member_id&, const engine::send_result&)> late;
    {
        std::lock_guard lock(mutex_);
        auto& m = members_[member];
        if (m.outstanding > 0) {
            --m.outstanding;
        }
        if (remaining_ > 0) {
            --remaining_;
        }
        m.reached = m.reached || r.destinations > 0;
        if (settled_) {
            if (!r.ok()) {
                late = on_late;
            }
        } else {
            if (!r.ok()) {
                m.failed = true;
                for (auto& f : r.failures) {
                    failures_.failures.push_back(std::move(f));
                }
            }
            const auto now = clock::now();
            if (settles_locked(now)) {
                completion = settle_locked(now);
            }
        }
        cv_.notify_all();
    }
    if (completion) {
        completion();
    }
    if (late) {
        late(member, r);
    }
}

bool send_waiter::wait(std::chrono::milliseconds limit) {
    std::function<void()> completion;
    {
        std::unique_lock lock(mutex_);
        const auto deadline = clock::now() + limit;
        while (!settled_) {
            const auto now = clock::now();
            if (settles_locked(now)) {
                completion = settle_locked(now);
                break;
            }
            if (now >= deadline) {
                return false;
            }
            // Wake at early_at to apply the early rule, or when an answer comes.
            cv_.wait_until(lock, std::min(deadline, now < early_at_ ? early_at_ : deadline));
        }
    }
    if (completion) {
        completion();
    }
    return true;
}

bool send_waiter::poll() {
    std::function<void()> completion;
    {
        std::lock_guard lock(mutex_);
        if (settled_) {
            return true;
        }
        const auto now = clock::now();
        if (!settles_locked(now)) {
            return false;
        }
        completion = settle_locked(now);
    }
    if (completion) {
        completion();
    }
    return true;
}

engine::send_result send_waiter::result() const {
    std::lock_guard lock(mutex_);
    return result_locked();
}

engine::send_result send_waiter::result_locked() const {
    engine::send_result r = failures_;
    r.destinations = static_cast<std::size_t>(
        std::count_if(members_.begin(), members_.end(), [](const auto& m) { return m.second.reached; }));
    return r;
}

bool send_waiter::skipped_any() const {
    std::lock_guard lock(mutex_);
    return std::any_of(members_.begin(), members_.end(), [](const auto& m) { return m.second.outstanding > 0; });
}

} // namespace troupe::managers::detail
