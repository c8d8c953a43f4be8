// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/member.hpp>

#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace troupe::membership {

member_id member_id::random() {
    member_id id;
    // A cryptographic source: ids must not collide across restarts on many hosts.
    if (RAND_bytes(id.bytes.data(), static_cast<int>(id.bytes.size())) != 1) {
        throw std::runtime_error("RAND_bytes failed: cannot draw a member id");
    }
    return id;
}

bool member_id::is_nil() const noexcept {
    for (auto b : bytes) {
        if (b != 0) {
            return false;
        }
    }
    return true;
}

std::string member_id::str() const {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(32, '0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 0xf];
    }
    return out;
}

std::size_t member_id_hash::operator()(const member_id& id) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, id.bytes.data(), sizeof h); // the bytes are random already
    return h;
}

std::string_view to_string(member_state state) noexcept {
    switch (state) {
    case member_state::alive: return "alive";
    case member_state::suspect: return "suspect";
    case member_state::gone: return "gone";
    case member_state::left: return "left";
    }
    return "unknown";
}

} // namespace troupe::membership
