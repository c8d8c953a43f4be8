// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/io_thread.hpp>

namespace troupe::transport {

namespace {

thread_local bool io_thread_flag = false;

} // namespace

void mark_io_thread() noexcept { io_thread_flag = true; }

bool on_io_thread() noexcept { return io_thread_flag; }

} // namespace troupe::transport
