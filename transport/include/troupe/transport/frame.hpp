// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/transport/error.hpp>

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::transport {

/// Wire format v1. Every integer is big-endian.
///
///     header (12 bytes): magic "TRUP" | version u8 | type u8 | flags u16 | body_len u32
///     DATA  body: message id u64 | options u32 | context_len u8 | context | payload
///     ACK/NACK body: message id u64 | status u8 | reason_len u16 | reason
///     PING/PONG body: token u64
///     BYE body: reason_len u16 | reason
///     HELLO/AUTH: see hello.hpp
///
/// The functions below are pure (no shared state): safe from any thread.
inline constexpr std::uint32_t frame_magic = 0x54525550; // "TRUP"
/// The only frame version this build reads and writes.
inline constexpr std::uint8_t frame_version = 1;
/// Bytes of the fixed header before every body.
inline constexpr std::size_t header_size = 12;
/// Largest body accepted before the handshake completes: an unauthenticated
/// peer can never make us allocate more than this.
inline constexpr std::uint32_t max_handshake_body = 1024;
/// DATA overhead beyond the payload: id, options, context length, context (≤ 255).
inline constexpr std::uint32_t data_overhead = 8 + 4 + 1 + 255;

/// The header's type byte; any other value is error::unknown_type.
enum class frame_type : std::uint8_t {
    hello = 1, ///< handshake: identity, versions, nonce (hello.hpp)
    auth = 2,  ///< handshake: the connector's HMAC proof
    data = 3,  ///< a message for a listener context
    ack = 4,   ///< a DATA frame was accepted (and, for sync, processed)
    nack = 5,  ///< a DATA frame failed at the receiver (ack_status says why)
    ping = 6,  ///< keep-alive or verification probe; answered by PONG
    pong = 7,  ///< the answer to a PING, echoing its token
    bye = 8,   ///< the sender closes, with a reason
};

/// "HELLO", "DATA", ...; "UNKNOWN" for any other value.
std::string_view to_string(frame_type type) noexcept;

/// NACK statuses.
enum class ack_status : std::uint8_t {
    ok = 0,              ///< in ACK frames
    listener_failed = 1, ///< the listener threw (or refused); the reason holds its text
    no_listener = 2,     ///< no listener for the context on the receiver
};

/// Bytes of one or more encoded frames.
using buffer = std::vector<std::uint8_t>;
/// An encoded frame shared by the queues of several members (never modified).
using frame_ptr = std::shared_ptr<const buffer>;

/// A complete frame inside a receive buffer; `body` points into that buffer.
struct frame_view {
    frame_type type{};                  ///< a valid frame_type
    std::uint16_t flags = 0;            ///< as sent (0 in v1)
    std::span<const std::uint8_t> body; ///< body_len bytes after the header
};

/// Result of looking at the front of a receive buffer. A `bad` one's `ec` is
/// bad_magic, unsupported_version, unknown_type or frame_too_large.
struct decode_result {
    /// A whole frame; more bytes needed; or a stream that can never be valid.
    enum class kind { frame, need_more, bad } what = kind::need_more;
    std::size_t consumed = 0;         ///< bytes of the frame (kind::frame)
    std::size_t needed = 0;           ///< total bytes the next frame needs (kind::need_more, once known)
    boost::system::error_code ec;     ///< kind::bad
};

/// Looks for one frame at the front of `data`. The header's length is checked
/// against `max_body` before anyone allocates for it. Errors are transport::error
/// codes; a short buffer is kind::need_more, never an error.
decode_result decode_frame(std::span<const std::uint8_t> data, std::uint32_t max_body,
                           frame_view& out) noexcept;

/// A parsed DATA body; the views point into the body.
struct data_view {
    std::uint64_t id = 0;                  ///< the sender's message id, echoed by ACK/NACK
    std::uint32_t options = 0;             ///< send_options bits
    std::string_view context;              ///< the listener context (at most 255 bytes)
    std::span<const std::uint8_t> payload; ///< the rest of the body
};

/// A parsed ACK or NACK body; `reason` points into the body.
struct ack_view {
    std::uint64_t id = 0;               ///< the DATA frame answered
    ack_status status = ack_status::ok; ///< why a NACK failed
    std::string_view reason;            ///< a NACK's text (the listener's exception)
};

/// Parses a DATA body; everything after the context is payload.
/// @return error::truncated, or success.
boost::system::error_code parse_data(std::span<const std::uint8_t> body, data_view& out) noexcept;
/// Parses an ACK or NACK body.
/// @return error::truncated, error::malformed_body (trailing bytes, unknown status), or success.
boost::system::error_code parse_ack(std::span<const std::uint8_t> body, ack_view& out) noexcept;
/// Parses a PING or PONG body.
/// @return error::truncated, error::malformed_body (trailing bytes), or success.
boost::system::error_code parse_token(std::span<const std::uint8_t> body, std::uint64_t& out) noexcept;
/// Parses a BYE body; `reason` points into `body`.
/// @return error::truncated, error::malformed_body (trailing bytes), or success.
boost::system::error_code parse_bye(std::span<const std::uint8_t> body, std::string_view& reason) noexcept;

/// Encoders append one whole frame to `out`.
/// A DATA frame; a context over 255 bytes is cut (the channel refuses those first).
void append_data(buffer& out, std::uint64_t id, std::uint32_t options, std::string_view context,
                 std::span<const std::uint8_t> payload);
/// An ACK or NACK (`type`); a reason over 1024 bytes is cut.
void append_ack(buffer& out, frame_type type, std::uint64_t id, ack_status status,
                std::string_view reason);
/// A PING or PONG (`type`) carrying `token`.
void append_token(buffer& out, frame_type type, std::uint64_t token);
/// A BYE; a reason over 512 bytes is cut.
void append_bye(buffer& out, std::string_view reason);
/// Header for a frame whose body the caller appends next.
void append_header(buffer& out, frame_type type, std::uint16_t flags, std::uint32_t body_len);

namespace detail {

/// Bounds-checked big-endian reader: every get fails (and stays failed) instead of
/// reading past the end. Defined here so the parsers inline it: a receiver runs
/// it a dozen times per message.
class reader {
public:
    explicit reader(std::span<const std::uint8_t> data) noexcept : data_(data) {}
    bool u8(std::uint8_t& v) noexcept { return get(v); }
    bool u16(std::uint16_t& v) noexcept { return get(v); }
    bool u32(std::uint32_t& v) noexcept { return get(v); }
    bool u64(std::uint64_t& v) noexcept { return get(v); }
    bool bytes(std::size_t n, std::span<const std::uint8_t>& v) noexcept {
        if (remaining() < n) {
            return false;
        }
        v = data_.subspan(pos_, n);
        pos_ += n;
        return true;
    }
    bool str(std::size_t n, std::string_view& v) noexcept {
        std::span<const std::uint8_t> raw;
        if (!bytes(n, raw)) {
            return false;
        }
        v = std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size());
        return true;
    }
    std::span<const std::uint8_t> rest() const noexcept { return data_.subspan(pos_); }
    std::size_t remaining() const noexcept { return data_.size() - pos_; }

private:
    template <typename T>
    bool get(T& v) noexcept {
        if (remaining() < sizeof(T)) {
            return false;
        }
        T x = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            x = static_cast<T>((x << 8) | data_[pos_ + i]); // compiles to one load and a bswap
        }
        pos_ += sizeof(T);
        v = x;
        return true;
    }

    std::span<const std::uint8_t> data_;
    std::size_t pos_ = 0;
};

void put_u8(buffer& out, std::uint8_t v);
void put_u16(buffer& out, std::uint16_t v);
void put_u32(buffer& out, std::uint32_t v);
void put_u64(buffer& out, std::uint64_t v);
void put_bytes(buffer& out, std::span<const std::uint8_t> v);
void put_str(buffer& out, std::string_view v);

} // namespace detail
} // namespace troupe::transport
