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
#include <troupe/membership/member.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace troupe::managers::wire {

inline constexpr std::uint8_t magic0 = 'T';
inline constexpr std::uint8_t magic1 = 'S';
/// 2: whole sessions and digests carry a stamp (tag, confirmed), deltas the
/// tag they lead to; digests carry tombstones; NEWER_COPY.
/// 3: the stamp's `confirmed` flag became `acked`, the last version of the
/// lineage that may have been acknowledged to a client.
/// 4: route rewrites: a digest's route tombstone (flag 4) and a LOCATIONS
/// entry renamed away (flag 2) carry the new id after their flags.
inline constexpr std::uint8_t codec_version = 4;
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
    digest = 12,           ///< one chunk of (id, stamp) entries and tombstones, answering get_all(digest)
    newer_copy = 13,       ///< whole sessions a replica holds that are newer than the base of a delta it refused
    // The backup manager's own (backup_manager.hpp):
    fetch = 14,            ///< "hand me this session: I serve it from now on"
    fetch_reply = 15,      ///< the whole session, or where it went, or that it is not here
    locations = 16,        ///< batched: where sessions live now (primary, backup), or that they ended
    backup_check = 17,     ///< a holder asks the primary whether the copies it holds are still needed
};

std::string_view to_string(msg_type t) noexcept;

using buffer = std::vector<std::uint8_t>;

/// Where one copy of a session stands. Copies of one session are ordered by
/// (acked, version, tag): see lineage.hpp for why and how the tag is made.
struct stamp {
    std::uint64_t version = 0;
    std::uint64_t tag = 0;   ///< identifies the lineage of writes that led to `version`
    std::uint64_t acked = 0; ///< the last version of this lineage that may have been acknowledged (<= version)

    friend bool operator==(const stamp&, const stamp&) = default;
};

/// Tags of the versions just before a copy's own, newest first.
using ancestry = std::array<std::uint64_t, 4>;

/// A whole session as transferred.
struct full_session {
    std::string id;
    std::uint64_t created_age_ms = 0; ///< how long ago it was created (sender's clock)
    std::uint64_t idle_ms = 0;        ///< how long it has been idle (sender's clock)
    std::int64_t max_inactive_s = 0;
    std::uint64_t version = 0;
    std::uint64_t tag = 0;
    std::uint64_t acked = 0; ///< see stamp::acked
    ancestry ancestors{}; ///< tags of versions version-1 .. version-4 (0: not known)
    std::vector<std::pair<std::string, attribute>> attributes;

    stamp where() const { return {version, tag, acked}; }

    friend bool operator==(const full_session&, const full_session&) = default;
};

struct created_msg {
    full_session s;
};

struct delta_msg {
    std::string id;
    std::uint64_t before = 0;
    std::uint64_t after = 0;
    std::uint64_t before_tag = 0; ///< the writer's tag at `before`: the delta applies only on that copy
    std::uint64_t after_tag = 0;  ///< the writer's tag at `after`: tells a late duplicate from a stale base
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
    /// full: every session (a state transfer). digest: a digest of them.
    /// reconcile: a digest, and "ask me for mine too" (a member became alive
    /// in the sender's view). rejoin: as reconcile, and "I had removed you":
    /// the receiver's copies are unverified until it has the sender's digest.
    enum class mode : std::uint8_t { full = 0, digest = 1, reconcile = 2, rejoin = 3 };
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

/// One session in a digest: a live copy's stamp, or a tombstone (the id ended
/// or was renamed at `where.version`; tag and acked are 0).
struct digest_entry {
    std::string id;
    stamp where;
    bool tombstone = false;
    /// With `tombstone`: a route rewrite's, so the id may come back at a
    /// version past where.version; else it ended for good.
    bool route = false;
    /// With `route`: the id it was renamed to (a request still carrying the
    /// old id is led there). Never empty then; empty otherwise.
    std::string to{};

    friend bool operator==(const digest_entry&, const digest_entry&) = default;
};

struct digest_msg {
    std::uint64_t request = 0;
    std::uint32_t seq = 0;
    std::vector<digest_entry> entries;
};

struct newer_copy_msg {
    std::vector<full_session> sessions;
};

struct fetch_msg {
    std::uint64_t request = 0;
    std::string id;
    /// Also a copy handed over to another member (the last resort, when the
    /// members a session is known to live on do not have it).
    bool any = false;
};

struct fetch_reply_msg {
    enum class outcome : std::uint8_t {
        found = 0,   ///< `session` holds it; the answerer handed it over
        missing = 1, ///< not here (never was, ended, or expired)
        moved = 2,   ///< handed over to `to`: ask there
        busy = 3,    ///< the answerer is fetching it itself: ask again shortly
    };
    std::uint64_t request = 0;
    outcome what = outcome::missing;
    membership::member_id to;                ///< moved only
    std::vector<full_session> session;       ///< found: exactly one
};

/// Where one session lives, from its primary. `gone`: it ended (or was renamed
/// away) at `version`.
struct location_entry {
    std::string id;
    membership::member_id primary;
    membership::member_id backup; ///< nil: no backup (a single member)
    std::uint64_t version = 0;
    bool gone = false;
    /// With `gone`: renamed by a route rewrite, so the id may come back later
    /// (at a higher version); else it ended for good.
    bool renamed = false;
    /// With `renamed`: the new id. Never empty then; empty otherwise.
    std::string to{};

