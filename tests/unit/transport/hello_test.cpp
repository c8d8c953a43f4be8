// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/hello.hpp>

#include <catch2/catch.hpp>

using namespace troupe::transport;

namespace {

hello sample(std::uint8_t role) {
    hello h;
    h.role = role;
    h.id = troupe::membership::member_id::random();
    h.incarnation = 1234567;
    h.port = 4001;
    h.cluster = "prod";
    h.node = "web-1";
    h.host = "127.0.0.1";
    h.challenge = random_nonce();
    return h;
}

buffer body_of(const hello& h) {
    buffer b;
    append_hello(b, h);
    frame_view f;
    const auto r = decode_frame({b.data(), b.size()}, max_handshake_body, f);
    REQUIRE(r.what == decode_result::kind::frame);
    REQUIRE(f.type == frame_type::hello);
    return buffer(f.body.begin(), f.body.end());
}

} // namespace

TEST_CASE("HELLO round-trips every field", "[transport]") {
    auto h = sample(1);
    h.has_mac = true;
    h.proof = hmac_sha256("secret-secret-secret", std::span<const std::uint8_t>(h.challenge));
    hello out;
    REQUIRE_FALSE(parse_hello(body_of(h), out));
    CHECK(out.role == 1);
    CHECK(out.id == h.id);
    CHECK(out.incarnation == 1234567);
    CHECK(out.port == 4001);
    CHECK(out.cluster == "prod");
    CHECK(out.node == "web-1");
    CHECK(out.host == "127.0.0.1");
    CHECK(out.challenge == h.challenge);
    CHECK(out.has_mac);
    CHECK(out.proof == h.proof);
}

TEST_CASE("HELLO refuses every truncation", "[transport]") {
    const auto body = body_of(sample(0));
    for (std::size_t n = 0; n < body.size(); ++n) {
        hello out;
        INFO("length " << n);
        CHECK(parse_hello({body.data(), n}, out));
    }
}

TEST_CASE("HELLO refuses a bad role, a bad mac length and trailing bytes", "[transport]") {
    auto body = body_of(sample(0));
    hello out;
    auto bad_role = body;
    bad_role[2] = 2;
    CHECK(parse_hello(bad_role, out) == error::malformed_body);
    auto bad_range = body;
    bad_range[0] = 3;
    bad_range[1] = 1;
    CHECK(parse_hello(bad_range, out) == error::malformed_body);
    auto bad_mac = body;
    bad_mac.back() = 5; // mac_len must be 0 or 32
    CHECK(parse_hello(bad_mac, out) == error::malformed_body);
    auto trailing = body;
    trailing.push_back(0);
    CHECK(parse_hello(trailing, out) == error::malformed_body);
}

TEST_CASE("AUTH round-trips and refuses wrong sizes", "[transport]") {
    mac m{};
    m[0] = 1;
    m[31] = 2;
    buffer b;
    append_auth(b, m);
    frame_view f;
    REQUIRE(decode_frame({b.data(), b.size()}, max_handshake_body, f).what == decode_result::kind::frame);
    mac out{};
    REQUIRE_FALSE(parse_auth(f.body, out));
    CHECK(out == m);
    CHECK(parse_auth(f.body.first(31), out) == error::truncated);
    buffer longer(f.body.begin(), f.body.end());
    longer.push_back(0);
    CHECK(parse_auth(longer, out) == error::malformed_body);
}

TEST_CASE("HMAC-SHA256 matches RFC 4231 test case 2", "[transport]") {
    const std::string data = "what do ya want for nothing?";
    const auto m = hmac_sha256("Jefe", {reinterpret_cast<const std::uint8_t*>(data.data()), data.size()});
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (auto b : m) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    CHECK(out == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("handshake proofs depend on the secret, the side and both nonces", "[transport]") {
    const auto c = sample(0);
    const auto a = sample(1);
    const auto s1 = handshake_mac("the-cluster-secret", true, c, a);
    CHECK(mac_equal(s1, handshake_mac("the-cluster-secret", true, c, a)));
    CHECK_FALSE(mac_equal(s1, handshake_mac("another-secret!!", true, c, a)));
    CHECK_FALSE(mac_equal(s1, handshake_mac("the-cluster-secret", false, c, a)));
    auto c2 = c;
    c2.challenge = random_nonce();
    CHECK_FALSE(mac_equal(s1, handshake_mac("the-cluster-secret", true, c2, a)));
}
