// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace troupe::transport {

/// Threads that run a troupe io_context mark themselves, so blocking calls can
/// refuse to block there (that would deadlock the very thread that must wake them).
void mark_io_thread() noexcept;
bool on_io_thread() noexcept;

} // namespace troupe::transport
