// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace troupe::managers::detail {

/// Threads for the waits of asynchronous calls: a begin_request_async()
/// whose session must be waited for (a state transfer, a reconciliation, a
/// fetch from another member) runs that wait here, never on the caller's
/// thread, where it would stall every connection an Asio thread serves.
/// Threads start when a job finds none idle, up to `max_threads` (the waits
/// are bounded, so a full pool only delays the next ones); they live until
/// stop().
///
/// @par Thread safety
/// submit() and stop() may be called from any thread. On a pool thread
/// (a job that stops or destroys its own manager), stop() leaves that thread
/// to end by itself after the job, without touching the pool again.
class wait_pool {
public:
    static constexpr std::size_t max_queued = 10000;

    wait_pool(std::string name, std::size_t max_threads);
    ~wait_pool();
    wait_pool(const wait_pool&) = delete;
    wait_pool& operator=(const wait_pool&) = delete;

    enum class submitted { queued, stopped, full };
    /// Queues `job`; not after stop(), nor beyond max_queued jobs waiting
    /// for a thread (then it is not run).
    submitted submit(std::function<void()> job);
    /// Runs the jobs already queued (the manager has woken every wait, so
    /// they finish at once), then joins. Idempotent.
    void stop();
    std::size_t threads() const;

private:
    void run();

    std::string name_;
    const std::size_t max_threads_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;
    bool stopping_ = false;
};

} // namespace troupe::managers::detail
