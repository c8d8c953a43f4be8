// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/conf/cluster_config.hpp>
#include <troupe/transport/io_thread.hpp>
#include <troupe/transport/peer_sender.hpp>
#include <troupe/transport/receiver.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace troupe::test {

/// An io_context run by its own threads for the life of the object.
struct io_runner {
    boost::asio::io_context io;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work{
        io.get_executor()};
    std::vector<std::thread> threads;

    explicit io_runner(int n = 1) {
        for (int i = 0; i < n; ++i) {
            threads.emplace_back([this] {
                transport::mark_io_thread();
                io.run();
            });
        }
    }
    ~io_runner() { shutdown(); }

    /// Stops the io_context and joins its threads; idempotent. Call it before
    /// destroying anything its handlers touch.
    void shutdown() {
        work.reset();
        io.stop();
        for (auto& t : threads) {
            if (t.joinable()) {
                t.join();
            }
        }
    }
};

inline conf::cluster_config loopback_config(std::uint16_t port = 0) {
    conf::cluster_config c;
    c.cluster.name = "unit";
    c.cluster.node = "rx";
    c.receiver.port = port;
    c.receiver.auto_bind = 1;
    c.channel.max_message = 1 << 20;
    c.sender.connect_timeout = std::chrono::milliseconds(500);
    c.sender.reconnect_backoff_max = std::chrono::milliseconds(50);
    return c;
}

inline transport::local_identity identity(const conf::cluster_config& c, std::uint16_t port,
                                          const std::string& node) {
    return transport::local_identity{membership::member_id::random(), 1, c.cluster.name, node,
                                     "127.0.0.1", port, c.cluster.secret};
}

/// A receiver in this process that records every DATA payload in order.
struct recording_receiver {
    io_runner runner;
    std::shared_ptr<transport::receiver> rx;
    std::mutex mutex;
    std::vector<std::string> payloads;
    std::function<transport::delivery_result(const std::string&)> verdict;

    explicit recording_receiver(conf::cluster_config c,
                                membership::member_id id = membership::member_id::random()) {
        transport::receiver::callbacks cb;
        cb.deliver = [this](const membership::member&, const transport::data_view& d) {
            std::string p(d.payload.begin(), d.payload.end());
            {
                std::lock_guard lock(mutex);
                payloads.push_back(p);
            }
            return verdict ? verdict(p) : transport::delivery_result{};
        };
        rx = std::make_shared<transport::receiver>(runner.io, c, std::move(cb));
        const auto port = rx->bind();
        auto self = identity(c, port, c.cluster.node);
        self.id = id;
        rx->start(self);
    }
    ~recording_receiver() {
        rx->stop();
        runner.shutdown(); // no delivery may touch `payloads` once it is gone
    }

    std::uint16_t port() const { return rx->port(); }
    std::size_t count() {
        std::lock_guard lock(mutex);
        return payloads.size();
    }
    std::vector<std::string> snapshot() {
        std::lock_guard lock(mutex);
        return payloads;
    }
};

inline transport::frame_ptr data_frame(std::uint64_t id, std::uint32_t options, const std::string& payload) {
    auto b = std::make_shared<transport::buffer>();
    transport::append_data(*b, id, options, "test",
                           {reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()});
    return b;
}

} // namespace troupe::test
