// SPDX-License-Identifier: Apache-2.0
#include "common/child_process.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ; // NOLINT: POSIX declares it nowhere else

namespace troupe::tools {
namespace {

using clock = std::chrono::steady_clock;

// From <linux/close_range.h>, which older userspace headers lack.
constexpr unsigned close_range_cloexec = 1U << 2;

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

void close_fd(int& fd) noexcept {
    if (fd >= 0) {
        ::close(fd);
        fd = -1;
    }
}

int decode_status(int status) noexcept {
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

// Rounded up, so that poll() is not handed 0 ms while time is still left.
int remaining_ms(clock::time_point deadline) {
    const auto left = deadline - clock::now();
    if (left <= clock::duration::zero()) {
        return 0;
    }
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

// In the forked child: tells the parent why exec could not happen, then exits.
[[noreturn]] void report_and_exit(int err_w, int err) noexcept {
    [[maybe_unused]] const auto n = ::write(err_w, &err, sizeof err);
    ::_exit(127);
}

// Runs in the forked child: only async-signal-safe calls until exec. Reports a
// failure as errno on `err_w` (closed by exec on success, so the parent reads EOF).
[[noreturn]] void exec_child(char* const* argv, int out_w, int in_r, int err_w) noexcept {
    if (in_r < 0) {
        in_r = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in_r < 0) {
            report_and_exit(err_w, errno);
        }
    }
    // Move both ends above 2 first: if the parent had closed its own stdin/stdout,
    // pipe() may have returned 0 or 1, and a dup2 onto it would clobber the other.
    const int out_hi = ::fcntl(out_w, F_DUPFD_CLOEXEC, 3);
    const int in_hi = ::fcntl(in_r, F_DUPFD_CLOEXEC, 3);
    if (out_hi < 0 || in_hi < 0 || ::dup2(in_hi, STDIN_FILENO) < 0 ||
        ::dup2(out_hi, STDOUT_FILENO) < 0) {
        report_and_exit(err_w, errno);
    }
    // Descriptors the parent opened without O_CLOEXEC (listening sockets, other
    // children's pipes made by another thread) must not leak into the program:
    // a leaked pipe end would hide EOF from whoever reads it. Best effort.
#ifdef SYS_close_range
    ::syscall(SYS_close_range, 3U, ~0U, close_range_cloexec);
#endif
    // A SIGPIPE ignored by the parent and a blocked signal mask survive exec; the
    // program should start with the defaults, as it would from a shell.
    struct sigaction dfl {};

    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argv[0], argv, environ);
    report_and_exit(err_w, errno);
}

} // namespace

child_process child_process::spawn(const std::vector<std::string>& argv, bool pipe_stdin) {
    if (argv.empty()) {
        throw std::invalid_argument("child_process::spawn: empty argv");
    }
    // Built before fork: the child may not allocate (another thread may hold the
    // allocator's lock at the moment of the fork).
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);

    int out[2] = {-1, -1};
    int in[2] = {-1, -1};
    int err[2] = {-1, -1};
    auto close_all = [&] {
        for (int* fd : {&out[0], &out[1], &in[0], &in[1], &err[0], &err[1]}) {
            close_fd(*fd);
        }
    };
    // O_CLOEXEC: a child spawned concurrently from another thread must not inherit
    // these ends, or our reader would never see EOF.
    if (::pipe2(out, O_CLOEXEC) != 0 || (pipe_stdin && ::pipe2(in, O_CLOEXEC) != 0) ||
        ::pipe2(err, O_CLOEXEC) != 0) {
        const int e = errno;
        close_all();
        throw_errno(e, "child_process: pipe2");
    }

    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        close_all();
        throw_errno(e, "child_process: fork");
    }
    if (pid == 0) {
        exec_child(args.data(), out[1], in[0], err[1]);
    }

    close_fd(out[1]);
    close_fd(in[0]);
    close_fd(err[1]);
    int exec_errno = 0;
    ssize_t n = 0;
    do {
        n = ::read(err[0], &exec_errno, sizeof exec_errno);
    } while (n < 0 && errno == EINTR);
    close_fd(err[0]);

    child_process child;
    child.pid_ = pid;
    child.out_fd_ = out[0];
    child.in_fd_ = in[1];
    if (n > 0) {
        // exec failed: the child already _exit()ed; the destructor reaps it.
        throw_errno(exec_errno, "child_process: exec " + argv[0]);
    }
    return child;
}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1))
    , out_fd_(std::exchange(other.out_fd_, -1))
    , in_fd_(std::exchange(other.in_fd_, -1))
    , buffer_(std::move(other.buffer_))
    , status_(std::exchange(other.status_, std::nullopt)) {}

