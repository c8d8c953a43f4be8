// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/frame.hpp>

#include <array>
#include <cstring>

namespace troupe::transport {

std::string_view to_string(frame_type type) noexcept {
    switch (type) {
    case frame_type::hello: return "HELLO";
    case frame_type::auth: return "AUTH";
    case frame_type::data: return "DATA";
    case frame_type::ack: return "ACK";
    case frame_type::nack: return "NACK";
    case frame_type::ping: return "PING";
    case frame_type::pong: return "PONG";
    case frame_type::bye: return "BYE";
    }
    return "UNKNOWN";
}

namespace detail {

void put_u8(buffer& out, std::uint8_t v) { out.push_back(v); }

void put_u16(buffer& out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

void put_u32(buffer& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}

void put_u64(buffer& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}

void put_bytes(buffer& out, std::span<const std::uint8_t> v) {
    out.insert(out.end(), v.begin(), v.end());
}

void put_str(buffer& out, std::string_view v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size());
}

} // namespace detail

using namespace detail;

decode_result decode_frame(std::span<const std::uint8_t> data, std::uint32_t max_body,
                           frame_view& out) noexcept {
    decode_result r;
    // Check the magic as soon as its bytes arrive, so garbage is refused early
    // instead of waiting for a full header that may never come.
    static constexpr std::uint8_t magic[4] = {'T', 'R', 'U', 'P'};
    // An empty span may have no pointer at all, and memcmp's arguments must not be
    // null even for a length of 0.
    const std::size_t check = data.size() < 4 ? data.size() : 4;
    if (check != 0 && std::memcmp(data.data(), magic, check) != 0) {
        r.what = decode_result::kind::bad;
        r.ec = error::bad_magic;
        return r;
    }
    if (data.size() < header_size) {
        r.what = decode_result::kind::need_more;
        return r;
    }
    reader in(data);
    std::uint32_t m = 0;
    std::uint8_t version = 0, type = 0;
    std::uint16_t flags = 0;
    std::uint32_t body_len = 0;
    in.u32(m);
    in.u8(version);
    in.u8(type);
    in.u16(flags);
    in.u32(body_len);
    if (version != frame_version) {
        r.what = decode_result::kind::bad;
        r.ec = error::unsupported_version;
        return r;
    }
    if (type < static_cast<std::uint8_t>(frame_type::hello) ||
        type > static_cast<std::uint8_t>(frame_type::bye)) {
        r.what = decode_result::kind::bad;
        r.ec = error::unknown_type;
        return r;
    }
    if (body_len > max_body) {
        r.what = decode_result::kind::bad;
        r.ec = error::frame_too_large;
        return r;
    }
    const std::size_t total = header_size + body_len;
    if (data.size() < total) {
        r.what = decode_result::kind::need_more;
        r.needed = total;
        return r;
    }
    out.type = static_cast<frame_type>(type);
    out.flags = flags;
    out.body = data.subspan(header_size, body_len);
    r.what = decode_result::kind::frame;
    r.consumed = total;
    return r;
}

boost::system::error_code parse_data(std::span<const std::uint8_t> body, data_view& out) noexcept {
    reader in(body);
    std::uint8_t ctx_len = 0;
    if (!in.u64(out.id) || !in.u32(out.options) || !in.u8(ctx_len) ||
        !in.str(ctx_len, out.context)) {
        return error::truncated;
    }
    out.payload = in.rest();
    return {};
}

boost::system::error_code parse_ack(std::span<const std::uint8_t> body, ack_view& out) noexcept {
    reader in(body);
    std::uint8_t status = 0;
    std::uint16_t reason_len = 0;
    if (!in.u64(out.id) || !in.u8(status) || !in.u16(reason_len) ||
        !in.str(reason_len, out.reason)) {
        return error::truncated;
    }
    if (status > static_cast<std::uint8_t>(ack_status::no_listener) || in.remaining() != 0) {
        return error::malformed_body;
    }
    out.status = static_cast<ack_status>(status);
    return {};
}

boost::system::error_code parse_token(std::span<const std::uint8_t> body, std::uint64_t& out) noexcept {
    reader in(body);
    if (!in.u64(out)) {
        return error::truncated;
    }
    return in.remaining() == 0 ? boost::system::error_code{} : make_error_code(error::malformed_body);
}

boost::system::error_code parse_bye(std::span<const std::uint8_t> body, std::string_view& reason) noexcept {
    reader in(body);
    std::uint16_t len = 0;
    if (!in.u16(len) || !in.str(len, reason)) {
        return error::truncated;
    }
    return in.remaining() == 0 ? boost::system::error_code{} : make_error_code(error::malformed_body);
}

void append_header(buffer& out, frame_type type, std::uint16_t flags, std::uint32_t body_len) {
    put_u32(out, frame_magic);
    put_u8(out, frame_version);
    put_u8(out, static_cast<std::uint8_t>(type));
    put_u16(out, flags);
    put_u32(out, body_len);
}

void append_data(buffer& out, std::uint64_t id, std::uint32_t options, std::string_view context,
                 std::span<const std::uint8_t> payload) {
    // Contexts are names chosen by the embedder; the channel refuses longer ones
    // before it gets here.
    const auto ctx_len = static_cast<std::uint8_t>(context.size() > 255 ? 255 : context.size());
    const auto body_len = static_cast<std::uint32_t>(8 + 4 + 1 + ctx_len + payload.size());
    // Header and fixed fields are laid out on the stack and appended at once:
    // this runs once per message per member, so a push_back per byte shows.
    std::array<std::uint8_t, header_size + 8 + 4 + 1> head{};
    const auto store = [&head](std::size_t at, std::uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i, v >>= 8) {
            head[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v);
        }
    };
    store(0, frame_magic, 4);
    head[4] = frame_version;
    head[5] = static_cast<std::uint8_t>(frame_type::data);
    store(6, 0, 2); // flags
    store(8, body_len, 4);
    store(header_size, id, 8);
    store(header_size + 8, options, 4);
    head[header_size + 12] = ctx_len;
    out.reserve(out.size() + header_size + body_len);
    out.insert(out.end(), head.begin(), head.end());
    put_str(out, context.substr(0, ctx_len));
    put_bytes(out, payload);
}

void append_ack(buffer& out, frame_type type, std::uint64_t id, ack_status status,
                std::string_view reason) {
    if (reason.size() > 1024) {
        reason = reason.substr(0, 1024); // a NACK explains, it does not carry data
    }
    append_header(out, type, 0, static_cast<std::uint32_t>(8 + 1 + 2 + reason.size()));
    put_u64(out, id);
    put_u8(out, static_cast<std::uint8_t>(status));
    put_u16(out, static_cast<std::uint16_t>(reason.size()));
    put_str(out, reason);
}

void append_token(buffer& out, frame_type type, std::uint64_t token) {
    append_header(out, type, 0, 8);
    put_u64(out, token);
}

void append_bye(buffer& out, std::string_view reason) {
    if (reason.size() > 512) {
        reason = reason.substr(0, 512);
    }
    append_header(out, frame_type::bye, 0, static_cast<std::uint32_t>(2 + reason.size()));
    put_u16(out, static_cast<std::uint16_t>(reason.size()));
    put_str(out, reason);
}

} // namespace troupe::transport
