// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/frame.hpp>

#include <catch2/catch.hpp>

using namespace troupe::transport;

namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

decode_result decode(const buffer& b, frame_view& f, std::uint32_t max_body = 1 << 20) {
    return decode_frame({b.data(), b.size()}, max_body, f);
}

} // namespace

TEST_CASE("a DATA frame round-trips id, options, context and payload", "[transport]") {
    buffer b;
    append_data(b, 0x0102030405060708ull, 6, "sessions", bytes_of("hello world"));
    frame_view f;
    const auto r = decode(b, f);
    REQUIRE(r.what == decode_result::kind::frame);
    CHECK(r.consumed == b.size());
    CHECK(f.type == frame_type::data);
    data_view d;
    REQUIRE_FALSE(parse_data(f.body, d));
    CHECK(d.id == 0x0102030405060708ull);
    CHECK(d.options == 6);
    CHECK(d.context == "sessions");
    CHECK(std::string(d.payload.begin(), d.payload.end()) == "hello world");
}

TEST_CASE("an empty payload and an empty context are valid", "[transport]") {
    buffer b;
    append_data(b, 1, 8, "", {});
    frame_view f;
    REQUIRE(decode(b, f).what == decode_result::kind::frame);
    data_view d;
    REQUIRE_FALSE(parse_data(f.body, d));
    CHECK(d.context.empty());
    CHECK(d.payload.empty());
}

TEST_CASE("ACK and NACK round-trip status and reason", "[transport]") {
    buffer b;
    append_ack(b, frame_type::nack, 42, ack_status::listener_failed, "boom");
    frame_view f;
    REQUIRE(decode(b, f).what == decode_result::kind::frame);
    CHECK(f.type == frame_type::nack);
    ack_view a;
    REQUIRE_FALSE(parse_ack(f.body, a));
    CHECK(a.id == 42);
    CHECK(a.status == ack_status::listener_failed);
    CHECK(a.reason == "boom");
}

TEST_CASE("PING, PONG and BYE round-trip", "[transport]") {
    buffer b;
    append_token(b, frame_type::ping, 77);
    append_bye(b, "leaving");
    frame_view f;
    auto r = decode(b, f);
    REQUIRE(r.what == decode_result::kind::frame);
    std::uint64_t token = 0;
    REQUIRE_FALSE(parse_token(f.body, token));
    CHECK(token == 77);
    buffer rest(b.begin() + static_cast<long>(r.consumed), b.end());
    REQUIRE(decode(rest, f).what == decode_result::kind::frame);
    std::string_view reason;
    REQUIRE_FALSE(parse_bye(f.body, reason));
    CHECK(reason == "leaving");
}

TEST_CASE("every prefix of a frame asks for more bytes", "[transport]") {
    buffer b;
    append_data(b, 9, 2, "ctx", bytes_of("payload"));
    for (std::size_t n = 1; n < b.size(); ++n) {
        buffer prefix(b.begin(), b.begin() + static_cast<long>(n));
        frame_view f;
        const auto r = decode(prefix, f);
        INFO("prefix length " << n);
        CHECK(r.what == decode_result::kind::need_more);
        if (n >= header_size) {
            CHECK(r.needed == b.size());
        }
    }
}

TEST_CASE("garbage is refused at its first byte", "[transport]") {
    buffer b{'G'};
    frame_view f;
    const auto r = decode(b, f);
    CHECK(r.what == decode_result::kind::bad);
    CHECK(r.ec == error::bad_magic);
    buffer http{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1'};
    CHECK(decode(http, f).ec == error::bad_magic);
}

TEST_CASE("a wrong version is refused", "[transport]") {
    buffer b;
    append_token(b, frame_type::ping, 1);
    b[4] = 2;
    frame_view f;
    CHECK(decode(b, f).ec == error::unsupported_version);
}

TEST_CASE("unknown frame types are refused", "[transport]") {
    for (std::uint8_t type : {std::uint8_t{0}, std::uint8_t{9}, std::uint8_t{255}}) {
        buffer b;
        append_token(b, frame_type::ping, 1);
        b[5] = type;
        frame_view f;
        CHECK(decode(b, f).ec == error::unknown_type);
    }
}

TEST_CASE("an oversize length is refused from the header alone", "[transport]") {
    buffer b;
    append_header(b, frame_type::data, 0, 0xffffffffu);
    frame_view f;
    const auto r = decode(b, f, 1024);
    CHECK(r.what == decode_result::kind::bad);
    CHECK(r.ec == error::frame_too_large);
    buffer ok;
    append_header(ok, frame_type::data, 0, 1024);
    CHECK(decode(ok, f, 1024).what == decode_result::kind::need_more);
}

TEST_CASE("truncated bodies are refused by every body parser", "[transport]") {
    data_view d;
    ack_view a;
    std::uint64_t token = 0;
    std::string_view reason;
    const std::uint8_t short_body[] = {0, 0, 0, 1};
    CHECK(parse_data(short_body, d) == error::truncated);
    CHECK(parse_ack(short_body, a) == error::truncated);
    CHECK(parse_token(short_body, token) == error::truncated);
    const std::uint8_t bye_claims_more[] = {0, 9, 'a'};
    CHECK(parse_bye(bye_claims_more, reason) == error::truncated);
    // A context length pointing past the end.
    const std::uint8_t data_ctx_overflow[] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8, 200, 'x'};
    CHECK(parse_data(data_ctx_overflow, d) == error::truncated);
}

TEST_CASE("ack statuses outside the known set are malformed", "[transport]") {
    buffer b;
    append_ack(b, frame_type::ack, 1, ack_status::ok, "");
    frame_view f;
    REQUIRE(decode(b, f).what == decode_result::kind::frame);
    buffer body(f.body.begin(), f.body.end());
    body[8] = 7;
    ack_view a;
    CHECK(parse_ack(body, a) == error::malformed_body);
    body[8] = 0;
    body.push_back(1);
    CHECK(parse_ack(body, a) == error::malformed_body);
}

TEST_CASE("trailing bytes after a token are malformed", "[transport]") {
    const std::uint8_t body[] = {0, 0, 0, 0, 0, 0, 0, 1, 9};
    std::uint64_t token = 0;
    CHECK(parse_token(body, token) == error::malformed_body);
}

TEST_CASE("several frames in one buffer decode one after another", "[transport]") {
    buffer b;
    for (std::uint64_t i = 0; i < 100; ++i) {
        append_data(b, i, 8, "c", bytes_of(std::string(i, 'x')));
    }
    std::size_t pos = 0;
    std::uint64_t expect = 0;
    while (pos < b.size()) {
        frame_view f;
        const auto r = decode_frame({b.data() + pos, b.size() - pos}, 1 << 20, f);
        REQUIRE(r.what == decode_result::kind::frame);
        data_view d;
        REQUIRE_FALSE(parse_data(f.body, d));
        CHECK(d.id == expect);
        CHECK(d.payload.size() == expect);
        ++expect;
        pos += r.consumed;
    }
    CHECK(expect == 100);
}

TEST_CASE("error codes carry the troupe.transport category and messages", "[transport]") {
    const boost::system::error_code ec = error::frame_too_large;
    CHECK(std::string(ec.category().name()) == "troupe.transport");
    CHECK(ec.message() == "frame too large");
    CHECK(boost::system::error_code(error::remote_failure).message() == "remote listener failed");
}
