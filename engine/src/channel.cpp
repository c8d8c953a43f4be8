// SPDX-License-Identifier: Apache-2.0
// The channel's life cycle (start, stop), its listeners and the delivery of
// received messages to them. The rest of the channel: see channel_impl.hpp.
#include "channel_impl.hpp"

#include <troupe/membership/multicast_discovery.hpp>
#include <troupe/transport/io_thread.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <unistd.h>

namespace troupe::engine {

using detail::log;

namespace {

std::uint64_t wall_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

} // namespace

void channel::impl::listeners_changed_locked() {
    static std::atomic<std::uint64_t> versions{0};
    listeners_version.store(versions.fetch_add(1) + 1, std::memory_order_release);
}

message_listener* channel::impl::find_listener(std::string_view context) {
    struct cache {
        std::uint64_t version = 0;
        std::string context;
        std::shared_ptr<message_listener> listener;
    };
    thread_local cache last;
    const auto version = listeners_version.load(std::memory_order_acquire);
    if (version == 0 || last.version != version || last.context != context) {
        std::shared_lock lock(listeners_mutex);
        auto it = listeners.find(context);
        last.listener = it != listeners.end() ? it->second : nullptr;
        last.context.assign(context);
        last.version = listeners_version.load(std::memory_order_relaxed);
    }
    return last.listener.get();
}

transport::delivery_result channel::impl::deliver(const member& from,
                                                  const transport::data_view& d) {
    incoming_message msg{from, d.context,
                         std::span<const std::byte>(reinterpret_cast<const std::byte*>(d.payload.data()),
                                                    d.payload.size()),
                         d.options, d.id};
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        if (!(*it)->on_receive(msg)) {
            return {};
        }
    }
    message_listener* const listener = find_listener(d.context);
    if (listener == nullptr) {
        stats->count_no_listener();
        if (auto n = no_listener_log.allow()) {
            log()->warn("message from {} for context '{}' has no listener ({} such since the "
                        "last line)",
                        from.name, d.context, *n);
        }
        return {transport::ack_status::no_listener,
                "no listener for context '" + std::string(d.context) + "' on " + self.name};
    }
    try {
        (*listener)(msg);
    } catch (const message_refused& e) {
        return {transport::ack_status::listener_failed, e.what()};
    } catch (const std::exception& e) {
        stats->count_listener_failure();
        if (auto n = listener_failure_log.allow()) {
            log()->warn("listener for '{}' threw on a message from {}: {} ({} such since the "
                        "last line)",
                        d.context, from.name, e.what(), *n);
        }
        return {transport::ack_status::listener_failed, e.what()};
    } catch (...) {
        stats->count_listener_failure();
        return {transport::ack_status::listener_failed, "unknown exception"};
    }
    return {};
}

channel::channel(conf::cluster_config config) : impl_(std::make_unique<impl>(std::move(config))) {
    auto& c = impl_->config;
    impl_->self.id = member_id::random();
    impl_->self.incarnation = wall_ms();
    impl_->self.name = c.cluster.node;
    if (impl_->self.name.empty()) {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        impl_->self.name = host;
    }
    impl_->self.host = c.receiver.address;
    impl_->detector.emplace(impl_->self.id, c.membership.multicast.drop_time);
    impl_->layers.push_back(impl_->stats);
}

channel::~channel() { stop(); }

void channel::add_interceptor(std::shared_ptr<interceptor> layer) {
    if (impl_->running) {
        throw std::logic_error("troupe::engine::channel::add_interceptor after start()");
    }
    // The stats layer stays at the bottom, nearest the wire.
    impl_->layers.insert(impl_->layers.end() - 1, std::move(layer));
}

