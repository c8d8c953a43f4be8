// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/manager.hpp>

#include <memory>
#include <string_view>

namespace troupe::managers::detail {

/// One manager type: the name a cluster file gives (`manager.type`) and how
/// to make one. Settings are validated (validate()) before make runs.
struct manager_type {
    std::string_view name;
    std::unique_ptr<session_manager> (*make)(engine::channel& channel, manager_config config);
};

/// The manager type called `name`, or nullptr.
const manager_type* find_manager_type(std::string_view name);

} // namespace troupe::managers::detail
