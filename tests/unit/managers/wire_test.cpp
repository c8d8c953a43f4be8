// SPDX-License-Identifier: Apache-2.0
#include "wire.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <random>

using namespace troupe::managers;
namespace wire = troupe::managers::wire;

namespace {

wire::full_session sample_session(const std::string& id, int attributes) {
    wire::full_session s;
    s.id = id;
    s.created_age_ms = 123456;
    s.idle_ms = 789;
    s.max_inactive_s = -1;
    s.version = 42;
    s.tag = 0x0123456789abcdefULL;
    s.acked = 40; // its last two steps not acknowledged
    s.ancestors = {41, 40, 0, 1};
    for (int i = 0; i < attributes; ++i) {
        s.attributes.emplace_back("attr" + std::to_string(i),
                                  attribute{"string", std::vector<std::uint8_t>(static_cast<std::size_t>(i * 3), 'x')});
    }
    return s;
}

/// One of every message, with content in every field.
std::vector<wire::message> samples() {
    std::vector<wire::message> out;
    out.push_back(wire::created_msg{sample_session("0123.node-a", 2)});
    wire::delta_msg d;
    d.id = "abcd.node-b";
    d.before = 7;
    d.after = 8;
    d.before_tag = 0xfeedfacecafebeefULL;
    d.after_tag = 1;
    d.changes.push_back({change::kind::set, "cart", attribute{"boost:4cart", {1, 2, 3}}, 0});
    d.changes.push_back({change::kind::remove, "old", {}, 0});
    d.changes.push_back({change::kind::max_inactive, {}, {}, 600});
    d.changes.push_back({change::kind::set, "", attribute{"", {}}, 0});
    out.push_back(d);
    out.push_back(wire::expired_msg{"x.n", 9, true});
    out.push_back(wire::accessed_msg{{{"a.n", 10}, {"b.n", 0xffffffffu}}});
    out.push_back(wire::id_changed_msg{"old.n", "new.n", 3, 4});
    out.push_back(wire::get_all_msg{0x1122334455667788ULL, wire::get_all_msg::mode::digest});
    out.push_back(wire::all_data_msg{5, 2, {sample_session("s1.n", 0), sample_session("s2.n", 3)}});
    out.push_back(wire::transfer_complete_msg{5, 100000, 97});
    out.push_back(wire::no_such_context_msg{77});
    out.push_back(wire::get_sessions_msg{{"a.n", "b.n", "c.n"}});
    out.push_back(wire::session_data_msg{{sample_session("s3.n", 1)}, {"gone.n"}});
    out.push_back(wire::digest_msg{6, 1,
                                   {{"a.n", {1, 99, 1}, false},
                                    {"b.n", {UINT64_MAX, 0xffffffffffffffffULL, 7}, false},
                                    {"c.n", {12, 0, 0}, true},
                                    {"d.n", {13, 0, 0}, true, true, "d.m"}}});
    out.push_back(wire::get_all_msg{3, wire::get_all_msg::mode::rejoin});
    out.push_back(wire::newer_copy_msg{{sample_session("n1.n", 1), sample_session("n2.n", 0)}});
    wire::locations_msg l;
    troupe::membership::member_id p;
    p.bytes.fill(7);
    l.entries.push_back({"live.n", p, p, 3, false, false});
    l.entries.push_back({"ended.n", p, {}, 4, true, false});
    l.entries.push_back({"renamed.n", p, {}, 5, true, true, "renamed.m"}); // a route rewrite's old id
    out.push_back(l);
    out.push_back(wire::backup_check_msg{{{"held.n", 83}, {"other.m", UINT64_MAX}}});
    return out;
}

bool same(const wire::message& a, const wire::message& b) {
    if (a.index() != b.index()) {
        return false;
    }
    return wire::encode(a) == wire::encode(b);
}

boost::system::error_code decode(const wire::buffer& b) {
    wire::message m;
    return wire::decode(b, m);
}

} // namespace

