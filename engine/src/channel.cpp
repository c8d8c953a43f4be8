// SPDX-License-Identifier: Apache-2.0
#include <troupe/engine/channel.hpp>
#include <troupe/membership/member_table.hpp>
#include <troupe/transport/error.hpp>
#include <troupe/transport/io_thread.hpp>
#include <troupe/transport/peer_sender.hpp>
#include <troupe/transport/receiver.hpp>

#include "log.hpp"
#include "rate_limit.hpp"
#include "stats_interceptor.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <optional>
#include <shared_mutex>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace troupe::engine {

namespace asio = boost::asio;
using boost::system::error_code;
using membership::member;
using membership::member_id;
using membership::member_state;
using transport::peer_sender;

namespace {

std::uint64_t wall_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

const std::shared_ptr<spdlog::logger>& log() {
    static const auto logger = engine_log();
    return logger;
}

/// One send waiting for its destinations: completes exactly once, either by
/// waking the blocked caller or by posting the async handler.
struct pending_send {
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t remaining = 0;
    std::vector<bool> done;
    send_result result;
    std::vector<member> members;
    send_handler handler; ///< async form only
    asio::io_context* io = nullptr;
    std::function<void(const send_result&)> on_sent;

    void complete(std::size_t index, const error_code& ec, std::string_view detail) {
        std::unique_lock lock(mutex);
        if (done[index]) {
            return;
        }
        done[index] = true;
        if (ec) {
            result.failures.push_back(member_failure{members[index], ec, std::string(detail)});
        }
        if (--remaining == 0) {
            finish(lock);
        }
    }

    void finish(std::unique_lock<std::mutex>& lock) {
        if (handler) {
            auto h = std::move(handler);
            auto r = result;
            lock.unlock();
            if (on_sent) {
                on_sent(r);
            }
            asio::post(*io, [h = std::move(h), r = std::move(r)]() mutable { h(std::move(r)); });
        } else {
            cv.notify_all();
        }
    }
};

} // namespace

struct channel::impl {
    struct target {
        member m;
        std::shared_ptr<peer_sender> sender;
    };
    using target_list = std::vector<target>;

    struct peer_slot {
        std::shared_ptr<peer_sender> sender;
        bool is_static = false;
        std::optional<member_id> current; ///< the member last seen at this endpoint
        std::shared_ptr<asio::steady_timer> drop_timer;
    };

    explicit impl(conf::cluster_config cfg)
        : config(std::move(cfg)), events(asio::make_strand(io)), stats(std::make_shared<stats_interceptor>()) {}

    conf::cluster_config config;
    asio::io_context io;
    asio::strand<asio::io_context::executor_type> events;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::vector<std::thread> threads;
    std::mutex threads_mutex;
    std::condition_variable threads_cv;
    std::size_t threads_alive = 0;

    member self;
    transport::local_identity identity;
    std::shared_ptr<transport::receiver> receiver;
    std::shared_ptr<stats_interceptor> stats;
    std::vector<std::shared_ptr<interceptor>> layers; ///< top first; stats is the last
    std::atomic<std::uint64_t> next_id{1};
    std::atomic<bool> running{false};
    bool stopped = false;
    std::chrono::steady_clock::time_point started_at;

    mutable std::mutex mutex; // peers, table, member listeners, targets
    std::map<std::string, peer_slot> peers; ///< by endpoint "host:port"
    membership::member_table table;
    std::vector<member_listener> member_listeners;
    std::shared_ptr<const target_list> targets = std::make_shared<target_list>();

    mutable std::shared_mutex listeners_mutex;
    std::map<std::string, std::shared_ptr<message_listener>, std::less<>> listeners;

    rate_limit no_listener_log{std::chrono::seconds(1)};
    rate_limit listener_failure_log{std::chrono::seconds(1)};

    // ---- membership bookkeeping (callers hold `mutex`)

    void rebuild_targets_locked() {
        auto list = std::make_shared<target_list>();
        for (const auto& m : table.sendable()) {
            auto it = peers.find(m.endpoint());
            if (it != peers.end() && it->second.current == m.id) {
                list->push_back(target{m, it->second.sender});
            }
        }
        targets = std::move(list);
    }

