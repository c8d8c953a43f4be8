// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/attribute_codec.hpp>

#include <boost/serialization/map.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

using namespace troupe::managers;

namespace {

struct cart {
    std::string owner;
    std::vector<int> items;
    std::map<std::string, double> prices;

    template <typename Archive>
    void serialize(Archive& ar, unsigned) {
        ar & owner & items & prices;
    }
    friend bool operator==(const cart&, const cart&) = default;
};

} // namespace

TEST_CASE("strings, integers and bytes take the fast paths and round-trip", "[managers]") {
    CHECK(encode_attribute(std::string("hello")).type == "string");
    CHECK(decode_attribute<std::string>("s", encode_attribute(std::string("hello"))) == "hello");
    // Anything a string_view can be made from is stored as a string.
    CHECK(decode_attribute<std::string>("s", encode_attribute("literal")) == "literal");
    CHECK(decode_attribute<std::string>("s", encode_attribute(std::string_view("view"))) == "view");

    CHECK(encode_attribute(-5).type == "i64");
    CHECK(encode_attribute(-5).bytes.size() == 8);
    CHECK(decode_attribute<int>("i", encode_attribute(-5)) == -5);
    CHECK(decode_attribute<std::int64_t>("i", encode_attribute(INT64_MIN)) == INT64_MIN);
    CHECK(encode_attribute(7u).type == "u64");
    CHECK(decode_attribute<std::uint64_t>("u", encode_attribute(UINT64_MAX)) == UINT64_MAX);
    CHECK(decode_attribute<bool>("b", encode_attribute(true)) == true);

    const std::vector<std::uint8_t> raw{0, 1, 2, 255};
    CHECK(encode_attribute(raw).type == "bytes");
    CHECK(encode_attribute(raw).bytes == raw);
    CHECK(decode_attribute<std::vector<std::uint8_t>>("b", encode_attribute(raw)) == raw);
}

TEST_CASE("any type Boost.Serialization can save round-trips through a binary archive", "[managers]") {
    cart c{"ann", {1, 2, 3}, {{"apple", 0.5}, {"pear", 1.25}}};
    const auto a = encode_attribute(c);
    CHECK(a.type.rfind("boost:", 0) == 0);
    CHECK(decode_attribute<cart>("cart", a) == c);

    const std::vector<std::string> words{"a", "bb", ""};
    CHECK(decode_attribute<std::vector<std::string>>("w", encode_attribute(words)) == words);
    CHECK(decode_attribute<double>("d", encode_attribute(2.5)) == 2.5);
}

TEST_CASE("reading an attribute as another type is a typed error naming the attribute", "[managers]") {
    const auto a = encode_attribute(std::string("text"));
    try {
        (void)decode_attribute<int>("greeting", a);
        FAIL("no exception");
    } catch (const attribute_error& e) {
        CHECK(e.name() == "greeting");
        CHECK_THAT(e.what(), Catch::Contains("stored as string, read as i64"));
    }
    CHECK_THROWS_AS(decode_attribute<cart>("c", a), attribute_error);
    CHECK_THROWS_AS(decode_attribute<unsigned>("u", encode_attribute(-1)), attribute_error);
}

TEST_CASE("integers that do not fit the type read are rejected, not truncated", "[managers]") {
    CHECK_THROWS_AS(decode_attribute<std::int8_t>("i", encode_attribute(300)), attribute_error);
    CHECK_THROWS_AS(decode_attribute<std::uint16_t>("u", encode_attribute(70000u)), attribute_error);
    CHECK_THROWS_AS(decode_attribute<bool>("b", encode_attribute(2u)), attribute_error);
    CHECK(decode_attribute<std::int8_t>("i", encode_attribute(-128)) == -128);
    attribute short_int{"i64", {1, 2, 3}};
    CHECK_THROWS_WITH(decode_attribute<int>("i", short_int), Catch::Contains("integer of 3 bytes"));
}

TEST_CASE("bytes that do not decode are an attribute_error, never a crash", "[managers]") {
    cart c{"bob", {4, 5}, {}};
    auto a = encode_attribute(c);
    for (std::size_t n = 0; n < a.bytes.size(); ++n) {
        attribute cut{a.type, {a.bytes.begin(), a.bytes.begin() + static_cast<std::ptrdiff_t>(n)}};
        CHECK_THROWS_AS(decode_attribute<cart>("c", cut), attribute_error);
    }
}