TEST_CASE("every session message round-trips through the codec", "[managers]") {
    for (const auto& m : samples()) {
        INFO("type " << wire::to_string(wire::type_of(m)));
        const auto bytes = wire::encode(m);
        CHECK(bytes[0] == 'T');
        CHECK(bytes[1] == 'S');
        CHECK(bytes[2] == wire::codec_version);
        CHECK(bytes[3] == static_cast<std::uint8_t>(wire::type_of(m)));
        wire::message back;
        REQUIRE_FALSE(wire::decode(bytes, back));
        CHECK(wire::type_of(back) == wire::type_of(m));
        CHECK(same(back, m));
    }
    // Field by field for the two that matter most.
    wire::message back;
    REQUIRE_FALSE(wire::decode(wire::encode(samples()[1]), back));
    const auto& d = std::get<wire::delta_msg>(back);
    CHECK(d.id == "abcd.node-b");
    CHECK(d.before == 7);
    CHECK(d.after == 8);
    CHECK(d.before_tag == 0xfeedfacecafebeefULL);
    CHECK(d.after_tag == 1);
    REQUIRE(d.changes.size() == 4);
    CHECK(d.changes[0] == std::get<wire::delta_msg>(samples()[1]).changes[0]);
    CHECK(d.changes[2].seconds == 600);
    REQUIRE_FALSE(wire::decode(wire::encode(samples()[0]), back));
    CHECK(std::get<wire::created_msg>(back).s == sample_session("0123.node-a", 2));
    // Digest entries keep the stamp and tell tombstones apart.
    REQUIRE_FALSE(wire::decode(wire::encode(samples()[11]), back));
    const auto& dg = std::get<wire::digest_msg>(back);
    REQUIRE(dg.entries.size() == 4);
    CHECK(dg.entries[0] == wire::digest_entry{"a.n", {1, 99, 1}, false});
    CHECK(dg.entries[1].where.tag == 0xffffffffffffffffULL);
    CHECK(dg.entries[1].where.acked == 7);
    CHECK(dg.entries[2].tombstone);
    CHECK(dg.entries[2].where.version == 12);
    CHECK_FALSE(dg.entries[2].route);
    CHECK(dg.entries[3] == wire::digest_entry{"d.n", {13, 0, 0}, true, true, "d.m"}); // a route rewrite's, and where to
}

TEST_CASE("the incremental encoders write what the decoder reads", "[managers]") {
    const auto s = sample_session("inc.n", 3);
    auto w = wire::counted_writer::all_data(9, 1);
    for (int i = 0; i < 2; ++i) {
        w.add_session({s.id, s.created_age_ms, s.idle_ms, s.max_inactive_s, s.where(),
                       static_cast<std::uint32_t>(s.attributes.size()), s.ancestors},
                      [&s](wire::buffer& out) {
                          for (const auto& [name, a] : s.attributes) {
                              wire::append_attribute(out, name, a);
                          }
                      });
    }
    CHECK(w.count() == 2);
    const auto b = w.finish();
    wire::message m;
    REQUIRE_FALSE(wire::decode(b, m));
    const auto& chunk = std::get<wire::all_data_msg>(m);
    CHECK(chunk.request == 9);
    REQUIRE(chunk.sessions.size() == 2);
    CHECK(chunk.sessions[1] == s);
    std::size_t payload = 0;
    for (const auto& [name, a] : s.attributes) {
        payload += name.size() + a.type.size() + a.bytes.size();
    }
    // session_size() bounds what one session takes, so chunks stay in bounds.
    CHECK((b.size() - 20) / 2 <= wire::session_size(s.id.size(), s.attributes.size(), payload));

    // The other counted messages, and the delta and created builders.
    auto sd = wire::counted_writer::session_data();
    sd.add_session({s.id, 0, 0, 0, s.where(), 0}, nullptr);
    REQUIRE_FALSE(wire::decode(sd.finish({"gone.n"}), m));
    CHECK(std::get<wire::session_data_msg>(m).missing == std::vector<std::string>{"gone.n"});
    auto acc = wire::counted_writer::accessed();
    acc.add_access("a.n", 5);
    REQUIRE_FALSE(wire::decode(acc.finish(), m));
    CHECK(std::get<wire::accessed_msg>(m).entries.size() == 1);
    auto dg = wire::counted_writer::digest(4, 2);
    dg.add_digest({"a.n", {3, 4, 3}, false});
    CHECK(dg.size() - (wire::header_size + 12 + 4) == wire::digest_entry_size(3));
    REQUIRE_FALSE(wire::decode(dg.finish(), m));
    CHECK(std::get<wire::digest_msg>(m).entries.front().where == wire::stamp{3, 4, 3});
    wire::buffer delta;
    wire::begin_delta(delta, "a.n", 1, 2, 10, 20, 3);
    wire::append_set(delta, "x", attribute{"string", {'v'}});
    wire::append_remove(delta, "y");
    wire::append_max_inactive(delta, 60);
    REQUIRE_FALSE(wire::decode(delta, m));
    CHECK(std::get<wire::delta_msg>(m).after_tag == 20);
    CHECK(std::get<wire::delta_msg>(m).changes.size() == 3);
}

