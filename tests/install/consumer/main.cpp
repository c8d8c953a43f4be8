// SPDX-License-Identifier: Apache-2.0
// The README's embedding example: two channels in one process find each other
// through a static member list and exchange one synchronous message. Prints
// "embedded ok" and exits 0, or says what failed and exits 1.
#include <troupe/troupe.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

troupe::conf::cluster_config make_config(const std::string& node,
                                         std::vector<troupe::conf::host_port> members) {
    troupe::conf::cluster_config config;
    // One cluster name per process, so a concurrent run never joins this one.
    config.cluster.name = "embed-" + std::to_string(::getpid());
    config.cluster.node = node;
    config.receiver.address = "127.0.0.1";
    config.receiver.port = 0; // any free port; port() says which
    config.admin.enabled = false;
    // The static list is enough to find each other; no heartbeats to a multicast
    // group that other clusters on this host may share.
    config.membership.multicast.enabled = false;
    config.membership.static_members = std::move(members);
    return config;
}

template <typename Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

int run() {
    troupe::engine::channel first(make_config("first", {}));
    std::atomic<int> received{0};
    std::string text_seen;
    first.add_listener("hello", [&](const troupe::engine::received_message& message) {
        // The payload lives only during this call: copy what we keep.
        text_seen.assign(reinterpret_cast<const char*>(message.payload.data()),
                         message.payload.size());
        received++;
    });
    first.start();

    troupe::engine::channel second(make_config("second", {{"127.0.0.1", first.port()}}));
    second.start();

    if (!wait_until([&] { return first.members().size() == 1 && second.members().size() == 1; },
                    std::chrono::seconds(10))) {
        std::fprintf(stderr, "the two channels did not see each other within 10 s\n");
        return 1;
    }

    const std::string text = "hello from second";
    const auto result = second.send_all(std::as_bytes(std::span(text.data(), text.size())),
                                        troupe::engine::send_options::sync, "hello");
    if (!result.ok()) {
        std::fprintf(stderr, "send failed: %s\n", result.describe().c_str());
        return 1;
    }
    // sync returns after the listener ran, so no waiting here.
    if (received != 1 || text_seen != text) {
        std::fprintf(stderr, "listener saw %d message(s), last '%s'\n", received.load(),
                     text_seen.c_str());
        return 1;
    }
    second.stop();
    first.stop();
    std::printf("troupe %s\nembedded ok\n", troupe::version());
    return 0;
}

} // namespace

int main() {
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
