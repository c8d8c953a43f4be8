// SPDX-License-Identifier: Apache-2.0
#include "link.hpp"

#include <troupe/transport/io_thread.hpp>

#include <mutex>
#include <shared_mutex>

namespace troupe::managers::detail {

namespace {

/// Stands between the channel's listeners (which the channel may call until
/// long after we are gone: member listeners cannot be removed) and the manager.
struct gate {
    std::shared_mutex mutex;
    bool open = false;
    link_events events;
};

class channel_link final : public link {
public:
    channel_link(engine::channel& channel, std::string context)
        : channel_(channel)
        , context_(std::move(context))
        , gate_(std::make_shared<gate>()) {}

    ~channel_link() override { detach(); }

    membership::member self() const override { return channel_.self(); }

    std::vector<membership::member> members() const override { return channel_.members(); }

    bool discovered() const override { return channel_.discovered(); }

    void attach(link_events events) override {
        {
            std::unique_lock lock(gate_->mutex);
            gate_->events = std::move(events);
            gate_->open = true;
        }
        if (!member_listener_added_) {
            member_listener_added_ = true;
            channel_.add_member_listener([g = std::weak_ptr<gate>(gate_)](const membership::member& m) {
                auto gp = g.lock();
                if (!gp) {
                    return;
                }
                std::shared_lock lock(gp->mutex);
                if (gp->open && gp->events.member_changed) {
                    gp->events.member_changed(m);
                }
            });
        }
        if (!discovered_listener_added_) {
            discovered_listener_added_ = true;
            channel_.on_discovered([g = std::weak_ptr<gate>(gate_)] {
                auto gp = g.lock();
                if (!gp) {
                    return;
                }
                std::shared_lock lock(gp->mutex);
                if (gp->open && gp->events.discovered) {
                    gp->events.discovered();
                }
            });
        }
        channel_.add_listener(context_, [g = gate_](const engine::received_message& msg) {
            std::shared_lock lock(g->mutex);
            if (g->open && g->events.message) {
                g->events.message(msg.from, {reinterpret_cast<const std::uint8_t*>(msg.payload.data()),
                                             msg.payload.size()});
            }
        });
    }

    void detach() override {
        if (!gate_) {
            return;
        }
        {
            std::shared_lock lock(gate_->mutex);
            if (!gate_->open) {
                return;
            }
        }
        channel_.remove_listener(context_);
        // Waits for calls in flight (they hold the shared lock).
        std::unique_lock lock(gate_->mutex);
        gate_->open = false;
        gate_->events = {};
    }

    void send(std::vector<membership::member_id> to, std::vector<std::uint8_t> payload,
              std::uint32_t options, done_handler done) override {
        if (!engine::send_options::wants_ack(options)) {
            // Nothing to wait for: the blocking form returns at once, and the
            // result is reported here rather than by waking an I/O thread per
            // message (one per HTTP request's delta otherwise).
            auto r = channel_.send(to, std::as_bytes(std::span(payload.data(), payload.size())), options,
                                   context_);
            if (done) {
                done(std::move(r));
            }
            return;
        }
        channel_.async_send(to, std::as_bytes(std::span(payload.data(), payload.size())), options, context_,
                            [done = std::move(done)](engine::send_result r) {
                                if (done) {
                                    done(std::move(r));
                                }
                            });
    }

    void send_each(std::vector<membership::member_id> to, std::vector<std::uint8_t> payload,
                   std::uint32_t options, progress_handler progress, done_handler done) override {
        channel_.async_send(
            to, std::as_bytes(std::span(payload.data(), payload.size())), options, context_,
            [done = std::move(done)](engine::send_result r) {
                if (done) {
                    done(std::move(r));
                }
            },
            [progress = std::move(progress)](const membership::member& m, const engine::send_result& one) {
                if (progress) {
                    progress(m.id, one);
                }
            });
    }

    bool on_io_thread() const override { return transport::on_io_thread(); }

    std::chrono::milliseconds wait_limit() const override {
        return channel_.config().sender.ack_timeout * 2 + std::chrono::seconds(2);
    }

    std::size_t max_message() const override {
        return static_cast<std::size_t>(channel_.config().channel.max_message);
    }

private:
    engine::channel& channel_;
    std::string context_;
    std::shared_ptr<gate> gate_;
    bool member_listener_added_ = false;
    bool discovered_listener_added_ = false;
};

} // namespace

std::unique_ptr<link> make_channel_link(engine::channel& channel, std::string context) {
    return std::make_unique<channel_link>(channel, std::move(context));
}

} // namespace troupe::managers::detail

