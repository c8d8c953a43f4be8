// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/heartbeat.hpp>

#include <catch2/catch.hpp>

using namespace troupe::membership;

namespace {

heartbeat sample() {
    heartbeat hb;
    hb.cluster = "prod";
    hb.id = member_id::random();
    hb.incarnation = 1700000000123;
    hb.alive_ms = 4567;
    hb.host = "10.0.0.5";
    hb.port = 4001;
    hb.node = "web-1";
    hb.payload = {{"zone", "eu-1a"}, {"role", "web"}};
    return hb;
}

} // namespace

TEST_CASE("a heartbeat round-trips every field, signed and unsigned", "[membership]") {
    for (const std::string secret : {"", "0123456789abcdef-secret"}) {
        auto hb = sample();
        hb.leaving = !secret.empty();
        const auto bytes = encode_heartbeat(hb, secret);
        CHECK(bytes.size() < max_heartbeat_size);
        heartbeat out;
        REQUIRE(decode_heartbeat(bytes, secret, out) == heartbeat_error::none);
        CHECK(out.cluster == hb.cluster);
        CHECK(out.id == hb.id);
        CHECK(out.incarnation == hb.incarnation);
        CHECK(out.alive_ms == hb.alive_ms);
        CHECK(out.host == hb.host);
        CHECK(out.port == hb.port);
        CHECK(out.node == hb.node);
        CHECK(out.payload == hb.payload);
        CHECK(out.leaving == hb.leaving);
    }
}

TEST_CASE("signed heartbeats are checked before anything is trusted", "[membership]") {
    const auto hb = sample();
    heartbeat out;
    const auto signed_bytes = encode_heartbeat(hb, "0123456789abcdef-secret");
    CHECK(decode_heartbeat(signed_bytes, "another-secret-xyz", out) == heartbeat_error::bad_signature);
    CHECK(decode_heartbeat(signed_bytes, "", out) == heartbeat_error::signed_but_no_secret);
    const auto plain = encode_heartbeat(hb, "");
    CHECK(decode_heartbeat(plain, "0123456789abcdef-secret", out) == heartbeat_error::unsigned_heartbeat);
    auto forged = signed_bytes;
    forged[20] ^= 1; // a field changed after signing
    CHECK(decode_heartbeat(forged, "0123456789abcdef-secret", out) == heartbeat_error::bad_signature);
}

TEST_CASE("every truncation of a heartbeat is refused", "[membership]") {
    const auto bytes = encode_heartbeat(sample(), "");
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        heartbeat out;
        INFO("length " << n);
        CHECK(decode_heartbeat({bytes.data(), n}, "", out) != heartbeat_error::none);
    }
}

TEST_CASE("garbage, wrong versions, stray flags and trailing bytes are refused", "[membership]") {
    heartbeat out;
    const std::vector<std::uint8_t> garbage{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
    CHECK(decode_heartbeat(garbage, "", out) == heartbeat_error::bad_magic);
    auto bytes = encode_heartbeat(sample(), "");
    auto wrong_version = bytes;
    wrong_version[4] = 9;
    CHECK(decode_heartbeat(wrong_version, "", out) == heartbeat_error::unsupported_version);
    auto stray_flag = bytes;
    stray_flag[5] = 0x80;
    CHECK(decode_heartbeat(stray_flag, "", out) == heartbeat_error::malformed);
    auto trailing = bytes;
    trailing.push_back(0);
    CHECK(decode_heartbeat(trailing, "", out) == heartbeat_error::malformed);
    const std::vector<std::uint8_t> oversize(max_heartbeat_size + 1, 'T');
    CHECK(decode_heartbeat(oversize, "", out) == heartbeat_error::too_large);
}

TEST_CASE("a heartbeat without an endpoint or id is malformed", "[membership]") {
    heartbeat out;
    auto no_port = sample();
    no_port.port = 0;
    CHECK(decode_heartbeat(encode_heartbeat(no_port, ""), "", out) == heartbeat_error::malformed);
    auto nil = sample();
    nil.id = member_id{};
    CHECK(decode_heartbeat(encode_heartbeat(nil, ""), "", out) == heartbeat_error::malformed);
}

TEST_CASE("a heartbeat that would not fit one datagram is refused at encode time", "[membership]") {
    auto hb = sample();
    for (int i = 0; i < 20; ++i) {
        hb.payload.emplace_back("key" + std::to_string(i), std::string(100, 'v'));
    }
    CHECK_THROWS_AS(encode_heartbeat(hb, ""), std::length_error);
}
