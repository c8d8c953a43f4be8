// SPDX-License-Identifier: Apache-2.0
#include "delta_manager.hpp"

#include <troupe/transport/error.hpp>

#include "log.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace troupe::managers::detail {

namespace {

using membership::member;
using membership::member_id;
using steady = std::chrono::steady_clock;

} // namespace

std::vector<member_id> delta_manager::destinations(const session& s) const {
    (void)s;
    return {}; // every member
}

// ---------------------------------------------------------------------------
// State transfer, joiner side

void delta_manager::begin_catch_up_locked(actions& a) { start_transfer_locked(a); }

void delta_manager::start_transfer_locked(actions& a) {
    if (transfer_done_ || stopping_) {
        return;
    }
    std::vector<member> candidates;
    for (const auto& m : link_->members()) {
        if (older(m) && tried_.count(m.id) == 0 && m.state == membership::member_state::alive) {
            candidates.push_back(m);
        }
    }
    if (candidates.empty()) {
        if (catching_up_) {
            finish_transfer_locked(false, "no other member to ask", a);
        }
        return;
    }
    std::sort(candidates.begin(), candidates.end(), [](const member& x, const member& y) {
        return std::tie(x.incarnation, x.id) < std::tie(y.incarnation, y.id);
    });
    if (!catching_up_) {
        catching_up_ = true;
        catch_up_started_ = steady_now();
        transfer_.started = catch_up_started_;
        transfer_.sessions = 0;
        transfer_.chunks = 0;
        transfer_.bytes = 0;
    }
    transfer_.source = candidates.front();
    transfer_.state = "running";
    transfer_.retry_at.reset();
    ask_source_locked(a);
    log()->info("context {}: asking {} for every session", config().context, describe(transfer_.source));
}

void delta_manager::ask_source_locked(actions& a) {
    transfer_.request = random_request();
    a.then.push_back([this, life = lifetime_, request = transfer_.request, source = transfer_.source.id] {
        wire::get_all_msg g{request, wire::get_all_msg::mode::full};
        // sync: a member without this context answers with a NACK (no listener)
        // at once, instead of leaving us to wait out the timeout.
        link_->send({source}, wire::encode(g), engine::send_options::sync,
                    [this, life, request](engine::send_result r) {
                        if (r.ok()) {
                            return;
                        }
                        std::shared_lock lock(life->mutex);
                        if (life->open) {
                            transfer_send_failed(request, r);
                        }
                    });
    });
}

void delta_manager::transfer_send_failed(std::uint64_t request, const engine::send_result& r) {
    actions a;
    {
        std::lock_guard lock(repl_mutex_);
        if (!catching_up_ || transfer_.request != request) {
            return;
        }
        const bool no_context = std::any_of(r.failures.begin(), r.failures.end(), [](const auto& f) {
            return f.ec == transport::error::no_listener;
        });
        if (no_context) {
            next_source_locked(describe(transfer_.source) + " has no manager for context '" + config().context +
                                   "'",
                               a);
        } else {
            // Most often the source is known but our stream to it is not up yet:
            // ask it again shortly (the transfer timeout bounds the whole).
            SPDLOG_LOGGER_DEBUG(log(), "context {}: asking {} failed ({}); retrying", config().context,
                                describe(transfer_.source), r.describe());
            transfer_.retry_at = steady_now() + std::chrono::milliseconds(200);
        }
    }
    run(a);
}

void delta_manager::next_source_locked(const std::string& why, actions& a) {
    log()->info("context {}: state transfer: {}; trying another member", config().context, why);
    tried_.insert(transfer_.source.id);
    transfer_.detail = why;
    start_transfer_locked(a);
}

void delta_manager::finish_transfer_locked(bool ok, const std::string& why, actions& a) {
    const auto t = steady_now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - transfer_.started).count();
    if (ok) {
        log()->info("context {}: state transfer from {} done: {} sessions in {} chunks ({} bytes) in {} ms; "
                    "replaying {} queued messages",
                    config().context, describe(transfer_.source), transfer_.sessions, transfer_.chunks,
                    transfer_.bytes, ms, queue_.size());
        transfer_.state = "done";
    } else {
        log()->warn("context {}: state transfer {} after {} ms: {}; received {} sessions in {} chunks from {}, "
                    "no transfer-complete; replaying {} queued messages, fetching the rest as needed",
                    config().context, why == "timed out" ? "timed out" : "failed", ms, why, transfer_.sessions,
                    transfer_.chunks, transfer_.source.name.empty() ? "nobody" : describe(transfer_.source),
                    queue_.size());
        transfer_.state = why == "timed out" ? "timed_out" : "failed";
        transfer_.detail = transfer_.detail.empty() ? why : transfer_.detail + "; " + why;
    }
    transfer_.finished = t;
    transfer_done_ = true;
    // The source's digest is not needed: we hold what it sent. After a
    // failed transfer every member is asked.
    end_catch_up_locked(ok ? transfer_.source.id : member_id{}, a);
}

