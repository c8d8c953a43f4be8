// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the session cookie parser (managers/cookie.hpp): any
// Cookie header a client may send. A crash is a bug; so is an id that is not a
// piece of the header, is longer than the limit or holds a character no session
// id has, or one that does not come back the same through set_cookie_value().
// Those trap, so libFuzzer keeps the input.
#include <troupe/managers/cookie.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

void require(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace troupe::managers;
    const std::string_view header(reinterpret_cast<const char*>(data), size);
    for (const std::string_view name : {"TROUPE_SESSION", "a"}) {
        const auto id = session_id_from_cookie(header, name);
        if (id.empty()) {
            continue;
        }
        require(id.data() >= header.data() && id.data() + id.size() <= header.data() + header.size());
        require(id.size() <= max_cookie_session_id);
        for (const char c : id) {
            require(is_id_char(c));
        }
        cookie_settings settings;
        settings.name = std::string(name);
        const auto written = set_cookie_value(id, settings);
        require(session_id_from_cookie(std::string_view(written).substr(0, written.find(';')), name) == id);
    }
    return 0;
}