TEST_CASE("every truncation of every message is rejected", "[managers]") {
    for (const auto& m : samples()) {
        const auto bytes = wire::encode(m);
        INFO("type " << wire::to_string(wire::type_of(m)));
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            INFO("first " << n << " of " << bytes.size() << " bytes");
            const wire::buffer cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
            const auto ec = decode(cut);
            REQUIRE(ec);
            CHECK((ec == error::truncated || ec == error::too_long || ec == error::bad_value));
        }
    }
}

TEST_CASE("a trailing byte after any message is rejected", "[managers]") {
    for (const auto& m : samples()) {
        auto bytes = wire::encode(m);
        bytes.push_back(0);
        CHECK(decode(bytes) == error::trailing_bytes);
    }
}

TEST_CASE("wrong magic, codec version and type are rejected", "[managers]") {
    auto bytes = wire::encode(wire::no_such_context_msg{1});
    auto bad = bytes;
    bad[0] = 'X';
    CHECK(decode(bad) == error::bad_magic);
    bad = bytes;
    bad[2] = 1; // the codec before stamps
    CHECK(decode(bad) == error::unsupported_version);
    bad = bytes;
    bad[3] = 0;
    CHECK(decode(bad) == error::unknown_type);
    bad[3] = 18; // after backup_check
    CHECK(decode(bad) == error::unknown_type);
    bad[3] = 0xff;
    CHECK(decode(bad) == error::unknown_type);
    CHECK(decode({}) == error::truncated);
    CHECK(decode({'T', 'S', 1}) == error::truncated);
}

TEST_CASE("out-of-range fields are rejected", "[managers]") {
    // A delta whose version does not advance.
    wire::delta_msg d{"a.n", 5, 5, 0, 0, {}};
    CHECK(decode(wire::encode(d)) == error::bad_value);
    d.after = 4;
    CHECK(decode(wire::encode(d)) == error::bad_value);
    // An empty session id.
    CHECK(decode(wire::encode(wire::expired_msg{"", 1, false})) == error::bad_value);
    CHECK(decode(wire::encode(wire::get_sessions_msg{{"ok.n", ""}})) == error::bad_value);
    // A boolean that is neither 0 nor 1.
    auto e = wire::encode(wire::expired_msg{"a.n", 1, false});
    e.back() = 2;
    CHECK(decode(e) == error::bad_value);
    // An unknown change kind.
    wire::delta_msg ok{"a.n", 1, 2, 0, 0, {{change::kind::remove, "x", {}, 0}}};
    auto k = wire::encode(ok);
    k[4 + 1 + 3 + 8 + 8 + 8 + 8 + 4] = 3; // the change's kind byte
    CHECK(decode(k) == error::bad_value);
    // An unknown get-all mode.
    auto g = wire::encode(wire::get_all_msg{1, wire::get_all_msg::mode::full});
    g.back() = 4;
    CHECK(decode(g) == error::bad_value);
    // Unknown flags; a tombstone with a lineage; acknowledged past its version.
    auto flags = wire::encode(wire::digest_msg{1, 1, {{"a.n", {1, 0, 0}, false}}});
    flags.back() = 4;
    CHECK(decode(flags) == error::bad_value);
    flags.back() = 3; // an unknown bit beside the tombstone's
    CHECK(decode(flags) == error::bad_value);
    auto tomb = wire::encode(wire::digest_msg{1, 1, {{"a.n", {1, 7, 0}, false}}});
    tomb.back() = 2; // a tombstone, but the tag is 7
    CHECK(decode(tomb) == error::bad_value);
    auto tomb_acked = wire::encode(wire::digest_msg{1, 1, {{"a.n", {1, 0, 1}, false}}});
    tomb_acked.back() = 2; // a tombstone, but acknowledged at 1
    CHECK(decode(tomb_acked) == error::bad_value);
    CHECK(decode(wire::encode(wire::digest_msg{1, 1, {{"a.n", {1, 0, 2}, false}}})) == error::bad_value);
    auto whole = wire::encode(wire::created_msg{sample_session("a.n", 0)});
    REQUIRE(decode(whole) == boost::system::error_code{});
    whole[whole.size() - 4 - 32 - 8] = 1; // the session's acked, far past its version 42
    CHECK(decode(whole) == error::bad_value);
    // A location renamed but not gone; renamed to nothing, or to itself.
    wire::locations_msg l;
    l.entries.push_back({"a.n", {}, {}, 1, true, true, "a.m"});
    auto renamed = wire::encode(l);
    REQUIRE(decode(renamed) == boost::system::error_code{});
    const auto flag_at = renamed.size() - 1 - 3 - 1; // before the new id (str8 "a.m")
    renamed[flag_at] = 2;
    CHECK(decode(renamed) == error::bad_value);
    renamed[flag_at] = 4;
    CHECK(decode(renamed) == error::bad_value);
    renamed[flag_at] = 3;
    renamed[renamed.size() - 1] = 'n'; // "a.n": to itself
    CHECK(decode(renamed) == error::bad_value);
    renamed.resize(renamed.size() - 3);
    renamed.back() = 0; // an empty new id
    CHECK(decode(renamed) == error::bad_value);
    // A route tombstone renamed to nothing, or to itself.
    auto route = wire::encode(wire::digest_msg{1, 1, {{"a.n", {1, 0, 0}, true, true, "a.n"}}});
    CHECK(decode(route) == error::bad_value);
    route.resize(route.size() - 3);
    route.back() = 0;
    CHECK(decode(route) == error::bad_value);
    // An id change to the same id.
    CHECK(decode(wire::encode(wire::id_changed_msg{"a.n", "a.n", 1, 2})) == error::bad_value);
}

