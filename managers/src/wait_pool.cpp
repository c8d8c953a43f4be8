// SPDX-License-Identifier: Apache-2.0
#include "wait_pool.hpp"

#include "log.hpp"

#include <pthread.h>

namespace troupe::managers::detail {

wait_pool::wait_pool(std::string name, std::size_t max_threads)
    : name_(std::move(name))
    , max_threads_(max_threads == 0 ? 1 : max_threads) {}

wait_pool::~wait_pool() { stop(); }

namespace {
/// Set on a pool thread whose pool stop() left it running (the job stopped
/// its own manager): after the job it ends without touching the pool.
thread_local bool orphaned = false;
} // namespace

wait_pool::submitted wait_pool::submit(std::function<void()> job) {
    std::lock_guard lock(mutex_);
    if (stopping_) {
        return submitted::stopped;
    }
    if (jobs_.size() >= max_queued) {
        return submitted::full;
    }
    // Every queued job gets a thread of its own while there is room: two
    // submits before an idle thread wakes must not share it (the second
    // would wait out the first's wait).
    if (jobs_.size() + 1 > idle_ && threads_.size() < max_threads_) {
        threads_.emplace_back([this] { run(); }); // may throw: then nothing is queued
    }
    jobs_.push_back(std::move(job));
    cv_.notify_one();
    return submitted::queued;
}

void wait_pool::stop() {
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads) {
        if (t.get_id() != std::this_thread::get_id()) {
            t.join();
        } else {
            orphaned = true; // a job stopping its own manager: the thread ends after it
            t.detach();
        }
    }
}

std::size_t wait_pool::threads() const {
    std::lock_guard lock(mutex_);
    return threads_.size();
}

void wait_pool::run() {
    ::pthread_setname_np(::pthread_self(), name_.substr(0, 15).c_str());
    std::unique_lock lock(mutex_);
    for (;;) {
        ++idle_;
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        --idle_;
        if (jobs_.empty()) {
            return; // stopping, and nothing left
        }
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        try {
            job();
        } catch (const std::exception& e) {
            log()->error("{}: an asynchronous wait threw: {}", name_, e.what());
        } catch (...) {
            log()->error("{}: an asynchronous wait threw", name_);
        }
        job = nullptr; // destroyed outside the lock: it may hold a request scope
        if (orphaned) {
            return; // the pool may be gone
        }
        lock.lock();
    }
}

} // namespace troupe::managers::detail
