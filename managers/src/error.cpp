// SPDX-License-Identifier: Apache-2.0
#include <troupe/managers/error.hpp>

#include <string>

namespace troupe::managers {

namespace {

class category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "troupe.managers"; }

    std::string message(int ev) const override {
        switch (static_cast<error>(ev)) {
        case error::truncated: return "truncated session message";
        case error::bad_magic: return "not a session message (bad magic)";
        case error::unsupported_version: return "unsupported session codec version";
        case error::unknown_type: return "unknown session message type";
        case error::bad_value: return "field out of range in session message";
        case error::too_long: return "count or length beyond the message";
        case error::trailing_bytes: return "trailing bytes after session message";
        }
        return "unknown troupe.managers error";
    }
};

class session_errors final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "troupe.session"; }

    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::replication_failed: return "replication failed";
        case errc::session_unavailable: return "session unavailable";
        case errc::decode_failed: return "attribute does not decode";
        case errc::encode_failed: return "attribute does not encode";
        case errc::stopped: return "session manager stopped";
        case errc::invalid_config: return "invalid manager settings";
        }
        return "unknown troupe.session error";
    }
};

} // namespace

const boost::system::error_category& session_category() noexcept {
    static const session_errors instance;
    return instance;
}

const boost::system::error_category& managers_category() noexcept {
    static const category instance;
    return instance;
}

} // namespace troupe::managers
