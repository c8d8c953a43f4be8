// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the frame codec: arbitrary bytes go through decode_frame
// the way a receiver drains its buffer, every frame's body through its parser,
// and every parsed DATA/ACK/NACK/PING/PONG/BYE/HELLO value back through its
// encoder. A crash is a bug, and so is any disagreement between the encoder and
// the decoder: those trap, so that libFuzzer keeps the input.
#include <troupe/transport/frame.hpp>
#include <troupe/transport/hello.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace {

using namespace troupe::transport;

using bytes = std::span<const std::uint8_t>;

// The receivers' two limits: before the handshake, and a large one after it
// (channel.max_message + data_overhead with the default 16 MiB).
constexpr std::uint32_t large_limit = (16u << 20) + data_overhead;

void require(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

bool same(bytes a, bytes b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

bool inside(bytes outer, const void* p, std::size_t n) {
    const auto* begin = static_cast<const std::uint8_t*>(p);
    return n == 0 || (begin >= outer.data() && begin + n <= outer.data() + outer.size());
}

// An encoder's output must decode as exactly one frame, of the expected type,
// whose body is byte for byte the body we parsed the value from. Flags are not
// compared: the encoders always write 0 and no parser looks at them.
void require_reencodes_to(const buffer& encoded, frame_type type, bytes original_body) {
    frame_view again;
    const auto r = decode_frame(encoded, large_limit, again);
    require(r.what == decode_result::kind::frame);
    require(r.consumed == encoded.size());
    require(again.type == type);
    require(again.flags == 0);
    require(same(again.body, original_body));
}

void check_data(bytes body) {
    data_view d;
    if (parse_data(body, d)) {
        return;
    }
    require(d.context.size() <= 255);
    require(8 + 4 + 1 + d.context.size() + d.payload.size() == body.size());
    require(inside(body, d.context.data(), d.context.size()));
    require(inside(body, d.payload.data(), d.payload.size()));
    buffer out;
    append_data(out, d.id, d.options, d.context, d.payload);
    require_reencodes_to(out, frame_type::data, body);
}

void check_ack(frame_type type, bytes body) {
    ack_view a;
    if (parse_ack(body, a)) {
        return;
    }
    require(a.status <= ack_status::no_listener);
    require(8 + 1 + 2 + a.reason.size() == body.size());
    require(inside(body, a.reason.data(), a.reason.size()));
    // append_ack cuts reasons to 1024 bytes on purpose (a NACK explains, it does
    // not carry data); the decoder accepts up to 65535, which is harmless.
    if (a.reason.size() <= 1024) {
        buffer out;
        append_ack(out, type, a.id, a.status, a.reason);
        require_reencodes_to(out, type, body);
    }
}

void check_token(frame_type type, bytes body) {
    std::uint64_t token = 0;
    if (parse_token(body, token)) {
        return;
    }
    require(body.size() == 8);
    buffer out;
    append_token(out, type, token);
    require_reencodes_to(out, type, body);
}

void check_bye(bytes body) {
    std::string_view reason;
    if (parse_bye(body, reason)) {
        return;
    }
    require(2 + reason.size() == body.size());
    require(inside(body, reason.data(), reason.size()));
    // append_bye cuts at 512 bytes, as append_ack does at 1024.
    if (reason.size() <= 512) {
        buffer out;
        append_bye(out, reason);
        require_reencodes_to(out, frame_type::bye, body);
    }
}

void check_hello(bytes body) {
    hello h;
    if (parse_hello(body, h)) {
        return;
    }
    require(h.role <= 1);
    require(h.proto_min <= h.proto_max);
    require(h.cluster.size() <= 255 && h.node.size() <= 255 && h.host.size() <= 255);
    buffer out;
    append_hello(out, h);
    require_reencodes_to(out, frame_type::hello, body);
    // And the re-encoded value parses to the same fields.
    hello again;
    require(!parse_hello(bytes(out).subspan(header_size), again));
    require(again.proto_min == h.proto_min && again.proto_max == h.proto_max);
    require(again.role == h.role && again.id == h.id && again.incarnation == h.incarnation);
    require(again.port == h.port && again.cluster == h.cluster && again.node == h.node);
    require(again.host == h.host && again.challenge == h.challenge);
    require(again.has_mac == h.has_mac && (!h.has_mac || again.proof == h.proof));
}

void check_auth(bytes body) {
    mac proof{};
    if (parse_auth(body, proof)) {
        return;
    }
    require(body.size() == proof.size());
    require(std::equal(proof.begin(), proof.end(), body.begin()));
    buffer out;
    append_auth(out, proof);
    require_reencodes_to(out, frame_type::auth, body);
}

// Every parser must also survive every other type's body: a peer picks the type
// byte, not us. Results are ignored; only crashes and sanitizer reports count.
void parse_as_everything(bytes body) {
    data_view d;
    (void)parse_data(body, d);
    ack_view a;
    (void)parse_ack(body, a);
    std::uint64_t token = 0;
    (void)parse_token(body, token);
    std::string_view reason;
    (void)parse_bye(body, reason);
    hello h;
    (void)parse_hello(body, h);
    mac proof{};
    (void)parse_auth(body, proof);
}

void handle(const frame_view& f) {
    switch (f.type) {
    case frame_type::data: check_data(f.body); break;
    case frame_type::ack:
    case frame_type::nack: check_ack(f.type, f.body); break;
    case frame_type::ping:
    case frame_type::pong: check_token(f.type, f.body); break;
    case frame_type::bye: check_bye(f.body); break;
    case frame_type::hello: check_hello(f.body); break;
    case frame_type::auth: check_auth(f.body); break;
    default: require(false); // decode_frame lets only known types through
    }
    parse_as_everything(f.body);
}

// A receiver reads whatever TCP hands it, so a frame's first bytes often arrive
// alone: every strict prefix of a frame must ask for more, never fail, and once
// the header is in, must ask for exactly the frame's length.
void check_prefixes(bytes data, std::uint32_t limit, std::size_t frame_size) {
    const auto try_prefix = [&](std::size_t n) {
        frame_view f;
        const auto r = decode_frame(data.first(n), limit, f);
        require(r.what == decode_result::kind::need_more);
        require(n < header_size ? r.needed == 0 : r.needed == frame_size);
    };
    for (std::size_t n = 1; n <= std::min(header_size, frame_size - 1); ++n) {
        try_prefix(n);
    }
    try_prefix(frame_size - 1);
}

// What inbound_connection::on_read does with its buffer.
void drain(bytes data, std::uint32_t limit) {
    std::size_t pos = 0;
    while (pos < data.size()) {
        const bytes rest = data.subspan(pos);
        frame_view f;
        const auto r = decode_frame(rest, limit, f);
        if (r.what == decode_result::kind::need_more) {
            require(r.needed == 0 || r.needed > rest.size());
            require(r.needed <= header_size + std::size_t{limit});
            require(r.needed != 0 || rest.size() < header_size);
            return;
        }
        if (r.what == decode_result::kind::bad) {
            require(static_cast<bool>(r.ec));
            return;
        }
        require(r.consumed == header_size + f.body.size());
        require(r.consumed <= rest.size());
        require(f.body.size() <= limit);
        require(f.body.data() == rest.data() + header_size);
        check_prefixes(rest, limit, r.consumed);
        handle(f);
        pos += r.consumed;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const bytes input(data, size);
    if (size == 0) {
        // An empty span has no data pointer at all: decode_frame must still say
        // "need more" without touching it.
        frame_view f;
        require(decode_frame(bytes{}, max_handshake_body, f).what ==
                decode_result::kind::need_more);
    }
    drain(input, max_handshake_body);
    drain(input, large_limit);
    // The body parsers on the raw input too, so they are reached without the
    // fuzzer having to discover the frame header first.
    parse_as_everything(input);
    check_hello(input);
    check_data(input);
    return 0;
}
