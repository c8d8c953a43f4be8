// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/hello.hpp>

namespace troupe::transport {

using namespace detail;

void append_hello(buffer& out, const hello& h) {
    buffer body;
    put_u8(body, h.proto_min);
    put_u8(body, h.proto_max);
    put_u8(body, h.role);
    put_bytes(body, h.id.bytes);
    put_u64(body, h.incarnation);
    put_u16(body, h.port);
    // Names longer than 255 are refused by config validation; cut here so the
    // encoder can never write a length that disagrees with the bytes.
    auto put_name = [&](std::string_view s) {
        s = s.substr(0, 255);
        put_u8(body, static_cast<std::uint8_t>(s.size()));
        put_str(body, s);
    };
    put_name(h.cluster);
    put_name(h.node);
    put_name(h.host);
    put_bytes(body, h.challenge);
    put_u8(body, h.has_mac ? 32 : 0);
    if (h.has_mac) {
        put_bytes(body, h.proof);
    }
    append_header(out, frame_type::hello, 0, static_cast<std::uint32_t>(body.size()));
    put_bytes(out, body);
}

boost::system::error_code parse_hello(std::span<const std::uint8_t> body, hello& out) {
    reader in(body);
    std::span<const std::uint8_t> raw;
    std::uint8_t len = 0;
    std::string_view text;
    if (!in.u8(out.proto_min) || !in.u8(out.proto_max) || !in.u8(out.role)) {
        return error::truncated;
    }
    if (out.role > 1 || out.proto_min > out.proto_max) {
        return error::malformed_body;
    }
    if (!in.bytes(16, raw)) {
        return error::truncated;
    }
    std::copy(raw.begin(), raw.end(), out.id.bytes.begin());
    if (!in.u64(out.incarnation) || !in.u16(out.port)) {
        return error::truncated;
    }
    for (std::string* field : {&out.cluster, &out.node, &out.host}) {
        if (!in.u8(len) || !in.str(len, text)) {
            return error::truncated;
        }
        field->assign(text);
    }
    if (!in.bytes(16, raw)) {
        return error::truncated;
    }
    std::copy(raw.begin(), raw.end(), out.challenge.begin());
    if (!in.u8(len)) {
        return error::truncated;
    }
    if (len != 0 && len != 32) {
        return error::malformed_body;
    }
    out.has_mac = len == 32;
    if (out.has_mac) {
        if (!in.bytes(32, raw)) {
            return error::truncated;
        }
        std::copy(raw.begin(), raw.end(), out.proof.begin());
    }
    if (in.remaining() != 0) {
        return error::malformed_body;
    }
    return {};
}

void append_auth(buffer& out, const mac& proof) {
    append_header(out, frame_type::auth, 0, 32);
    put_bytes(out, proof);
}

boost::system::error_code parse_auth(std::span<const std::uint8_t> body, mac& out) noexcept {
    if (body.size() < 32) {
        return error::truncated;
    }
    if (body.size() > 32) {
        return error::malformed_body;
    }
    std::copy(body.begin(), body.end(), out.begin());
    return {};
}

mac handshake_mac(std::string_view secret, bool acceptor, const hello& c, const hello& a) {
    buffer msg;
    put_str(msg, acceptor ? "troupe-s" : "troupe-c");
    put_bytes(msg, c.challenge);
    put_bytes(msg, a.challenge);
    put_bytes(msg, c.id.bytes);
    put_bytes(msg, a.id.bytes);
    put_u8(msg, static_cast<std::uint8_t>(c.cluster.size() & 0xff));
    put_str(msg, c.cluster);
    return hmac_sha256(secret, msg);
}

bool mac_equal(const mac& a, const mac& b) noexcept {
    std::uint8_t diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<std::uint8_t>(a[i] ^ b[i]);
    }
    return diff == 0;
}

} // namespace troupe::transport
