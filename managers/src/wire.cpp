// SPDX-License-Identifier: Apache-2.0
#include "wire.hpp"

#include <type_traits>

namespace troupe::managers::wire {

namespace {

// Smallest encodings, used to bound counts by the bytes present before any
// container is sized.
constexpr std::size_t min_full_session = 2 + 8 * 6 + 8 * 4 + 4; // non-empty id
constexpr std::size_t min_attribute = 2 + 2 + 4;
constexpr std::size_t min_change = 1 + 2;               // remove with an empty name
constexpr std::size_t min_id = 2;                       // str8 of one byte
constexpr std::size_t min_accessed = min_id + 4;
constexpr std::size_t min_digest = min_id + 8 + 8 + 8 + 1;
constexpr std::size_t member_id_size = 16;
constexpr std::size_t min_location = min_id + 2 * member_id_size + 8 + 1;
constexpr std::size_t min_backup_check = min_id + 8;
// A location entry's flags.
constexpr std::uint8_t location_gone = 1;
constexpr std::uint8_t location_renamed = 2; // only with location_gone; the new id (str8) follows

// A digest entry's flags.
constexpr std::uint8_t flag_tombstone = 2;
constexpr std::uint8_t flag_route_tombstone = 4; // only with flag_tombstone; the new id (str8) follows

class reader {
public:
    explicit reader(std::span<const std::uint8_t> bytes)
        : data_(bytes) {}

    bool failed() const noexcept { return static_cast<bool>(ec_); }
    const boost::system::error_code& ec() const noexcept { return ec_; }
    std::size_t left() const noexcept { return data_.size() - pos_; }
    void fail(error e) {
        if (!ec_) {
            ec_ = make_error_code(e);
        }
    }

