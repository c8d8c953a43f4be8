// SPDX-License-Identifier: Apache-2.0
#include "wait_pool.hpp"

#include "log.hpp"

#include <pthread.h>

namespace troupe::managers::detail {

wait_pool::wait_pool(std::string name, std::size_t max_threads)
    : name_(std::move(name))
    , max_threads_(max_threads == 0 ? 1 : max_threads) {}

wait_pool::~wait_pool() { stop(); }

bool wait_pool::submit(std::function<void()> job) {
    std::lock_guard lock(mutex_);
    if (stopping_) {
        return false;
    }
    jobs_.push_back(std::move(job));
    if (idle_ == 0 && threads_.size() < max_threads_) {
        threads_.emplace_back([this] { run(); });
    } else {
        cv_.notify_one();
    }
    return true;
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
            t.detach(); // a job stopping its own manager: the thread ends after it
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
        lock.lock();
    }
}

} // namespace troupe::managers::detail
