// SPDX-License-Identifier: Apache-2.0
#include "session_member.hpp"

#include "bench_util.hpp"

#include <spdlog/spdlog.h>

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

namespace troupe::bench {

conf::cluster_config session_member_config(const std::string& cluster, const std::string& node,
                                           std::uint32_t io_threads, const std::string& address,
                                           const std::vector<conf::host_port>& peers) {
    conf::cluster_config c;
    c.cluster.name = cluster;
    c.cluster.node = node;
    c.receiver.address = address;
    c.receiver.port = 0;
    c.receiver.threads = io_threads;
    c.admin.enabled = false;
    c.logging.level = "warn";
    c.membership.multicast.enabled = false;
    c.membership.static_members = peers;
    c.sender.block_timeout = std::chrono::milliseconds(30000);
    c.sender.ack_timeout = std::chrono::milliseconds(30000);
    auto diagnostics = conf::validate(c);
    if (!diagnostics.empty()) {
        throw conf::config_error(std::move(diagnostics));
    }
    return c;
}

conf::host_port parse_peer(const std::string& text) {
    const auto colon = text.rfind(':');
    const auto host = colon == std::string::npos ? std::string("127.0.0.1") : text.substr(0, colon);
    const auto port_text = colon == std::string::npos ? text : text.substr(colon + 1);
    std::size_t used = 0;
    unsigned long port = 0;
    try {
        port = std::stoul(port_text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (host.empty() || used == 0 || used != port_text.size() || port == 0 || port > 65535) {
        throw usage_error("--peer: PORT or ADDRESS:PORT (port 1..65535), got '" + text + "'");
    }
    return {host, static_cast<std::uint16_t>(port)};
}

std::vector<std::uint8_t> payload(std::size_t size, std::uint64_t seed) {
    std::vector<std::uint8_t> v(size);
    for (std::size_t i = 0; i < size; ++i) {
        v[i] = static_cast<std::uint8_t>((seed + i) * 131);
    }
    return v;
}

long rss_kib() {
    ::malloc_trim(0);
    long pages = 0;
    long resident = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) {
            resident = 0;
        }
        std::fclose(f);
    }
    return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

member_process member_process::start(const std::vector<std::string>& argv, std::string name,
                                     std::chrono::milliseconds timeout) {
    member_process m{tools::child_process::spawn(argv, /*pipe_stdin=*/true), std::move(name), 0, {}};
    auto ready = await_json(m.process, "ready", timeout);
    if (!ready) {
        throw std::runtime_error(m.name + " (pid " + std::to_string(m.process.pid()) + ") did not start");
    }
    m.port = ready->at("port").get<std::uint16_t>();
    m.ready = *ready;
    return m;
}

nlohmann::json member_process::ask(const nlohmann::json& cmd, std::chrono::milliseconds timeout) {
    if (!process.write_line(cmd.dump())) {
        throw std::runtime_error(name + " is gone (pid " + std::to_string(process.pid()) + ")");
    }
    auto reply = await_json(process, "done", timeout);
    if (!reply) {
        throw std::runtime_error(name + " did not answer " + cmd.dump());
    }
    if (reply->contains("error")) {
        throw std::runtime_error(name + ": " + reply->at("error").get<std::string>());
    }
    return *reply;
}

void member_process::quit_all(std::vector<member_process>& members) {
    for (auto& m : members) {
        m.process.write_line(nlohmann::json{{"cmd", "quit"}}.dump());
    }
    for (auto& m : members) {
        m.process.close_stdin();
        if (m.process.wait(std::chrono::seconds(30)) != 0) {
            spdlog::warn("member {} (pid {}) did not exit cleanly", m.name, m.process.pid());
        }
    }
}

} // namespace troupe::bench