    std::uint64_t uint(std::size_t n) {
        if (failed() || left() < n) {
            fail(error::truncated);
            return 0;
        }
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) {
            v = (v << 8) | data_[pos_ + i];
        }
        pos_ += n;
        return v;
    }
    std::uint8_t u8() { return static_cast<std::uint8_t>(uint(1)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(uint(2)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(uint(4)); }
    std::uint64_t u64() { return uint(8); }

    bool boolean() {
        const auto v = u8();
        if (v > 1) {
            fail(error::bad_value);
        }
        return v == 1;
    }

    std::string text(std::size_t n) {
        if (failed() || left() < n) {
            fail(error::truncated);
            return {};
        }
        std::string s(reinterpret_cast<const char*>(data_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    membership::member_id member() {
        membership::member_id m;
        if (failed() || left() < m.bytes.size()) {
            fail(error::truncated);
            return m;
        }
        std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(pos_), m.bytes.size(), m.bytes.begin());
        pos_ += m.bytes.size();
        return m;
    }
    std::string str8() { return text(u8()); }
    std::string str16() { return text(u16()); }
    /// A session id: str8, not empty.
    std::string id() {
        auto s = str8();
        if (!failed() && s.empty()) {
            fail(error::bad_value);
        }
        return s;
    }

    std::vector<std::uint8_t> bytes32() {
        const auto n = u32();
        if (failed() || left() < n) {
            fail(error::truncated);
            return {};
        }
        std::vector<std::uint8_t> v(data_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                    data_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
        pos_ += n;
        return v;
    }

    /// A count of entries each at least `min_size` bytes: more than the bytes
    /// present can hold is rejected before anything is reserved.
    std::uint32_t count(std::size_t min_size) {
        const auto n = u32();
        if (!failed() && static_cast<std::uint64_t>(n) * min_size > left()) {
            fail(error::too_long);
            return 0;
        }
        return n;
    }

private:
    std::span<const std::uint8_t> data_;
    std::size_t pos_ = 0;
    boost::system::error_code ec_;
};

attribute read_attribute_value(reader& r) {
    attribute a;
    a.type = r.str16();
    a.bytes = r.bytes32();
    return a;
}

full_session read_full_session(reader& r) {
    full_session s;
    s.id = r.id();
    s.created_age_ms = r.u64();
    s.idle_ms = r.u64();
    s.max_inactive_s = static_cast<std::int64_t>(r.u64());
    s.version = r.u64();
    s.tag = r.u64();
    s.acked = r.u64();
    if (!r.failed() && s.acked > s.version) {
        r.fail(error::bad_value); // nothing past the copy's own version was acknowledged
    }
    for (auto& t : s.ancestors) {
        t = r.u64();
    }
    const auto n = r.count(min_attribute);
    s.attributes.reserve(n);
    for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
        auto name = r.str16();
        auto value = read_attribute_value(r);
        s.attributes.emplace_back(std::move(name), std::move(value));
    }
    return s;
}

change read_change(reader& r) {
    change c;
    const auto kind = r.u8();
    switch (kind) {
    case static_cast<std::uint8_t>(change::kind::set):
        c.what = change::kind::set;
        c.name = r.str16();
        c.value = read_attribute_value(r);
        break;
    case static_cast<std::uint8_t>(change::kind::remove):
        c.what = change::kind::remove;
        c.name = r.str16();
        break;
    case static_cast<std::uint8_t>(change::kind::max_inactive):
        c.what = change::kind::max_inactive;
        c.seconds = static_cast<std::int64_t>(r.u64());
        break;
    default: r.fail(error::bad_value); break;
    }
    return c;
}

std::vector<full_session> read_sessions(reader& r) {
    const auto n = r.count(min_full_session);
    std::vector<full_session> out;
    out.reserve(n);
    for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
        out.push_back(read_full_session(r));
    }
    return out;
}

std::vector<std::string> read_ids(reader& r) {
    const auto n = r.count(min_id);
    std::vector<std::string> out;
    out.reserve(n);
    for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
        out.push_back(r.id());
    }
    return out;
}

void append_uint(buffer& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) {
        out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
}

void append_attribute_value(buffer& out, const attribute& a) {
    append_str16(out, a.type);
    append_u32(out, static_cast<std::uint32_t>(a.bytes.size()));
    out.insert(out.end(), a.bytes.begin(), a.bytes.end());
}

void append_ids(buffer& out, const std::vector<std::string>& ids) {
    append_u32(out, static_cast<std::uint32_t>(ids.size()));
    for (const auto& id : ids) {
        append_str8(out, id);
    }
}

} // namespace

std::string_view to_string(msg_type t) noexcept {
    switch (t) {
    case msg_type::created: return "created";
    case msg_type::delta: return "delta";
    case msg_type::expired: return "expired";
    case msg_type::accessed: return "accessed";
    case msg_type::id_changed: return "id-changed";
    case msg_type::get_all: return "get-all";
    case msg_type::all_data: return "all-data";
    case msg_type::transfer_complete: return "transfer-complete";
    case msg_type::no_such_context: return "no-such-context";
    case msg_type::get_sessions: return "get-sessions";
    case msg_type::session_data: return "session-data";
    case msg_type::digest: return "digest";
    case msg_type::newer_copy: return "newer-copy";
    case msg_type::fetch: return "fetch";
    case msg_type::fetch_reply: return "fetch-reply";
    case msg_type::locations: return "locations";
    case msg_type::backup_check: return "backup-check";
    }
    return "unknown";
}

msg_type type_of(const message& m) noexcept {
    // The variant's alternatives are in msg_type order, from 1.
    return static_cast<msg_type>(m.index() + 1);
}

boost::system::error_code decode(std::span<const std::uint8_t> bytes, message& out) {
    reader r(bytes);
    if (bytes.size() < header_size) {
        return make_error_code(error::truncated);
    }
    if (bytes[0] != magic0 || bytes[1] != magic1) {
        return make_error_code(error::bad_magic);
    }
    if (bytes[2] != codec_version) {
        return make_error_code(error::unsupported_version);
    }
    const auto type = bytes[3];
    (void)r.uint(header_size);
    switch (static_cast<msg_type>(type)) {
    case msg_type::created: {
        created_msg m;
        m.s = read_full_session(r);
        out = std::move(m);
        break;
    }
    case msg_type::delta: {
        delta_msg m;
        m.id = r.id();
        m.before = r.u64();
        m.after = r.u64();
        m.before_tag = r.u64();
        m.after_tag = r.u64();
        if (!r.failed() && m.after <= m.before) {
            r.fail(error::bad_value);
        }
        const auto n = r.count(min_change);
        m.changes.reserve(n);
        for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
            m.changes.push_back(read_change(r));
        }
        out = std::move(m);
        break;
    }
    case msg_type::expired: {
        expired_msg m;
        m.id = r.id();
        m.version = r.u64();
        m.invalidated = r.boolean();
        out = std::move(m);
        break;
    }
    case msg_type::accessed: {
        accessed_msg m;
        const auto n = r.count(min_accessed);
        m.entries.reserve(n);
        for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
            auto id = r.id();
            const auto idle = r.u32();
            m.entries.emplace_back(std::move(id), idle);
        }
        out = std::move(m);
        break;
    }
    case msg_type::id_changed: {
        id_changed_msg m;
        m.old_id = r.id();
        m.new_id = r.id();
        m.before = r.u64();
        m.after = r.u64();
        if (!r.failed() && (m.after <= m.before || m.old_id == m.new_id)) {
            r.fail(error::bad_value);
        }
        out = std::move(m);
        break;
    }
    case msg_type::get_all: {
        get_all_msg m;
        m.request = r.u64();
        const auto mode = r.u8();
        if (!r.failed() && mode > static_cast<std::uint8_t>(get_all_msg::mode::rejoin)) {
            r.fail(error::bad_value);
        }
        m.what = static_cast<get_all_msg::mode>(mode);
        out = m;
        break;
    }
    case msg_type::all_data: {
        all_data_msg m;
        m.request = r.u64();
        m.seq = r.u32();
        m.sessions = read_sessions(r);
        out = std::move(m);
        break;
    }
    case msg_type::transfer_complete: {
        transfer_complete_msg m;
        m.request = r.u64();
        m.sessions = r.u64();
        m.chunks = r.u32();
        out = m;
        break;
    }
    case msg_type::no_such_context: {
        no_such_context_msg m;
        m.request = r.u64();
        out = m;
        break;
    }
    case msg_type::get_sessions: {
        get_sessions_msg m;
        m.ids = read_ids(r);
        out = std::move(m);
        break;
    }
    case msg_type::session_data: {
        session_data_msg m;
        m.found = read_sessions(r);
        m.missing = read_ids(r);
        out = std::move(m);
        break;
    }
    case msg_type::digest: {
        digest_msg m;
        m.request = r.u64();
        m.seq = r.u32();
        const auto n = r.count(min_digest);
        m.entries.reserve(n);
        for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
            digest_entry e;
            e.id = r.id();
            e.where.version = r.u64();
            e.where.tag = r.u64();
            e.where.acked = r.u64();
            const auto flags = r.u8();
            if (!r.failed() && ((flags & ~(flag_tombstone | flag_route_tombstone)) != 0 ||
                                (flags & (flag_tombstone | flag_route_tombstone)) == flag_route_tombstone)) {
                r.fail(error::bad_value);
            }
            e.tombstone = (flags & flag_tombstone) != 0;
            e.route = (flags & flag_route_tombstone) != 0;
            if (e.route) {
                e.to = r.id();
                if (!r.failed() && e.to == e.id) {
                    r.fail(error::bad_value); // renamed to itself
                }
            }
            if (!r.failed() && e.tombstone && (e.where.acked != 0 || e.where.tag != 0)) {
                r.fail(error::bad_value); // a tombstone has no lineage
            }
            if (!r.failed() && e.where.acked > e.where.version) {
                r.fail(error::bad_value); // nothing past the copy's own version was acknowledged
            }
            m.entries.push_back(std::move(e));
        }
        out = std::move(m);
        break;
    }
    case msg_type::newer_copy: {
        newer_copy_msg m;
        m.sessions = read_sessions(r);
        out = std::move(m);
        break;
    }
    case msg_type::fetch: {
        fetch_msg m;
        m.request = r.u64();
        m.id = r.id();
        m.any = r.boolean();
        out = std::move(m);
        break;
    }
    case msg_type::fetch_reply: {
        fetch_reply_msg m;
        m.request = r.u64();
        const auto what = r.u8();
        if (!r.failed() && what > static_cast<std::uint8_t>(fetch_reply_msg::outcome::busy)) {
            r.fail(error::bad_value);
        }
        m.what = static_cast<fetch_reply_msg::outcome>(what);
        m.to = r.member();
        m.session = read_sessions(r);
        if (!r.failed() && (m.what == fetch_reply_msg::outcome::found) != (m.session.size() == 1)) {
            r.fail(error::bad_value); // found carries exactly one session, the others none
        }
        out = std::move(m);
        break;
    }
    case msg_type::locations: {
        locations_msg m;
        const auto n = r.count(min_location);
        m.entries.reserve(n);
        for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
            location_entry e;
            e.id = r.id();
            e.primary = r.member();
            e.backup = r.member();
            e.version = r.u64();
            const auto flags = r.u8();
            if (!r.failed() && ((flags & ~(location_gone | location_renamed)) != 0 ||
                                (flags & (location_gone | location_renamed)) == location_renamed)) {
                r.fail(error::bad_value);
            }
            e.gone = (flags & location_gone) != 0;
            e.renamed = (flags & location_renamed) != 0;
            if (e.renamed) {
                e.to = r.id();
                if (!r.failed() && e.to == e.id) {
                    r.fail(error::bad_value); // renamed to itself
                }
            }
            m.entries.push_back(std::move(e));
        }
        out = std::move(m);
        break;
    }
    case msg_type::backup_check: {
        backup_check_msg m;
        const auto n = r.count(min_backup_check);
        m.entries.reserve(n);
        for (std::uint32_t i = 0; i < n && !r.failed(); ++i) {
            auto id = r.id();
            const auto version = r.u64();
            m.entries.emplace_back(std::move(id), version);
        }
        out = std::move(m);
        break;
    }
    default: return make_error_code(error::unknown_type);
    }
    if (r.failed()) {
        return r.ec();
    }
    if (r.left() != 0) {
        return make_error_code(error::trailing_bytes);
    }
    return {};
}

