// SPDX-License-Identifier: Apache-2.0
#pragma once

// The managers' wire format: own, versioned, bounds-checked. Every message is
//
//   'T' 'S' version:u8 type:u8 body
//
// with big-endian integers, strings as length + bytes (str8: u8 length, str16:
// u16 length), attribute values as u32 length + bytes. Every length and count is
// checked against the bytes present before anything is allocated; a message
// that fails any check is rejected whole (nothing of it is applied).

#include <troupe/managers/attribute.hpp>
#include <troupe/managers/error.hpp>
#include <troupe/managers/session.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace troupe::managers::wire {

inline constexpr std::uint8_t magic0 = 'T';
inline constexpr std::uint8_t magic1 = 'S';
inline constexpr std::uint8_t codec_version = 1;
inline constexpr std::size_t header_size = 4;
inline constexpr std::size_t max_id = 255; ///< session ids are str8

enum class msg_type : std::uint8_t {
    created = 1,           ///< a new session, whole (usually with its first attributes)
    delta = 2,             ///< what one request changed: id, version before and after, changes
    expired = 3,           ///< expired or invalidated: remove it
    accessed = 4,          ///< batched: ids and how long each has been idle
    id_changed = 5,        ///< rotation: old id, new id, version before and after
    get_all = 6,           ///< a joiner asks for every session (or a digest of them)
    all_data = 7,          ///< one chunk of whole sessions, bounded in bytes
    transfer_complete = 8, ///< the last message of a get_all answer
    no_such_context = 9,   ///< the asked member has no (running) manager for this context
    get_sessions = 10,     ///< a replica with a gap asks for whole sessions
    session_data = 11,     ///< the answer: whole sessions, and the ids not found
    digest = 12,           ///< one chunk of (id, version) pairs, answering get_all(digest)
};

std::string_view to_string(msg_type t) noexcept;

using buffer = std::vector<std::uint8_t>;

/// A whole session as transferred.
struct full_session {
    std::string id;
    std::uint64_t created_age_ms = 0; ///< how long ago it was created (sender's clock)
    std::uint64_t idle_ms = 0;        ///< how long it has been idle (sender's clock)
    std::int64_t max_inactive_s = 0;
    std::uint64_t version = 0;
    std::vector<std::pair<std::string, attribute>> attributes;

    friend bool operator==(const full_session&, const full_session&) = default;
};

struct created_msg {
    full_session s;
};

struct delta_msg {
    std::string id;
    std::uint64_t before = 0;
    std::uint64_t after = 0;
    std::vector<change> changes;
};

struct expired_msg {
    std::string id;
    std::uint64_t version = 0;
    bool invalidated = false; ///< else expired
};

struct accessed_msg {
    std::vector<std::pair<std::string, std::uint32_t>> entries; ///< id, idle ms
};

struct id_changed_msg {
    std::string old_id;
    std::string new_id;
    std::uint64_t before = 0;
    std::uint64_t after = 0;
};

struct get_all_msg {
    enum class mode : std::uint8_t { full = 0, digest = 1 };
    std::uint64_t request = 0;
    mode what = mode::full;
};

struct all_data_msg {
    std::uint64_t request = 0;
    std::uint32_t seq = 0; ///< 0 is the empty opening chunk
    std::vector<full_session> sessions;
};

struct transfer_complete_msg {
    std::uint64_t request = 0;
    std::uint64_t sessions = 0; ///< sessions (or digest entries) sent
    std::uint32_t chunks = 0;
};

struct no_such_context_msg {
    std::uint64_t request = 0;
};

struct get_sessions_msg {
    std::vector<std::string> ids;
};

struct session_data_msg {
    std::vector<full_session> found;
    std::vector<std::string> missing;
};

struct digest_msg {
    std::uint64_t request = 0;
    std::uint32_t seq = 0;
    std::vector<std::pair<std::string, std::uint64_t>> entries; ///< id, version
};

using message = std::variant<created_msg, delta_msg, expired_msg, accessed_msg, id_changed_msg,
                             get_all_msg, all_data_msg, transfer_complete_msg, no_such_context_msg,
                             get_sessions_msg, session_data_msg, digest_msg>;

msg_type type_of(const message& m) noexcept;

/// Decodes one message. On error `out` is unspecified and nothing was allocated
/// beyond what the bytes present justify.
boost::system::error_code decode(std::span<const std::uint8_t> bytes, message& out);

/// Encodes any message (tests, and the small ones).
buffer encode(const message& m);

// ---- incremental encoders for the large messages (chunks built in place)

void append_header(buffer& out, msg_type type);
void append_u8(buffer& out, std::uint8_t v);
void append_u32(buffer& out, std::uint32_t v);
void append_u64(buffer& out, std::uint64_t v);
void append_str8(buffer& out, std::string_view s);
void append_str16(buffer& out, std::string_view s);
/// Overwrites a u32 written earlier at `pos` (a count known only at the end).
void patch_u32(buffer& out, std::size_t pos, std::uint32_t v);

/// The fixed part of a whole session, followed by `attribute_count` attributes.
struct session_header {
    std::string_view id;
    std::uint64_t created_age_ms = 0;
    std::uint64_t idle_ms = 0;
    std::int64_t max_inactive_s = 0;
    std::uint64_t version = 0;
    std::uint32_t attribute_count = 0;
};
void append_session_header(buffer& out, const session_header& h);
void append_attribute(buffer& out, std::string_view name, const attribute& a);
/// Bytes a session with these attributes takes (to keep chunks in bounds).
std::size_t session_size(std::size_t id_size, std::size_t attribute_count, std::size_t payload_bytes);

void append_full_session(buffer& out, const full_session& s);
void append_change(buffer& out, const change& c);

} // namespace troupe::managers::wire
