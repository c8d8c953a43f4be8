// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/manager.hpp>

#include "manager_base.hpp"

#include <memory>
#include <string_view>

namespace troupe::managers::detail {

/// One manager type: the name a cluster file gives (`manager.type`) and how
/// to make one, started (a replicating one may still be receiving the
/// cluster's sessions: make_manager() decides whether to wait). Settings are
/// validated (validate()) before make runs.
struct manager_type {
    std::string_view name;
    std::unique_ptr<manager_base> (*make)(engine::channel& channel, manager_config config);
};

/// The manager type called `name`, or nullptr.
const manager_type* find_manager_type(std::string_view name);

} // namespace troupe::managers::detail