void append_header(buffer& out, msg_type type) {
    out.push_back(magic0);
    out.push_back(magic1);
    out.push_back(codec_version);
    out.push_back(static_cast<std::uint8_t>(type));
}

void append_u8(buffer& out, std::uint8_t v) { out.push_back(v); }
void append_u32(buffer& out, std::uint32_t v) { append_uint(out, v, 4); }
void append_u64(buffer& out, std::uint64_t v) { append_uint(out, v, 8); }

void append_str8(buffer& out, std::string_view s) {
    const auto n = std::min<std::size_t>(s.size(), 0xff);
    out.push_back(static_cast<std::uint8_t>(n));
    out.insert(out.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
}

void append_str16(buffer& out, std::string_view s) {
    const auto n = std::min<std::size_t>(s.size(), 0xffff);
    append_uint(out, n, 2);
    out.insert(out.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
}

void patch_u32(buffer& out, std::size_t pos, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        out[pos + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
    }
}

void append_session_header(buffer& out, const session_header& h) {
    append_str8(out, h.id);
    append_u64(out, h.created_age_ms);
    append_u64(out, h.idle_ms);
    append_u64(out, static_cast<std::uint64_t>(h.max_inactive_s));
    append_u64(out, h.where.version);
    append_u64(out, h.where.tag);
    append_u64(out, h.where.acked);
    for (const auto t : h.ancestors) {
        append_u64(out, t);
    }
    append_u32(out, h.attribute_count);
}

void begin_created(buffer& out, const session_header& h) {
    append_header(out, msg_type::created);
    append_session_header(out, h);
}

void begin_delta(buffer& out, std::string_view id, std::uint64_t before, std::uint64_t after,
                 std::uint64_t before_tag, std::uint64_t after_tag, std::uint32_t changes) {
    append_header(out, msg_type::delta);
    append_str8(out, id);
    append_u64(out, before);
    append_u64(out, after);
    append_u64(out, before_tag);
    append_u64(out, after_tag);
    append_u32(out, changes);
}

void append_set(buffer& out, std::string_view name, const attribute& a) {
    out.push_back(static_cast<std::uint8_t>(change::kind::set));
    append_attribute(out, name, a);
}

void append_remove(buffer& out, std::string_view name) {
    out.push_back(static_cast<std::uint8_t>(change::kind::remove));
    append_str16(out, name);
}

void append_max_inactive(buffer& out, std::int64_t seconds) {
    out.push_back(static_cast<std::uint8_t>(change::kind::max_inactive));
    append_u64(out, static_cast<std::uint64_t>(seconds));
}

std::size_t digest_entry_size(std::size_t id_size, std::size_t to_size) {
    return 1 + id_size + 8 + 8 + 8 + 1 + (to_size > 0 ? 1 + to_size : 0);
}
std::size_t location_entry_size(std::size_t id_size, std::size_t to_size) {
    return 1 + id_size + 2 * member_id_size + 8 + 1 + (to_size > 0 ? 1 + to_size : 0);
}

std::size_t backup_check_entry_size(std::size_t id_size) { return 1 + id_size + 8; }

void append_member_id(buffer& out, const membership::member_id& m) {
    out.insert(out.end(), m.bytes.begin(), m.bytes.end());
}

counted_writer::counted_writer(msg_type t, bool transfer, std::uint64_t request, std::uint32_t seq)
    : type_(t) {
    append_header(out_, t);
    if (transfer) {
        append_u64(out_, request);
        append_u32(out_, seq);
    }
    count_pos_ = out_.size();
    append_u32(out_, 0);
}

counted_writer counted_writer::all_data(std::uint64_t request, std::uint32_t seq) {
    return {msg_type::all_data, true, request, seq};
}
counted_writer counted_writer::digest(std::uint64_t request, std::uint32_t seq) {
    return {msg_type::digest, true, request, seq};
}
counted_writer counted_writer::accessed() { return {msg_type::accessed, false, 0, 0}; }
counted_writer counted_writer::session_data() { return {msg_type::session_data, false, 0, 0}; }
counted_writer counted_writer::newer_copy() { return {msg_type::newer_copy, false, 0, 0}; }

void counted_writer::add_session(const session_header& h, const std::function<void(buffer&)>& attributes) {
    append_session_header(out_, h);
    if (attributes) {
        attributes(out_);
    }
    ++count_;
}

void counted_writer::add_digest(const digest_entry& e) {
    append_str8(out_, e.id);
    append_u64(out_, e.where.version);
    append_u64(out_, e.tombstone ? 0 : e.where.tag);
    append_u64(out_, e.tombstone ? 0 : e.where.acked);
    const bool route = e.tombstone && e.route && !e.to.empty(); // else an end for good
    append_u8(out_, static_cast<std::uint8_t>(e.tombstone ? flag_tombstone | (route ? flag_route_tombstone : 0) : 0));
    if (route) {
        append_str8(out_, e.to);
    }
    ++count_;
}

void counted_writer::add_access(std::string_view id, std::uint32_t idle_ms) {
    append_str8(out_, id);
    append_u32(out_, idle_ms);
    ++count_;
}

buffer counted_writer::finish(const std::vector<std::string>& missing) {
    patch_u32(out_, count_pos_, count_);
    if (type_ == msg_type::session_data) {
        append_ids(out_, missing);
    }
    count_ = 0;
    return std::move(out_);
}

void append_attribute(buffer& out, std::string_view name, const attribute& a) {
    append_str16(out, name);
    append_attribute_value(out, a);
}

std::size_t session_size(std::size_t id_size, std::size_t attribute_count, std::size_t payload_bytes) {
    return 1 + id_size + 8 * 6 + 8 * 4 + 4 + attribute_count * min_attribute + payload_bytes;
}

void append_full_session(buffer& out, const full_session& s) {
    append_session_header(out, {s.id, s.created_age_ms, s.idle_ms, s.max_inactive_s, s.where(),
                                static_cast<std::uint32_t>(s.attributes.size()), s.ancestors});
    for (const auto& [name, a] : s.attributes) {
        append_attribute(out, name, a);
    }
}

void append_change(buffer& out, const change& c) {
    out.push_back(static_cast<std::uint8_t>(c.what));
    switch (c.what) {
    case change::kind::set:
        append_str16(out, c.name);
        append_attribute_value(out, c.value);
        break;
    case change::kind::remove: append_str16(out, c.name); break;
    case change::kind::max_inactive: append_u64(out, static_cast<std::uint64_t>(c.seconds)); break;
    }
}

buffer encode(const message& msg) {
    buffer out;
    append_header(out, type_of(msg));
    std::visit(
        [&out](const auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, created_msg>) {
                append_full_session(out, m.s);
            } else if constexpr (std::is_same_v<T, delta_msg>) {
                append_str8(out, m.id);
                append_u64(out, m.before);
                append_u64(out, m.after);
                append_u64(out, m.before_tag);
                append_u64(out, m.after_tag);
                append_u32(out, static_cast<std::uint32_t>(m.changes.size()));
                for (const auto& c : m.changes) {
                    append_change(out, c);
                }
            } else if constexpr (std::is_same_v<T, expired_msg>) {
                append_str8(out, m.id);
                append_u64(out, m.version);
                append_u8(out, m.invalidated ? 1 : 0);
            } else if constexpr (std::is_same_v<T, accessed_msg>) {
                append_u32(out, static_cast<std::uint32_t>(m.entries.size()));
                for (const auto& [id, idle] : m.entries) {
                    append_str8(out, id);
                    append_u32(out, idle);
                }
            } else if constexpr (std::is_same_v<T, id_changed_msg>) {
                append_str8(out, m.old_id);
                append_str8(out, m.new_id);
                append_u64(out, m.before);
                append_u64(out, m.after);
            } else if constexpr (std::is_same_v<T, get_all_msg>) {
                append_u64(out, m.request);
                append_u8(out, static_cast<std::uint8_t>(m.what));
            } else if constexpr (std::is_same_v<T, all_data_msg>) {
                append_u64(out, m.request);
                append_u32(out, m.seq);
                append_u32(out, static_cast<std::uint32_t>(m.sessions.size()));
                for (const auto& s : m.sessions) {
                    append_full_session(out, s);
                }
            } else if constexpr (std::is_same_v<T, transfer_complete_msg>) {
                append_u64(out, m.request);
                append_u64(out, m.sessions);
                append_u32(out, m.chunks);
            } else if constexpr (std::is_same_v<T, no_such_context_msg>) {
                append_u64(out, m.request);
            } else if constexpr (std::is_same_v<T, get_sessions_msg>) {
                append_ids(out, m.ids);
            } else if constexpr (std::is_same_v<T, session_data_msg>) {
                append_u32(out, static_cast<std::uint32_t>(m.found.size()));
                for (const auto& s : m.found) {
                    append_full_session(out, s);
                }
                append_ids(out, m.missing);
            } else if constexpr (std::is_same_v<T, digest_msg>) {
                auto w = counted_writer::digest(m.request, m.seq);
                for (const auto& e : m.entries) {
                    w.add_digest(e);
                }
                const auto body = w.finish();
                out.insert(out.end(), body.begin() + static_cast<std::ptrdiff_t>(header_size), body.end());
            } else if constexpr (std::is_same_v<T, newer_copy_msg>) {
                append_u32(out, static_cast<std::uint32_t>(m.sessions.size()));
                for (const auto& s : m.sessions) {
                    append_full_session(out, s);
                }
            } else if constexpr (std::is_same_v<T, fetch_msg>) {
                append_u64(out, m.request);
                append_str8(out, m.id);
                append_u8(out, m.any ? 1 : 0);
            } else if constexpr (std::is_same_v<T, fetch_reply_msg>) {
                append_u64(out, m.request);
                append_u8(out, static_cast<std::uint8_t>(m.what));
                append_member_id(out, m.to);
                append_u32(out, static_cast<std::uint32_t>(m.session.size()));
                for (const auto& s : m.session) {
                    append_full_session(out, s);
                }
            } else if constexpr (std::is_same_v<T, locations_msg>) {
                append_u32(out, static_cast<std::uint32_t>(m.entries.size()));
                for (const auto& e : m.entries) {
                    append_str8(out, e.id);
                    append_member_id(out, e.primary);
                    append_member_id(out, e.backup);
                    append_u64(out, e.version);
                    const bool renamed = e.gone && e.renamed && !e.to.empty(); // else an end for good
                    append_u8(out, static_cast<std::uint8_t>((e.gone ? location_gone : 0) |
                                                             (renamed ? location_renamed : 0)));
                    if (renamed) {
                        append_str8(out, e.to);
                    }
                }
            } else if constexpr (std::is_same_v<T, backup_check_msg>) {
                append_u32(out, static_cast<std::uint32_t>(m.entries.size()));
                for (const auto& [id, version] : m.entries) {
                    append_str8(out, id);
                    append_u64(out, version);
                }
            }
        },
        msg);
    return out;
}

} // namespace troupe::managers::wire
