// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the multicast heartbeat decoder: any datagram, with and
// without a cluster secret. A crash is a bug; so is a heartbeat that decodes but
// does not encode back to the same bytes (the encoder and decoder disagree), or
// that exceeds the datagram limit. Those trap, so libFuzzer keeps the input.
#include <troupe/membership/heartbeat.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

namespace {

using namespace troupe::membership;

void require(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

void check(std::span<const std::uint8_t> data, std::string_view secret) {
    heartbeat hb;
    if (decode_heartbeat(data, secret, hb) != heartbeat_error::none) {
        return;
    }
    require(data.size() <= max_heartbeat_size);
    // Everything accepted re-encodes to exactly the datagram it came from.
    const auto again = encode_heartbeat(hb, secret);
    require(again.size() == data.size() && std::equal(again.begin(), again.end(), data.begin()));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> in(data, size);
    check(in, "");
    check(in, "0123456789abcdef-fuzz-secret");
    return 0;
}
