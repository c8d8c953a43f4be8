// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/manager.hpp>
#include <troupe/transport/io_thread.hpp>

#include "delta_manager.hpp"
#include "link.hpp"
#include "manager_base.hpp"

#include <regex>
#include <stdexcept>

namespace troupe::managers {

namespace {

/// `manager.type: standard`: the same API on one node, nothing replicated.
class standard_manager final : public detail::manager_base {
public:
    standard_manager(std::string node, manager_config config)
        : manager_base(std::move(node), std::move(config)) {
        start_timers();
    }
    ~standard_manager() override { stop(); }
};

bool valid_options(std::uint32_t o) {
    // The option bits 2 | 4 | 8; "processed" (4) needs "received" (2).
    return o != 0 && (o & ~14u) == 0 && ((o & 4u) == 0 || (o & 2u) != 0);
}

} // namespace

std::vector<std::string> validate(const manager_config& c) {
    std::vector<std::string> problems;
    if (c.type != "standard" && c.type != "delta") {
        problems.push_back("type: unknown manager '" + c.type + "' (valid: standard, delta)");
    }
    if (c.context.empty() || c.context.size() > 255) {
        problems.push_back("context: must be 1 to 255 bytes (got " + std::to_string(c.context.size()) + ")");
    }
    if (c.cookie.empty()) {
        problems.push_back("cookie: must not be empty");
    }
    if (!c.filter.empty()) {
        try {
            std::regex re(c.filter, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            problems.push_back("filter: not a regular expression: " + std::string(e.what()));
        }
    }
    if (!valid_options(c.send_options)) {
        problems.push_back("send_options: expected async (8), ack (2) or sync (6) (got " +
                           std::to_string(c.send_options) + ")");
    }
    if (c.state_transfer_timeout.count() <= 0) {
        problems.push_back("state_transfer_timeout: must be greater than 0");
    }
    if (c.state_transfer_chunk_bytes < 4096) {
        problems.push_back("state_transfer_chunk_bytes: must be at least 4096 (got " +
                           std::to_string(c.state_transfer_chunk_bytes) + ")");
    }
    if (c.access_batch_interval.count() <= 0) {
        problems.push_back("access_batch_interval: must be greater than 0");
    }
    if (c.expiry_interval.count() < 0) {
        problems.push_back("expiry_interval: must not be negative (0: only expire_now())");
    }
    return problems;
}

std::unique_ptr<session_manager> make_manager(engine::channel& channel, manager_config config) {
    if (auto problems = validate(config); !problems.empty()) {
        std::string text = "troupe: invalid manager settings:";
        for (const auto& p : problems) {
            text += "\n  manager." + p;
        }
        throw std::invalid_argument(text);
    }
    if (config.type == "standard") {
        return std::make_unique<standard_manager>(channel.self().name, std::move(config));
    }
    const auto wait = config.state_transfer_timeout + std::chrono::seconds(1);
    auto m = std::make_unique<detail::delta_manager>(detail::make_channel_link(channel, config.context),
                                                     std::move(config));
    m->start();
    // Like Tomcat's DeltaManager: start returns once the sessions are here (or
    // the timeout passed), so the node serves no request without them.
    if (!transport::on_io_thread()) {
        m->await_state_transfer(wait);
    }
    return m;
}

} // namespace troupe::managers
