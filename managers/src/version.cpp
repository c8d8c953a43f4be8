// SPDX-License-Identifier: Apache-2.0
#include <troupe/version.hpp>

namespace troupe {

const char* version() noexcept { return "0.1.0"; }

} // namespace troupe
