// SPDX-License-Identifier: Apache-2.0
#include "detail.hpp"

#include <troupe/conf/load.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>

using namespace std::chrono_literals;
using troupe::conf::duration;

namespace {

// The parse result, or -1 when the text is refused (and `out` must be untouched).
std::int64_t duration_ms(const std::string& text) {
    duration out{-1};
    if (!troupe::conf::parse_duration(text, out)) {
        REQUIRE(out == duration{-1});
        return -1;
    }
    return out.count();
}

bool size_of(const std::string& text, std::uint64_t& out) {
    return troupe::conf::parse_size(text, out);
}

std::string duration_message(const std::string& text) {
    duration out{};
    return troupe::conf::detail::read_duration(text, out);
}

std::string size_message(const std::string& text) {
    std::uint64_t out = 0;
    return troupe::conf::detail::read_size(text, out);
}

std::int64_t options_of(const std::string& text) {
    std::uint32_t out = 99;
    if (!troupe::conf::parse_send_options(text, out)) {
        REQUIRE(out == 99);
        return -1;
    }
    return out;
}

} // namespace

TEST_CASE("parse_duration reads each unit", "[conf]") {
    CHECK(duration_ms("500ms") == 500);
    CHECK(duration_ms("3s") == 3000);
    CHECK(duration_ms("30m") == 30 * 60 * 1000);
    CHECK(duration_ms("1h") == 3600 * 1000);
    CHECK(duration_ms("0ms") == 0);
    CHECK(duration_ms("0s") == 0);
    CHECK(duration_ms("007s") == 7000);
}

TEST_CASE("parse_duration refuses a bare number, since the unit is not obvious", "[conf]") {
    CHECK(duration_ms("500") == -1);
    CHECK(duration_ms("0") == -1);
    CHECK(duration_message("500") ==
          "missing unit: expected a duration like 500ms or 3s (got '500')");
}

TEST_CASE("parse_duration refuses empty, negative, fractional and spaced text", "[conf]") {
    CHECK(duration_ms("") == -1);
    CHECK(duration_ms("-5s") == -1);
    CHECK(duration_ms("+5s") == -1);
    CHECK(duration_ms("1.5s") == -1);
    CHECK(duration_ms("5 s") == -1);
    CHECK(duration_ms(" 5s") == -1);
    CHECK(duration_ms("5s ") == -1);
    CHECK(duration_ms("s") == -1);
    CHECK(duration_ms("fast") == -1);
    CHECK(duration_message("") == "expected a duration like 500ms or 3s (got nothing)");
    CHECK(duration_message("-5s") ==
          "must not be negative: expected a duration like 500ms or 3s (got '-5s')");
    CHECK(duration_message("1.5s") == "expected a duration like 500ms or 3s (got '1.5s')");
    CHECK(duration_message("fast") == "expected a duration like 500ms or 3s (got 'fast')");
}

TEST_CASE("parse_duration refuses trailing junk and unknown units, naming the valid ones",
          "[conf]") {
    CHECK(duration_ms("5sx") == -1);
    CHECK(duration_ms("5s5") == -1);
    CHECK(duration_ms("250us") == -1);
    CHECK(duration_ms("1d") == -1);
    CHECK(duration_ms("5MS") == -1);
    CHECK(duration_message("250us") == "unknown unit 'us', expected ms, s, m or h (got '250us')");
    CHECK(duration_message("5s5") == "expected a duration like 500ms or 3s (got '5s5')");
}

TEST_CASE("parse_duration refuses values that overflow milliseconds", "[conf]") {
    // int64 milliseconds hold 9223372036854775807ms, about 2562047788015h.
    CHECK(duration_ms("9223372036854775807ms") == 9223372036854775807);
    CHECK(duration_ms("9223372036854775808ms") == -1);
    CHECK(duration_ms("2562047788015h") == 2562047788015 * 3600 * 1000);
    CHECK(duration_ms("2562047788016h") == -1);
    CHECK(duration_ms("99999999999999999999999s") == -1);
    CHECK(duration_message("2562047788016h") ==
          "out of range: expected a duration like 500ms or 3s (got '2562047788016h')");
}

