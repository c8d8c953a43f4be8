// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace troupe {

/// The library's version, "major.minor.patch".
const char* version() noexcept;

} // namespace troupe
