// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace troupe::managers::detail {

/// One thread running posted tasks in order, and periodic tasks between them.
/// Owned by a manager; stop() (or the destructor) finishes the task running,
/// drops the rest and joins. Exceptions from tasks are logged and swallowed.
///
/// @par Thread safety
/// post(), sync() and idle() may be called from any thread; every() only
/// before start().
class worker {
public:
    explicit worker(std::string name);
    ~worker();
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    void every(std::chrono::milliseconds period, std::function<void()> task);
    void start();
    /// @return false after stop() (the task is dropped).
    bool post(std::function<void()> task);
    /// Waits (bounded) until everything posted before this call has run.
    bool sync(std::chrono::milliseconds limit = std::chrono::seconds(30));
    /// Nothing queued or running.
    bool idle() const;
    void stop();
    bool on_worker_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }

private:
    struct periodic {
        std::chrono::milliseconds period;
        std::chrono::steady_clock::time_point next;
        std::function<void()> task;
    };
    void run();

    std::string name_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::condition_variable done_cv_;
    std::deque<std::function<void()>> tasks_;
    std::vector<periodic> periodic_;
    std::uint64_t posted_ = 0;
    std::uint64_t finished_ = 0;
    bool running_task_ = false;
    bool stopping_ = false;
    bool started_ = false;
    std::thread thread_;
};

} // namespace troupe::managers::detail
