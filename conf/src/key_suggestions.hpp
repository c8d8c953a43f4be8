// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>

namespace troupe::conf::detail {

/// The message for `key`, which the map at `group` ("" is the top level) does
/// not hold: `unknown key 'x'`, then where the key moved to if it used to
/// exist, else the key it most likely meant ("did you mean"), if any is close.
std::string unknown_key(std::string_view key, std::string_view group);

} // namespace troupe::conf::detail
