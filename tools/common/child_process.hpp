// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace troupe::tools {

/// A child process started by fork+exec, known by its PID only (it is never
/// found or ended by name). stdout is a pipe read line by line; stdin is a pipe
/// when asked for. The destructor SIGKILLs the child if it still runs and reaps it,
/// so a failing test never leaves processes behind.
///
/// @par Thread safety
/// One object, one thread.
class child_process {
public:
    /// @param argv argv[0] is the program path.
    /// @param pipe_stdin give the child a stdin pipe (else /dev/null).
    /// @throws std::system_error if fork/exec setup fails.
    static child_process spawn(const std::vector<std::string>& argv, bool pipe_stdin = false);

    child_process(child_process&&) noexcept;
    child_process& operator=(child_process&&) noexcept;
    ~child_process();

    pid_t pid() const noexcept { return pid_; }
    /// Next line of the child's stdout (without '\n'); nullopt on timeout or EOF.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);
    /// Writes `line` + '\n' to the child's stdin. false if the pipe is closed.
    bool write_line(const std::string& line);
    void close_stdin();
    /// kill(pid, sig) if still running.
    void signal(int sig);
    /// Waits for exit up to `timeout`; returns the exit code (128+signal when
    /// killed), or nullopt if it still runs.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    bool running();

private:
    child_process() = default;
    pid_t pid_ = -1;
    int out_fd_ = -1;
    int in_fd_ = -1;
    std::string buffer_;
    std::optional<int> status_;
};

} // namespace troupe::tools
