// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/manager.hpp>

#include <troupe/conf/manager_rules.hpp>

#include "registry.hpp"

#include <troupe/transport/io_thread.hpp>

#include <chrono>
#include <thread>

namespace troupe::managers {

std::vector<std::string> validate(const manager_config& c) {
    std::vector<std::string> problems;
    // The keys a cluster file also has follow its rules (manager_rules.hpp).
    auto rule = [&](std::string_view key, const std::optional<std::string>& problem) {
        if (problem) {
            problems.push_back(std::string(key) + ": " + *problem);
        }
    };
    rule("type", conf::manager_rules::type_problem(c.type));
    rule("context", conf::manager_rules::context_problem(c.context));
    rule("cookie.name", conf::manager_rules::cookie_problem(c.cookie.name));
    rule("cookie.path", conf::manager_rules::cookie_path_problem(c.cookie.path));
    rule("cookie.same_site", conf::manager_rules::cookie_same_site_problem(to_string(c.cookie.same_site),
                                                                            c.cookie.secure));
    if (c.cookie.max_age.count() < 0) {
        problems.push_back("cookie.max_age: must not be negative (0: no Max-Age)");
    }
    rule("filter", conf::manager_rules::filter_problem(c.filter));
    rule("skip_paths", conf::manager_rules::filter_problem(c.skip_paths));
    for (std::size_t i = 0; i < c.skip_headers.size(); ++i) {
        rule("skip_headers[" + std::to_string(i) + "]", conf::manager_rules::header_name_problem(c.skip_headers[i]));
    }
    if (c.route_alias_time.count() < 0) {
        problems.push_back("route_alias_time: must not be negative (0: no alias)");
    }
    rule("send_options", conf::manager_rules::send_options_problem(c.send_options));
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
    if (c.copy_audit_interval.count() < 0) {
        problems.push_back("copy_audit_interval: must not be negative (0: only when asked)");
    }
    return problems;
}

namespace {

std::string problems_text(const std::vector<std::string>& problems) {
    std::string text = "troupe: invalid manager settings:";
    for (const auto& p : problems) {
        text += "\n  manager." + p;
    }
    return text;
}

/// What the three forms share: the settings checked once, the manager made
/// and started (a replicating one may still be receiving the cluster's
/// sessions). Null with `problems` filled when the settings are invalid.
std::unique_ptr<session_manager> start(engine::channel& channel, manager_config config,
                                       std::vector<std::string>& problems) {
    problems = validate(config);
    if (!problems.empty()) {
        return nullptr;
    }
    return detail::find_manager_type(config.type)->make(channel, std::move(config));
}

/// How long a maker waits for the state transfer: its timeout, plus the
/// discovery that comes before it.
std::chrono::milliseconds transfer_wait(const session_manager& m) {
    return m.config().state_transfer_timeout + std::chrono::seconds(1);
}

} // namespace

std::unique_ptr<session_manager> make_manager(engine::channel& channel, manager_config config,
                                              boost::system::error_code& ec) {
    ec = {};
    std::vector<std::string> problems;
    auto m = start(channel, std::move(config), problems);
    if (!m) {
        ec = make_error_code(errc::invalid_config);
        return nullptr;
    }
    // Like Tomcat's DeltaManager: returns once the sessions are here (or the
    // timeout passed), so the node serves no request without them. Not on an
    // I/O thread, which the transfer itself needs.
    if (!transport::on_io_thread()) {
        m->await_state_transfer(transfer_wait(*m));
    }
    return m;
}

std::unique_ptr<session_manager> make_manager(engine::channel& channel, manager_config config) {
    std::vector<std::string> problems;
    auto m = start(channel, std::move(config), problems);
    if (!m) {
        throw session_error(errc::invalid_config, problems_text(problems));
    }
    if (!transport::on_io_thread()) {
        m->await_state_transfer(transfer_wait(*m));
    }
    return m;
}

void make_manager_async(engine::channel& channel, manager_config config,
                        std::function<void(boost::system::error_code, std::unique_ptr<session_manager>)> done) {
    std::vector<std::string> problems;
    auto m = start(channel, std::move(config), problems);
    if (!m) {
        done(make_error_code(errc::invalid_config), nullptr);
        return;
    }
    if (m->await_state_transfer(std::chrono::milliseconds(0))) {
        done({}, std::move(m));
        return;
    }
    // The transfer is waited for on a thread of its own (a manager is made
    // once; its own threads cannot be used: the manager may end up destroyed
    // where `done` drops it). It ends with the wait, bounded by the timeout.
    const auto wait = transfer_wait(*m);
    std::thread([m = std::move(m), done = std::move(done), wait]() mutable {
        m->await_state_transfer(wait);
        try {
            done({}, std::move(m));
        } catch (...) {
            // A throwing callback must not end the process from this thread;
            // the token forms never throw here (they post).
        }
    }).detach();
}

} // namespace troupe::managers