TEST_CASE("parse_size reads bytes, binary and decimal units", "[conf]") {
    std::uint64_t out = 0;
    CHECK((size_of("1000", out) && out == 1000));
    CHECK((size_of("0", out) && out == 0));
    CHECK((size_of("7B", out) && out == 7));
    CHECK((size_of("512KiB", out) && out == 512 * 1024));
    CHECK((size_of("64MiB", out) && out == 64ULL << 20));
    CHECK((size_of("1GiB", out) && out == 1ULL << 30));
    CHECK((size_of("10kB", out) && out == 10000));
    CHECK((size_of("1MB", out) && out == 1000000));
    CHECK((size_of("1GB", out) && out == 1000000000));
}

TEST_CASE("parse_size refuses empty, negative, junk and ambiguous units", "[conf]") {
    std::uint64_t out = 42;
    CHECK_FALSE(size_of("", out));
    CHECK_FALSE(size_of("-1", out));
    CHECK_FALSE(size_of("-1MiB", out));
    CHECK_FALSE(size_of("1.5MiB", out));
    CHECK_FALSE(size_of("64 MiB", out));
    CHECK_FALSE(size_of("64MiB ", out));
    CHECK_FALSE(size_of("MiB", out));
    CHECK_FALSE(size_of("10KB", out));
    CHECK_FALSE(size_of("10mib", out));
    CHECK_FALSE(size_of("big", out));
    CHECK(out == 42);
    CHECK(size_message("10KB") ==
          "unknown unit 'KB', expected B, KiB, MiB, GiB, kB, MB or GB (got '10KB')");
    CHECK(size_message("big") == "expected a size like 64MiB, 512KiB or 1000 (got 'big')");
    CHECK(size_message("-1") ==
          "must not be negative: expected a size like 64MiB, 512KiB or 1000 (got '-1')");
}

TEST_CASE("parse_size refuses values that overflow 64 bits", "[conf]") {
    std::uint64_t out = 0;
    CHECK((size_of("18446744073709551615", out) && out == 18446744073709551615ULL));
    CHECK_FALSE(size_of("18446744073709551616", out));
    CHECK((size_of("17179869183GiB", out) && out == 17179869183ULL << 30));
    CHECK_FALSE(size_of("17179869184GiB", out));
    CHECK(size_message("17179869184GiB") ==
          "out of range: expected a size like 64MiB, 512KiB or 1000 (got '17179869184GiB')");
}

TEST_CASE("parse_send_options accepts the names and the meaningful bit combinations", "[conf]") {
    CHECK(options_of("async") == 8);
    CHECK(options_of("ack") == 2);
    CHECK(options_of("sync") == 6);
    CHECK(options_of("8") == 8);
    CHECK(options_of("2") == 2);
    CHECK(options_of("6") == 6);
    CHECK(options_of("10") == 10);
    CHECK(options_of("14") == 14);
}

TEST_CASE("parse_send_options refuses unknown names, stray bits and sync without ack", "[conf]") {
    CHECK(options_of("") == -1);
    CHECK(options_of("fast") == -1);
    CHECK(options_of("ASYNC") == -1);
    CHECK(options_of(" async") == -1);
    CHECK(options_of("0") == -1);
    CHECK(options_of("4") == -1);
    CHECK(options_of("12") == -1);
    CHECK(options_of("1") == -1);
    CHECK(options_of("16") == -1);
    CHECK(options_of("-8") == -1);
    CHECK(options_of("4294967304") == -1);
    CHECK(options_of("8x") == -1);
}

TEST_CASE("send_options_name names the three classic options and prints others as numbers",
          "[conf]") {
    CHECK(troupe::conf::send_options_name(8) == "async");
    CHECK(troupe::conf::send_options_name(2) == "ack");
    CHECK(troupe::conf::send_options_name(6) == "sync");
    CHECK(troupe::conf::send_options_name(10) == "10");
    CHECK(troupe::conf::send_options_name(0) == "0");
}