    void emit(std::vector<member> changes) {
        if (changes.empty()) {
            return;
        }
        for (const auto& m : changes) {
            log()->info("member {} ({}) is {}", m.name, m.endpoint(), membership::to_string(m.state));
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

    std::shared_ptr<peer_sender> add_peer_locked(const std::string& host, std::uint16_t port,
                                                 bool is_static) {
        const std::string endpoint = host + ":" + std::to_string(port);
        if (auto it = peers.find(endpoint); it != peers.end()) {
            it->second.is_static = it->second.is_static || is_static;
            return nullptr;
        }
        peer_sender::callbacks cb;
        cb.up = [this, endpoint](const transport::peer_info& info) { on_peer_up(endpoint, info); };
        cb.down = [this, endpoint](const error_code&, const std::string& reason, bool was_up) {
            on_peer_down(endpoint, reason, was_up);
        };
        cb.self = [this, endpoint] {
            std::lock_guard lock(mutex);
            peers.erase(endpoint);
        };
        auto sender = std::make_shared<peer_sender>(io, config.sender, config.channel.max_message,
                                                    identity, host, port, std::move(cb));
        peers.emplace(endpoint, peer_slot{sender, is_static, std::nullopt, nullptr});
        return sender;
    }

    void on_peer_up(const std::string& endpoint, const transport::peer_info& info) {
        std::vector<member> changes;
        {
            std::lock_guard lock(mutex);
            auto it = peers.find(endpoint);
            if (it == peers.end()) {
                return;
            }
            member m;
            m.id = info.id;
            m.incarnation = info.incarnation;
            m.name = info.node;
            // The endpoint we dialled is the one we can reach it at.
            m.host = it->second.sender->host();
            m.port = it->second.sender->port();
            it->second.current = info.id;
            if (it->second.drop_timer) {
                it->second.drop_timer->cancel();
                it->second.drop_timer.reset();
            }
            changes = table.mark_alive(m);
            rebuild_targets_locked();
        }
        emit(std::move(changes));
    }

    void on_peer_down(const std::string& endpoint, const std::string& reason, bool was_up) {
        std::vector<member> changes;
        {
            std::lock_guard lock(mutex);
            auto it = peers.find(endpoint);
            if (it == peers.end() || !it->second.current) {
                return; // never reached: not a member yet
            }
            auto& slot = it->second;
            const auto entry = table.find(*slot.current);
            if (!entry) {
                return;
            }
            if (entry->m.state == member_state::left) {
                if (!slot.is_static) {
                    slot.sender->stop(transport::error::member_gone);
                    peers.erase(it);
                }
                return;
            }
            if (was_up && entry->m.state == member_state::alive) {
                if (auto m = table.set_state(*slot.current, member_state::suspect)) {
                    log()->info("member {} ({}) suspected: {}", m->name, endpoint, reason);
                    changes.push_back(*m);
                }
            }
            if (!slot.drop_timer && table.find(*slot.current)->m.state == member_state::suspect) {
                arm_drop_timer_locked(endpoint, slot);
            }
            rebuild_targets_locked();
        }
        emit(std::move(changes));
    }

    void arm_drop_timer_locked(const std::string& endpoint, peer_slot& slot) {
        slot.drop_timer = std::make_shared<asio::steady_timer>(events, config.membership.drop_time);
        slot.drop_timer->async_wait([this, endpoint, timer = slot.drop_timer](const error_code& ec) {
            if (ec) {
                return;
            }
            std::vector<member> changes;
            std::shared_ptr<peer_sender> to_drop;
            {
                std::lock_guard lock(mutex);
                auto it = peers.find(endpoint);
                if (it == peers.end() || it->second.drop_timer != timer || !it->second.current) {
                    return;
                }
                auto& slot = it->second;
                slot.drop_timer.reset();
                if (slot.sender->connected()) {
                    return;
                }
                if (auto m = table.set_state(*slot.current, member_state::gone)) {
                    log()->warn("member {} ({}) removed: unreachable for {}ms", m->name, endpoint,
                                config.membership.drop_time.count());
                    changes.push_back(*m);
                }
                to_drop = slot.sender;
                if (!slot.is_static) {
                    slot.sender->stop(transport::error::member_gone);
                    peers.erase(it);
                }
                rebuild_targets_locked();
            }
            if (to_drop) {
                to_drop->drop_queued(transport::error::member_gone);
            }
            emit(std::move(changes));
        });
    }

    std::shared_ptr<const member> on_inbound_hello(const transport::peer_info& info) {
        auto m = std::make_shared<member>();
        m->id = info.id;
        m->incarnation = info.incarnation;
        m->name = info.node;
        m->host = info.host;
        m->port = info.port;
        std::shared_ptr<peer_sender> fresh;
        {
            std::lock_guard lock(mutex);
            if (running && info.port != 0) {
                // A node that lists us but that we do not list: dial it back, so
                // static lists need not be symmetric.
                fresh = add_peer_locked(info.host, info.port, false);
            }
        }
        if (fresh) {
            fresh->start();
        }
        return m;
    }

    void on_inbound_bye(const transport::peer_info& info, const std::string& reason) {
        if (reason != "leaving") {
            log()->info("{} ({}:{}) said BYE: {}", info.node, info.host, info.port, reason);
            return;
        }
        std::vector<member> changes;
        std::shared_ptr<peer_sender> sender;
        {
            std::lock_guard lock(mutex);
            if (auto m = table.set_state(info.id, member_state::left)) {
                changes.push_back(*m);
                auto it = peers.find(m->endpoint());
                if (it != peers.end()) {
                    if (it->second.drop_timer) {
                        it->second.drop_timer->cancel();
                        it->second.drop_timer.reset();
                    }
                    sender = it->second.sender;
                }
                rebuild_targets_locked();
            }
        }
        if (sender) {
            sender->drop_queued(transport::error::member_gone);
        }
        emit(std::move(changes));
    }

    transport::delivery_result deliver(const member& from, const transport::data_view& d) {
        incoming_message msg{from, d.context,
                             std::span<const std::byte>(reinterpret_cast<const std::byte*>(d.payload.data()),
                                                        d.payload.size()),
                             d.options, d.id};
        for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
            if (!(*it)->on_receive(msg)) {
                return {};
            }
        }
        std::shared_ptr<message_listener> listener;
        {
            std::shared_lock lock(listeners_mutex);
            auto it = listeners.find(d.context);
            if (it != listeners.end()) {
                listener = it->second;
            }
        }
        if (!listener) {
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

    // ---- sends

    /// Destinations for a send, and a failure for each requested id we cannot send to.
    /// Sending to everyone shares the current list instead of copying it.
    std::shared_ptr<const target_list> resolve(std::span<const member_id> to, send_result& result) const {
        std::shared_ptr<const target_list> all;
        {
            std::lock_guard lock(mutex);
            all = targets;
        }
        if (to.empty()) {
            return all;
        }
        auto picked = std::make_shared<target_list>();
        auto& out = *picked;
        out.reserve(to.size());
        for (const auto& id : to) {
            auto it = std::find_if(all->begin(), all->end(), [&](const target& t) { return t.m.id == id; });
            if (it != all->end()) {
                out.push_back(*it);
                continue;
            }
            member m;
            m.id = id;
            {
                std::lock_guard lock(mutex);
                if (auto e = table.find(id)) {
                    m = e->m;
                }
            }
            const bool known = !m.name.empty();
            result.failures.push_back(member_failure{
                m, known ? transport::error::member_gone : transport::error::not_a_member,
                known ? "member is " + std::string(membership::to_string(m.state))
                      : "no member with id " + id.str()});
        }
        return picked;
    }

    std::shared_ptr<pending_send> dispatch(std::span<const member_id> to,
                                           std::span<const std::byte> payload,
                                           std::uint32_t options, std::string_view context,
                                           send_handler handler, send_result& immediate) {
        if ((options & send_options::sync & ~send_options::ack) != 0) {
            options |= send_options::ack; // "processed" implies "received"
        }
        if (!running) {
            immediate.failures.push_back(member_failure{self, transport::error::stopped, "channel is not running"});
            return nullptr;
        }
        const auto dests_ptr = resolve(to, immediate);
        const auto& dests = *dests_ptr;
        immediate.destinations = dests.size() + immediate.failures.size();
        if (payload.size() > config.channel.max_message || context.size() > 255) {
            for (const auto& t : dests) {
                immediate.failures.push_back(member_failure{
                    t.m, transport::error::message_too_large,
                    context.size() > 255 ? "context name longer than 255 bytes"
                                         : std::to_string(payload.size()) + " bytes > channel.max_message"});
            }
            return nullptr;
        }
        if (dests.empty()) {
            return nullptr; // nobody to send to (no members, or none of those asked for)
        }
        outgoing_message om{context, payload, options, dests.size()};
        for (auto& layer : layers) {
            layer->on_send(om);
        }
        auto frame = std::make_shared<transport::buffer>();
        const auto id = next_id.fetch_add(1, std::memory_order_relaxed);
        transport::append_data(*frame, id, options, context,
                               {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()});
        if (!send_options::wants_ack(options)) {
            for (const auto& t : dests) {
                if (auto ec = t.sender->enqueue(frame, id, nullptr)) {
                    immediate.failures.push_back(member_failure{t.m, ec, ec.message()});
                }
            }
            return nullptr;
        }
        auto op = std::make_shared<pending_send>();
        op->remaining = dests.size();
        op->done.assign(dests.size(), false);
        op->result = immediate;
        op->io = &io;
        op->handler = std::move(handler);
        if (op->handler) {
            op->on_sent = [this, ctx = std::string(context), size = payload.size(), options,
                           n = dests.size()](const send_result& r) {
                outgoing_message m{ctx, {}, options, n};
                (void)size;
                for (auto& layer : layers) {
                    layer->on_sent(m, r);
                }
            };
        }
        for (const auto& t : dests) {
            op->members.push_back(t.m);
        }
        for (std::size_t i = 0; i < dests.size(); ++i) {
            auto ec = dests[i].sender->enqueue(
                frame, id, [op, i](const error_code& e, std::string_view detail) { op->complete(i, e, detail); });
            if (ec) {
                op->complete(i, ec, ec.message());
            }
        }
        return op;
    }
};

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
        for (const auto& hp : d.config.membership.static_members) {
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
            if (slot.drop_timer) {
                slot.drop_timer->cancel();
            }
        }
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
        d.targets = std::make_shared<impl::target_list>();
    }
    log()->info("node {} stopped", d.self.name);
}

void channel::add_listener(std::string context, message_listener listener) {
    std::unique_lock lock(impl_->listeners_mutex);
    impl_->listeners[std::move(context)] = std::make_shared<message_listener>(std::move(listener));
}

void channel::remove_listener(const std::string& context) {
    std::unique_lock lock(impl_->listeners_mutex);
    impl_->listeners.erase(context);
}

void channel::add_member_listener(member_listener listener) {
    std::lock_guard lock(impl_->mutex);
    impl_->member_listeners.push_back(std::move(listener));
}

send_result channel::send(std::span<const member_id> to, std::span<const std::byte> payload,
                          std::uint32_t options, std::string_view context) {
    auto& d = *impl_;
    send_result result;
    if (send_options::wants_ack(options) && transport::on_io_thread()) {
        // The thread that would read the ack is the one we would block.
        result.failures.push_back(member_failure{
            d.self, make_error_code(boost::system::errc::operation_would_block),
            "blocking send() with ack/sync called on a troupe I/O thread; use async_send()"});
        return result;
    }
    auto op = d.dispatch(to, payload, options, context, nullptr, result);
    if (op) {
        std::unique_lock lock(op->mutex);
        // The transport fails every frame by ack_timeout; the extra margin only
        // guards against a bug leaving a caller blocked forever.
        const auto limit = d.config.sender.ack_timeout * 2 + std::chrono::seconds(1);
        if (!op->cv.wait_for(lock, limit, [&] { return op->remaining == 0; })) {
            for (std::size_t i = 0; i < op->done.size(); ++i) {
                if (!op->done[i]) {
                    op->done[i] = true;
                    op->result.failures.push_back(member_failure{op->members[i], transport::error::ack_timeout,
                                                                 "no completion from the transport"});
                }
            }
            op->remaining = 0;
        }
        result = op->result;
    }
    outgoing_message om{context, payload, options, result.destinations};
    for (auto& layer : d.layers) {
        layer->on_sent(om, result);
    }
    return result;
}

void channel::async_send(std::span<const member_id> to, std::span<const std::byte> payload,
                         std::uint32_t options, std::string_view context, send_handler handler) {
    auto& d = *impl_;
    send_result result;
    auto op = d.dispatch(to, payload, options, context, handler, result);
    if (!op) {
        outgoing_message om{context, payload, options, result.destinations};
        for (auto& layer : d.layers) {
            layer->on_sent(om, result);
        }
        asio::post(d.io, [h = std::move(handler), r = std::move(result)]() mutable {
            if (h) {
                h(std::move(r));
            }
        });
    }
}

const member& channel::self() const noexcept { return impl_->self; }

std::vector<member> channel::members() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->table.sendable();
}

