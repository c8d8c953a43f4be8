// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/cookie.hpp>

namespace troupe::managers {

namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_id_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool is_session_id(std::string_view value) noexcept {
    if (value.empty() || value.size() > max_cookie_session_id) {
        return false;
    }
    for (const char c : value) {
        if (!is_id_char(c)) {
            return false;
        }
    }
    return true;
}

std::string attributes(const cookie_settings& s, bool expire) {
    std::string out = "; Path=" + s.path;
    if (s.http_only) {
        out += "; HttpOnly";
    }
    switch (s.same_site) {
    case cookie_same_site::lax: out += "; SameSite=Lax"; break;
    case cookie_same_site::strict: out += "; SameSite=Strict"; break;
    case cookie_same_site::none: out += "; SameSite=None"; break;
    }
    if (s.secure) {
        out += "; Secure";
    }
    if (expire) {
        out += "; Max-Age=0";
    } else if (s.max_age.count() > 0) {
        out += "; Max-Age=" + std::to_string(s.max_age.count());
    }
    return out;
}

} // namespace

std::string_view session_id_from_cookie(std::string_view cookie_header, std::string_view name) noexcept {
    std::string_view rest = cookie_header;
    while (!rest.empty()) {
        const auto semi = rest.find(';');
        const auto pair = trim(rest.substr(0, semi));
        rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) {
            continue;
        }
        auto value = trim(pair.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
            value = value.substr(1, value.size() - 2);
        }
        // The first occurrence decides: a malformed one is not skipped for a
        // later one, which a script or a sibling domain may have planted.
        return is_session_id(value) ? value : std::string_view();
    }
    return {};
}

std::string set_cookie_value(std::string_view id, const cookie_settings& settings) {
    return settings.name + "=" + std::string(id) + attributes(settings, false);
}

std::string expired_cookie_value(const cookie_settings& settings) {
    return settings.name + "=" + attributes(settings, true);
}

std::string_view to_string(cookie_same_site s) noexcept {
    switch (s) {
    case cookie_same_site::strict: return "strict";
    case cookie_same_site::none: return "none";
    case cookie_same_site::lax: break;
    }
    return "lax";
}

} // namespace troupe::managers
