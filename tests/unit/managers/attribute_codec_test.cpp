// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/attribute_codec.hpp>

#include <boost/serialization/map.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/version.hpp>

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

// One application type, two layouts, as two builds of a rolling deploy have
// them: the same stable name, Boost.Serialization's class version for the rest.
namespace v1 {
struct cart {
    std::string owner;
    std::vector<int> items;

    template <typename Archive>
    void serialize(Archive& ar, unsigned) {
        ar & owner & items;
    }
};
} // namespace v1

namespace v2 {
struct cart {
    std::string owner;
    std::vector<int> items;
    std::string coupon; // new in version 1

    template <typename Archive>
    void serialize(Archive& ar, unsigned version) {
        ar & owner & items;
        if (version >= 1) {
            ar & coupon;
        }
    }
};
} // namespace v2

} // namespace

TROUPE_ATTRIBUTE_TYPE(cart, "test.cart");
TROUPE_ATTRIBUTE_TYPE(v1::cart, "shop.cart");
TROUPE_ATTRIBUTE_TYPE(v2::cart, "shop.cart");
BOOST_CLASS_VERSION(v2::cart, 1)

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
    CHECK(a.type == "boost:test.cart");
    CHECK(decode_attribute<cart>("cart", a) == c);

    const std::vector<std::string> words{"a", "bb", ""};
    CHECK(decode_attribute<std::vector<std::string>>("w", encode_attribute(words)) == words);
    CHECK(decode_attribute<double>("d", encode_attribute(2.5)) == 2.5);
}

TEST_CASE("archived values are tagged by stable names, never by the compiler's type names", "[managers]") {
    CHECK(attribute_type_tag<cart>() == "boost:test.cart");
    CHECK(attribute_type_tag<double>() == "boost:f64");
    CHECK(attribute_type_tag<float>() == "boost:f32");
    CHECK(attribute_type_tag<std::vector<std::string>>() == "boost:vector<string>");
    CHECK(attribute_type_tag<std::map<std::string, double>>() == "boost:map<string,f64>");
    CHECK(attribute_type_tag<std::vector<cart>>() == "boost:vector<test.cart>");
    CHECK(attribute_type_tag<std::vector<std::int32_t>>() == "boost:vector<i32>");
    CHECK(attribute_type_tag<std::map<std::uint16_t, std::vector<bool>>>() == "boost:map<u16,vector<bool>>");
    // The fast paths keep their tags.
    CHECK(attribute_type_tag<std::int32_t>() == "i64");
    CHECK(attribute_type_tag<std::string>() == "string");
    // Names a declaration may use, checked at compile time.
    static_assert(detail::valid_type_name("shop.cart/2"));
    static_assert(!detail::valid_type_name(""));
    static_assert(!detail::valid_type_name("vector<x>"));
    static_assert(!detail::valid_type_name("a b"));
    // Named only where the name is: long double's layout differs by platform.
    static_assert(!detail::nameable<long double>::value);
    static_assert(!detail::nameable<std::vector<long double>>::value);
    static_assert(detail::nameable<std::map<std::string, std::vector<double>>>::value);
}

TEST_CASE("two builds whose type has another layout under the same name read each other's values as "
          "Boost.Serialization's class versions allow",
          "[managers]") {
    // The old build's value, read by the new build: the new field takes its default.
    const auto old_value = encode_attribute(v1::cart{"ann", {1, 2}});
    CHECK(old_value.type == "boost:shop.cart");
    const auto upgraded = decode_attribute<v2::cart>("cart", old_value);
    CHECK(upgraded.owner == "ann");
    CHECK(upgraded.items == std::vector<int>{1, 2});
    CHECK(upgraded.coupon.empty());

    // The new build's value, read by the new build.
    const auto new_value = encode_attribute(v2::cart{"bob", {3}, "SPRING"});
    CHECK(new_value.type == "boost:shop.cart");
    CHECK(decode_attribute<v2::cart>("cart", new_value).coupon == "SPRING");

    // Read by the old build during the deploy: its serialize() reads the fields
    // it knows and stops; the field added at the end is left unread.
    const auto downgraded = decode_attribute<v1::cart>("cart", new_value);
    CHECK(downgraded.owner == "bob");
    CHECK(downgraded.items == std::vector<int>{3});
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
