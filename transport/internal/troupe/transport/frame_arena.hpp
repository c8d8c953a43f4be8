// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/transport/frame.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace troupe::transport {

/// A run of whole frames inside a block: what a stream queues and writes.
/// `data` is taken when the frames are appended, so a writer never calls into
/// the block (a vector the arena may be appending to) to find its bytes.
struct frame_slice {
    std::shared_ptr<const buffer> block; ///< keeps the bytes alive
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
};

/// Packs async DATA frames back to back into large blocks, so that a burst of
/// small messages leaves in one gathered write with no allocation per message,
/// and a message sent to several members is encoded (copied) once and queued
/// to each of them as a slice of the same block.
///
/// Bytes once appended never move (a block's capacity is reserved up front), so
/// a stream may write a slice while later frames are appended behind it. A block
/// goes back to a small pool when its last slice is written, whichever thread
/// lets go of it: a fresh block costs a page fault per 4 KiB, as much as filling it.
///
/// @par Thread safety
/// Not synchronised: the owner serialises append_data(). Slices and their
/// blocks may be used and released from any thread.
class frame_arena {
public:
    static constexpr std::size_t default_block_size = 256 * 1024;

    /// @param max_spare written blocks kept for reuse.
    explicit frame_arena(std::size_t block_size = default_block_size, std::size_t max_spare = 4);
    frame_arena(const frame_arena&) = delete;
    frame_arena& operator=(const frame_arena&) = delete;
    ~frame_arena();

    /// Encodes one DATA frame (see append_data in frame.hpp) behind the last one.
    /// A frame bigger than a block gets a block of its own.
    frame_slice append_data(std::uint64_t id, std::uint32_t options, std::string_view context,
                            std::span<const std::uint8_t> payload);

    /// Blocks waiting in the pool (for tests).
    std::size_t spare_blocks() const;

private:
    struct pool;
    std::shared_ptr<buffer> take_block();

    std::size_t block_size_;
    std::shared_ptr<pool> pool_; ///< shared with the blocks, which may outlive the arena
    std::shared_ptr<buffer> current_;
};

} // namespace troupe::transport