bool delta_manager::catch_up_message_locked(const member& from, wire::message& m, std::size_t bytes, actions& a) {
    if (!catching_up_) {
        return false;
    }
    switch (wire::type_of(m)) {
    case wire::msg_type::all_data: {
        auto& d = std::get<wire::all_data_msg>(m);
        if (d.request != transfer_.request) {
            return false;
        }
        if (d.seq == 0) {
            return true; // the opening chunk: the source can reach us
        }
        ++transfer_.chunks;
        transfer_.bytes += bytes;
        counters_->transfer_chunks_received.fetch_add(1, std::memory_order_relaxed);
        for (const auto& f : d.sessions) {
            install_locked(f, install_mode::if_wins, a);
            ++transfer_.sessions;
        }
        return true;
    }
    case wire::msg_type::transfer_complete: {
        const auto& c = std::get<wire::transfer_complete_msg>(m);
        if (c.request != transfer_.request) {
            return false; // a digest's end: it queues behind the digest's chunks
        }
        if (c.sessions != transfer_.sessions) {
            log()->warn("context {}: state transfer from {} announced {} sessions, {} arrived", config().context,
                        describe(from), c.sessions, transfer_.sessions);
        }
        finish_transfer_locked(true, {}, a);
        return true;
    }
    case wire::msg_type::no_such_context: {
        if (std::get<wire::no_such_context_msg>(m).request != transfer_.request) {
            return false;
        }
        next_source_locked(describe(from) + " has no manager for this context", a);
        return true;
    }
    default: return false;
    }
}

void delta_manager::member_alive_locked(const member& m, actions& a) {
    if (!transfer_done_ && !catching_up_ && older(m)) {
        start_transfer_locked(a);
    }
}

void delta_manager::member_departed_locked(const member& m, actions& a) {
    if (catching_up_ && transfer_.source.id == m.id) {
        next_source_locked(describe(m) + " left", a);
    }
}

void delta_manager::catch_up_housekeeping_locked(steady::time_point t, actions& a) {
    if (!catching_up_) {
        return;
    }
    if (t - transfer_.started > config().state_transfer_timeout) {
        finish_transfer_locked(false, "timed out", a);
    } else if (transfer_.retry_at && t >= *transfer_.retry_at) {
        transfer_.retry_at.reset();
        ask_source_locked(a);
    }
}

// ---------------------------------------------------------------------------
// State transfer, source side

void delta_manager::answer_full(const member& from, const wire::get_all_msg& g) {
    const auto t = now();
    const auto max = link_->max_message() - 64;
    const auto sent = stream_answer(from, g, [&](chunk_writer& chunk, const std::function<bool(std::size_t)>& room) {
        for (std::size_t shard = 0; shard < session_store::shard_count && !stopping_; ++shard) {
            for (const auto& s : store().shard_snapshot(shard)) {
                const auto size = session_access::wire_size(*s);
                if (size > max) {
                    log()->error("context {}: session {} ({} bytes) exceeds channel.max_message: not "
                                 "transferred to {}",
                                 config().context, s->id(), size, describe(from));
                    continue;
                }
                if (!room(size)) {
                    return false;
                }
                (void)session_access::add_to(*s, chunk, t);
            }
        }
        return true;
    });
    if (sent) {
        counters_->transfers_answered.fetch_add(1, std::memory_order_relaxed);
        counters_->transfer_sessions_sent.fetch_add(*sent, std::memory_order_relaxed);
    }
}

void delta_manager::add_catch_up_stats_locked(nlohmann::json& j) const {
    auto& t = j["state_transfer"];
    t["state"] = discovering_ ? "discovering" : transfer_.state;
    t["source"] = transfer_.source.name;
    t["sessions"] = transfer_.sessions;
    t["chunks"] = transfer_.chunks;
    t["bytes"] = transfer_.bytes;
    t["queued"] = queue_.size();
    t["detail"] = transfer_.detail;
    if (transfer_.state != "none") {
        const auto end = catching_up_ ? steady_now() : transfer_.finished;
        t["duration_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(end - transfer_.started).count();
    }
}

} // namespace troupe::managers::detail
