// SPDX-License-Identifier: Apache-2.0
#include "detail.hpp"

#include <troupe/conf/load.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace troupe::conf {
namespace detail {
namespace {

struct unit {
    std::string_view name;
    std::uint64_t factor;
};

// Durations are std::chrono::milliseconds, so ms is the finest unit there is.
constexpr std::array<unit, 4> duration_units{{
    {"ms", 1},
    {"s", 1000},
    {"m", std::uint64_t{60} * 1000},
    {"h", std::uint64_t{60} * 60 * 1000},
}};

constexpr std::uint64_t kib = 1024;
constexpr std::uint64_t mib = kib * 1024;
constexpr std::uint64_t gib = mib * 1024;
constexpr std::array<unit, 7> size_units{{
    {"B", 1},
    {"KiB", kib},
    {"MiB", mib},
    {"GiB", gib},
    {"kB", 1000},
    {"MB", std::uint64_t{1000} * 1000},
    {"GB", std::uint64_t{1000} * 1000 * 1000},
}};

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::string got(std::string_view text) {
    return " (got " + quote(text) + ")";
}

// Digits, then a unit made of letters: the shape shared by durations and sizes.
struct split_number {
    std::string_view digits;
    std::string_view suffix;
};

split_number split(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && is_digit(text[i])) {
        ++i;
    }
    return {text.substr(0, i), text.substr(i)};
}

bool all_letters(std::string_view text) {
    for (char c : text) {
        if (!is_letter(c)) {
            return false;
        }
    }
    return !text.empty();
}

template <std::size_t N> std::string unit_list(const std::array<unit, N>& units) {
    std::string list;
    std::size_t written = 0;
    for (const auto& u : units) {
        if (written > 0) {
            list += written + 1 == N ? " or " : ", ";
        }
        list += u.name;
        ++written;
    }
    return list;
}

// Shared by durations and sizes: number, unit lookup, overflow check.
template <std::size_t N>
std::string read_scaled(std::string_view text,
                        const std::array<unit, N>& units,
                        std::string_view hint,
                        bool unit_required,
                        std::uint64_t max,
                        std::uint64_t& out) {
    if (text.empty()) {
        return std::string(hint) + " (got nothing)";
    }
    if (text.front() == '-' && !split(text.substr(1)).digits.empty()) {
        return "must not be negative: " + std::string(hint) + got(text);
    }
    const auto [digits, suffix] = split(text);
    if (digits.empty()) {
        return std::string(hint) + got(text);
    }
    std::uint64_t factor = 0;
    if (suffix.empty()) {
        if (unit_required) {
            return "missing unit: " + std::string(hint) + got(text);
        }
        factor = 1;
    } else {
        for (const auto& u : units) {
            if (u.name == suffix) {
                factor = u.factor;
            }
        }
        if (factor == 0) {
            if (!all_letters(suffix)) {
                return std::string(hint) + got(text);
            }
            return "unknown unit " + quote(suffix) + ", expected " + unit_list(units) + got(text);
        }
    }
    std::uint64_t number = 0;
    if (!read_uint(digits, max, number) || number > max / factor) {
        return "out of range: " + std::string(hint) + got(text);
    }
    out = number * factor;
    return {};
}

} // namespace

std::string quote(std::string_view text) {
    constexpr std::string_view hex = "0123456789abcdef";
    std::string quoted = "'";
    for (char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte >= 0x7f) {
            quoted += "\\x";
            quoted += hex[byte >> 4];
            quoted += hex[byte & 0xf];
        } else {
            quoted += c;
        }
    }
    quoted += '\'';
    return quoted;
}

bool read_uint(std::string_view text, std::uint64_t max, std::uint64_t& out) {
    if (text.empty()) {
        return false;
    }
    std::uint64_t value = 0;
    for (char c : text) {
        if (!is_digit(c)) {
            return false;
        }
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (value > (max - d) / 10) {
            return false;
        }
        value = value * 10 + d;
    }
    out = value;
    return true;
}

std::string read_duration(std::string_view text, duration& out) {
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<duration::rep>::max());
    std::uint64_t ms = 0;
    auto message = read_scaled(text, duration_units, duration_hint, true, max, ms);
    if (message.empty()) {
        out = duration{static_cast<duration::rep>(ms)};
    }
    return message;
}

