// SPDX-License-Identifier: Apache-2.0
// What the session scenarios (sessions.cpp, backup.cpp) share: the member
// processes they drive over stdin, the members' cluster file, their payloads
// and how they read their own resident set.
#pragma once

#include "bench_util.hpp"
#include "common/child_process.hpp"

#include <troupe/troupe.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::bench {

/// A member's cluster file: `address` (127.0.0.1, or its lab address), static
/// members only (nothing depends on heartbeats reaching loopback), no admin
/// endpoint, and send queues that wait for room rather than fail while 100,000
/// sessions of 1 KiB go out.
conf::cluster_config session_member_config(const std::string& cluster, const std::string& node,
                                           std::uint32_t io_threads, const std::string& address,
                                           const std::vector<conf::host_port>& peers);

/// A `--peer` value: PORT (on 127.0.0.1) or ADDRESS:PORT.
conf::host_port parse_peer(const std::string& text);

/// `size` bytes that differ with `seed`.
std::vector<std::uint8_t> payload(std::size_t size, std::uint64_t seed);

/// Resident set now, KiB, after giving freed memory back to the system (so
/// that what the transfer buffers used and freed does not count).
long rss_kib();

/// One member process driven over its stdin, one JSON command per line.
struct member_process {
    tools::child_process process;
    std::string name;
    std::uint16_t port = 0;
    nlohmann::json ready;

    /// Starts `argv` (a member role of this binary, with a stdin pipe) and
    /// waits for its "ready" line, which carries its receiver port.
    /// @throws std::runtime_error when it prints no ready line in time.
    static member_process start(const std::vector<std::string>& argv, std::string name,
                                std::chrono::milliseconds timeout);

    /// Sends `cmd` and waits for the member's "done" line.
    /// @throws std::runtime_error when the member is gone, silent or reports an error.
    nlohmann::json ask(const nlohmann::json& cmd, std::chrono::milliseconds timeout = std::chrono::seconds(600));

    /// Asks every member to quit and waits for each (bounded).
    static void quit_all(std::vector<member_process>& members);
};

} // namespace troupe::bench
