// SPDX-License-Identifier: Apache-2.0
#include "raw.hpp"

#include "common/child_process.hpp"
#include "common/percentiles.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace troupe::bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t stream_chunk = 256 * 1024;
constexpr auto ready_timeout = 10s;
constexpr auto done_timeout = 10s;
constexpr auto exit_timeout = 5s;
// Client sockets time out, so a stalled server fails the run instead of hanging it.
constexpr int io_timeout_seconds = 10;
// Far above what loopback can carry in a second; only there so the loop has a count bound.
constexpr std::uint64_t max_chunks_per_second = 100000;

class unique_fd {
public:
    unique_fd() = default;

    explicit unique_fd(int fd) noexcept
        : fd_(fd) {}

    unique_fd(unique_fd&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)) {}

    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }

    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;

    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }

    void reset() noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    int fd_ = -1;
};

[[noreturn]] void fail(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

void set_nodelay(int fd) {
    const int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        fail("setsockopt(TCP_NODELAY)");
    }
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

unique_fd connect_loopback(std::uint16_t port) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        fail("socket");
    }
    const timeval tv{io_timeout_seconds, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); // bounds connect() too
    const sockaddr_in a = loopback(port);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        fail("connect 127.0.0.1:" + std::to_string(port));
    }
    set_nodelay(fd.get());
    return fd;
}

unique_fd listen_loopback(std::uint16_t& port) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        fail("socket");
    }
    sockaddr_in a = loopback(0);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        fail("bind 127.0.0.1:0");
    }
    if (::listen(fd.get(), 1) != 0) {
        fail("listen");
    }
    socklen_t len = sizeof a;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        fail("getsockname");
    }
    port = ntohs(a.sin_port);
    return fd;
}

/// false on EOF before `buf` is full.
bool read_full(int fd, std::span<std::byte> buf) {
    std::size_t got = 0;
    while (got < buf.size()) {
        const ssize_t n = ::recv(fd, buf.data() + got, buf.size() - got, 0);
        if (n > 0) {
            got += static_cast<std::size_t>(n);
        } else if (n == 0) {
            return false;
        } else if (errno != EINTR) {
            fail("recv");
        }
    }
    return true;
}

void write_full(int fd, std::span<const std::byte> buf) {
    std::size_t put = 0;
    while (put < buf.size()) {
        // MSG_NOSIGNAL: a server that died is an error to report, not a SIGPIPE.
        const ssize_t n = ::send(fd, buf.data() + put, buf.size() - put, MSG_NOSIGNAL);
        if (n >= 0) {
            put += static_cast<std::size_t>(n);
        } else if (errno != EINTR) {
            fail("send");
        }
    }
}

struct server {
    tools::child_process process;
    std::uint16_t port = 0;
};

server start_server(const std::string& mode, std::size_t size, std::uint64_t rounds) {
    auto process = tools::child_process::spawn(
        {self_exe, "_raw-server", "--mode", mode, "--size", std::to_string(size), "--rounds",
         std::to_string(rounds), "--parent", std::to_string(::getpid())});
    const auto ready = await_json(process, "ready", ready_timeout);
    if (!ready || !ready->contains("port")) {
        throw std::runtime_error("raw " + mode + " server (pid " + std::to_string(process.pid()) +
                                 ") sent no ready line within 10 s");
    }
    return {std::move(process), ready->at("port").get<std::uint16_t>()};
}

/// The server prints its "done" line when it sees EOF, then exits.
nlohmann::json finish_server(server& s, const std::string& mode) {
    auto done = await_json(s.process, "done", done_timeout);
    const auto code = s.process.wait(exit_timeout);
    if (!done) {
        throw std::runtime_error("raw " + mode + " server (pid " + std::to_string(s.process.pid()) +
                                 ") did not report");
    }
    if (code != 0) {
        spdlog::warn("raw {} server (pid {}) exited with {}", mode, s.process.pid(),
                     code ? std::to_string(*code) : std::string("nothing (still running)"));
    }
    return *done;
}

struct rtt_result {
    tools::latency_summary summary;
    double round_trips_per_sec = 0;
};

/// Writes `out` to every server, then reads every reply; returns the nanoseconds taken.
std::int64_t round_trip(std::span<const int> fds, std::span<const std::byte> out, std::span<std::byte> in) {
    const auto start = now_ns();
    for (const int fd : fds) {
        write_full(fd, out);
    }
    for (const int fd : fds) {
        if (!read_full(fd, in)) {
            throw std::runtime_error("raw echo server closed the connection");
        }
    }
    return now_ns() - start;
}

