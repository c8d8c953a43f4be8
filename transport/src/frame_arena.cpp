// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/frame_arena.hpp>

#include <algorithm>
#include <mutex>
#include <vector>

namespace troupe::transport {

/// Written blocks waiting to be filled again. A block's deleter returns it here
/// from whichever thread dropped the last slice; the mutex orders that thread's
/// reads (the socket write) before the next fill.
struct frame_arena::pool {
    pool(std::size_t size, std::size_t max) : block_size(size), max_spare(max) {}

    const std::size_t block_size;
    const std::size_t max_spare;
    mutable std::mutex mutex;
    std::vector<std::unique_ptr<buffer>> spare;

    void give_back(buffer* raw) {
        std::unique_ptr<buffer> b(raw);
        if (b->capacity() != block_size) {
            return; // a block made for one big frame: freed
        }
        b->clear();
        std::lock_guard lock(mutex);
        if (spare.size() < max_spare) {
            spare.push_back(std::move(b));
        }
    }
};

frame_arena::frame_arena(std::size_t block_size, std::size_t max_spare)
    : block_size_(block_size), pool_(std::make_shared<pool>(block_size, max_spare)) {}

frame_arena::~frame_arena() = default;

std::shared_ptr<buffer> frame_arena::take_block() {
    std::unique_ptr<buffer> b;
    {
        std::lock_guard lock(pool_->mutex);
        if (!pool_->spare.empty()) {
            b = std::move(pool_->spare.back());
            pool_->spare.pop_back();
        }
    }
    if (!b) {
        b = std::make_unique<buffer>();
        b->reserve(block_size_);
    }
    return std::shared_ptr<buffer>(b.release(), [p = pool_](buffer* raw) { p->give_back(raw); });
}

frame_slice frame_arena::append_data(std::uint64_t id, std::uint32_t options, std::string_view context,
                                     std::span<const std::uint8_t> payload) {
    const std::size_t size =
        header_size + 8 + 4 + 1 + std::min<std::size_t>(context.size(), 255) + payload.size();
    if (size > block_size_) {
        auto own = std::make_shared<buffer>();
        own->reserve(size);
        transport::append_data(*own, id, options, context, payload);
        const auto* data = own->data();
        return {std::move(own), data, size};
    }
    if (!current_ || current_->size() + size > current_->capacity()) {
        current_ = take_block();
    }
    const std::size_t offset = current_->size();
    transport::append_data(*current_, id, options, context, payload); // within capacity: no move
    return {current_, current_->data() + offset, size};
}

std::size_t frame_arena::spare_blocks() const {
    std::lock_guard lock(pool_->mutex);
    return pool_->spare.size();
}

} // namespace troupe::transport
