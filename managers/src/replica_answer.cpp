// SPDX-License-Identifier: Apache-2.0
#include "replication_core.hpp"

#include <troupe/transport/error.hpp>

#include "log.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <algorithm>
#include <thread>

namespace troupe::managers::detail {

namespace {
using membership::member;
using membership::member_id;
using steady = std::chrono::steady_clock;

/// Chunks of a state transfer in flight at once (each acknowledged once applied).
constexpr int transfer_window = 4;

/// The chunks of a state transfer in flight: at most transfer_window at once.
struct send_window {
    std::mutex mutex;
    std::condition_variable cv;
    int in_flight = 0;
    bool failed = false;
    std::string error;
};
} // namespace

// ---------------------------------------------------------------------------
// Answering

void replication_core::answer_get_sessions(const member& from, const std::vector<std::string>& ids) {
    const auto t = now();
    const auto limit = std::max<std::size_t>(
        4096, std::min(config().state_transfer_chunk_bytes, link_->max_message() - 1024));
    auto chunk = wire::counted_writer::session_data();
    auto send = [&](const std::vector<std::string>& missing) {
        counters_->full_copies_sent.fetch_add(chunk.count(), std::memory_order_relaxed);
        auto b = chunk.finish(missing);
        counters_->full_copy_bytes_sent.fetch_add(b.size(), std::memory_order_relaxed);
        link_->send({from.id}, std::move(b), engine::send_options::async, count_failures());
        chunk = wire::counted_writer::session_data();
    };
    std::vector<std::string> missing;
    for (const auto& id : ids) {
        auto s = find(id);
        if (!s) {
            missing.push_back(id);
            continue;
        }
        if (!chunk.empty() && chunk.size() + session_access::wire_size(*s) > limit) {
            send({});
        }
        if (!session_access::add_to(*s, chunk, t)) {
            missing.push_back(id);
        }
    }
    send(missing);
}

std::size_t replication_core::chunk_limit() const {
    return std::max<std::size_t>(4096, std::min(config().state_transfer_chunk_bytes, link_->max_message() - 1024));
}

void replication_core::answer_get_all(const member& from, const wire::get_all_msg& g) {
    if (stopping_) {
        link_->send({from.id}, wire::encode(wire::no_such_context_msg{g.request}), engine::send_options::async,
                    nullptr);
        return;
    }
    if (g.what == wire::get_all_msg::mode::full) {
        {
            std::lock_guard lock(repl_mutex_);
            if (catching_up_) {
                // Still receiving ours: answer once we have everything (Tribes drops
                // these, so two members starting together could miss each other).
                deferred_.emplace_back(from, g);
                return;
            }
        }
        answer_full(from, g);
        return;
    }
    // A digest: tombstones first, so that what ended here is not fetched back
    // from us, then every session's stamp. Both are read once the asker is
    // reachable (fill runs after the opening chunk): an id that ends before
    // then is in the tombstones, one that ends after reaches it as EXPIRED.
    const auto sent = stream_answer(from, g, [&](chunk_writer& chunk, const std::function<bool(std::size_t)>& room) {
        std::vector<wire::digest_entry> ended;
        {
            std::lock_guard lock(repl_mutex_);
            ended.reserve(tombstones_.size());
            for (const auto& [id, ts] : tombstones_) {
                ended.push_back({id, {ts.version, 0, 0}, true, ts.route, ts.to});
            }
        }
        for (const auto& e : ended) {
            if (!room(wire::digest_entry_size(e.id.size(), e.to.size()))) {
                return false;
            }
            chunk.add_digest(e);
        }
        for (std::size_t shard = 0; shard < session_store::shard_count && !stopping_; ++shard) {
            for (const auto& s : store().shard_snapshot(shard)) {
                const auto where = session_access::valid_stamp(*s);
                if (!where) {
                    continue;
                }
                if (!room(wire::digest_entry_size(wire::max_id))) {
                    return false;
                }
                chunk.add_digest({s->id(), *where, false});
            }
        }
        return true;
    });
    if (sent) {
        counters_->digest_entries_sent.fetch_add(*sent, std::memory_order_relaxed);
    }
}

std::optional<std::uint64_t> replication_core::stream_answer(
    const member& from, const wire::get_all_msg& g,
    const std::function<bool(chunk_writer& chunk, const std::function<bool(std::size_t)>& room)>& fill) {
    const auto t0 = steady::now();
    const auto full = g.what == wire::get_all_msg::mode::full;
    const char* what = full ? "state transfer" : "digest";
    // First make sure the asker is among our destinations: a member that asks
    // may not be connected from our side yet, and everything after the
    // snapshot must reach it.
    const auto give_up = t0 + std::min<std::chrono::milliseconds>(config().state_transfer_timeout,
                                                                  std::chrono::seconds(30));
    for (int attempt = 0;; ++attempt) {
        auto opening = full ? wire::encode(wire::all_data_msg{g.request, 0, {}})
                            : wire::encode(wire::digest_msg{g.request, 0, {}});
        auto waiter = std::make_shared<send_waiter>();
        waiter->expect(from.id);
        link_->send({from.id}, std::move(opening), engine::send_options::sync,
                    [waiter, m = from.id](engine::send_result r) { waiter->done(m, std::move(r)); });
        const bool answered = waiter->wait(link_->wait_limit());
        const auto r = waiter->result();
        const bool ok = answered && r.ok() && r.destinations > 0;
        const std::string why = r.ok() ? "not a destination yet" : r.describe();
        if (ok) {
            break;
        }
        if (stopping_ || steady::now() >= give_up) {
            log()->warn("context {}: could not reach {} to answer its {} request: {}", config().context,
                        describe(from), what, why);
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20 * (attempt + 1), 200)));
    }

    const auto limit = chunk_limit();
    auto window = std::make_shared<send_window>();
    std::uint32_t seq = 0;
    std::uint64_t total = 0;
    std::uint64_t bytes = 0;
    auto begin = [&] {
        ++seq;
        auto w = full ? wire::counted_writer::all_data(g.request, seq) : wire::counted_writer::digest(g.request, seq);
        w.reserve(limit + 4096);
        return w;
    };
    auto chunk = begin();
    auto flush = [&]() -> bool {
        if (chunk.empty()) {
            return true;
        }
        total += chunk.count();
        auto b = chunk.finish();
        bytes += b.size();
        (full ? counters_->transfer_bytes_sent : counters_->digest_bytes_sent)
            .fetch_add(b.size(), std::memory_order_relaxed);
        {
            std::unique_lock lock(window->mutex);
            if (!window->cv.wait_for(lock, link_->wait_limit(),
                                     [&] { return window->in_flight < transfer_window || window->failed; })) {
                window->failed = true;
                window->error = "no acknowledgement for a chunk";
            }
            if (window->failed) {
                return false;
            }
            ++window->in_flight;
        }
        // sync: each chunk is acknowledged once the asker installed it, which
        // paces us to its speed without filling the queue.
        link_->send({from.id}, std::move(b), engine::send_options::sync, [window](engine::send_result r) {
            std::lock_guard lock(window->mutex);
            --window->in_flight;
            if (!r.ok() && !window->failed) {
                window->failed = true;
                window->error = r.describe();
            }
            window->cv.notify_all();
        });
        chunk = begin();
        return true;
    };
    const auto room = [&](std::size_t size) { return chunk.empty() || chunk.size() + size <= limit || flush(); };
    bool ok = fill(chunk, room) && flush();
    {
        std::unique_lock lock(window->mutex);
        window->cv.wait_for(lock, link_->wait_limit(), [&] { return window->in_flight == 0 || window->failed; });
        ok = ok && !window->failed;
    }
    if (!ok) {
        std::string error;
        {
            std::lock_guard lock(window->mutex);
            error = window->error;
        }
        log()->warn("context {}: {} to {} failed after {} items: {}", config().context, what, describe(from), total,
                    error);
        return std::nullopt;
    }
    wire::transfer_complete_msg done{g.request, total, seq - 1};
    link_->send({from.id}, wire::encode(done), engine::send_options::async, count_failures());
    if (full) {
        log()->info("context {}: sent {} sessions in {} chunks ({} bytes) to {} in {} ms", config().context, total,
                    seq - 1, bytes, describe(from),
                    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0).count());
    }
    return total;
}

} // namespace troupe::managers::detail