/// One sample = write `size` bytes to every server, then read every reply.
rtt_result round_trips(std::span<const int> fds, const raw_options& o) {
    std::vector<std::byte> out(o.size, std::byte{0x5a});
    std::vector<std::byte> in(o.size);
    std::vector<std::int64_t> samples;
    samples.reserve(o.count);
    std::int64_t begin = now_ns();
    for (std::size_t k = 0; k < o.warmup + o.count; ++k) {
        if (k == o.warmup) {
            begin = now_ns();
        }
        const auto took = round_trip(fds, out, in);
        if (k >= o.warmup) {
            samples.push_back(took);
        }
    }
    const double seconds = static_cast<double>(now_ns() - begin) / 1e9;
    rtt_result r;
    r.summary = tools::summarize_ns(samples);
    r.round_trips_per_sec = seconds > 0 ? static_cast<double>(o.count) / seconds : 0;
    return r;
}

void put_rtt(nlohmann::json& out, const std::string& prefix, const rtt_result& r) {
    out[prefix + "_p50_us"] = r.summary.p50_us;
    out[prefix + "_p90_us"] = r.summary.p90_us;
    out[prefix + "_p99_us"] = r.summary.p99_us;
    out[prefix + "_p999_us"] = r.summary.p999_us;
    out[prefix + "_max_us"] = r.summary.max_us;
    out[prefix + "_per_sec"] = round_to(r.round_trips_per_sec, 1);
}

struct stream_result {
    std::uint64_t bytes = 0;
    double seconds = 0;
    double mb_per_sec = 0;
    long server_rss_kib = 0;
};

/// Timed from the client's first write to the server's last read, both on
/// CLOCK_MONOTONIC: bytes still in flight when the client stops count too.
stream_result stream(const raw_options& o) {
    auto sink = start_server("sink", stream_chunk, 0);
    auto fd = connect_loopback(sink.port);
    const std::vector<std::byte> chunk(stream_chunk, std::byte{0x5a});
    const std::int64_t begin = now_ns();
    const std::int64_t end = begin + static_cast<std::int64_t>(o.stream_seconds * 1e9);
    const auto max_chunks = static_cast<std::uint64_t>(
        std::ceil(o.stream_seconds * static_cast<double>(max_chunks_per_second)));
    std::uint64_t sent = 0;
    for (std::uint64_t k = 0; k < max_chunks && now_ns() < end; ++k) {
        write_full(fd.get(), chunk);
        sent += chunk.size();
    }
    fd.reset(); // EOF: the sink reports what it got
    const auto done = finish_server(sink, "sink");
    stream_result r;
    r.bytes = done.value("bytes", std::uint64_t{0});
    const auto last_ns = done.value("last_ns", std::int64_t{0});
    r.server_rss_kib = done.value("peak_rss_kib", 0L);
    if (r.bytes != sent) {
        spdlog::warn("raw stream: sent {} bytes, the sink counted {}", sent, r.bytes);
    }
    r.seconds = static_cast<double>(last_ns - begin) / 1e9;
    r.mb_per_sec = r.seconds > 0 ? static_cast<double>(r.bytes) / r.seconds / 1e6 : 0;
    return r;
}

/// Two echo servers and a connection to each: what the round-trip phases use.
struct echo_pair {
    server a;
    server b;
    unique_fd fa;
    unique_fd fb;

    /// Each server serves at most `rounds` round trips.
    static echo_pair start(std::size_t size, std::uint64_t rounds) {
        auto a = start_server("echo", size, rounds);
        auto b = start_server("echo", size, rounds);
        auto fa = connect_loopback(a.port);
        auto fb = connect_loopback(b.port);
        return {std::move(a), std::move(b), std::move(fa), std::move(fb)};
    }

    /// Closes the connections (EOF ends the servers) and collects their reports.
    /// @returns the larger peak RSS of the two.
    long finish() {
        fa.reset();
        fb.reset();
        long peak = 0;
        for (auto* s : {&a, &b}) {
            peak = std::max(peak, finish_server(*s, "echo").value("peak_rss_kib", 0L));
        }
        return peak;
    }
};

} // namespace

nlohmann::json measure_raw(const raw_options& o) {
    if (o.size == 0 || o.count == 0) {
        throw std::invalid_argument("measure_raw: size and count must be positive");
    }
    // Two echo servers for both phases; each serves at most both phases' rounds.
    auto servers = echo_pair::start(o.size, 2 * (o.warmup + o.count));
    const int one[] = {servers.fa.get()};
    const int both[] = {servers.fa.get(), servers.fb.get()};
    const auto rtt1 = round_trips(one, o);
    const auto rtt2 = round_trips(both, o);
    long peak = std::max(servers.finish(), tools::peak_rss_kib_self());
    const auto st = stream(o);
    peak = std::max({peak, st.server_rss_kib, tools::peak_rss_kib_self()});

    nlohmann::json out;
    out["scenario"] = "raw";
    out["size"] = o.size;
    out["messages"] = o.count;
    out["warmup"] = o.warmup;
    put_rtt(out, "rtt1", rtt1);
    put_rtt(out, "rtt2", rtt2);
    out["stream_mb_per_sec"] = round_to(st.mb_per_sec, 1);
    out["stream_bytes"] = st.bytes;
    out["stream_seconds"] = round_to(st.seconds, 3);
    out["stream_write_bytes"] = stream_chunk;
    out["peak_rss_kib"] = peak;
    return out;
}

