// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <fstream>
#include <string>

namespace troupe::test {

/// The state letter of /proc/PID/stat ('R', 'S', 'T' for stopped...), or 0.
/// kill(SIGSTOP) only queues the signal: tests wait for 'T' before relying on it.
inline char process_state(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')'); // the command name may hold spaces
    return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '\0';
}

} // namespace troupe::test
