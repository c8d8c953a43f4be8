// SPDX-License-Identifier: Apache-2.0
#include "netlab_lab.hpp"

#include "common/child_process.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <filesystem>
#include <stdexcept>

namespace troupe::bench {

using namespace std::chrono_literals;

tool_result run_tool(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
    auto p = tools::child_process::spawn(argv);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    tool_result r;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) {
            break;
        }
        auto out = p.read_line(left);
        if (!out) {
            break; // EOF, or out of time
        }
        r.out += *out + "\n";
    }
    r.code = p.wait(2s).value_or(-1); // still running: the destructor kills it
    return r;
}

std::string own_path() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

netlab_lab::netlab_lab(std::string tool, std::size_t nodes, const std::string& prefix)
    : tool_(std::move(tool))
    , name_(prefix + std::to_string(::getpid())) {
    const auto r = run_tool({tool_, "create", name_, std::to_string(nodes)});
    if (r.code != 0) {
        run_tool({tool_, "destroy", name_});
        throw std::runtime_error(tool_ + " create " + name_ + " failed (exit " + std::to_string(r.code) + ")");
    }
    spdlog::info("lab {} created (if this run is killed: {} destroy {})", name_, tool_, name_);
}

netlab_lab::~netlab_lab() { run_tool({tool_, "destroy", name_}); }

std::string netlab_lab::addr(std::size_t i) const {
    const auto r = run_tool({tool_, "addr", name_, std::to_string(i)});
    if (r.code != 0 || r.out.empty()) {
        throw std::runtime_error(tool_ + " addr " + name_ + " " + std::to_string(i) + " failed");
    }
    return r.out.substr(0, r.out.find('\n'));
}

void netlab_lab::cut(std::size_t i) const { check(run_tool({tool_, "cut", name_, std::to_string(i)}), "cut"); }

void netlab_lab::heal(std::size_t i) const { check(run_tool({tool_, "heal", name_, std::to_string(i)}), "heal"); }

std::vector<std::string> netlab_lab::in_node(std::size_t i, const std::vector<std::string>& cmd) const {
    std::vector<std::string> argv{tool_, "exec", name_, std::to_string(i)};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return argv;
}

void netlab_lab::check(const tool_result& r, const char* what) const {
    if (r.code != 0) {
        throw std::runtime_error(tool_ + " " + what + " " + name_ + " failed (exit " + std::to_string(r.code) + ")");
    }
}

} // namespace troupe::bench