std::string read_size(std::string_view text, std::uint64_t& out) {
    return read_scaled(text, size_units, size_hint, false,
                       std::numeric_limits<std::uint64_t>::max(), out);
}

std::string send_options_message(std::string_view got_text) {
    return std::string(send_options_hint) + " (got " + std::string(got_text) + ")";
}

std::string read_send_options(std::string_view text, std::uint32_t& out) {
    if (text == "async") {
        out = send_option_bits::asynchronous;
        return {};
    }
    if (text == "ack") {
        out = send_option_bits::use_ack;
        return {};
    }
    if (text == "sync") {
        out = send_option_bits::use_ack | send_option_bits::synchronized_ack;
        return {};
    }
    constexpr std::uint32_t all = send_option_bits::use_ack | send_option_bits::synchronized_ack |
                                  send_option_bits::asynchronous;
    std::uint64_t number = 0;
    if (read_uint(text, all, number)) {
        const auto bits = static_cast<std::uint32_t>(number);
        // 0 names no completion rule at all, and a synchronized ack is an ack the
        // receiver sends later, so it cannot come without use_ack.
        const bool known = bits != 0 && (bits & ~all) == 0;
        const bool sync_needs_ack = (bits & send_option_bits::synchronized_ack) == 0 ||
                                    (bits & send_option_bits::use_ack) != 0;
        if (known && sync_needs_ack) {
            out = bits;
            return {};
        }
    }
    return send_options_message(quote(text));
}

std::string read_host_port(std::string_view text, host_port& out) {
    std::string expected = "expected host:port" + got(text);
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return expected;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return expected;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return "expected host:port, with an IPv6 host in brackets like [::1]:4001" + got(text);
        }
    }
    std::uint64_t number = 0;
    if (port.empty() || split(port).digits.size() != port.size()) {
        return expected;
    }
    if (!read_uint(port, std::numeric_limits<std::uint16_t>::max(), number)) {
        return "port must be from 1 to 65535" + got(text);
    }
    out.host = std::string(host);
    out.port = static_cast<std::uint16_t>(number);
    return {};
}

std::string host_port_text(const host_port& member) {
    if (member.host.find(':') != std::string::npos) {
        return "[" + member.host + "]:" + std::to_string(member.port);
    }
    return member.host + ":" + std::to_string(member.port);
}

} // namespace detail

bool parse_duration(std::string_view text, duration& out) {
    return detail::read_duration(text, out).empty();
}

bool parse_size(std::string_view text, std::uint64_t& out) {
    return detail::read_size(text, out).empty();
}

bool parse_send_options(std::string_view text, std::uint32_t& out) {
    return detail::read_send_options(text, out).empty();
}

std::string send_options_name(std::uint32_t options) {
    switch (options) {
    case send_option_bits::asynchronous:
        return "async";
    case send_option_bits::use_ack:
        return "ack";
    case send_option_bits::use_ack | send_option_bits::synchronized_ack:
        return "sync";
    default:
        return std::to_string(options);
    }
}

std::string format_duration(duration d) {
    const auto count = d.count();
    // Negative durations only come from configs built in code; print them
    // plainly so that validate()'s message shows what was given.
    if (count <= 0) {
        return std::to_string(count) + "ms";
    }
    const auto magnitude = static_cast<std::uint64_t>(count);
    const auto& units = detail::duration_units;
    // Largest unit first; ms divides everything, so one always matches.
    const auto exact = std::find_if(units.rbegin(), units.rend(), [magnitude](const auto& u) {
        return magnitude % u.factor == 0;
    });
    return std::to_string(magnitude / exact->factor) + std::string(exact->name);
}

std::string format_size(std::uint64_t bytes) {
    // Binary units only, and only when exact: to_yaml() output must read back to
    // the same number of bytes, and the defaults and limits are binary anyway.
    constexpr std::array<detail::unit, 3> binary{{
        {"GiB", detail::gib},
        {"MiB", detail::mib},
        {"KiB", detail::kib},
    }};
    if (bytes != 0) {
        for (const auto& u : binary) {
            if (bytes % u.factor == 0) {
                return std::to_string(bytes / u.factor) + std::string(u.name);
            }
        }
    }
    return std::to_string(bytes);
}

} // namespace troupe::conf
