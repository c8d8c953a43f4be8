// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the session managers' wire codec: arbitrary bytes go
// through wire::decode as a replica's listener gets them; whatever decodes must
// re-encode to exactly the same bytes, and is then applied to a session the way
// a replica applies it (whole sessions installed and read back, deltas applied
// in order). The body decoders are also fed the input behind each valid header,
// so they are reached without libFuzzer having to find the header first.
// A crash, a sanitizer report or a broken invariant (a trap) is a bug.
#include "session_access.hpp"
#include "wire.hpp"

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <map>
#include <span>
#include <variant>
#include <vector>

namespace {

using namespace troupe::managers;
namespace wire = troupe::managers::wire;
using detail::apply_result;
using detail::session_access;

void require(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

const wall_clock::time_point now{std::chrono::hours(24 * 365 * 50)};

void check_whole(const wire::full_session& f) {
    auto s = session_access::from_full(f, now);
    require(s->id() == f.id);
    require(s->version() == f.version);
    const auto back = session_access::to_full(*s, now);
    // Intervals beyond a century are clamped (chrono would overflow).
    constexpr std::int64_t century_s = 100LL * 365 * 24 * 3600;
    require(back.id == f.id && back.version == f.version && back.tag == f.tag &&
            back.acked == f.acked && back.ancestors == f.ancestors &&
            back.max_inactive_s == std::min(f.max_inactive_s, century_s));
    // Duplicate names: the last one wins, as in the map the replica keeps.
    std::map<std::string, attribute, std::less<>> expected;
    for (const auto& [name, a] : f.attributes) {
        expected.insert_or_assign(name, a);
    }
    require(s->attributes() == expected);
    auto chunk = wire::counted_writer::session_data();
    const auto empty = chunk.size();
    require(session_access::add_to(*s, chunk, now));
    require(chunk.size() - empty <= session_access::wire_size(*s));
}

void check_delta(const wire::delta_msg& d) {
    // A replica at exactly `before` (and its tag) applies it; one behind sees
    // a gap; one at `after` finds it a late duplicate; one at `before` with
    // another lineage refuses it.
    wire::full_session base;
    base.id = d.id;
    base.version = d.before;
    base.tag = d.before_tag;
    auto s = session_access::from_full(base, now);
    std::vector<session_event> events;
    require(session_access::apply_delta(*s, d, now, true, events) == apply_result::applied);
    require(s->version() == d.after);
    require(session_access::apply_delta(*s, d, now, true, events) == apply_result::stale);
    auto other = base;
    other.tag = d.before_tag + 1;
    auto diverged = session_access::from_full(other, now);
    require(session_access::apply_delta(*diverged, d, now, false, events) == apply_result::stale_base);
    // Each name ends as its last change left it.
    std::map<std::string, bool> present;
    for (const auto& c : d.changes) {
        if (c.what != change::kind::max_inactive) {
            present[c.name] = c.what == change::kind::set;
        }
    }
    for (const auto& [name, set] : present) {
        require(s->contains(name) == set);
    }
    if (d.before > 0) {
        base.version = d.before - 1;
        auto behind = session_access::from_full(base, now);
        require(session_access::apply_delta(*behind, d, now, false, events) == apply_result::gap);
    }
}

void check(std::span<const std::uint8_t> bytes) {
    wire::message m;
    if (wire::decode(bytes, m)) {
        return;
    }
    const auto again = wire::encode(m);
    require(again.size() == bytes.size() && std::equal(again.begin(), again.end(), bytes.begin()));
    std::visit(
        [](const auto& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (std::is_same_v<T, wire::created_msg>) {
                check_whole(msg.s);
            } else if constexpr (std::is_same_v<T, wire::all_data_msg>) {
                for (const auto& f : msg.sessions) {
                    check_whole(f);
                }
            } else if constexpr (std::is_same_v<T, wire::session_data_msg>) {
                for (const auto& f : msg.found) {
                    check_whole(f);
                }
            } else if constexpr (std::is_same_v<T, wire::newer_copy_msg>) {
                for (const auto& f : msg.sessions) {
                    check_whole(f);
                }
            } else if constexpr (std::is_same_v<T, wire::delta_msg>) {
                require(msg.after > msg.before && !msg.id.empty());
                check_delta(msg);
            } else if constexpr (std::is_same_v<T, wire::id_changed_msg>) {
                require(msg.after > msg.before && msg.old_id != msg.new_id);
            }
        },
        m);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    check(input);
    // The input as the body of every message type.
    std::vector<std::uint8_t> framed(wire::header_size + size);
    std::copy(input.begin(), input.end(), framed.begin() + wire::header_size);
    framed[0] = wire::magic0;
    framed[1] = wire::magic1;
    framed[2] = wire::codec_version;
    for (std::uint8_t type = 1; type <= static_cast<std::uint8_t>(wire::msg_type::newer_copy); ++type) {
        framed[3] = type;
        check(framed);
    }
    return 0;
}
