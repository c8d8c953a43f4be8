// SPDX-License-Identifier: Apache-2.0
// The cluster file's manager section as the managers take it (conf does not
// depend on managers, so the mapping lives here, above it).
#include <troupe/managers/manager_config.hpp>

namespace troupe::managers {

namespace {

/// manager.cookie* (validated by conf: a known SameSite, whole seconds).
cookie_settings cookie_from(const conf::manager_section& m) {
    cookie_settings c;
    c.name = m.cookie;
    c.path = m.cookie_path;
    c.secure = m.cookie_secure;
    c.same_site = m.cookie_same_site == "strict" ? cookie_same_site::strict
                  : m.cookie_same_site == "none" ? cookie_same_site::none
                                                 : cookie_same_site::lax;
    c.max_age = std::chrono::duration_cast<std::chrono::seconds>(m.cookie_max_age);
    return c;
}

} // namespace

manager_config manager_config_from(const conf::manager_section& m) {
    manager_config c;
    c.type = m.type;
    c.context = m.context;
    c.cookie = cookie_from(m);
    c.filter = m.filter;
    c.skip_paths = m.skip_paths;
    c.skip_headers = m.skip_headers;
    c.route_rewrite = m.route_rewrite;
    // conf's validation has made sure max_inactive is a whole number of seconds.
    c.max_inactive = std::chrono::duration_cast<std::chrono::seconds>(m.max_inactive);
    c.send_options = m.send_options;
    c.on_replication_failure = m.on_replication_failure == conf::replication_failure_policy::fail
                                   ? manager_config::on_failure::fail
                                   : manager_config::on_failure::log;
    c.notify_listeners_on_replication = m.notify_listeners_on_replication;
    c.expire_sessions_on_shutdown = m.expire_sessions_on_shutdown;
    c.state_transfer_timeout = m.state_transfer_timeout;
    return c;
}

} // namespace troupe::managers
