// SPDX-License-Identifier: Apache-2.0
#pragma once

// An in-memory group for the managers' unit tests: every endpoint is a
// detail::link, messages wait in one queue until the test pumps them, and a
// test can drop, fail or reorder them. No sockets, no timing.

#include "delta_manager.hpp"
#include "link.hpp"

#include <troupe/transport/error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace troupe::test {

class fake_bus {
public:
    struct envelope {
        membership::member from;
        membership::member_id to;
        std::vector<std::uint8_t> payload;
        std::uint32_t options = 0;
        std::function<void(engine::send_result)> done;
    };

    /// hold: kept unanswered (a frozen member) until release_held().
    enum class verdict { deliver, drop, fail, hold };

    /// Decides each message's fate as it is pumped (default: deliver).
    /// Assigned by tests while a pump thread may be delivering: guarded.
    class guarded_filter {
    public:
        guarded_filter& operator=(std::function<verdict(const envelope&)> f) {
            std::lock_guard lock(mutex_);
            f_ = std::move(f);
            return *this;
        }
        verdict operator()(const envelope& e) {
            std::lock_guard lock(mutex_);
            return f_ ? f_(e) : verdict::deliver;
        }

    private:
        std::mutex mutex_;
        std::function<verdict(const envelope&)> f_;
    };
    guarded_filter filter;

    class endpoint final : public managers::detail::link {
    public:
        endpoint(fake_bus& bus, membership::member self)
            : bus_(bus)
            , self_(std::move(self)) {}
        ~endpoint() override { bus_.leave(self_.id); }

        membership::member self() const override { return self_; }
        std::vector<membership::member> members() const override {
            if (!discovered_.load()) {
                return {}; // still discovering: nobody heard yet
            }
            return bus_.members_except(self_.id);
        }
        bool discovered() const override { return discovered_.load(); }
        /// Ends initial discovery (join(..., false)): the others' alive events,
        /// then the link's discovered event, as the channel orders them.
        void finish_discovery() {
            discovered_.store(true);
            for (const auto& m : bus_.members_except(self_.id)) {
                member_event(m);
            }
            std::shared_lock lock(mutex_);
            if (attached_ && events_.discovered) {
                events_.discovered();
            }
        }
        void attach(managers::detail::link_events events) override {
            std::unique_lock lock(mutex_);
            events_ = std::move(events);
            attached_ = true;
        }
        void detach() override {
            std::unique_lock lock(mutex_);
            attached_ = false;
            events_ = {};
        }
        void send(std::vector<membership::member_id> to, std::vector<std::uint8_t> payload, std::uint32_t options,
                  done_handler done) override {
            bus_.enqueue(self_, std::move(to), std::move(payload), options, std::move(done), nullptr);
        }
        void send_each(std::vector<membership::member_id> to, std::vector<std::uint8_t> payload,
                       std::uint32_t options, progress_handler progress, done_handler done) override {
            bus_.enqueue(self_, std::move(to), std::move(payload), options, std::move(done), std::move(progress));
        }
        bool on_io_thread() const override { return in_delivery(); }
        std::chrono::milliseconds wait_limit() const override { return std::chrono::seconds(10); }
        std::size_t max_message() const override { return 16u << 20; }

        /// @return false if nobody listens (the channel's "no listener").
        bool deliver(const membership::member& from, const std::vector<std::uint8_t>& payload) {
            std::shared_lock lock(mutex_);
            if (!attached_ || !events_.message) {
                return false;
            }
            events_.message(from, payload);
            return true;
        }
        void member_event(const membership::member& m) {
            std::shared_lock lock(mutex_);
            if (attached_ && events_.member_changed) {
                events_.member_changed(m);
            }
        }

    private:
        fake_bus& bus_;
        membership::member self_;
        mutable std::shared_mutex mutex_;
        managers::detail::link_events events_;
        bool attached_ = false;
        std::atomic<bool> discovered_{true};
        friend class fake_bus;
    };