void channel::start() {
    auto& d = *impl_;
    if (d.running || d.stopped) {
        throw std::logic_error("troupe::engine::channel::start: already started");
    }
    transport::receiver::callbacks rcb;
    rcb.deliver = [&d](const member& from, const transport::data_view& data) { return d.deliver(from, data); };
    rcb.hello = [&d](const transport::peer_info& info) { return d.on_inbound_hello(info); };
    rcb.bye = [&d](const transport::peer_info& info, const std::string& reason) { d.on_inbound_bye(info, reason); };
    d.receiver = std::make_shared<transport::receiver>(d.io, d.config, std::move(rcb));
    const auto port = d.receiver->bind();
    d.self.port = port;
    d.identity = transport::local_identity{d.self.id, d.self.incarnation, d.config.cluster.name,
                                           d.self.name, d.self.host, port, d.config.cluster.secret};
    d.receiver->start(d.identity);
    if (d.config.membership.multicast.enabled) {
        // Made before any I/O thread runs: their handlers read `discovery`.
        membership::heartbeat me;
        me.cluster = d.config.cluster.name;
        me.id = d.self.id;
        me.incarnation = d.self.incarnation;
        me.host = d.self.host;
        me.port = port;
        me.node = d.self.name;
        me.payload = d.config.membership.payload;
        d.discovery = std::make_unique<membership::multicast_discovery>(d.io, d.config, std::move(me));
    }
    if (!d.config.membership.dns.name.empty()) {
        d.dns = std::make_unique<membership::dns_discovery>(d.io, d.config.membership.dns);
    }
    d.started_at = std::chrono::steady_clock::now();
    d.work.emplace(d.io.get_executor());
    const auto n = std::max<std::uint32_t>(1, d.config.receiver.threads);
    d.threads_alive = n;
    for (std::uint32_t i = 0; i < n; ++i) {
        d.threads.emplace_back([&d] {
            transport::mark_io_thread();
            for (;;) {
                try {
                    d.io.run();
                    break;
                } catch (const std::exception& e) {
                    // A handler must not throw; if one does, log it and keep serving.
                    log()->error("I/O handler threw: {}", e.what());
                }
            }
            std::lock_guard lock(d.threads_mutex);
            --d.threads_alive;
            d.threads_cv.notify_all();
        });
    }
    d.running = true;
    std::vector<std::shared_ptr<peer_sender>> fresh;
    {
        std::lock_guard lock(d.mutex);
        d.begin_first_look_locked();
        d.first.dns_pending = d.dns != nullptr;
        for (const auto& hp : d.config.membership.static_members) {
            d.static_listed.insert(hp.host + ":" + std::to_string(hp.port));
            if (hp.port == port && (hp.host == d.self.host || hp.host == "localhost")) {
                continue; // this node itself, in a list shared by all nodes
            }
            if (auto s = d.add_peer_locked(hp.host, hp.port, true)) {
                fresh.push_back(std::move(s));
            }
        }
    }
    for (auto& s : fresh) {
        s->start();
    }
    if (d.discovery) {
        d.discovery->start([&d](const membership::heartbeat& hb) { d.on_heartbeat(hb); });
    }
    if (d.dns) {
        d.dns->start([&d](const std::vector<std::string>& addresses) { d.on_dns_answer(addresses); });
    }
    asio::post(d.events, [&d] { d.arm_detector_timer(); });
    d.check_discovered(); // nothing to wait for: no static member, no multicast
    log()->info("node {} ({}) started on {}:{} in cluster '{}'", d.self.name, d.self.id.str(),
                d.self.host, port, d.config.cluster.name);
}

void channel::stop() {
    auto& d = *impl_;
    if (!d.running.exchange(false)) {
        return;
    }
    d.stopped = true;
    std::vector<std::shared_ptr<peer_sender>> senders;
    {
        std::lock_guard lock(d.mutex);
        for (auto& [endpoint, slot] : d.peers) {
            senders.push_back(slot.sender);
        }
    }
    asio::post(d.events, [&d] { d.detector_timer.cancel(); });
    if (d.discovery) {
        d.discovery->stop(true); // a "leaving" heartbeat: peers drop us at once
    }
    if (d.dns) {
        d.dns->stop();
    }
    // BYE on every stream after what was queued, all within one stop_timeout.
    const auto deadline = std::chrono::steady_clock::now() + d.config.channel.stop_timeout;
    for (auto& s : senders) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        s->close_gracefully("leaving", std::max(left, std::chrono::milliseconds(0)));
    }
    d.receiver->stop();
    d.work.reset();
    {
        std::unique_lock lock(d.threads_mutex);
        if (!d.threads_cv.wait_for(lock, std::chrono::seconds(2), [&] { return d.threads_alive == 0; })) {
            d.io.stop(); // something still waits on a socket: do not hang the caller
        }
    }
    for (auto& t : d.threads) {
        if (t.joinable()) {
            t.join();
        }
    }
    d.threads.clear();
    {
        std::lock_guard lock(d.mutex);
        d.peers.clear();
        std::atomic_store(&d.targets, std::shared_ptr<const impl::target_list>(std::make_shared<impl::target_list>()));
    }
    log()->info("node {} stopped", d.self.name);
}

void channel::add_listener(std::string context, message_listener listener) {
    std::unique_lock lock(impl_->listeners_mutex);
    impl_->listeners[std::move(context)] = std::make_shared<message_listener>(std::move(listener));
    impl_->listeners_changed_locked();
}

void channel::remove_listener(const std::string& context) {
    std::unique_lock lock(impl_->listeners_mutex);
    impl_->listeners.erase(context);
    impl_->listeners_changed_locked();
}

const member& channel::self() const noexcept { return impl_->self; }

std::uint16_t channel::port() const noexcept { return impl_->self.port; }

const conf::cluster_config& channel::config() const noexcept { return impl_->config; }

asio::io_context& channel::io_context() noexcept { return impl_->io; }

} // namespace troupe::engine
