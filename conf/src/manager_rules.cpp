// SPDX-License-Identifier: Apache-2.0
#include "detail.hpp"

#include <troupe/conf/manager_rules.hpp>

#include <algorithm>
#include <regex>

namespace troupe::conf::manager_rules {

namespace {

// RFC 6265 cookie-name: an RFC 2616 token, i.e. visible ASCII but separators.
bool is_cookie_name(std::string_view text) {
    constexpr std::string_view separators = "()<>@,;:\\\"/[]?={} \t";
    return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte > 0x20 && byte < 0x7f && separators.find(c) == std::string_view::npos;
    });
}

// std::regex_error carries a code, not a position, and its what() text differs
// between standard libraries: the messages are ours, so golden tests can pin them.
std::string_view regex_problem(std::regex_constants::error_type code) {
    namespace rc = std::regex_constants;
    switch (code) {
    case rc::error_collate:
        return "invalid collating element";
    case rc::error_ctype:
        return "invalid character class";
    case rc::error_escape:
        return "invalid escape or trailing backslash";
    case rc::error_backref:
        return "invalid back reference";
    case rc::error_brack:
        return "unmatched '[' or ']'";
    case rc::error_paren:
        return "unmatched '(' or ')'";
    case rc::error_brace:
        return "unmatched '{' or '}'";
    case rc::error_badbrace:
        return "invalid repeat count in '{}'";
    case rc::error_range:
        return "invalid character range";
    case rc::error_badrepeat:
        return "nothing to repeat";
    case rc::error_complexity:
    case rc::error_space:
    case rc::error_stack:
        return "too complex";
    default:
        return "invalid";
    }
}

std::optional<std::regex_constants::error_type> regex_error_of(std::string_view pattern) {
    try {
        const std::regex compiled{std::string(pattern), std::regex::ECMAScript};
        (void)compiled;
    } catch (const std::regex_error& e) {
        return e.code();
    }
    return std::nullopt;
}

// The character where a pattern goes wrong: the one after its longest prefix
// that still compiles ("a(b" -> 2, the unclosed '('; "a**" -> 3).
std::size_t regex_error_column(std::string_view pattern) {
    std::size_t longest = 0;
    for (std::size_t n = 1; n < pattern.size(); ++n) {
        if (!regex_error_of(pattern.substr(0, n))) {
            longest = n;
        }
    }
    return longest + 1;
}

// What went wrong at `column`. Some codes are too coarse to tell (libstdc++
// reports a leading '*' as a parenthesis error), so the character there comes first.
std::string regex_message(std::string_view pattern,
                          std::size_t column,
                          std::regex_constants::error_type code) {
    const std::size_t at = column - 1;
    if (at < pattern.size()) {
        const char c = pattern[at];
        const bool repeat = c == '*' || c == '+' || c == '?' || c == '{';
        const bool nothing_before =
            at == 0 || pattern[at - 1] == '(' || pattern[at - 1] == '|';
        if (repeat && nothing_before) {
            return std::string("nothing to repeat before '") + c + "'";
        }
        if (c == '(' && at + 1 < pattern.size() && pattern[at + 1] == '?') {
            return "unsupported group '(?'";
        }
    }
    return std::string(regex_problem(code));
}

} // namespace

std::optional<std::string> type_problem(std::string_view type) {
    if (std::find(types.begin(), types.end(), type) != types.end()) {
        return std::nullopt;
    }
    std::string list;
    for (const auto t : types) {
        list += list.empty() ? "" : ", ";
        list += t;
    }
    return "expected one of " + list + " (got " + detail::quote(type) + ")";
}

std::optional<std::string> context_problem(std::string_view context) {
    if (context.empty()) {
        return "must not be empty";
    }
    if (context.size() > max_context_bytes) {
        return "must be at most 255 bytes (got " + std::to_string(context.size()) + ")";
    }
    return std::nullopt;
}

std::optional<std::string> cookie_path_problem(std::string_view path) {
    constexpr std::size_t max_path = 1024;
    if (path.empty() || path.front() != '/') {
        return "must start with '/' (got " + detail::quote(path) + ")";
    }
    if (path.size() > max_path) {
        return "must be at most " + std::to_string(max_path) + " bytes (got " + std::to_string(path.size()) + ")";
    }
    const bool clean = std::all_of(path.begin(), path.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte > 0x20 && byte < 0x7f && c != ';';
    });
    if (!clean) {
        return "must be visible ASCII without spaces or ';' (got " + detail::quote(path) + ")";
    }
    return std::nullopt;
}

std::optional<std::string> cookie_same_site_problem(std::string_view same_site, bool secure) {
    if (same_site != "lax" && same_site != "strict" && same_site != "none") {
        return "expected one of lax, strict, none (got " + detail::quote(same_site) + ")";
    }
    if (same_site == "none" && !secure) {
        return "none needs the Secure attribute too (manager.cookie_secure: true): browsers drop a "
               "SameSite=None cookie without it";
    }
    return std::nullopt;
}

std::optional<std::string> cookie_problem(std::string_view cookie) {
    if (cookie.empty()) {
        return "must not be empty";
    }
    if (!is_cookie_name(cookie)) {
        return "must be a cookie name: visible ASCII without spaces or ()<>@,;:\\\"/[]?={} (got " +
               detail::quote(cookie) + ")";
    }
    return std::nullopt;
}

std::optional<std::string> header_name_problem(std::string_view name) {
    if (name.empty()) {
        return "must not be empty (a header field name, like X-Health-Check)";
    }
    // The same token grammar as a cookie name.
    if (!is_cookie_name(name)) {
        return "must be a header field name: visible ASCII without spaces or ()<>@,;:\\\"/[]?={} (got " +
               detail::quote(name) + ")";
    }
    return std::nullopt;
}

std::optional<std::string> filter_problem(std::string_view filter) {
    const auto code = regex_error_of(filter);
    if (!code) {
        return std::nullopt;
    }
    const auto column = regex_error_column(filter);
    return "not a valid regular expression: " + regex_message(filter, column, *code) + " at character " +
           std::to_string(column) + " (got " + detail::quote(filter) + ")";
}

std::optional<std::string> send_options_problem(std::uint32_t bits) {
    const auto text = std::to_string(bits);
    std::uint32_t parsed = 0;
    if (detail::read_send_options(text, parsed).empty()) {
        return std::nullopt;
    }
    return detail::send_options_message(text);
}

} // namespace troupe::conf::manager_rules