    /// A new member; older members have smaller incarnations.
    /// `discovered` false: its initial discovery runs until finish_discovery()
    /// (the others see it at once, it sees nobody).
    std::unique_ptr<endpoint> join(const std::string& name, std::uint64_t incarnation, bool discovered = true) {
        membership::member m;
        m.id = membership::member_id::random();
        m.incarnation = incarnation;
        m.name = name;
        m.host = "127.0.0.1";
        m.port = static_cast<std::uint16_t>(4000 + incarnation);
        auto e = std::make_unique<endpoint>(*this, m);
        e->discovered_.store(discovered);
        std::vector<endpoint*> others;
        {
            std::lock_guard lock(mutex_);
            endpoints_[m.id] = e.get();
            for (auto& [id, ep] : endpoints_) {
                if (id != m.id) {
                    others.push_back(ep);
                }
            }
        }
        for (auto* o : others) {
            o->member_event(m);
        }
        return e;
    }

    /// Delivers what is queued, and what that causes, until nothing is queued and
    /// `quiet()` holds (the managers' workers are idle), or `limit` passes.
    bool pump(const std::function<bool()>& quiet = [] { return true; },
              std::chrono::milliseconds limit = std::chrono::seconds(20)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        int calm = 0;
        while (std::chrono::steady_clock::now() < deadline) {
            if (deliver_queued() > 0) {
                calm = 0;
                continue;
            }
            if (quiet() && queued() == 0) {
                // Twice in a row: a worker may have just picked up a task.
                if (++calm >= 3) {
                    return true;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return false;
    }

    /// Delivers what is queued now (not what delivery causes). In reverse order
    /// when `reverse`. @return how many.
    std::size_t deliver_queued(bool reverse = false) {
        std::deque<envelope> batch;
        {
            std::lock_guard lock(mutex_);
            batch.swap(queue_);
        }
        if (reverse) {
            std::reverse(batch.begin(), batch.end());
        }
        for (auto& e : batch) {
            deliver(e);
        }
        return batch.size();
    }

    std::size_t queued() const {
        std::lock_guard lock(mutex_);
        return queue_.size();
    }

    /// Messages queued now, for a look (types, sizes).
    std::vector<envelope> peek() const {
        std::lock_guard lock(mutex_);
        std::vector<envelope> out;
        for (const auto& e : queue_) {
            out.push_back({e.from, e.to, e.payload, e.options, nullptr});
        }
        return out;
    }

    /// Sends raw bytes from a member that is not a manager (malformed input).
    void inject(const membership::member& from, const membership::member_id& to, std::vector<std::uint8_t> bytes) {
        std::lock_guard lock(mutex_);
        queue_.push_back({from, to, std::move(bytes), 8, nullptr});
    }

    void announce_gone(const membership::member_id& id) {
        membership::member gone;
        std::vector<endpoint*> others;
        {
            std::lock_guard lock(mutex_);
            auto it = endpoints_.find(id);
            if (it == endpoints_.end()) {
                return;
            }
            gone = it->second->self();
            hidden_.push_back(id);
            for (auto& [other, ep] : endpoints_) {
                if (other != id) {
                    others.push_back(ep);
                }
            }
        }
        gone.state = membership::member_state::gone;
        for (auto* o : others) {
            o->member_event(gone);
        }
    }

    /// The others see `id` alive again (a removed member re-admitted); `id`
    /// itself is told nothing: it may never have noticed (a freeze).
    void readmit(const membership::member_id& id) {
        std::vector<endpoint*> others;
        membership::member back;
        {
            std::lock_guard lock(mutex_);
            auto it = endpoints_.find(id);
            if (it == endpoints_.end()) {
                return;
            }
            back = it->second->self();
            hidden_.erase(std::remove(hidden_.begin(), hidden_.end(), id), hidden_.end());
            for (auto& [other, ep] : endpoints_) {
                if (other != id && !is_split(id, other)) {
                    others.push_back(ep);
                }
            }
        }
        for (auto* o : others) {
            o->member_event(back);
        }
    }

    /// A partition: `id` and the others cannot reach each other, and each side
    /// sees the other gone. Messages across fail.
    void cut(const membership::member_id& id) {
        announce_gone(id);
        set_cut(id, true, membership::member_state::gone);
    }

    /// Heals a cut: both sides see each other alive again.
    void heal(const membership::member_id& id) {
        heal_from(id);
        readmit(id);
    }

    /// The first half of a heal: `id` sees the others alive again and reaches
    /// them, while they still count it gone (their readmit() comes later).
    void heal_from(const membership::member_id& id) { set_cut(id, false, membership::member_state::alive); }

    /// Only `x` and `y` lose each other (a heal that reached the others
    /// first): each sees the other gone, messages between them fail, and
    /// heals and re-admissions leave the pair apart until unsplit().
    void split(const membership::member_id& x, const membership::member_id& y) { set_split(x, y, true); }
    void unsplit(const membership::member_id& x, const membership::member_id& y) { set_split(x, y, false); }

    membership::member_id id_of(const std::string& name) const {
        std::lock_guard lock(mutex_);
        for (const auto& [id, ep] : endpoints_) {
            if (ep->self().name == name) {
                return id;
            }
        }
        return {};
    }

    /// Answers the held messages: delivered, or failed (`fail`) as a member
    /// that never woke up. @return how many.
    std::size_t release_held(bool fail) {
        return release_held_if([](const envelope&) { return true; }, fail);
    }

    /// release_held() for the held messages `which` picks; the others stay held.
    std::size_t release_held_if(const std::function<bool(const envelope&)>& which, bool fail) {
        std::deque<envelope> held;
        {
            std::lock_guard lock(mutex_);
            std::deque<envelope> keep;
            for (auto& e : held_) {
                (which(e) ? held : keep).push_back(std::move(e));
            }
            held_.swap(keep);
        }
        for (auto& e : held) {
            if (fail) {
                engine::send_result r;
                r.destinations = 1;
                membership::member to;
                to.id = e.to;
                r.failures.push_back({to, transport::error::ack_timeout, "fake bus: held, then failed"});
                if (e.done) {
                    e.done(std::move(r));
                }
            } else {
                deliver(e, verdict::deliver);
            }
        }
        return held.size();
    }

    std::size_t held() const {
        std::lock_guard lock(mutex_);
        return held_.size();
    }

    static bool in_delivery() { return delivering_flag(); }

private:
    static bool& delivering_flag() {
        thread_local bool flag = false;
        return flag;
    }

    struct pending_result {
        std::mutex mutex;
        std::size_t remaining = 0;
        engine::send_result result;
        std::function<void(engine::send_result)> done;

        void complete(std::optional<engine::member_failure> failure) {
            std::function<void(engine::send_result)> fire;
            engine::send_result r;
            {
                std::lock_guard lock(mutex);
                if (failure) {
                    result.failures.push_back(std::move(*failure));
                }
                if (--remaining > 0) {
                    return;
                }
                fire = std::move(done);
                r = result;
            }
            if (fire) {
                fire(std::move(r));
            }
        }
    };

    void enqueue(const membership::member& from, std::vector<membership::member_id> to,
                 std::vector<std::uint8_t> payload, std::uint32_t options,
                 std::function<void(engine::send_result)> done,
                 managers::detail::link::progress_handler progress) {
        std::vector<membership::member_id> targets;
        std::shared_ptr<pending_result> pr;
        {
            std::lock_guard lock(mutex_);
            if (to.empty() && is_cut(from.id)) {
                // Cut off: it sees nobody to send to.
            } else if (to.empty()) {
                for (const auto& [id, ep] : endpoints_) {
                    if (id != from.id && !hidden(id) && !is_split(from.id, id)) {
                        targets.push_back(id);
                    }
                }
            } else {
                targets = std::move(to);
            }
            pr = std::make_shared<pending_result>();
            pr->remaining = targets.size();
            pr->result.destinations = targets.size();
            pr->done = std::move(done);
            for (const auto& t : targets) {
                queue_.push_back({from, t, payload, options,
                                  [pr, progress, t](engine::send_result r) {
                                      if (progress) {
                                          progress(t, r);
                                      }
                                      pr->complete(r.ok() ? std::nullopt
                                                          : std::optional<engine::member_failure>(r.failures.front()));
                                  }});
            }
        }
        if (targets.empty() && pr->done) {
            // Like the channel: the handler never runs inside the call.
            std::thread([d = std::move(pr->done)] { d({}); }).detach();
        }
    }

    void deliver(envelope& e) { deliver(e, filter(e)); }

    void deliver(envelope& e, verdict v) {
        if (v == verdict::hold) {
            std::lock_guard lock(mutex_);
            held_.push_back(std::move(e));
            return;
        }
        endpoint* target = nullptr;
        {
            std::lock_guard lock(mutex_);
            auto it = endpoints_.find(e.to);
            if (it != endpoints_.end() && !hidden(e.to) && !is_cut(e.from.id) && !is_split(e.from.id, e.to)) {
                target = it->second;
            }
        }
        engine::send_result r;
        r.destinations = 1;
        membership::member to;
        to.id = e.to;
        if (v == verdict::fail || target == nullptr) {
            r.failures.push_back({to, transport::error::not_a_member, "fake bus: failed"});
        } else if (v == verdict::deliver) {
            delivering_flag() = true;
            try {
                const bool heard = target->deliver(e.from, e.payload);
                if (!heard) {
                    r.failures.push_back({to, transport::error::no_listener, "fake bus: no listener"});
                }
            } catch (const std::exception& ex) {
                // Like the channel: a listener that throws NACKs with its text.
                r.failures.push_back({to, transport::error::remote_failure, ex.what()});
            }
            delivering_flag() = false;
        }
        if (e.done) {
            e.done(std::move(r));
        }
    }

    void leave(const membership::member_id& id) {
        std::lock_guard lock(mutex_);
        endpoints_.erase(id);
    }

    bool hidden(const membership::member_id& id) const {
        return std::find(hidden_.begin(), hidden_.end(), id) != hidden_.end();
    }

    /// Cuts `id` off (or lets it reach the others again) and tells it the
    /// others are now `seen` as.
    void set_cut(const membership::member_id& id, bool cut, membership::member_state seen) {
        std::vector<membership::member> others;
        endpoint* self = nullptr;
        {
            std::lock_guard lock(mutex_);
            cut_.erase(std::remove(cut_.begin(), cut_.end(), id), cut_.end());
            if (cut) {
                cut_.push_back(id);
            }
            self = endpoints_.at(id);
            for (auto& [other, ep] : endpoints_) {
                if (other != id && !is_split(id, other)) {
                    others.push_back(ep->self());
                }
            }
        }
        for (auto m : others) {
            m.state = seen;
            self->member_event(m);
        }
    }

    void set_split(const membership::member_id& x, const membership::member_id& y, bool apart) {
        endpoint* ex = nullptr;
        endpoint* ey = nullptr;
        {
            std::lock_guard lock(mutex_);
            const auto pair = ordered(x, y);
            split_.erase(std::remove(split_.begin(), split_.end(), pair), split_.end());
            if (apart) {
                split_.emplace_back(pair);
            }
            ex = endpoints_.at(x);
            ey = endpoints_.at(y);
        }
        const auto state = apart ? membership::member_state::gone : membership::member_state::alive;
        auto mx = ex->self();
        auto my = ey->self();
        mx.state = state;
        my.state = state;
        ex->member_event(my);
        ey->member_event(mx);
    }

    bool is_cut(const membership::member_id& id) const {
        return std::find(cut_.begin(), cut_.end(), id) != cut_.end();
    }

    std::vector<membership::member> members_except(const membership::member_id& self) const {
        std::lock_guard lock(mutex_);
        std::vector<membership::member> out;
        if (is_cut(self)) {
            return out; // it sees nobody
        }
        for (const auto& [id, ep] : endpoints_) {
            if (id != self && !hidden(id) && !is_split(self, id)) {
                out.push_back(ep->self());
            }
        }
        return out;
    }

    bool is_split(const membership::member_id& x, const membership::member_id& y) const {
        return std::find(split_.begin(), split_.end(), ordered(x, y)) != split_.end();
    }

    static std::pair<membership::member_id, membership::member_id> ordered(const membership::member_id& x,
                                                                           const membership::member_id& y) {
        return y < x ? std::pair{y, x} : std::pair{x, y};
    }

    mutable std::mutex mutex_;
    std::map<membership::member_id, endpoint*> endpoints_;
    std::vector<membership::member_id> hidden_;
    std::vector<membership::member_id> cut_;
    std::vector<std::pair<membership::member_id, membership::member_id>> split_; ///< (lower, higher)
    std::deque<envelope> queue_;
    std::deque<envelope> held_;
};

} // namespace troupe::test
