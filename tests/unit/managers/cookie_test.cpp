// SPDX-License-Identifier: Apache-2.0
// The session cookie helpers (cookie.hpp): table-driven, hostile inputs included.
#include <troupe/managers/cookie.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace troupe::managers;

TEST_CASE("session_id_from_cookie finds the id among other cookies and refuses what no id looks like",
          "[managers][cookie]") {
    struct row {
        std::string header;
        std::string expected;
    };
    const std::string long_id(max_cookie_session_id, 'a');
    const std::vector<row> rows{
        {"TROUPE_SESSION=3f2a.web1", "3f2a.web1"},
        {"theme=dark; TROUPE_SESSION=3f2a.web1; lang=en", "3f2a.web1"},
        {"theme=dark;TROUPE_SESSION=3f2a.web1", "3f2a.web1"},
        {"  TROUPE_SESSION = 3f2a.web1  ", "3f2a.web1"},
        {"TROUPE_SESSION=\"3f2a.web1\"", "3f2a.web1"},
        {"TROUPE_SESSION=a_b-c.d", "a_b-c.d"},
        {"TROUPE_SESSION=" + long_id, long_id},
        // Not there.
        {"", ""},
        {"theme=dark", ""},
        {"TROUPE_SESSIONX=abc", ""},
        {"XTROUPE_SESSION=abc", ""},
        {"troupe_session=abc", ""}, // names are case-sensitive
        {"TROUPE_SESSION", ""},
        {";;;", ""},
        {"=abc", ""},
        // There, but no session id: refused, never looked up.
        {"TROUPE_SESSION=", ""},
        {"TROUPE_SESSION=\"\"", ""},
        {"TROUPE_SESSION=\"", ""},
        {"TROUPE_SESSION=" + long_id + "a", ""},
        {"TROUPE_SESSION=../../etc/passwd", ""},
        {"TROUPE_SESSION=a b", ""},
        {"TROUPE_SESSION=a%2Eb", ""},
        {"TROUPE_SESSION=caf\xc3\xa9", ""},
        {std::string("TROUPE_SESSION=a\0b", 18), ""},
        {"TROUPE_SESSION=a\r\nSet-Cookie: x=y", ""},
        {"TROUPE_SESSION=a=b", ""},
        // The first occurrence decides, even when malformed (a planted second
        // one is not preferred).
        {"TROUPE_SESSION=first.n1; TROUPE_SESSION=second.n2", "first.n1"},
        {"TROUPE_SESSION=bad value; TROUPE_SESSION=second.n2", ""},
    };
    for (const auto& r : rows) {
        CAPTURE(r.header);
        CHECK(session_id_from_cookie(r.header, "TROUPE_SESSION") == r.expected);
    }
    // Another name.
    CHECK(session_id_from_cookie("JSESSIONID=abc.n1; TROUPE_SESSION=x.n2", "JSESSIONID") == "abc.n1");
    // A header of a megabyte of separators ends, and finds nothing.
    CHECK(session_id_from_cookie(std::string(1 << 20, ';'), "TROUPE_SESSION").empty());
}

TEST_CASE("set_cookie_value and expired_cookie_value write every attribute as set", "[managers][cookie]") {
    cookie_settings s; // TROUPE_SESSION, Path=/, HttpOnly, SameSite=Lax
    CHECK(set_cookie_value("3f2a.web1", s) == "TROUPE_SESSION=3f2a.web1; Path=/; HttpOnly; SameSite=Lax");
    CHECK(expired_cookie_value(s) == "TROUPE_SESSION=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");

    s.name = "SID";
    s.path = "/shop";
    s.secure = true;
    s.same_site = cookie_same_site::none;
    s.max_age = std::chrono::hours(8);
    CHECK(set_cookie_value("x.n1", s) == "SID=x.n1; Path=/shop; HttpOnly; SameSite=None; Secure; Max-Age=28800");
    CHECK(expired_cookie_value(s) == "SID=; Path=/shop; HttpOnly; SameSite=None; Secure; Max-Age=0");

    s.http_only = false;
    s.same_site = cookie_same_site::strict;
    s.secure = false;
    s.max_age = std::chrono::seconds(0);
    CHECK(set_cookie_value("x.n1", s) == "SID=x.n1; Path=/shop; SameSite=Strict");

    // What it writes, it reads back.
    const auto header = set_cookie_value("3f2a.web1", cookie_settings{});
    CHECK(session_id_from_cookie(header.substr(0, header.find(';')), "TROUPE_SESSION") == "3f2a.web1");

    CHECK(to_string(cookie_same_site::lax) == "lax");
    CHECK(to_string(cookie_same_site::strict) == "strict");
    CHECK(to_string(cookie_same_site::none) == "none");
}
