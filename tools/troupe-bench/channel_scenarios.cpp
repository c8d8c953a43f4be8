// SPDX-License-Identifier: Apache-2.0
#include "channel_scenarios.hpp"

#include "common/child_process.hpp"
#include "common/percentiles.hpp"
#include "raw.hpp"

#include <troupe/conf/cluster_config.hpp>
#include <troupe/conf/load.hpp>
#include <troupe/engine/channel.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <unistd.h>

namespace troupe::bench {
namespace {

using namespace std::chrono_literals;

const std::string bench_context = "bench";
constexpr auto ready_timeout = 10s;
constexpr auto join_timeout = 10s;
constexpr auto exit_timeout = 10s;
// A receiver that sees nothing new for this long reports what it has; the rest is lost.
constexpr std::int64_t idle_ns = 10'000'000'000;
// A count bound for --seconds runs; far beyond any rate loopback allows.
constexpr std::uint64_t max_messages = 1'000'000'000;
// A throughput run times one send in this many (see run_throughput).
constexpr std::uint64_t throughput_sample_every = 16;

conf::cluster_config
member_config(const std::string& cluster, const std::string& node, std::uint32_t io_threads) {
    conf::cluster_config c;
    c.cluster.name = cluster;
    c.cluster.node = node;
    c.receiver.address = "127.0.0.1";
    c.receiver.port = 0;
    c.receiver.threads = io_threads;
    c.admin.enabled = false;
    c.logging.level = "warn";
    return c;
}

// A config built in code goes through the same rules as a file.
void check_config(const conf::cluster_config& c) {
    auto diagnostics = conf::validate(c);
    if (!diagnostics.empty()) {
        throw conf::config_error(std::move(diagnostics));
    }
}

// ---------------------------------------------------------------------------
// Receiver role

struct delivery_counters {
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> warmup{0};
    std::atomic<std::int64_t> first_ns{0};
    std::atomic<std::int64_t> last_ns{0};
    std::atomic<std::uint64_t> bad_size{0};
    /// Every delivery from this count on is timed; before it, one in 64.
    std::atomic<std::uint64_t> time_all_from{std::numeric_limits<std::uint64_t>::max()};
};

// A receiver reads the clock for one delivery in this many until the expected
// count is near (the clock costs as much as a delivery on this VM). When the
// count is learnt only at the end (a --seconds run), last_ns may be up to this
// many deliveries early: microseconds in a run of seconds.
constexpr std::uint64_t receiver_time_every = 64;

void expect_deliveries(delivery_counters& c, std::uint64_t expect) {
    c.time_all_from.store(expect > receiver_time_every ? expect - receiver_time_every : 0);
}

void on_delivery(delivery_counters& c, std::size_t payload_size, std::size_t expected_size) {
    // The count this delivery will (very likely) take; exact with one I/O thread.
    const auto next = c.count.load(std::memory_order_relaxed) + 1;
    const bool first = next == c.warmup.load(std::memory_order_relaxed) + 1;
    if (first || next % receiver_time_every == 0 ||
        next >= c.time_all_from.load(std::memory_order_relaxed)) {
        const std::int64_t t = now_ns();
        // last_ns before count: whoever sees the final count also sees its time.
        // With several I/O threads deliveries may finish out of order: keep the latest.
        auto prev = c.last_ns.load();
        while (prev < t && !c.last_ns.compare_exchange_weak(prev, t)) {
        }
        if (first) {
            c.first_ns.store(t);
        }
    }
    c.count.fetch_add(1);
    if (payload_size != expected_size) {
        c.bad_size.fetch_add(1);
    }
}

/// Lines from our stdin (the sender's instructions), without blocking for long.
class stdin_lines {
public:
    /// nullopt when no complete line came within `timeout_ms`, or at EOF.
    std::optional<std::string> next(int timeout_ms) {
        for (int turn = 0; turn < 2; ++turn) {
            if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            if (eof_) {
                return std::nullopt;
            }
            pollfd p{STDIN_FILENO, POLLIN, 0};
            if (::poll(&p, 1, turn == 0 ? timeout_ms : 0) <= 0) {
                return std::nullopt;
            }
            char chunk[1024];
            const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
            if (n > 0) {
                buffer_.append(chunk, static_cast<std::size_t>(n));
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                eof_ = true;
            }
        }
        return std::nullopt;
    }

