// SPDX-License-Identifier: Apache-2.0
#include "reader_threads.hpp"

#include "log.hpp"

#include <system_error>

namespace troupe::transport {

reader_threads::~reader_threads() {
    // Every body holds what owns this object, so by now they have all returned
    // (or this is the last one, destroying us from its own thread).
    for (auto& e : threads_) {
        if (e.thread.get_id() == std::this_thread::get_id()) {
            e.thread.detach();
        } else if (e.thread.joinable()) {
            e.thread.join();
        }
    }
}

void reader_threads::reap_locked() {
    for (auto it = threads_.begin(); it != threads_.end();) {
        if (it->done->load(std::memory_order_acquire)) {
            it->thread.join(); // returning from its body: a matter of microseconds
            it = threads_.erase(it);
        } else {
            ++it;
        }
    }
}

bool reader_threads::has_room() {
    // Asked on every read of a connection over the limit: no lock when full.
    if (active_.load(std::memory_order_relaxed) >= limit_) {
        return false;
    }
    std::lock_guard lock(mutex_);
    reap_locked();
    return !closed_ && active_.load(std::memory_order_relaxed) < limit_;
}

bool reader_threads::start(std::function<void()> body) {
    std::lock_guard lock(mutex_);
    reap_locked();
    if (closed_ || active_.load(std::memory_order_relaxed) >= limit_) {
        return false;
    }
    try {
        // The node first: once the thread runs, nothing may fail any more.
        auto& e = threads_.emplace_back();
        try {
            e.thread = std::thread([body = std::move(body), done = e.done]() mutable {
                body();
                body = nullptr; // what it holds goes before the thread counts as done
                done->store(true, std::memory_order_release);
            });
        } catch (...) {
            threads_.pop_back();
            throw;
        }
    } catch (const std::exception& ex) { // std::system_error from the thread, bad_alloc
        log()->warn("cannot start a reader thread ({}); the connection stays on the I/O threads",
                    ex.what());
        return false;
    }
    active_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void reader_threads::leave() {
    std::lock_guard lock(mutex_);
    active_.fetch_sub(1, std::memory_order_relaxed);
}

void reader_threads::close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
}

void reader_threads::join_all() {
    std::list<entry> all;
    {
        std::lock_guard lock(mutex_);
        all.swap(threads_);
    }
    for (auto& e : all) {
        if (e.thread.get_id() == std::this_thread::get_id()) {
            e.thread.detach(); // stop() from a listener: it cannot wait for itself
        } else {
            e.thread.join();
        }
    }
}

} // namespace troupe::transport
