// SPDX-License-Identifier: Apache-2.0
#include "worker.hpp"

#include "log.hpp"

#include <pthread.h>

namespace troupe::managers::detail {

worker::worker(std::string name)
    : name_(std::move(name)) {}

worker::~worker() { stop(); }

void worker::every(std::chrono::milliseconds period, std::function<void()> task) {
    std::lock_guard lock(mutex_);
    periodic_.push_back({period, std::chrono::steady_clock::now() + period, std::move(task)});
}

void worker::start() {
    std::lock_guard lock(mutex_);
    if (started_ || stopping_) {
        return;
    }
    started_ = true;
    thread_ = std::thread([this] { run(); });
}

bool worker::post(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            return false;
        }
        tasks_.push_back(std::move(task));
        ++posted_;
    }
    cv_.notify_one();
    return true;
}

bool worker::sync(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    if (!started_ || on_worker_thread()) {
        return false;
    }
    const auto target = posted_;
    return done_cv_.wait_for(lock, limit, [&] { return finished_ >= target || stopping_; });
}

bool worker::idle() const {
    std::lock_guard lock(mutex_);
    return tasks_.empty() && !running_task_;
}

void worker::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !thread_.joinable()) {
            return;
        }
        stopping_ = true;
    }
    cv_.notify_all();
    done_cv_.notify_all();
    if (thread_.joinable() && !on_worker_thread()) {
        thread_.join();
    }
    // The tasks that never ran are dropped now, not in ~worker: a task that
    // owns a request's completion fails it while its manager still stands.
    std::deque<std::function<void()>> dropped;
    {
        std::lock_guard lock(mutex_);
        dropped.swap(tasks_);
    }
}

void worker::run() {
    {
        // Thread names are at most 15 characters.
        const auto short_name = name_.substr(0, 15);
        ::pthread_setname_np(::pthread_self(), short_name.c_str());
    }
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const auto now = std::chrono::steady_clock::now();
        std::function<void()> task;
        bool from_queue = false;
        for (auto& p : periodic_) {
            if (p.next <= now) {
                // Scheduled from now, not from the missed time: a slow task does
                // not make a burst of catch-up runs.
                p.next = now + p.period;
                task = p.task;
                break;
            }
        }
        if (!task && !tasks_.empty()) {
            task = std::move(tasks_.front());
            tasks_.pop_front();
            from_queue = true;
        }
        if (!task) {
            auto wake = now + std::chrono::hours(1);
            for (const auto& p : periodic_) {
                wake = std::min(wake, p.next);
            }
            cv_.wait_until(lock, wake, [&] { return stopping_ || !tasks_.empty(); });
            continue;
        }
        running_task_ = true;
        lock.unlock();
        try {
            task();
        } catch (const std::exception& e) {
            log()->error("{}: task threw: {}", name_, e.what());
        } catch (...) {
            log()->error("{}: task threw", name_);
        }
        lock.lock();
        running_task_ = false;
        if (from_queue) {
            ++finished_;
        }
        done_cv_.notify_all();
    }
}

} // namespace troupe::managers::detail