std::vector<member> channel::all_members() const {
    std::vector<member> out{impl_->self};
    std::lock_guard lock(impl_->mutex);
    for (const auto& e : impl_->table.all()) {
        out.push_back(e.m);
    }
    return out;
}

std::uint16_t channel::port() const noexcept { return impl_->self.port; }

const conf::cluster_config& channel::config() const noexcept { return impl_->config; }

asio::io_context& channel::io_context() noexcept { return impl_->io; }

std::string channel::members_json() const {
    auto& d = *impl_;
    const auto now = std::chrono::steady_clock::now();
    nlohmann::json arr = nlohmann::json::array();
    auto row = [](const member& m, bool self, std::int64_t since_ms) {
        return nlohmann::json{{"name", m.name},
                              {"endpoint", m.endpoint()},
                              {"state", std::string(membership::to_string(m.state))},
                              {"self", self},
                              {"id", m.id.str()},
                              {"incarnation", m.incarnation},
                              {"since_ms", since_ms}};
    };
    arr.push_back(row(d.self, true,
                      std::chrono::duration_cast<std::chrono::milliseconds>(now - d.started_at).count()));
    std::lock_guard lock(d.mutex);
    for (const auto& e : d.table.all()) {
        arr.push_back(row(e.m, false,
                          std::chrono::duration_cast<std::chrono::milliseconds>(now - e.since).count()));
    }
    return arr.dump();
}

