// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe::managers {

/// An attribute as stored and replicated: bytes plus a type tag. Replicas keep
/// the bytes and decode only when their application reads the attribute.
struct attribute {
    std::string type;                ///< "string", "i64", "u64", "bytes", or "boost:<stable name>"
    std::vector<std::uint8_t> bytes; ///< the encoded value

    friend bool operator==(const attribute&, const attribute&) = default;
};

/// An attribute whose bytes do not decode as the type asked for (code
/// errc::decode_failed), or a value that does not encode (errc::encode_failed).
/// Only that attribute is affected: the session and its other attributes stay
/// usable. A session_error, so one catch covers every throwing form.
class attribute_error : public session_error {
public:
    attribute_error(const std::string& name, const std::string& why, errc code = errc::decode_failed)
        : session_error(code, "attribute '" + name + "': " + why)
        , name_(name) {}

    const std::string& name() const noexcept { return name_; }

private:
    std::string name_;
};

} // namespace troupe::managers