TEST_CASE("counts and lengths beyond the bytes present are rejected before any allocation", "[managers]") {
    // 4 billion sessions in a chunk of a few bytes.
    wire::buffer b;
    wire::append_header(b, wire::msg_type::all_data);
    wire::append_u64(b, 1);
    wire::append_u32(b, 1);
    wire::append_u32(b, 0xffffffffu);
    CHECK(decode(b) == error::too_long);
    // An attribute value claiming 4 GiB.
    b.clear();
    wire::begin_created(b, {"a.n", 0, 0, 0, {1, 0, 1}, 1});
    wire::append_str16(b, "name");
    wire::append_str16(b, "string");
    wire::append_u32(b, 0xffffffffu);
    CHECK(decode(b) == error::truncated);
    // A delta claiming a million changes.
    b.clear();
    wire::begin_delta(b, "a.n", 1, 2, 0, 0, 1000000);
    CHECK(decode(b) == error::too_long);
    // Access entries, ids, whole copies.
    for (auto type : {wire::msg_type::accessed, wire::msg_type::get_sessions, wire::msg_type::newer_copy}) {
        b.clear();
        wire::append_header(b, type);
        wire::append_u32(b, 0x7fffffff);
        CHECK(decode(b) == error::too_long);
    }
}

TEST_CASE("random bytes never crash the decoder", "[managers]") {
    std::mt19937 rng(12345);
    const auto templates = samples();
    std::size_t rejected = 0;
    for (int i = 0; i < 20000; ++i) {
        auto bytes = wire::encode(templates[static_cast<std::size_t>(i) % templates.size()]);
        // Flip a few bytes after the header, sometimes the header too.
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
            const auto pos = rng() % bytes.size();
            bytes[pos] = static_cast<std::uint8_t>(rng());
        }
        wire::message m;
        if (wire::decode(bytes, m)) {
            ++rejected;
        } else {
            // What decodes re-encodes to the same bytes.
            CHECK(wire::encode(m) == bytes);
        }
    }
    CHECK(rejected > 0);
}

// Not a check: writes one seed per sample message for the session fuzzer's
// corpus (tests/fuzz/corpus/session_fuzz), so the seeds follow the codec.
//   unit_managers "[.make-seeds]" with TROUPE_SEED_DIR set
TEST_CASE("write the session fuzzer's seeds", "[.make-seeds]") {
    const char* dir = std::getenv("TROUPE_SEED_DIR");
    REQUIRE(dir != nullptr);
    for (const auto& m : samples()) {
        const auto bytes = wire::encode(m);
        std::ofstream out(std::string(dir) + "/" + std::string(wire::to_string(wire::type_of(m))),
                          std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        REQUIRE(out.good());
    }
}