child_process& child_process::operator=(child_process&& other) noexcept {
    if (this != &other) {
        // Our current child goes to a temporary whose destructor kills and reaps it.
        child_process old(std::move(*this));
        pid_ = std::exchange(other.pid_, -1);
        out_fd_ = std::exchange(other.out_fd_, -1);
        in_fd_ = std::exchange(other.in_fd_, -1);
        buffer_ = std::move(other.buffer_);
        status_ = std::exchange(other.status_, std::nullopt);
    }
    return *this;
}

child_process::~child_process() {
    close_fd(in_fd_);
    close_fd(out_fd_);
    if (pid_ > 0 && !status_) {
        // Not reaped yet, so the PID is still ours (a zombie at worst): safe to kill.
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    pid_ = -1;
    status_.reset();
    buffer_.clear();
}

std::optional<std::string> child_process::read_line(std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    for (;;) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        if (out_fd_ < 0) {
            // EOF: a last line without '\n' is still a line, once.
            if (!buffer_.empty()) {
                return std::exchange(buffer_, std::string{});
            }
            return std::nullopt;
        }
        pollfd p{out_fd_, POLLIN, 0};
        const int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw_errno(errno, "child_process: poll");
        }
        if (r == 0) {
            return std::nullopt;
        }
        char chunk[4096];
        const ssize_t n = ::read(out_fd_, chunk, sizeof chunk);
        if (n > 0) {
            buffer_.append(chunk, static_cast<std::size_t>(n));
        } else if (n == 0) {
            close_fd(out_fd_);
            continue;
        } else if (errno != EINTR && errno != EAGAIN) {
            throw_errno(errno, "child_process: read");
        }
        // A child writing without pause and without '\n' must not hold us past the
        // timeout: poll() keeps answering "readable" even when no time is left.
        if (clock::now() >= deadline && buffer_.find('\n') == std::string::npos) {
            return std::nullopt;
        }
    }
}

bool child_process::write_line(const std::string& line) {
    if (in_fd_ < 0) {
        return false;
    }
    const std::string data = line + '\n';
    // Writing to a pipe whose reader is gone raises SIGPIPE, which would kill the
    // caller. Block it on this thread, and consume the one this write raised, so a
    // dead child just makes this return false.
    sigset_t pipe_set;
    sigset_t old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    const bool was_pending = sigismember(&pending, SIGPIPE) == 1;

    bool ok = true;
    int err = 0;
    std::size_t put = 0;
    while (put < data.size()) {
        const ssize_t n = ::write(in_fd_, data.data() + put, data.size() - put);
        if (n > 0) {
            put += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            ok = false;
            err = errno;
            break;
        }
    }
    if (!ok && err == EPIPE && !was_pending) {
        const timespec zero{};
        ::sigtimedwait(&pipe_set, nullptr, &zero);
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    return ok;
}

void child_process::close_stdin() {
    close_fd(in_fd_);
}

void child_process::signal(int sig) {
    // Once reaped, the PID may belong to someone else: never signal it then.
    if (pid_ > 0 && !status_) {
        ::kill(pid_, sig);
    }
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
    if (status_ || pid_ <= 0) {
        return status_;
    }
    const auto deadline = clock::now() + timeout;
    // A pidfd becomes readable at exit, so we sleep exactly until then instead of
    // polling waitpid(); without one (old kernel) we poll every few milliseconds.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            status_ = decode_status(status);
            break;
        }
        if (r < 0 && errno != EINTR) {
            // ECHILD: someone else reaped it (SIGCHLD ignored); the code is lost.
            status_ = -1;
            break;
        }
        const int left = remaining_ms(deadline);
        if (left == 0) {
            break;
        }
        if (pidfd >= 0) {
            pollfd p{pidfd, POLLIN, 0};
            ::poll(&p, 1, left);
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min(left, 5)));
        }
    }
    if (pidfd >= 0) {
        ::close(pidfd);
    }
    return status_;
}

bool child_process::running() {
    if (status_ || pid_ <= 0) {
        return false;
    }
    int status = 0;
    pid_t r = 0;
    do {
        r = ::waitpid(pid_, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
        status_ = decode_status(status);
        return false;
    }
    if (r < 0) {
        status_ = -1;
        return false;
    }
    return true;
}

} // namespace troupe::tools
