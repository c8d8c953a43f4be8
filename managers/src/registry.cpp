// SPDX-License-Identifier: Apache-2.0
// The one place that knows the manager types. Their names are the cluster
// file's (conf::manager_rules::types); a static_assert keeps the two equal.
#include "registry.hpp"

#include <troupe/conf/manager_rules.hpp>

#include "backup_manager.hpp"
#include "delta_manager.hpp"
#include "link.hpp"
#include "manager_base.hpp"

#include <algorithm>
#include <array>

namespace troupe::managers::detail {

namespace {

/// `manager.type: standard`: the same API on one node, nothing replicated.
class standard_manager final : public manager_base {
public:
    standard_manager(std::string node, manager_config config) : manager_base(std::move(node), std::move(config)) {
        start_timers();
    }
    ~standard_manager() override { stop(); }
};

std::unique_ptr<manager_base> make_standard(engine::channel& channel, manager_config config) {
    return std::make_unique<standard_manager>(channel.self().name, std::move(config));
}

template <typename Manager>
std::unique_ptr<manager_base> make_replicating(engine::channel& channel, manager_config config) {
    auto m = std::make_unique<Manager>(make_channel_link(channel, config.context), std::move(config));
    m->start();
    return m;
}

constexpr std::array<manager_type, 3> registry{{
    {"backup", &make_replicating<backup_manager>},
    {"delta", &make_replicating<delta_manager>},
    {"standard", &make_standard},
}};

constexpr bool same_names() {
    if (registry.size() != conf::manager_rules::types.size()) {
        return false;
    }
    for (std::size_t i = 0; i < registry.size(); ++i) {
        if (registry[i].name != conf::manager_rules::types[i]) {
            return false;
        }
    }
    return true;
}
static_assert(same_names(), "the manager registry and conf::manager_rules::types must list the same types");

} // namespace

const manager_type* find_manager_type(std::string_view name) {
    const auto it = std::find_if(registry.begin(), registry.end(), [&](const auto& t) { return t.name == name; });
    return it == registry.end() ? nullptr : &*it;
}

} // namespace troupe::managers::detail
