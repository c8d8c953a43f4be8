// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

namespace troupe::transport {

/// The threads that read member connections of their own (receiver.reader_threads):
/// at most `limit` bodies at a time; a body frees its slot with leave() as its last
/// act. A finished thread is joined by the next start() or by join_all(), so none is
/// left running unjoined (but see join_all()).
///
/// @par Thread safety
/// Every member from any thread. join_all() from one of these threads cannot wait
/// for that one: it is detached, and its body must stop on its own (the receiver's
/// readers stop delivering once the receiver is stopped).
class reader_threads {
public:
    explicit reader_threads(std::size_t limit) : limit_(limit) {}
    ~reader_threads();
    reader_threads(const reader_threads&) = delete;
    reader_threads& operator=(const reader_threads&) = delete;

    /// Whether start() would find room now (it checks again).
    bool has_room();
    /// Runs `body` on a new thread, unless the limit is reached, close() was
    /// called or the system refuses a thread; false then, and `body` is not run.
    /// A body that was started must call leave() once, when it no longer reads.
    bool start(std::function<void()> body);
    void leave();
    /// No thread starts after this; returns at once.
    void close();
    /// Waits for every thread started (call close() first, and make their bodies end).
    void join_all();


private:
    struct entry {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
    };
    void reap_locked();

    const std::size_t limit_;
    std::mutex mutex_;
    std::list<entry> threads_;
    /// Bodies started that have not left: changed under the mutex, read without
    /// it by has_room()'s first look.
    std::atomic<std::size_t> active_{0};
    bool closed_ = false;
};

} // namespace troupe::transport