    friend bool operator==(const location_entry&, const location_entry&) = default;
};

struct locations_msg {
    std::vector<location_entry> entries;
};

/// Copies a member holds but does not serve, sent to the member it takes for
/// their primary: is each still this session's backup? The primary answers
/// with a LOCATIONS entry for each it serves; one naming another backup that
/// holds a newer version retires the copy (backup_manager::audit_copies).
struct backup_check_msg {
    std::vector<std::pair<std::string, std::uint64_t>> entries; ///< id, the holder's version
};

using message = std::variant<created_msg, delta_msg, expired_msg, accessed_msg, id_changed_msg,
                             get_all_msg, all_data_msg, transfer_complete_msg, no_such_context_msg,
                             get_sessions_msg, session_data_msg, digest_msg, newer_copy_msg,
                             fetch_msg, fetch_reply_msg, locations_msg, backup_check_msg>;

msg_type type_of(const message& m) noexcept;

/// Decodes one message. On error `out` is unspecified and nothing was allocated
/// beyond what the bytes present justify.
boost::system::error_code decode(std::span<const std::uint8_t> bytes, message& out);

/// Encodes any message (tests, and the small ones).
buffer encode(const message& m);

// ---- encoders that build large messages in place (no copy of the attributes)

/// The fixed part of a whole session, followed by `attribute_count` attributes.
struct session_header {
    std::string_view id;
    std::uint64_t created_age_ms = 0;
    std::uint64_t idle_ms = 0;
    std::int64_t max_inactive_s = 0;
    stamp where;
    std::uint32_t attribute_count = 0;
    ancestry ancestors{};
};
/// CREATED: the header, then append_attribute() for each attribute.
void begin_created(buffer& out, const session_header& h);
void append_session_header(buffer& out, const session_header& h);
void append_attribute(buffer& out, std::string_view name, const attribute& a);
/// Bytes a session with these attributes takes (to keep chunks in bounds).
std::size_t session_size(std::size_t id_size, std::size_t attribute_count, std::size_t payload_bytes);
/// Bytes a digest entry for this id takes.
std::size_t digest_entry_size(std::size_t id_size, std::size_t to_size = 0);
/// Bytes a location entry for this id takes.
std::size_t location_entry_size(std::size_t id_size, std::size_t to_size = 0);
/// Bytes a BACKUP_CHECK entry for this id takes.
std::size_t backup_check_entry_size(std::size_t id_size);

/// DELTA: the head, then exactly `changes` append_set/remove/max_inactive.
void begin_delta(buffer& out, std::string_view id, std::uint64_t before, std::uint64_t after,
                 std::uint64_t before_tag, std::uint64_t after_tag, std::uint32_t changes);
void append_set(buffer& out, std::string_view name, const attribute& a);
void append_remove(buffer& out, std::string_view name);
void append_max_inactive(buffer& out, std::int64_t seconds);

/// A message whose body ends in a counted run of entries, built in place:
/// ALL_DATA and DIGEST chunks (request, seq), ACCESSED batches, SESSION_DATA
/// and NEWER_COPY. Sessions go in with add_session(); finish() writes the
/// count (and SESSION_DATA's missing ids) and hands the bytes over.
class counted_writer {
public:
    static counted_writer all_data(std::uint64_t request, std::uint32_t seq);
    static counted_writer digest(std::uint64_t request, std::uint32_t seq);
    static counted_writer accessed();
    static counted_writer session_data();
    static counted_writer newer_copy();

    /// A whole session: the header, then its attributes (appended by `attributes`).
    void add_session(const session_header& h,
                     const std::function<void(buffer&)>& attributes);
    void add_digest(const digest_entry& e);
    void add_access(std::string_view id, std::uint32_t idle_ms);

    std::uint32_t count() const noexcept { return count_; }
    std::size_t size() const noexcept { return out_.size(); }
    bool empty() const noexcept { return count_ == 0; }
    void reserve(std::size_t n) { out_.reserve(n); }
    /// The finished message; `missing` only for SESSION_DATA.
    buffer finish(const std::vector<std::string>& missing = {});

private:
    counted_writer(msg_type t, bool transfer, std::uint64_t request, std::uint32_t seq);
    msg_type type_;
    buffer out_;
    std::size_t count_pos_ = 0;
    std::uint32_t count_ = 0;
};

// ---- primitives: for wire.cpp and for tests that craft malformed bytes

void append_header(buffer& out, msg_type type);
void append_u8(buffer& out, std::uint8_t v);
void append_u32(buffer& out, std::uint32_t v);
void append_u64(buffer& out, std::uint64_t v);
void append_str8(buffer& out, std::string_view s);
void append_str16(buffer& out, std::string_view s);
/// Overwrites a u32 written earlier at `pos` (a count known only at the end).
void patch_u32(buffer& out, std::size_t pos, std::uint32_t v);
void append_full_session(buffer& out, const full_session& s);
void append_change(buffer& out, const change& c);
void append_member_id(buffer& out, const membership::member_id& m);

} // namespace troupe::managers::wire