namespace {

nlohmann::json peer_json(const std::string& endpoint, const peer_sender& s) {
    const auto& st = s.stats();
    nlohmann::json buckets = nlohmann::json::object();
    for (std::size_t i = 0; i < transport::ack_latency_bounds_us.size(); ++i) {
        const auto bound = transport::ack_latency_bounds_us[i];
        buckets[bound == UINT64_MAX ? std::string("+Inf") : std::to_string(bound)] =
            st.ack_latency_buckets[i].load();
    }
    return {{"endpoint", endpoint},
            {"connected", s.connected()},
            {"queue_bytes", s.queued_bytes()},
            {"frames_out", st.frames_out.load()},
            {"bytes_out", st.bytes_out.load()},
            {"writes", st.writes.load()},
            {"acks", st.acks.load()},
            {"nacks", st.nacks.load()},
            {"ack_timeouts", st.ack_timeouts.load()},
            {"connection_losses", st.connection_losses.load()},
            {"possibly_lost", st.possibly_lost.load()},
            {"dropped", st.dropped.load()},
            {"queue_full", st.queue_full.load()},
            {"connects", st.connects.load()},
            {"connect_failures", st.connect_failures.load()},
            {"handshake_failures", st.handshake_failures.load()},
            {"pings", st.pings.load()},
            {"ack_latency_us", {{"sum", st.ack_latency_sum_us.load()}, {"buckets", buckets}}}};
}

} // namespace

