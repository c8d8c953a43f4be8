// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/frame_arena.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

using namespace troupe::transport;

namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// The payload of the single DATA frame a slice must hold.
std::string payload_of(const frame_slice& s) {
    frame_view f;
    const auto r = decode_frame({s.data, s.size}, 1 << 20, f);
    REQUIRE(r.what == decode_result::kind::frame);
    REQUIRE(r.consumed == s.size);
    data_view d;
    REQUIRE_FALSE(parse_data(f.body, d));
    return {d.payload.begin(), d.payload.end()};
}

} // namespace

TEST_CASE("an arena packs frames back to back, and bytes once written never move", "[transport]") {
    frame_arena arena(4096);
    std::vector<frame_slice> slices;
    slices.push_back(arena.append_data(0, 8, "ctx", bytes_of("message 0")));
    const std::uint8_t* first = slices[0].block->data();
    CHECK(slices[0].data == first);
    for (int i = 1; i < 20; ++i) {
        slices.push_back(arena.append_data(i, 8, "ctx", bytes_of("message " + std::to_string(i))));
    }
    // Each frame follows the previous one in the same block until a block is full.
    for (std::size_t i = 1; i < slices.size(); ++i) {
        REQUIRE(slices[i].block == slices[i - 1].block);
        REQUIRE(slices[i].data == slices[i - 1].data + slices[i - 1].size);
    }
    CHECK(slices[0].block->data() == first); // 19 appends later, still where it was
    for (std::size_t i = 0; i < slices.size(); ++i) {
        CHECK(payload_of(slices[i]) == "message " + std::to_string(i));
    }
}

TEST_CASE("a full block starts the next one, and a frame bigger than a block gets its own", "[transport]") {
    frame_arena arena(1024);
    const std::string half(450, 'h');
    const auto a = arena.append_data(1, 8, "c", bytes_of(half));
    const auto b = arena.append_data(2, 8, "c", bytes_of(half));
    const auto c = arena.append_data(3, 8, "c", bytes_of(half)); // does not fit behind b
    CHECK(a.block == b.block);
    CHECK(c.block != b.block);
    CHECK(c.data == c.block->data());

    const std::string big(5000, 'B');
    const auto d = arena.append_data(4, 8, "c", bytes_of(big));
    CHECK(d.block != c.block);
    CHECK(d.data == d.block->data());
    CHECK(payload_of(d) == big);
    // The big frame did not end the current block: the next frame continues it.
    const auto e = arena.append_data(5, 8, "c", bytes_of("small"));
    CHECK(e.block == c.block);
    CHECK(e.data == c.data + c.size);
}

TEST_CASE("a block returns to the arena when its last slice is let go, from any thread", "[transport]") {
    frame_arena arena(1024, 2);
    const std::string third(300, 't');
    std::vector<frame_slice> first_block;
    for (int i = 0; i < 3; ++i) {
        first_block.push_back(arena.append_data(i, 8, "c", bytes_of(third)));
    }
    const auto* reused = first_block[0].block.get();
    const auto next = arena.append_data(9, 8, "c", bytes_of(third)); // starts block two
    REQUIRE(next.block.get() != reused);
    CHECK(arena.spare_blocks() == 0);

    // A writer thread drops the slices: the block goes back to the pool, empty.
    std::thread writer([slices = std::move(first_block)]() mutable { slices.clear(); });
    writer.join();
    CHECK(arena.spare_blocks() == 1);

    // Filling block two takes block one again instead of allocating.
    frame_slice after;
    for (int i = 0; i < 4 && (after.block == nullptr || after.block == next.block); ++i) {
        after = arena.append_data(10 + i, 8, "c", bytes_of(third));
    }
    CHECK(after.block.get() == reused);
    CHECK(after.data == reused->data());
    CHECK(arena.spare_blocks() == 0);
    CHECK(payload_of(after) == third);
}

TEST_CASE("slices outlive the arena that made them", "[transport]") {
    frame_slice kept;
    {
        frame_arena arena;
        kept = arena.append_data(7, 8, "c", bytes_of("still here"));
    }
    CHECK(payload_of(kept) == "still here");
}
