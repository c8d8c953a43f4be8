// SPDX-License-Identifier: Apache-2.0
// The glue between the channel's streams, discovery (multicast, DNS, static
// members) and the failure detector: observations go to the detector, and its
// decisions come back as streams opened, parked or dropped, probes, and
// member events for the listeners.
#include "channel_impl.hpp"

#include <troupe/transport/error.hpp>
#include <troupe/transport/probe.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace troupe::engine {

using detail::log;

namespace {

/// A stream to a member found by discovery that has been gone this long is
/// closed: it stops retrying a place where nobody will answer again.
constexpr auto forget_after = std::chrono::seconds(60);

} // namespace

template <typename Observe>
void channel::impl::observe(Observe&& fn) {
    after_unlock w;
    {
        std::lock_guard lock(mutex);
        if (!running || !detector) {
            return;
        }
        apply_locked(fn(*detector, membership::failure_detector::clock::now()), w);
    }
    finish(w);
}

void channel::impl::rebuild_targets_locked() {
    auto list = std::make_shared<target_list>();
    for (const auto& m : detector->table().sendable()) {
        auto it = peers.find(m.endpoint());
        if (it != peers.end() && it->second.current == m.id) {
            list->push_back(target{m, it->second.sender});
        }
    }
    std::atomic_store(&targets, std::shared_ptr<const target_list>(std::move(list)));
}

void channel::impl::emit(std::vector<member> changes) {
    if (changes.empty()) {
        return;
    }
    for (const auto& m : changes) {
        if (m.state == member_state::gone) {
            log()->warn("member {} ({}) removed: {}", m.name, m.endpoint(), m.reason);
        } else {
            log()->info("member {} ({}) is {}: {}", m.name, m.endpoint(), membership::to_string(m.state),
                        m.reason);
        }
    }
    // One strand for every member event: listeners see them in one order.
    asio::post(events, [this, changes = std::move(changes)] {
        std::vector<member_listener> listeners_copy;
        {
            std::lock_guard lock(mutex);
            listeners_copy = member_listeners;
        }
        for (const auto& m : changes) {
            for (auto& layer : layers) {
                layer->on_member_event(m, m.state);
            }
            for (auto& l : listeners_copy) {
                try {
                    l(m);
                } catch (const std::exception& e) {
                    log()->error("member listener threw: {}", e.what());
                }
            }
        }
    });
}

void channel::impl::apply_locked(membership::detector_actions&& a, after_unlock& w) {
    for (const auto& [host, port] : a.connect) {
        if (auto s = add_peer_locked(host, port, false)) {
            w.start.push_back(std::move(s));
        } else if (auto it = peers.find(host + ":" + std::to_string(port));
                   it != peers.end() && !in_first_attempt_locked(it->first)) {
            w.kick.push_back(it->second.sender); // heard again: dial now, not after backoff
        }
    }
    for (const auto& m : a.changes) {
        if (m.state != member_state::gone && m.state != member_state::left) {
            continue;
        }
        auto it = peers.find(m.endpoint());
        if (it == peers.end() || it->second.current != m.id) {
            continue;
        }
        // A frozen member that resumes, or a healed partition, is readmitted
        // by a new handshake.
        w.drop.push_back(it->second.sender);
        const auto heard = detector->info(m.id);
        if (!it->second.is_static && heard && heard->heartbeats) {
            // Heard by multicast: its heartbeats say when it is back, and
            // each one dials while it is not connected (peer_sender::park
            // says why not before).
            w.park.emplace_back(it->second.sender, it->second.sender->stats().connects.load());
        } else if (m.state == member_state::gone) {
            // No heartbeats to hear (static, or known by its HELLO only):
            // the stream keeps redialling (capped backoff). Declared dead
            // while its connection may still look fine (a frozen peer we
            // were writing to): start over.
            w.reset.push_back(it->second.sender);
        }
        it->second.gone_since = std::chrono::steady_clock::now();
    }
    for (const auto& m : a.changes) {
        if (m.state == member_state::alive) {
            if (auto it = peers.find(m.endpoint()); it != peers.end()) {
                it->second.gone_since.reset();
                // Alive (again): a stream parked by a removal that raced
                // its comeback must dial.
                w.kick.push_back(it->second.sender);
            }
        }
    }
    w.changes.insert(w.changes.end(), a.changes.begin(), a.changes.end());
    w.verify.insert(w.verify.end(), a.verify.begin(), a.verify.end());
    w.announce = w.announce || a.answer_heartbeat;
    if (!a.changes.empty()) {
        rebuild_targets_locked();
    }
}