    bool eof() const noexcept { return eof_ && buffer_.find('\n') == std::string::npos; }

private:
    std::string buffer_;
    bool eof_ = false;
};

// ---------------------------------------------------------------------------
// Sender side

/// What the sender's send() calls returned.
struct send_tally {
    std::uint64_t sends = 0;
    std::uint64_t ok = 0;
    std::uint64_t failed_destinations = 0;
    std::map<std::string, std::uint64_t> failed_by_member;
    bool logged = false;

    void add(const engine::send_result& r) {
        ++sends;
        if (r.ok()) {
            ++ok;
            return;
        }
        failed_destinations += r.failures.size();
        for (const auto& f : r.failures) {
            ++failed_by_member[f.member.name];
        }
        // One line for the first failure; the rest only counts (a full queue fails
        // thousands of sends in a row).
        if (!logged) {
            spdlog::warn("send failed (later failures are only counted): {}", r.describe());
            logged = true;
        }
    }

    void merge(const send_tally& other) {
        sends += other.sends;
        ok += other.ok;
        failed_destinations += other.failed_destinations;
        for (const auto& [name, n] : other.failed_by_member) {
            failed_by_member[name] += n;
        }
    }
};

struct sender_run {
    std::uint64_t warmup = 0;            ///< warm-up sends (every one to every receiver)
    std::uint64_t measured = 0;          ///< measured sends
    std::uint64_t measured_ok = 0;       ///< measured sends that reported no failure
    std::int64_t first_ns = 0;           ///< just before the first measured send
    std::int64_t end_ns = 0;             ///< after the last measured send returned
    std::int64_t raw_ns = 0;             ///< of that window, spent in raw round trips
    bool truncated = false;              ///< the time limit stopped the sends early
    std::vector<std::int64_t> durations; ///< latency: of each measured send() call
    tools::ns_histogram sampled;         ///< throughput: of every sample_every-th call
    send_tally tally;                    ///< warm-up and measured
};

std::span<const std::byte> as_span(const std::vector<std::byte>& v) {
    return {v.data(), v.size()};
}

std::int64_t to_ns(double seconds) {
    return static_cast<std::int64_t>(seconds * 1e9);
}

/// One thread sends as fast as send() returns: for async that is as fast as the
/// per-member queues take messages (back-pressure blocks or fails per
/// sender.on_queue_full), for ack/sync one message at a time. A count run also
/// stops at the time limit: with a member gone, each send may block for
/// sender.block_timeout, and a million of those must not hold the run.
sender_run run_throughput(engine::channel& ch,
                          const channel_options& o,
                          const std::vector<std::byte>& payload) {
    sender_run run;
    const auto body = as_span(payload);
    const bool by_count = o.count > 0;
    // A --seconds run is bounded by its own clock; the limit only guards a count run.
    const auto give_up =
        now_ns() + to_ns(by_count ? o.time_limit : o.seconds * (1 + o.warmup_fraction) + 1);
    const std::uint64_t warmup_count =
        by_count ? static_cast<std::uint64_t>(static_cast<double>(o.count) * o.warmup_fraction)
                 : max_messages;
    const auto warmup_until = by_count ? give_up : now_ns() + to_ns(o.seconds * o.warmup_fraction);
    while (run.warmup < warmup_count) {
        const auto t = now_ns();
        if (t >= warmup_until || t >= give_up) {
            run.truncated = by_count;
            break;
        }
        run.tally.add(ch.send_all(body, o.options, bench_context));
        ++run.warmup;
    }
    const std::uint64_t limit = by_count ? o.count : max_messages;
    run.first_ns = now_ns();
    const auto until = by_count ? give_up : run.first_ns + to_ns(o.seconds);
    while (!run.truncated && run.measured < limit) {
        // Reading the clock costs as much as an async send on this VM: time (and
        // check the deadline) on every sample_every-th send only.
        const bool timed = run.measured % throughput_sample_every == 0;
        std::int64_t t0 = 0;
        if (timed) {
            t0 = now_ns();
            if (t0 >= until || t0 >= give_up) {
                run.truncated = by_count || t0 >= give_up;
                break;
            }
        }
        auto r = ch.send_all(body, o.options, bench_context);
        if (timed) {
            run.sampled.add(now_ns() - t0);
        }
        run.measured_ok += r.ok() ? 1 : 0;
        run.tally.add(r);
        ++run.measured;
    }
    run.end_ns = now_ns();
    return run;
}

struct caller_result {
    std::vector<std::int64_t> durations;
    std::uint64_t warmup = 0;
    std::uint64_t measured = 0;
    std::uint64_t measured_ok = 0;
    bool truncated = false;
    send_tally tally;
    std::int64_t end_ns = 0;
    std::int64_t raw_ns = 0; ///< spent in raw round trips between measured sends
    std::string error;
};

/// Slices of a lone caller's measured sends, with raw round trips between them.
constexpr std::size_t raw_slices = 10;

/// `callers` threads, each with one blocking send in flight at a time. They all
/// finish their warm-up before any measured send starts (a barrier), so the
/// measured window has all callers active from its first send. With `raw`, a lone
/// caller makes its sends in raw_slices slices, each after as many raw round trips.
sender_run run_latency(engine::channel& ch, const channel_options& o, const std::vector<std::byte>& payload,
                       raw_rtt2_slices* raw) {
    sender_run run;
    const auto body = as_span(payload);
    const std::size_t callers = o.callers;
    const auto give_up = now_ns() + to_ns(o.time_limit);
    std::vector<caller_result> results(callers);
    std::barrier start_line(static_cast<std::ptrdiff_t>(callers),
                            [&run]() noexcept { run.first_ns = now_ns(); });
    auto share = [callers](std::uint64_t total, std::size_t i) {
        return total / callers + (i < total % callers ? 1 : 0);
    };
    std::vector<std::thread> threads;
    threads.reserve(callers);
    for (std::size_t i = 0; i < callers; ++i) {
        threads.emplace_back([&, i] {
            auto& me = results[i];
            // No exception may leave the thread, and every thread must reach the
            // barrier, or the others would wait forever.
            try {
                const auto n = share(o.warmup, i);
                for (; me.warmup < n; ++me.warmup) {
                    if (now_ns() >= give_up) {
                        me.truncated = true;
                        break;
                    }
                    me.tally.add(ch.send_all(body, o.options, bench_context));
                }
            } catch (const std::exception& e) {
                me.error = e.what();
            }
            start_line.arrive_and_wait();
            try {
                const auto n = share(o.count, i);
                me.durations.reserve(n);
                const std::uint64_t slice = raw ? std::max<std::uint64_t>(1, n / raw_slices) : n;
                while (me.error.empty() && !me.truncated && me.measured < n) {
                    if (raw && me.measured % slice == 0) {
                        const auto r0 = now_ns();
                        raw->measure(static_cast<std::size_t>(std::min(slice, n - me.measured)));
                        me.raw_ns += now_ns() - r0;
                    }
                    const auto t0 = now_ns();
                    if (t0 >= give_up) {
                        me.truncated = true;
                        break;
                    }
                    auto r = ch.send_all(body, o.options, bench_context);
                    me.durations.push_back(now_ns() - t0);
                    me.measured_ok += r.ok() ? 1 : 0;
                    me.tally.add(r);
                    ++me.measured;
                }
            } catch (const std::exception& e) {
                me.error = e.what();
            }
            me.end_ns = now_ns();
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (auto& me : results) {
        if (!me.error.empty()) {
            throw std::runtime_error("caller thread failed: " + me.error);
        }
        run.warmup += me.warmup;
        run.measured += me.measured;
        run.measured_ok += me.measured_ok;
        run.truncated = run.truncated || me.truncated;
        run.end_ns = std::max(run.end_ns, me.end_ns);
        run.raw_ns += me.raw_ns;
        run.durations.insert(run.durations.end(), me.durations.begin(), me.durations.end());
        run.tally.merge(me.tally);
    }
    return run;
}

struct receiver_process {
    tools::child_process process;
    std::string name;
    std::uint16_t port = 0;
};

std::vector<receiver_process> start_receivers(const channel_options& o,
                                              const std::string& cluster,
                                              std::uint64_t expect,
                                              std::uint64_t warmup,
                                              unsigned max_seconds) {
    std::vector<receiver_process> rx;
    rx.reserve(o.receivers);
    // All spawned first, then the ready lines read, so their start-ups overlap.
    for (std::size_t i = 1; i <= o.receivers; ++i) {
        auto p = tools::child_process::spawn(
            {self_exe, "_receiver", "--index", std::to_string(i), "--cluster", cluster, "--size",
             std::to_string(o.size), "--expect", std::to_string(expect), "--warmup",
             std::to_string(warmup), "--io-threads", std::to_string(o.io_threads), "--max-seconds",
             std::to_string(max_seconds), "--parent", std::to_string(::getpid())},
            /*pipe_stdin=*/true);
        rx.push_back({std::move(p), "rx" + std::to_string(i), 0});
    }
    for (auto& r : rx) {
        const auto ready = await_json(r.process, "ready", ready_timeout);
        if (!ready || !ready->contains("port")) {
            throw std::runtime_error("receiver " + r.name + " (pid " +
                                     std::to_string(r.process.pid()) +
                                     ") sent no ready line within 10 s");
        }
        r.port = ready->at("port").get<std::uint16_t>();
    }
    return rx;
}

/// Waits (bounded) until the sender sees every receiver as a member. Woken by
/// member events; members() is read without our lock held, since the channel
/// calls the member listener (which takes it) from its own strand.
void await_members(engine::channel& ch,
                   std::size_t n,
                   std::mutex& mutex,
                   std::condition_variable& changed,
                   const std::uint64_t& generation) {
    const auto deadline = std::chrono::steady_clock::now() + join_timeout;
    for (;;) {
        std::uint64_t seen = 0;
        {
            std::lock_guard lock(mutex);
            seen = generation;
        }
        const auto have = ch.members().size();
        if (have >= n) {
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            throw std::runtime_error("only " + std::to_string(have) + " of " + std::to_string(n) +
                                     " receivers joined within 10 s");
        }
        std::unique_lock lock(mutex);
        changed.wait_until(lock, std::min(deadline, now + 100ms),
                           [&] { return generation != seen; });
    }
}

} // namespace

int receiver_main(flag_parser& flags) {
    std::size_t index = 0;
    std::size_t size = 0;
    std::uint64_t expect_arg = 0;
    std::uint64_t warmup = 0;
    std::uint32_t io_threads = 1;
    unsigned max_seconds = 900;
    std::string cluster;
    pid_t parent = 0;
    while (flags.next()) {
        if (flags.is("--index")) {
            index = flags.integer<std::size_t>(1, 1000);
        } else if (flags.is("--cluster")) {
            cluster = flags.value();
        } else if (flags.is("--size")) {
            size = flags.integer<std::size_t>(0, std::size_t{1} << 30);
        } else if (flags.is("--expect")) {
            expect_arg = flags.integer<std::uint64_t>(0, max_messages * 2);
        } else if (flags.is("--warmup")) {
            warmup = flags.integer<std::uint64_t>(0, max_messages * 2);
        } else if (flags.is("--io-threads")) {
            io_threads = flags.integer<std::uint32_t>(1, 64);
        } else if (flags.is("--max-seconds")) {
            max_seconds = flags.integer<unsigned>(1, 86400);
        } else if (flags.is("--parent")) {
            parent = flags.integer<pid_t>(1, INT32_MAX);
        } else {
            flags.unknown();
        }
    }
    if (cluster.empty() || index == 0 || parent == 0) {
        throw usage_error("_receiver: --cluster, --index and --parent are required");
    }
    die_with_parent(parent);
    // Backstop past the loop's own deadline, for a start() or stop() that hangs.
    ::alarm(max_seconds + 30);

    // Declared before the channel, so the channel (and its I/O threads, which run
    // the listener) is gone before the counters are.
    delivery_counters counters;
    counters.warmup = warmup;
    // 0 on the command line: the sender will tell us (a --seconds run).
    std::optional<std::uint64_t> expect;
    if (expect_arg > 0) {
        expect = expect_arg;
        expect_deliveries(counters, *expect);
    }

    auto config = member_config(cluster, "rx" + std::to_string(index), io_threads);
    check_config(config);
    engine::channel ch(config);
    ch.add_listener(bench_context, [&counters, size](const engine::received_message& m) {
        on_delivery(counters, m.payload.size(), size);
    });
    ch.start();
    emit_line({{"ready", true}, {"port", ch.port()}});

    const std::int64_t hard_deadline =
        now_ns() + static_cast<std::int64_t>(max_seconds) * 1'000'000'000;
    std::int64_t progress_at = 0; // idle clock: starts at the first delivery or instruction
    std::uint64_t seen = 0;
    stdin_lines in;
    // Bounded: each turn waits at most 20 ms, and the hard deadline ends the loop.
    for (;;) {
        const auto n = counters.count.load();
        const auto t = now_ns();
        if (expect && n >= *expect) {
            break;
        }
        if (t >= hard_deadline) {
            spdlog::warn("rx{}: deadline of {} s reached with {} messages", index, max_seconds, n);
            break;
        }
        if (n != seen) {
            seen = n;
            progress_at = t;
        }
        if (progress_at != 0 && t - progress_at > idle_ns) {
            spdlog::warn("rx{}: nothing new for 10 s; reporting {} of {} messages", index, n,
                         expect ? std::to_string(*expect) : std::string("?"));
            break;
        }
        if (in.eof()) {
            break; // the sender closed our stdin: it wants the report now
        }
        if (auto line = in.next(20)) {
            const auto j = nlohmann::json::parse(*line, nullptr, false);
            const auto number = [&j](const char* key) -> std::optional<std::uint64_t> {
                if (!j.is_object() || !j.contains(key) || !j.at(key).is_number_unsigned()) {
                    return std::nullopt;
                }
                return j.at(key).get<std::uint64_t>();
            };
            if (const auto e = number("expect")) {
                expect = *e;
                expect_deliveries(counters, *e);
                progress_at = t;
            }
            if (const auto w = number("warmup")) {
                counters.warmup = *w;
            }
        }
    }

    nlohmann::json done{{"done", true},
                        {"first_ns", counters.first_ns.load()},
                        {"last_ns", counters.last_ns.load()},
                        {"count", counters.count.load()},
                        {"bad_size", counters.bad_size.load()},
                        {"peak_rss_kib", tools::peak_rss_kib_self()}};
    if (expect) {
        done["expected"] = *expect;
    }
    emit_line(done);
    // Leave after the sender: it closes our stdin once it has stopped, so its
    // stop() does not meet peers that are already gone. Bounded, in case it never does.
    const auto leave_by = now_ns() + static_cast<std::int64_t>(15'000'000'000);
    while (!in.eof() && now_ns() < leave_by) {
        in.next(50);
    }
    ch.stop();
    return 0;
}

nlohmann::json run_channel_scenario(const channel_options& o) {
    const bool latency = o.scenario == channel_scenario::latency;
    nlohmann::json raw;
    if (o.with_raw) {
        // Before any member starts, so the two measurements do not compete for CPU.
        spdlog::info("measuring the loopback limit (--no-raw skips it)");
        raw = raw_summary(measure_raw(embedded_raw_options(o.size)));
    }

    const std::string cluster = "bench-" + std::to_string(::getpid());
    std::uint64_t planned_warmup = 0;
    if (latency) {
        planned_warmup = o.warmup;
    } else if (o.count > 0) {
        planned_warmup =
            static_cast<std::uint64_t>(static_cast<double>(o.count) * o.warmup_fraction);
    }
    // With --seconds the count is known only at the end; receivers then learn it
    // from their stdin, like every receiver learns the final count (minus failures).
    const std::uint64_t expect = o.count > 0 ? planned_warmup + o.count : 0;
    // Receivers outlive the sender's own limit, so they are there to report.
    const unsigned max_seconds =
        o.count > 0 ? static_cast<unsigned>(std::ceil(o.time_limit)) + 120u
                    : static_cast<unsigned>(std::ceil(o.seconds * (1 + o.warmup_fraction))) + 120u;
    const auto receivers_deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(max_seconds + 15);

    auto rx = start_receivers(o, cluster, expect, planned_warmup, max_seconds);

    auto config = member_config(cluster, "tx", o.io_threads);
    for (const auto& r : rx) {
        config.membership.static_members.push_back({"127.0.0.1", r.port});
    }
    check_config(config);

    std::mutex mutex;
    std::condition_variable changed;
    std::uint64_t generation = 0;
    sender_run run;
    long sender_rss = 0;
    std::vector<std::optional<nlohmann::json>> reports(rx.size());
    std::vector<std::uint64_t> expected(rx.size(), 0);
    {
        engine::channel ch(config);
        ch.add_member_listener([&](const membership::member&) {
            {
                std::lock_guard lock(mutex);
                ++generation;
            }
            changed.notify_all();
        });
        ch.start();
        await_members(ch, rx.size(), mutex, changed, generation);
        spdlog::info("{} receivers joined; sending", rx.size());

        std::vector<std::byte> payload(o.size);
        for (std::size_t i = 0; i < payload.size(); ++i) {
            payload[i] = static_cast<std::byte>(i * 31 + 7);
        }
        // A lone caller's latency is compared with raw round trips measured
        // between its own sends (see raw_rtt2_slices).
        std::optional<raw_rtt2_slices> raw_slices_run;
        if (latency && o.with_raw && o.callers == 1) {
            raw_slices_run.emplace(o.size, o.count + 1);
        }
        run = latency ? run_latency(ch, o, payload, raw_slices_run ? &*raw_slices_run : nullptr)
                      : run_throughput(ch, o, payload);
        if (raw_slices_run) {
            auto samples = raw_slices_run->samples(); // summarize_ns sorts in place
            const auto rtt2 = tools::summarize_ns(samples);
            raw_slices_run->finish(); // their memory is not a member's: not in peak_rss_kib
            raw["rtt2_before_p50_us"] = raw["rtt2_p50_us"];
            raw["rtt2_before_p99_us"] = raw["rtt2_p99_us"];
            raw["rtt2_p50_us"] = rtt2.p50_us;
            raw["rtt2_p99_us"] = rtt2.p99_us;
            raw["rtt2_round_trips"] = samples.size();
            raw["rtt2_interleaved"] = true;
        }
        if (run.truncated) {
            spdlog::warn("time limit of {} s reached after {} measured sends (--time-limit)",
                         o.time_limit, run.measured);
        }

        // Each receiver stops as soon as it has every message that reached its
        // queue, instead of waiting out the idle timeout for failed ones.
        for (std::size_t i = 0; i < rx.size(); ++i) {
            const auto it = run.tally.failed_by_member.find(rx[i].name);
            const std::uint64_t failed = it == run.tally.failed_by_member.end() ? 0 : it->second;
            const std::uint64_t total = run.warmup + run.measured;
            expected[i] = total > failed ? total - failed : 0;
            rx[i].process.write_line(
                nlohmann::json{{"expect", expected[i]}, {"warmup", run.warmup}}.dump());
        }
        for (std::size_t i = 0; i < rx.size(); ++i) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                receivers_deadline - std::chrono::steady_clock::now());
            reports[i] = await_json(rx[i].process, "done", std::max(left, 0ms));
            if (!reports[i]) {
                spdlog::error("receiver {} (pid {}) did not report", rx[i].name,
                              rx[i].process.pid());
            }
        }
        sender_rss = tools::peak_rss_kib_self();
        ch.stop();
    }
    for (auto& r : rx) {
        r.process.close_stdin();
        if (r.process.wait(exit_timeout) != 0) {
            spdlog::warn("receiver {} (pid {}) did not exit cleanly", r.name, r.process.pid());
        }
    }

    // Per receiver, as the Tribes harness measured: measured messages delivered /
    // (its last delivery - the sender's first measured send).
    nlohmann::json per_receiver = nlohmann::json::array();
    std::uint64_t lost = 0;
    long receiver_rss = 0;
    double min_rate = -1;
    double max_span = 0;
    for (std::size_t i = 0; i < rx.size(); ++i) {
        nlohmann::json item{{"name", rx[i].name}};
        std::uint64_t count = 0;
        double span = 0;
        if (reports[i]) {
            count = reports[i]->value("count", std::uint64_t{0});
            const auto last_ns = reports[i]->value("last_ns", std::int64_t{0});
            span = static_cast<double>(last_ns - run.first_ns) / 1e9;
            receiver_rss = std::max(receiver_rss, reports[i]->value("peak_rss_kib", 0L));
            item["peak_rss_kib"] = reports[i]->value("peak_rss_kib", 0L);
            item["bad_size"] = reports[i]->value("bad_size", std::uint64_t{0});
        }
        const std::uint64_t delivered = count > run.warmup ? count - run.warmup : 0;
        const double rate = span > 0 ? static_cast<double>(delivered) / span : 0;
        lost += expected[i] > count ? expected[i] - count : 0;
        min_rate = min_rate < 0 ? rate : std::min(min_rate, rate);
        max_span = std::max(max_span, span);
        item["count"] = count;
        item["expected"] = expected[i];
        item["msgs_per_sec"] = round_to(rate, 1);
        item["seconds"] = round_to(span, 4);
        per_receiver.push_back(std::move(item));
    }

    const double send_seconds = static_cast<double>(run.end_ns - run.first_ns - run.raw_ns) / 1e9;
    double msgs_per_sec = 0;
    double seconds = 0;
    if (latency) {
        seconds = send_seconds;
        msgs_per_sec = seconds > 0 ? static_cast<double>(run.measured_ok) / seconds : 0;
    } else {
        seconds = max_span;
        msgs_per_sec = std::max(min_rate, 0.0);
    }
    const auto durations = latency ? tools::summarize_ns(run.durations) : run.sampled.summary();

    nlohmann::json out;
    out["scenario"] = latency ? "latency" : "throughput";
    out["options"] = o.options_name;
    out["size"] = o.size;
    out["receivers"] = o.receivers;
    out["callers"] = latency ? o.callers : 1;
    out["messages"] = run.measured;
    out["warmup"] = run.warmup;
    out["seconds"] = round_to(seconds, 4);
    out["msgs_per_sec"] = round_to(msgs_per_sec, 1);
    out["mb_per_sec"] = round_to(msgs_per_sec * static_cast<double>(o.size) / 1e6, 3);
    out["p50_us"] = durations.p50_us;
    out["p90_us"] = durations.p90_us;
    out["p99_us"] = durations.p99_us;
    out["p999_us"] = durations.p999_us;
    out["max_us"] = durations.max_us;
    if (!latency) {
        out["timed_every"] = throughput_sample_every; // percentiles of 1 send in N
    }
    out["sender_msgs_per_sec"] =
        round_to(send_seconds > 0 ? static_cast<double>(run.measured) / send_seconds : 0, 1);
    out["send_failures"] = run.tally.failed_destinations;
    out["truncated"] = run.truncated;
    out["lost"] = lost;
    out["peak_rss_kib"] = std::max(sender_rss, receiver_rss);
    out["sender_peak_rss_kib"] = sender_rss;
    out["receiver_peak_rss_kib"] = receiver_rss;
    out["io_threads"] = o.io_threads;
    out["per_receiver"] = std::move(per_receiver);
    if (!o.cpus.empty()) {
        out["cpus"] = o.cpus;
    }
    if (o.with_raw) {
        out["raw"] = std::move(raw);
    }
    return out;
}

} // namespace troupe::bench