TEST_CASE("format_duration picks the largest exact unit", "[conf]") {
    using troupe::conf::format_duration;
    CHECK(format_duration(0ms) == "0ms");
    CHECK(format_duration(500ms) == "500ms");
    CHECK(format_duration(1500ms) == "1500ms");
    CHECK(format_duration(3s) == "3s");
    CHECK(format_duration(90s) == "90s");
    CHECK(format_duration(30min) == "30m");
    CHECK(format_duration(2h) == "2h");
    CHECK(format_duration(-5ms) == "-5ms");
}

TEST_CASE("format_size uses an exact binary unit or else bytes", "[conf]") {
    using troupe::conf::format_size;
    CHECK(format_size(0) == "0");
    CHECK(format_size(512) == "512");
    CHECK(format_size(1000) == "1000");
    CHECK(format_size(1024) == "1KiB");
    CHECK(format_size(1536) == "1536");
    CHECK(format_size(64ULL << 20) == "64MiB");
    CHECK(format_size(3ULL << 30) == "3GiB");
    CHECK(format_size(1000000) == "1000000");
    CHECK(format_size(18446744073709551615ULL) == "18446744073709551615");
}

TEST_CASE("formatted durations and sizes parse back to the same value", "[conf]") {
    for (const auto d : {0ms, 1ms, 999ms, 1000ms, 61000ms, 3600000ms, 7200001ms}) {
        duration back{-1};
        REQUIRE(troupe::conf::parse_duration(troupe::conf::format_duration(d), back));
        CHECK(back == d);
    }
    for (const std::uint64_t s : {0ULL, 1ULL, 1023ULL, 1024ULL, 1ULL << 20, (1ULL << 30) + 1,
                                  5ULL << 40, 18446744073709551615ULL}) {
        std::uint64_t back = 0;
        REQUIRE(troupe::conf::parse_size(troupe::conf::format_size(s), back));
        CHECK(back == s);
    }
}

TEST_CASE("host:port entries read IPv4, names and bracketed IPv6", "[conf]") {
    using troupe::conf::detail::read_host_port;
    troupe::conf::host_port out;
    CHECK(read_host_port("127.0.0.1:4001", out).empty());
    CHECK(out == troupe::conf::host_port{"127.0.0.1", 4001});
    CHECK(read_host_port("node-2.example.com:65535", out).empty());
    CHECK(out == troupe::conf::host_port{"node-2.example.com", 65535});
    CHECK(read_host_port("[::1]:4001", out).empty());
    CHECK(out == troupe::conf::host_port{"::1", 4001});
    CHECK(troupe::conf::detail::host_port_text(out) == "[::1]:4001");
}

TEST_CASE("host:port entries without a valid port are refused with the reason", "[conf]") {
    using troupe::conf::detail::read_host_port;
    troupe::conf::host_port out;
    CHECK(read_host_port("localhost", out) == "expected host:port (got 'localhost')");
    CHECK(read_host_port("localhost:", out) == "expected host:port (got 'localhost:')");
    CHECK(read_host_port("localhost:http", out) == "expected host:port (got 'localhost:http')");
    CHECK(read_host_port("localhost:-1", out) == "expected host:port (got 'localhost:-1')");
    CHECK(read_host_port("localhost:70000", out) ==
          "port must be from 1 to 65535 (got 'localhost:70000')");
    CHECK(read_host_port("::1:4001", out) ==
          "expected host:port, with an IPv6 host in brackets like [::1]:4001 (got '::1:4001')");
    CHECK(read_host_port("[::1]4001", out) == "expected host:port (got '[::1]4001')");
    CHECK(out == troupe::conf::host_port{});
}

TEST_CASE("quoted values escape control and non-ASCII bytes", "[conf]") {
    CHECK(troupe::conf::detail::quote("a b") == "'a b'");
    CHECK(troupe::conf::detail::quote("a\tb\x1b[0m") == "'a\\x09b\\x1b[0m'");
    CHECK(troupe::conf::detail::quote("\xc3\xa9") == "'\\xc3\\xa9'");
}