void channel::impl::finish(after_unlock& w) {
    for (auto& s : w.start) {
        s->start();
    }
    for (auto& s : w.drop) {
        s->drop_queued(transport::error::member_gone);
    }
    for (auto& s : w.reset) {
        s->reset("member removed by the failure detector");
    }
    for (auto& [s, connects] : w.park) {
        s->park("member removed by the failure detector", connects);
    }
    for (auto& s : w.kick) {
        if (!s->connected()) {
            s->reconnect_now();
        }
    }
    for (const auto& m : w.verify) {
        start_probe(m);
    }
    if (w.announce && discovery) {
        discovery->announce();
    }
    emit(std::move(w.changes));
}

void channel::impl::start_probe(const member& m) {
    const auto t0 = std::chrono::steady_clock::now();
    log()->info("verifying {} ({}) over TCP: {}", m.name, m.endpoint(), m.reason);
    transport::async_probe(io, identity, m.host, m.port, m.id, config.membership.failure_detector.verify_timeout,
                           [this, id = m.id, t0](bool alive, const std::string& reason) {
                               observe([&](auto& d, auto now) {
                                   return d.verified(id, alive, reason, now - t0, now);
                               });
                           });
}

void channel::impl::arm_detector_timer() {
    // Ten checks per heartbeat period: silence is noticed within 10% of it.
    const auto period = std::clamp(config.membership.multicast.frequency / 10,
                                   std::chrono::milliseconds(10), std::chrono::milliseconds(100));
    detector_timer.expires_after(period);
    detector_timer.async_wait([this](const error_code& ec) {
        if (ec || !running) {
            return;
        }
        observe([](auto& d, auto now) { return d.tick(now); });
        check_discovered();
        forget_long_gone();
        arm_detector_timer();
    });
}

void channel::impl::on_dns_answer(const std::vector<std::string>& addresses) {
    const auto port = config.membership.dns.port != 0 ? config.membership.dns.port : self.port;
    std::vector<std::shared_ptr<peer_sender>> fresh;
    std::vector<std::shared_ptr<peer_sender>> dropped;
    {
        std::lock_guard lock(mutex);
        if (!running) {
            return;
        }
        std::set<std::string> listed;
        for (const auto& address : addresses) {
            listed.insert(address + ":" + std::to_string(port));
            if (auto s = add_peer_locked(address, port, true)) {
                ++dns_added;
                fresh.push_back(std::move(s));
            }
        }
        for (const auto& endpoint : dns_listed) {
            if (listed.count(endpoint) > 0 || static_listed.count(endpoint) > 0) {
                continue;
            }
            auto it = peers.find(endpoint);
            if (it == peers.end()) {
                continue;
            }
            it->second.is_static = false;
            const bool alive = it->second.current && !it->second.gone_since;
            if (!alive) {
                ++dns_dropped;
                log()->info("membership.dns: {} no longer listed and no member alive there: dropped", endpoint);
                dropped.push_back(it->second.sender);
                first.dialling.erase(endpoint);
                peers.erase(it);
            }
        }
        dns_listed = std::move(listed);
        first.dns_pending = false;
    }
    for (auto& s : fresh) {
        s->start();
    }
    for (auto& s : dropped) {
        s->stop(transport::error::member_gone);
    }
    check_discovered();
}

