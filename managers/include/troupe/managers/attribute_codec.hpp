// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/attribute.hpp>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/iostreams/device/array.hpp>
#include <boost/iostreams/categories.hpp>
#include <boost/iostreams/stream.hpp>

#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace troupe::managers {

/// The stable name an application type's values are stored under, declared
/// with TROUPE_ATTRIBUTE_TYPE. The name, not the C++ type, is what travels:
/// members built by another compiler, or from code where the type was renamed
/// or changed its layout (Boost.Serialization's class versions take care of
/// that), still read each other's sessions. Unspecialised: no name, and
/// storing such a type does not compile.
template <typename T>
struct attribute_type_name {};

namespace detail {

/// What a declared name may hold: 1 to 128 of letters, digits and ._/-+:
/// (e.g. "shop.cart/1"); no '<', '>' or ',', which composed names use.
constexpr bool valid_type_name(std::string_view name) {
    if (name.empty() || name.size() > 128) {
        return false;
    }
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '/' || c == '-' || c == '+' || c == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

} // namespace detail

} // namespace troupe::managers

/// Declares the stable name values of Type are stored under, at namespace
/// scope (outside any namespace), once per type, in a header every member's
/// build includes:
///
///     struct cart { ... template <class A> void serialize(A&, unsigned); };
///     TROUPE_ATTRIBUTE_TYPE(shop::cart, "shop.cart");
///
/// The name is checked at compile time (detail::valid_type_name). Change the
/// layout with BOOST_CLASS_VERSION and a versioned serialize(), not the name;
/// a new name makes the old values unreadable by the new build (a typed
/// attribute_error for that attribute only).
#define TROUPE_ATTRIBUTE_TYPE(Type, Name)                                                                    \
    template <>                                                                                              \
    struct troupe::managers::attribute_type_name<Type> {                                                     \
        static_assert(::troupe::managers::detail::valid_type_name(Name),                                     \
                      "TROUPE_ATTRIBUTE_TYPE: 1 to 128 of letters, digits and ._/-+: (" Name ")");           \
        static constexpr std::string_view value = Name;                                                      \
    }

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

template <typename T, typename = void>
struct has_declared_name : std::false_type {};
template <typename T>
struct has_declared_name<T, std::void_t<decltype(attribute_type_name<T>::value)>> : std::true_type {};

/// The stable name of T inside an archive: a declared name, a fixed one for
/// the integers, float, double and strings, or one composed for the standard
/// containers Boost.Serialization saves ("vector<map<string,f64>>"). nullopt
/// for any other type (it needs TROUPE_ATTRIBUTE_TYPE); nameable<T> says at
/// compile time which, and the two list the same types.
template <typename T>
std::optional<std::string> stable_name();

template <typename... Ts>
std::optional<std::string> composed(std::string_view what) {
    std::string out(what);
    out += '<';
    bool first = true;
    bool known = true;
    (
        [&] {
            const auto part = stable_name<Ts>();
            known = known && part.has_value();
            if (part) {
                out += (first ? "" : ",") + *part;
            }
            first = false;
        }(),
        ...);
    if (!known) {
        return std::nullopt;
    }
    return out + '>';
}

template <typename T>
struct container_name {
    static std::optional<std::string> get() { return std::nullopt; }
};
template <typename T, typename A>
struct container_name<std::vector<T, A>> {
    static std::optional<std::string> get() { return composed<T>("vector"); }
};
template <typename T, typename A>
struct container_name<std::list<T, A>> {
    static std::optional<std::string> get() { return composed<T>("list"); }
};
template <typename T, typename A>
struct container_name<std::deque<T, A>> {
    static std::optional<std::string> get() { return composed<T>("deque"); }
};
template <typename T, typename C, typename A>
struct container_name<std::set<T, C, A>> {
    static std::optional<std::string> get() { return composed<T>("set"); }
};
template <typename K, typename V, typename C, typename A>
struct container_name<std::map<K, V, C, A>> {
    static std::optional<std::string> get() { return composed<K, V>("map"); }
};
template <typename A, typename B>
struct container_name<std::pair<A, B>> {
    static std::optional<std::string> get() { return composed<A, B>("pair"); }
};

template <typename T>
std::optional<std::string> stable_name() {
    using U = std::remove_cv_t<T>;
    if constexpr (has_declared_name<U>::value) {
        return std::string(attribute_type_name<U>::value);
    } else if constexpr (std::is_same_v<U, std::string>) {
        return "string";
    } else if constexpr (std::is_same_v<U, bool>) {
        return "bool";
    } else if constexpr (std::is_same_v<U, char>) {
        return "char"; // signed on some platforms, unsigned on others: one name
    } else if constexpr (std::is_integral_v<U>) {
        return std::string(std::is_signed_v<U> ? "i" : "u") + std::to_string(8 * sizeof(U));
    } else if constexpr (std::is_same_v<U, float>) {
        return "f32";
    } else if constexpr (std::is_same_v<U, double>) {
        return "f64";
    } else {
        return container_name<U>::get();
    }
}

/// Whether stable_name<T>() can name T, at compile time: declared, an
/// integer, float, double, string, or a standard container of such (not long
/// double: its layout differs between platforms).
template <typename T>
struct nameable : std::bool_constant<has_declared_name<T>::value || std::is_integral_v<T> ||
                                     std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                     std::is_same_v<T, std::string>> {};
template <typename T, typename A>
struct nameable<std::vector<T, A>> : nameable<T> {};
template <typename T, typename A>
struct nameable<std::list<T, A>> : nameable<T> {};
template <typename T, typename A>
struct nameable<std::deque<T, A>> : nameable<T> {};
template <typename T, typename C, typename A>
struct nameable<std::set<T, C, A>> : nameable<T> {};
template <typename K, typename V, typename C, typename A>
struct nameable<std::map<K, V, C, A>> : std::bool_constant<nameable<K>::value && nameable<V>::value> {};
template <typename A, typename B>
struct nameable<std::pair<A, B>> : std::bool_constant<nameable<A>::value && nameable<B>::value> {};

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
/// binary archive, tagged "boost:" and its stable name: declared with
/// TROUPE_ATTRIBUTE_TYPE ("boost:shop.cart"), fixed for double and float
/// ("boost:f64"), or composed for the standard containers of such
/// ("boost:vector<string>"). Never a compiler's type name: a type without a
/// stable name does not compile here.
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
        static_assert(detail::nameable<std::remove_cv_t<T>>::value,
                      "this attribute type has no stable name: declare one with "
                      "TROUPE_ATTRIBUTE_TYPE(Type, \"app.type\") (troupe/managers/attribute_codec.hpp)");
        return "boost:" + *detail::stable_name<T>();
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
