// SPDX-License-Identifier: Apache-2.0
#include <troupe-ctl/format.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

const nlohmann::json sample_members = nlohmann::json::parse(R"([
    {"name": "node-a", "endpoint": "127.0.0.1:4000", "state": "alive", "self": true,
     "id": "0123456789abcdef0123456789abcdef", "incarnation": 3},
    {"name": "node-bb", "endpoint": "127.0.0.1:40001", "state": "suspect", "self": false,
     "id": "fedcba9876543210fedcba9876543210", "incarnation": 1},
    {"name": "c", "endpoint": "10.0.0.7:4000", "state": "gone", "self": false,
     "id": "aaaaaaaabbbbbbbbccccccccdddddddd", "incarnation": 0}
])");

const nlohmann::json sample_stats = nlohmann::json::parse(R"({
    "uptime_s": 3.5,
    "node": "n1",
    "transport": {"sent": 12, "peers": [{"host": "a", "up": true}]},
    "errors": {},
    "last": null
})");

} // namespace

TEST_CASE("format_members prints an aligned table with short ids", "[ctl]") {
    const std::string expected = "NAME     ENDPOINT         STATE    SELF  ID\n"
                                 "node-a   127.0.0.1:4000   alive    yes   01234567\n"
                                 "node-bb  127.0.0.1:40001  suspect  no    fedcba98\n"
                                 "c        10.0.0.7:4000    gone     no    aaaaaaaa\n";
    CHECK(troupe::ctl::format_members(sample_members) == expected);
}

TEST_CASE("format_members shows missing or mistyped fields as a dash", "[ctl]") {
    const auto members = nlohmann::json::parse(R"([{"name": "x", "self": "yes", "id": 7}, 5])");
    const std::string expected = "NAME  ENDPOINT  STATE  SELF  ID\n"
                                 "x     -         -      -     -\n"
                                 "-     -         -      -     -\n";
    CHECK(troupe::ctl::format_members(members) == expected);
}

TEST_CASE("format_members prints only the header for no members", "[ctl]") {
    CHECK(troupe::ctl::format_members(nlohmann::json::array()) ==
          "NAME  ENDPOINT  STATE  SELF  ID\n");
}

TEST_CASE("format_members rejects anything but an array", "[ctl]") {
    CHECK_THROWS_AS(troupe::ctl::format_members(nlohmann::json::object()), std::invalid_argument);
}

TEST_CASE("format_stats prints sorted dotted keys with aligned values", "[ctl]") {
    const std::string expected = "errors                  {}\n"
                                 "last                    null\n"
                                 "node                    n1\n"
                                 "transport.peers.0.host  a\n"
                                 "transport.peers.0.up    true\n"
                                 "transport.sent          12\n"
                                 "uptime_s                3.5\n";
    CHECK(troupe::ctl::format_stats(sample_stats) == expected);
}

TEST_CASE("format_stats prints nothing for an empty object", "[ctl]") {
    CHECK(troupe::ctl::format_stats(nlohmann::json::object()).empty());
}

TEST_CASE("flatten gives key paths and printed values in sorted order", "[ctl]") {
    const auto doc = nlohmann::json::parse(R"({"b": {"y": "s", "x": [1, 2]}, "a": false})");
    const auto entries = troupe::ctl::flatten(doc);
    const std::vector<troupe::ctl::flat_entry> expected = {
        {"a", "false"}, {"b.x.0", "1"}, {"b.x.1", "2"}, {"b.y", "s"}};
    CHECK(entries == expected);
}
