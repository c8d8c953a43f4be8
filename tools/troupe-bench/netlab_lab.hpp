// SPDX-License-Identifier: Apache-2.0
// A tools/netlab lab for the benchmarks that run one member per network
// namespace (reconcile, backup --lab): real TCP across a real bridge, nothing
// on the host's network.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#ifndef TROUPE_NETLAB
#define TROUPE_NETLAB "tools/netlab"
#endif

namespace troupe::bench {

struct tool_result {
    int code = -1;
    std::string out;
};

/// Runs a command to completion, bounded in time: its exit code and stdout.
tool_result run_tool(const std::vector<std::string>& argv,
                     std::chrono::milliseconds limit = std::chrono::seconds(60));

/// The binary itself, by path. "/proc/self/exe" cannot be used for a member
/// started through netlab: it would resolve in the `ip` process, another binary.
std::string own_path();

/// A tools/netlab lab with one namespace per member. The destructor destroys it,
/// also after a failure. netlab destroy SIGKILLs whatever still runs inside, so
/// members must be declared after the lab, which ends them first.
class netlab_lab {
public:
    /// @throws std::runtime_error when netlab cannot create it.
    netlab_lab(std::string tool, std::size_t nodes, const std::string& prefix);
    ~netlab_lab();

    netlab_lab(const netlab_lab&) = delete;
    netlab_lab& operator=(const netlab_lab&) = delete;

    const std::string& name() const noexcept { return name_; }
    /// Node i's address in the lab (1-based).
    std::string addr(std::size_t i) const;
    void cut(std::size_t i) const;
    void heal(std::size_t i) const;
    /// argv that runs `cmd` inside node i's namespace (netlab exec execs: the PID is cmd's).
    std::vector<std::string> in_node(std::size_t i, const std::vector<std::string>& cmd) const;

private:
    void check(const tool_result& r, const char* what) const;

    std::string tool_;
    std::string name_;
};

} // namespace troupe::bench