std::string channel::stats_json() const {
    auto& d = *impl_;
    nlohmann::json j;
    j["node"] = d.self.name;
    j["id"] = d.self.id.str();
    j["cluster"] = d.config.cluster.name;
    j["port"] = d.self.port;
    j["uptime_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - d.started_at)
                         .count();
    j["channel"] = d.stats->to_json();
    if (d.receiver) {
        const auto& r = d.receiver->stats();
        j["receiver"] = {{"accepted", r.accepted.load()},       {"open", r.open.load()},
                         {"frames_in", r.frames_in.load()},     {"bytes_in", r.bytes_in.load()},
                         {"data_in", r.data_in.load()},         {"acks_out", r.acks_out.load()},
                         {"nacks_out", r.nacks_out.load()},     {"bad_frames", r.bad_frames.load()},
                         {"handshake_refused", r.handshake_refused.load()},
                         {"auth_failures", r.auth_failures.load()},
                         {"handshake_timeouts", r.handshake_timeouts.load()}};
    }
    nlohmann::json peers = nlohmann::json::array();
    std::map<std::string, int> states;
    {
        std::lock_guard lock(d.mutex);
        for (const auto& [endpoint, slot] : d.peers) {
            auto p = peer_json(endpoint, *slot.sender);
            if (slot.current) {
                if (auto e = d.table.find(*slot.current)) {
                    p["name"] = e->m.name;
                    p["state"] = std::string(membership::to_string(e->m.state));
                }
            }
            peers.push_back(std::move(p));
        }
        for (const auto& e : d.table.all()) {
            ++states[std::string(membership::to_string(e.m.state))];
        }
    }
    j["peers"] = std::move(peers);
    j["members"] = states;
    return j.dump();
}

std::string channel::metrics_text() const {
    auto& d = *impl_;
    std::ostringstream out;
    out << d.stats->to_metrics();
    if (d.receiver) {
        const auto& r = d.receiver->stats();
        auto counter = [&](const char* name, std::uint64_t v) {
            out << "# TYPE " << name << " counter\n" << name << " " << v << "\n";
        };
        counter("troupe_receiver_connections_accepted_total", r.accepted.load());
        out << "# TYPE troupe_receiver_connections_open gauge\ntroupe_receiver_connections_open "
            << r.open.load() << "\n";
        counter("troupe_receiver_frames_total", r.frames_in.load());
        counter("troupe_receiver_bytes_total", r.bytes_in.load());
        counter("troupe_receiver_bad_frames_total", r.bad_frames.load());
        counter("troupe_receiver_handshake_refused_total", r.handshake_refused.load());
        counter("troupe_receiver_auth_failures_total", r.auth_failures.load());
        counter("troupe_receiver_acks_total", r.acks_out.load());
        counter("troupe_receiver_nacks_total", r.nacks_out.load());
    }
    std::lock_guard lock(d.mutex);
    std::map<std::string, int> states{{"alive", 0}, {"suspect", 0}, {"gone", 0}, {"left", 0}};
    for (const auto& e : d.table.all()) {
        ++states[std::string(membership::to_string(e.m.state))];
    }
    out << "# TYPE troupe_members gauge\n";
    for (const auto& [state, n] : states) {
        out << "troupe_members{state=\"" << state << "\"} " << n << "\n";
    }
    const char* per_peer[][2] = {{"troupe_peer_frames_out_total", "counter"},
                                 {"troupe_peer_bytes_out_total", "counter"},
                                 {"troupe_peer_queue_bytes", "gauge"},
                                 {"troupe_peer_ack_timeouts_total", "counter"},
                                 {"troupe_peer_nacks_total", "counter"},
                                 {"troupe_peer_dropped_total", "counter"},
                                 {"troupe_peer_queue_full_total", "counter"}};
    for (const auto& [name, type] : per_peer) {
        out << "# TYPE " << name << " " << type << "\n";
        for (const auto& [endpoint, slot] : d.peers) {
            const auto& st = slot.sender->stats();
            std::uint64_t v = 0;
            const std::string n(name);
            if (n == "troupe_peer_frames_out_total") v = st.frames_out.load();
            else if (n == "troupe_peer_bytes_out_total") v = st.bytes_out.load();
            else if (n == "troupe_peer_queue_bytes") v = slot.sender->queued_bytes();
            else if (n == "troupe_peer_ack_timeouts_total") v = st.ack_timeouts.load();
            else if (n == "troupe_peer_nacks_total") v = st.nacks.load();
            else if (n == "troupe_peer_dropped_total") v = st.dropped.load();
            else v = st.queue_full.load();
            out << name << "{peer=\"" << endpoint << "\"} " << v << "\n";
        }
    }
    out << "# TYPE troupe_peer_ack_latency_us histogram\n";
    for (const auto& [endpoint, slot] : d.peers) {
        const auto& st = slot.sender->stats();
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < transport::ack_latency_bounds_us.size(); ++i) {
            cumulative += st.ack_latency_buckets[i].load();
            const auto bound = transport::ack_latency_bounds_us[i];
            out << "troupe_peer_ack_latency_us_bucket{peer=\"" << endpoint << "\",le=\""
                << (bound == UINT64_MAX ? std::string("+Inf") : std::to_string(bound)) << "\"} "
                << cumulative << "\n";
        }
        out << "troupe_peer_ack_latency_us_sum{peer=\"" << endpoint << "\"} "
            << st.ack_latency_sum_us.load() << "\n";
        out << "troupe_peer_ack_latency_us_count{peer=\"" << endpoint << "\"} " << cumulative << "\n";
    }
    return out.str();
}

} // namespace troupe::engine
