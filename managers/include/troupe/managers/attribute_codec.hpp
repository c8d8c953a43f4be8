// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/attribute.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/iostreams/device/array.hpp>
#include <boost/iostreams/categories.hpp>
#include <boost/iostreams/stream.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace troupe::managers {

namespace detail {

/// Anything a std::string_view can be made from (std::string, const char*,
/// string literals) is stored as a string.
template <typename T>
inline constexpr bool is_text_v = std::is_convertible_v<const T&, std::string_view>;

template <typename T>
inline constexpr bool is_bytes_v = std::is_same_v<T, std::vector<std::uint8_t>>;

template <typename T>
inline constexpr bool is_integer_v = std::is_integral_v<T> && !is_text_v<T>;

/// A Boost.Iostreams sink appending to an attribute's bytes.
struct byte_sink {
    using char_type = char;
    using category = boost::iostreams::sink_tag;
    std::vector<std::uint8_t>* out;

    std::streamsize write(const char* s, std::streamsize n) {
        const auto* p = reinterpret_cast<const std::uint8_t*>(s);
        out->insert(out->end(), p, p + n);
        return n;
    }
};

} // namespace detail

/// The type tag an attribute of type T is stored under: fast paths for strings
/// ("string"), integers ("i64" for signed, "u64" for unsigned, bool included)
/// and raw bytes ("bytes"); any other type goes through a Boost.Serialization
/// binary archive, tagged "boost:" and the type's name (so every member must
/// run a build with the same type).
template <typename T>
std::string attribute_type_tag() {
    if constexpr (detail::is_text_v<T>) {
        return "string";
    } else if constexpr (detail::is_bytes_v<T>) {
        return "bytes";
    } else if constexpr (detail::is_integer_v<T> && std::is_signed_v<T>) {
        return "i64";
    } else if constexpr (detail::is_integer_v<T>) {
        return "u64";
    } else {
        return std::string("boost:") + typeid(T).name();
    }
}

/// Encodes a value as an attribute (type tag + bytes).
/// @throws boost::archive::archive_exception if Boost.Serialization cannot save it.
template <typename T>
attribute encode_attribute(const T& value) {
    attribute a;
    a.type = attribute_type_tag<T>();
    if constexpr (detail::is_text_v<T>) {
        const std::string_view text(value);
        a.bytes.assign(text.begin(), text.end());
    } else if constexpr (detail::is_bytes_v<T>) {
        a.bytes = value;
    } else if constexpr (detail::is_integer_v<T>) {
        // Big-endian two's complement in 8 bytes, whatever the integer's width.
        const auto v = std::is_signed_v<T> ? static_cast<std::uint64_t>(static_cast<std::int64_t>(value))
                                           : static_cast<std::uint64_t>(value);
        a.bytes.resize(8);
        for (int i = 0; i < 8; ++i) {
            a.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
        }
    } else {
        boost::iostreams::stream<detail::byte_sink> out(detail::byte_sink{&a.bytes});
        {
            boost::archive::binary_oarchive ar(out, boost::archive::no_header);
            ar << value;
        }
        out.flush();
    }
    return a;
}

/// Decodes an attribute as T.
/// @throws attribute_error when it was stored as another type, or its bytes do
/// not decode (a truncated archive, an integer out of T's range).
template <typename T>
T decode_attribute(std::string_view name, const attribute& a) {
    using value_type = std::conditional_t<detail::is_text_v<T>, std::string, T>;
    const auto expected = attribute_type_tag<value_type>();
    if (a.type != expected) {
        throw attribute_error(std::string(name), "stored as " + a.type + ", read as " + expected);
    }
    if constexpr (detail::is_text_v<T>) {
        static_assert(std::is_same_v<T, std::string>, "read strings as std::string");
        return std::string(a.bytes.begin(), a.bytes.end());
    } else if constexpr (detail::is_bytes_v<T>) {
        return a.bytes;
    } else if constexpr (detail::is_integer_v<T>) {
        if (a.bytes.size() != 8) {
            throw attribute_error(std::string(name),
                                  "integer of " + std::to_string(a.bytes.size()) + " bytes");
        }
        std::uint64_t v = 0;
        for (auto b : a.bytes) {
            v = (v << 8) | b;
        }
        if constexpr (std::is_signed_v<T>) {
            const auto s = static_cast<std::int64_t>(v);
            if (s < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                s > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
                throw attribute_error(std::string(name), std::to_string(s) + " is out of range");
            }
            return static_cast<T>(s);
        } else {
            if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
                throw attribute_error(std::string(name), std::to_string(v) + " is out of range");
            }
            return static_cast<T>(v);
        }
    } else {
        T value{};
        try {
            boost::iostreams::stream<boost::iostreams::array_source> in(
                reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size());
            boost::archive::binary_iarchive ar(in, boost::archive::no_header);
            ar >> value;
        } catch (const std::exception& e) {
            throw attribute_error(std::string(name), std::string("does not decode: ") + e.what());
        }
        return value;
    }
}

} // namespace troupe::managers