struct raw_rtt2_slices::state {
    echo_pair servers;
    std::vector<std::byte> out;
    std::vector<std::byte> in;
    bool finished = false;
};

raw_rtt2_slices::raw_rtt2_slices(std::size_t size, std::uint64_t max_round_trips) {
    if (size == 0) {
        throw std::invalid_argument("raw_rtt2_slices: size must be positive");
    }
    state_ = std::make_unique<state>(state{echo_pair::start(size, max_round_trips),
                                           std::vector<std::byte>(size, std::byte{0x5a}),
                                           std::vector<std::byte>(size), false});
}

raw_rtt2_slices::~raw_rtt2_slices() {
    try {
        finish();
    } catch (const std::exception& e) {
        spdlog::warn("raw rtt2 servers: {}", e.what());
    }
}

void raw_rtt2_slices::measure(std::size_t n) {
    const int both[] = {state_->servers.fa.get(), state_->servers.fb.get()};
    samples_.reserve(samples_.size() + n);
    for (std::size_t k = 0; k < n; ++k) {
        samples_.push_back(round_trip(both, state_->out, state_->in));
    }
}

void raw_rtt2_slices::finish() {
    if (!state_->finished) {
        state_->finished = true;
        state_->servers.finish();
    }
}

nlohmann::json raw_summary(const nlohmann::json& full) {
    nlohmann::json out;
    for (const char* key : {"rtt1_p50_us", "rtt1_p99_us", "rtt2_p50_us", "rtt2_p99_us",
                            "stream_mb_per_sec", "messages"}) {
        out[key] = full.at(key);
    }
    return out;
}

raw_options embedded_raw_options(std::size_t size) {
    raw_options o;
    o.size = size;
    // 5000 round trips, but no more than ~256 MB each way per phase.
    o.count = std::clamp<std::size_t>((256u << 20) / std::max<std::size_t>(size, 1), 200, 5000);
    o.warmup = o.count / 5;
    o.stream_seconds = 1;
    return o;
}

int raw_server_main(flag_parser& flags) {
    std::string mode;
    std::size_t size = 0;
    std::uint64_t rounds = 0;
    pid_t parent = 0;
    unsigned max_seconds = 600;
    while (flags.next()) {
        if (flags.is("--mode")) {
            mode = flags.value();
        } else if (flags.is("--size")) {
            size = flags.integer<std::size_t>(1, std::size_t{1} << 30);
        } else if (flags.is("--rounds")) {
            rounds = flags.integer<std::uint64_t>(0, std::uint64_t{1} << 40);
        } else if (flags.is("--parent")) {
            parent = flags.integer<pid_t>(1, INT32_MAX);
        } else if (flags.is("--max-seconds")) {
            max_seconds = flags.integer<unsigned>(1, 86400);
        } else {
            flags.unknown();
        }
    }
    if ((mode != "echo" && mode != "sink") || size == 0 || parent == 0) {
        throw usage_error("_raw-server: --mode echo|sink, --size and --parent are required");
    }
    die_with_parent(parent);
    // Backstop: whatever else happens, SIGALRM's default action ends us by then.
    ::alarm(max_seconds);

    std::uint16_t port = 0;
    auto listener = listen_loopback(port);
    emit_line({{"ready", true}, {"port", port}});
    unique_fd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn.get() < 0) {
        fail("accept");
    }
    listener.reset();
    set_nodelay(conn.get());

    nlohmann::json done{{"done", true}};
    if (mode == "echo") {
        std::vector<std::byte> buf(size);
        std::uint64_t k = 0;
        for (; k < rounds; ++k) {
            if (!read_full(conn.get(), buf)) {
                break;
            }
            write_full(conn.get(), buf);
        }
        done["rounds"] = k;
    } else {
        std::vector<std::byte> buf(size);
        std::uint64_t bytes = 0;
        std::int64_t first_ns = 0;
        std::int64_t last_ns = 0;
        const std::uint64_t max_reads = std::uint64_t{max_seconds} * 10'000'000;
        for (std::uint64_t reads = 0; reads < max_reads; ++reads) {
            const ssize_t n = ::recv(conn.get(), buf.data(), buf.size(), 0);
            if (n > 0) {
                last_ns = now_ns();
                if (bytes == 0) {
                    first_ns = last_ns;
                }
                bytes += static_cast<std::uint64_t>(n);
            } else if (n == 0) {
                break;
            } else if (errno != EINTR) {
                fail("recv");
            }
        }
        done["bytes"] = bytes;
        done["first_ns"] = first_ns;
        done["last_ns"] = last_ns;
    }
    done["peak_rss_kib"] = tools::peak_rss_kib_self();
    emit_line(done);
    return 0;
}

} // namespace troupe::bench