void channel::impl::forget_long_gone() {
    std::vector<std::shared_ptr<peer_sender>> forgotten;
    {
        std::lock_guard lock(mutex);
        const auto now = std::chrono::steady_clock::now();
        for (auto it = peers.begin(); it != peers.end();) {
            if (!it->second.is_static && it->second.gone_since && now - *it->second.gone_since > forget_after) {
                forgotten.push_back(it->second.sender);
                it = peers.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& s : forgotten) {
        s->stop(transport::error::member_gone);
    }
}

std::shared_ptr<peer_sender> channel::impl::add_peer_locked(const std::string& host,
                                                            std::uint16_t port,
                                                            bool is_static) {
    const std::string endpoint = host + ":" + std::to_string(port);
    if (auto it = peers.find(endpoint); it != peers.end()) {
        it->second.is_static = it->second.is_static || is_static;
        return nullptr;
    }
    if (host == self.host && port == self.port) {
        return nullptr;
    }
    peer_sender::callbacks cb;
    cb.up = [this, endpoint](const transport::peer_info& info) { on_peer_up(endpoint, info); };
    cb.down = [this, endpoint](const error_code&, const std::string& reason, bool was_up) {
        on_peer_down(endpoint, reason, was_up);
    };
    cb.self = [this, endpoint] {
        {
            std::lock_guard lock(mutex);
            peers.erase(endpoint);
        }
        first_attempt_ended(endpoint);
    };
    auto sender = std::make_shared<peer_sender>(io, config.sender, config.channel.max_message,
                                                config.membership.failure_detector.ping_interval,
                                                identity, host, port, std::move(cb));
    peers.emplace(endpoint, peer_slot{sender, is_static, std::nullopt, std::nullopt});
    if (!first.done) {
        first.dialling.insert(endpoint);
    }
    return sender;
}

void channel::impl::on_peer_up(const std::string& endpoint, const transport::peer_info& info) {
    observe([&](auto& d, auto now) {
        membership::detector_actions none;
        auto it = peers.find(endpoint);
        if (it == peers.end()) {
            return none;
        }
        member m;
        m.id = info.id;
        m.incarnation = info.incarnation;
        m.name = info.node;
        // The endpoint we dialled is the one we can reach it at.
        m.host = it->second.sender->host();
        m.port = it->second.sender->port();
        it->second.current = info.id;
        return d.connected(m, now);
    });
    first_attempt_ended(endpoint); // after the member's event was posted
}

void channel::impl::on_peer_down(const std::string& endpoint,
                                 const std::string& reason,
                                 bool was_up) {
    if (!was_up) {
        first_attempt_ended(endpoint);
        return; // a failed attempt: verification, not each retry, decides
    }
    observe([&](auto& d, auto now) {
        auto it = peers.find(endpoint);
        if (it == peers.end() || !it->second.current) {
            return membership::detector_actions{};
        }
        return d.disconnected(*it->second.current, reason, now);
    });
}

// ---- initial discovery
// A node that sees no other member right after start may simply not have
// heard them yet; a replicating manager that took that for "first of the
// cluster" would serve requests without the sessions (and make new ones
// for ids it does not know). So discovery counts as done only once every
// static member, and every member heard in the first two heartbeat
// periods, has been dialled once — reached (its alive event posted first)
// or not — or `sender.connect_timeout` and a margin passed beyond that.

void channel::impl::begin_first_look_locked() {
    const auto t = std::chrono::steady_clock::now();
    const auto listen = config.membership.multicast.enabled ? 2 * config.membership.multicast.frequency
                                                            : std::chrono::milliseconds(0);
    first.listen_until = t + listen;
    first.give_up_at = first.listen_until + config.sender.connect_timeout + std::chrono::milliseconds(500);
}

bool channel::impl::in_first_attempt_locked(const std::string& endpoint) const {
    return !first.done && first.dialling.count(endpoint) > 0;
}

void channel::impl::first_attempt_ended(const std::string& endpoint) {
    {
        std::lock_guard lock(mutex);
        if (first.done) {
            return;
        }
        first.dialling.erase(endpoint);
    }
    check_discovered();
}

void channel::impl::check_discovered() {
    std::vector<std::function<void()>> ready;
    {
        std::lock_guard lock(mutex);
        if (first.done || !running) {
            return;
        }
        const auto t = std::chrono::steady_clock::now();
        const bool bounded = t >= first.give_up_at;
        if (!bounded && (t < first.listen_until || !first.dialling.empty() || first.dns_pending)) {
            return;
        }
        first.done = true;
        ready = std::move(first.handlers);
        first.handlers.clear();
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - started_at).count();
        if (first.dns_pending) {
            log()->warn("initial discovery ended by its bound after {} ms; no DNS answer yet for {}", ms,
                        config.membership.dns.name);
        } else if (first.dialling.empty()) {
            log()->info("initial discovery done in {} ms: {} other member(s)",
                        ms, detector ? detector->table().sendable().size() : 0);
        } else {
            std::string pending;
            for (const auto& e : first.dialling) {
                pending += (pending.empty() ? "" : ", ") + e;
            }
            log()->warn("initial discovery ended by its bound after {} ms; no answer yet from {}", ms, pending);
        }
        first.dialling.clear();
        first.dns_pending = false;
    }
    // On the member-event strand: after the events of the members found.
    asio::post(events, [ready = std::move(ready)] {
        for (const auto& h : ready) {
            h();
        }
    });
}

void channel::impl::on_send_failed(const member_id& id, const std::string& reason) {
    observe([&](auto& d, auto now) { return d.send_failed(id, reason, now); });
}

void channel::impl::on_heartbeat(const membership::heartbeat& hb) {
    observe([&](auto& d, auto now) { return d.heard(hb, now); });
}

std::shared_ptr<const member> channel::impl::on_inbound_hello(const transport::peer_info& info) {
    auto m = std::make_shared<member>();
    m->id = info.id;
    m->incarnation = info.incarnation;
    m->name = info.node;
    m->host = info.host;
    m->port = info.port;
    std::shared_ptr<peer_sender> fresh;
    std::shared_ptr<peer_sender> kick;
    {
        std::lock_guard lock(mutex);
        if (running && info.port != 0) {
            // A node that lists us but that we do not list: dial it back, so
            // static lists need not be symmetric.
            fresh = add_peer_locked(info.host, info.port, false);
            if (!fresh) {
                // Known, and it just reached us: if our side is down (a healed
                // partition), dial now instead of waiting out the backoff.
                if (auto it = peers.find(m->endpoint());
                    it != peers.end() && !in_first_attempt_locked(it->first)) {
                    kick = it->second.sender;
                }
            }
        }
    }
    if (fresh) {
        fresh->start();
    }
    if (kick && !kick->connected()) {
        kick->reconnect_now();
    }
    return m;
}

void channel::impl::on_inbound_bye(const transport::peer_info& info, const std::string& reason) {
    if (reason == "probe") {
        return; // a peer verifying us
    }
    if (reason != "leaving") {
        log()->info("{} ({}:{}) said BYE: {}", info.node, info.host, info.port, reason);
        return;
    }
    observe([&](auto& d, auto now) { return d.leaving(info.id, "said BYE (clean stop)", now); });
}

bool channel::discovered() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->first.done;
}

void channel::on_discovered(std::function<void()> handler) {
    auto& d = *impl_;
    {
        std::lock_guard lock(d.mutex);
        if (!d.first.done) {
            d.first.handlers.push_back(std::move(handler));
            return;
        }
    }
    asio::post(d.events, std::move(handler));
}

void channel::add_member_listener(member_listener listener) {
    std::lock_guard lock(impl_->mutex);
    impl_->member_listeners.push_back(std::move(listener));
}

std::vector<member> channel::members() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->detector->table().sendable();
}

std::vector<member> channel::all_members() const {
    std::vector<member> out{impl_->self};
    std::lock_guard lock(impl_->mutex);
    for (const auto& e : impl_->detector->table().all()) {
        out.push_back(e.m);
    }
    return out;
}

} // namespace troupe::engine
