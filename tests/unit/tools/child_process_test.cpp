// SPDX-License-Identifier: Apache-2.0
#include "common/child_process.hpp"
#include "common/percentiles.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/wait.h>

using namespace std::chrono_literals;
using troupe::tools::child_process;

namespace {

// True once `pid` is no longer a child of ours: it was reaped. (A PID reused by an
// unrelated process would not be our child either, so this cannot be fooled.)
bool reaped(pid_t pid) {
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD;
}

} // namespace

TEST_CASE("child_process reads the line a child printed, then EOF", "[tools]") {
    auto child = child_process::spawn({"/bin/echo", "hi"});
    CHECK(child.pid() > 0);
    const auto line = child.read_line(5s);
    REQUIRE(line);
    CHECK(*line == "hi");
    CHECK_FALSE(child.read_line(5s));
    CHECK(child.wait(5s) == 0);
    CHECK_FALSE(child.running());
}

TEST_CASE("child_process returns a last line that has no newline", "[tools]") {
    auto child = child_process::spawn({"/bin/sh", "-c", "printf 'a\\nb'"});
    CHECK(child.read_line(5s) == "a");
    CHECK(child.read_line(5s) == "b");
    CHECK_FALSE(child.read_line(5s));
}

TEST_CASE("child_process read_line times out, and the destructor kills the child", "[tools]") {
    pid_t pid = -1;
    {
        auto child = child_process::spawn({"/bin/sleep", "5"});
        pid = child.pid();
        const auto start = std::chrono::steady_clock::now();
        CHECK_FALSE(child.read_line(100ms));
        // Generous: only shows that the call is bounded by its timeout, not by the child.
        CHECK(std::chrono::steady_clock::now() - start < 3s);
        CHECK(child.running());
        CHECK_FALSE(reaped(pid));
    }
    CHECK(reaped(pid));
}

TEST_CASE("child_process round-trips lines through a stdin pipe", "[tools]") {
    auto child = child_process::spawn({"/bin/cat"}, /*pipe_stdin=*/true);
    REQUIRE(child.write_line("hello"));
    CHECK(child.read_line(5s) == "hello");
    REQUIRE(child.write_line("second line"));
    CHECK(child.read_line(5s) == "second line");
    child.close_stdin();
    CHECK_FALSE(child.read_line(5s));
    CHECK(child.wait(5s) == 0);
    CHECK_FALSE(child.write_line("after close"));
}

TEST_CASE("child_process stdin is /dev/null unless a pipe is asked for", "[tools]") {
    auto child = child_process::spawn({"/bin/cat"});
    CHECK_FALSE(child.read_line(5s));
    CHECK(child.wait(5s) == 0);
    CHECK_FALSE(child.write_line("nobody reads this"));
}

TEST_CASE("child_process write_line to an exited child fails without SIGPIPE", "[tools]") {
    auto child = child_process::spawn({"/bin/true"}, /*pipe_stdin=*/true);
    REQUIRE(child.wait(5s) == 0);
    // The reader is gone: EPIPE. Catch2 would die of SIGPIPE if it leaked.
    CHECK_FALSE(child.write_line("anyone?"));
}

TEST_CASE("child_process reports the exit code", "[tools]") {
    auto child = child_process::spawn({"/bin/sh", "-c", "exit 3"});
    CHECK(child.wait(5s) == 3);
    CHECK(child.wait(0ms) == 3); // remembered once reaped
}

TEST_CASE("child_process reports 128+signal for a killed child", "[tools]") {
    auto kill9 = child_process::spawn({"/bin/sleep", "5"});
    kill9.signal(SIGKILL);
    CHECK(kill9.wait(5s) == 128 + SIGKILL);

    auto term = child_process::spawn({"/bin/sleep", "5"});
    term.signal(SIGTERM);
    CHECK(term.wait(5s) == 128 + SIGTERM);
    term.signal(SIGKILL); // reaped: must not signal a PID that may be someone else's now
}

TEST_CASE("child_process wait times out while the child runs", "[tools]") {
    auto child = child_process::spawn({"/bin/sleep", "5"});
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(child.wait(50ms));
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(child.running());
    child.signal(SIGKILL);
    CHECK(child.wait(5s) == 128 + SIGKILL);
}

TEST_CASE("child_process throws when the program cannot be executed", "[tools]") {
    CHECK_THROWS_AS(child_process::spawn({"/nonexistent/troupe-no-such-program"}),
                    std::system_error);
    CHECK_THROWS_AS(child_process::spawn({}), std::invalid_argument);
}

TEST_CASE("child_process moves keep one owner of the child", "[tools]") {
    auto first = child_process::spawn({"/bin/cat"}, /*pipe_stdin=*/true);
    const pid_t pid = first.pid();
    child_process second(std::move(first));
    CHECK(second.pid() == pid);
    CHECK(first.pid() == -1); // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK_FALSE(first.running());
    REQUIRE(second.write_line("moved"));
    CHECK(second.read_line(5s) == "moved");

    auto other = child_process::spawn({"/bin/sleep", "5"});
    const pid_t other_pid = other.pid();
    other = std::move(second); // the sleep is killed and reaped here
    CHECK(reaped(other_pid));
    CHECK(other.pid() == pid);
    other.close_stdin();
    CHECK(other.wait(5s) == 0);
}

TEST_CASE("ns_histogram percentiles are within 1/64 above the exact ones", "[tools]") {
    SECTION("1..1000 us, against summarize_ns") {
        troupe::tools::ns_histogram h;
        std::vector<std::int64_t> ns;
        for (std::int64_t i = 1000; i >= 1; --i) {
            h.add(i * 1000);
            ns.push_back(i * 1000);
        }
        const auto exact = troupe::tools::summarize_ns(ns);
        const auto s = h.summary();
        CHECK(s.samples == 1000);
        for (const auto& [got, want] : {std::pair{s.p50_us, exact.p50_us}, std::pair{s.p90_us, exact.p90_us},
                                        std::pair{s.p99_us, exact.p99_us}, std::pair{s.p999_us, exact.p999_us}}) {
            CHECK(got >= want);
            CHECK(got <= want * (1.0 + 1.0 / 64));
        }
        CHECK(s.max_us == 1000.0);
    }
    SECTION("one sample anywhere in range is bracketed by its bucket") {
        for (std::int64_t v : {0LL, 1LL, 63LL, 64LL, 65LL, 127LL, 128LL, 1000LL, 4095LL, 123456789LL,
                               (1LL << 40) + 12345}) {
            troupe::tools::ns_histogram h;
            h.add(v);
            const auto s = h.summary();
            CAPTURE(v);
            CHECK(s.p50_us * 1000 >= static_cast<double>(v) - 1e-6);
            CHECK(s.p50_us * 1000 <= static_cast<double>(v) * (1.0 + 1.0 / 64) + 1e-6);
            CHECK(s.max_us == Approx(static_cast<double>(v) / 1000.0));
        }
    }
    SECTION("small values are exact, negative ones count as zero, none gives zeros") {
        troupe::tools::ns_histogram h;
        CHECK(h.summary().samples == 0);
        CHECK(h.summary().p50_us == 0.0);
        h.add(-5);
        h.add(40);
        h.add(50);
        const auto s = h.summary();
        CHECK(s.samples == 3);
        CHECK(s.p50_us == 0.04);
        CHECK(s.max_us == 0.05);
    }
}

TEST_CASE("summarize_ns gives nearest-rank percentiles in microseconds", "[tools]") {
    SECTION("1..1000 us") {
        std::vector<std::int64_t> ns;
        for (std::int64_t i = 1000; i >= 1; --i) {
            ns.push_back(i * 1000);
        }
        const auto s = troupe::tools::summarize_ns(ns);
        CHECK(s.samples == 1000);
        CHECK(s.p50_us == 500.0);
        CHECK(s.p90_us == 900.0);
        CHECK(s.p99_us == 990.0);
        CHECK(s.p999_us == 999.0);
        CHECK(s.max_us == 1000.0);
        CHECK(std::is_sorted(ns.begin(), ns.end()));
    }
    SECTION("five samples") {
        std::vector<std::int64_t> ns{5000, 1500, 3000, 2000, 4000};
        const auto s = troupe::tools::summarize_ns(ns);
        CHECK(s.samples == 5);
        CHECK(s.p50_us == 3.0); // rank ceil(2.5) = 3
        CHECK(s.p90_us == 5.0); // rank ceil(4.5) = 5
        CHECK(s.p99_us == 5.0);
        CHECK(s.p999_us == 5.0);
        CHECK(s.max_us == 5.0);
    }
    SECTION("one sample, sub-microsecond") {
        std::vector<std::int64_t> ns{250};
        const auto s = troupe::tools::summarize_ns(ns);
        CHECK(s.p50_us == 0.25);
        CHECK(s.p999_us == 0.25);
        CHECK(s.max_us == 0.25);
    }
    SECTION("no samples") {
        std::vector<std::int64_t> ns;
        const auto s = troupe::tools::summarize_ns(ns);
        CHECK(s.samples == 0);
        CHECK(s.p50_us == 0.0);
        CHECK(s.max_us == 0.0);
    }
}

TEST_CASE("peak_rss_kib_self reports this process's peak", "[tools]") {
    CHECK(troupe::tools::peak_rss_kib_self() > 0);
}
