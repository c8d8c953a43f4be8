// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/heartbeat.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <stdexcept>

namespace troupe::membership {

namespace {

constexpr std::uint8_t magic[4] = {'T', 'R', 'H', 'B'};
constexpr std::uint8_t version = 1;
constexpr std::uint8_t flag_leaving = 1;
constexpr std::uint8_t flag_signed = 2;
constexpr std::size_t mac_size = 32;

std::array<std::uint8_t, mac_size> sign(std::string_view secret, std::span<const std::uint8_t> data) {
    std::array<std::uint8_t, mac_size> mac{};
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), data.data(), data.size(),
             mac.data(), &len) == nullptr) {
        throw std::runtime_error("HMAC-SHA256 failed (OpenSSL)");
    }
    return mac;
}

void put8(std::vector<std::uint8_t>& out, std::uint8_t v) { out.push_back(v); }

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

void put64(std::vector<std::uint8_t>& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::uint8_t>(v >> shift));
    }
}

void put_short_string(std::vector<std::uint8_t>& out, std::string_view s) {
    if (s.size() > 255) {
        throw std::length_error("heartbeat field longer than 255 bytes");
    }
    out.push_back(static_cast<std::uint8_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
}

/// A bounds-checked cursor: every read fails instead of passing the end.
class cursor {
public:
    explicit cursor(std::span<const std::uint8_t> d) : d_(d) {}
    bool u8(std::uint8_t& v) {
        if (left() < 1) {
            return false;
        }
        v = d_[pos_++];
        return true;
    }
    bool u16(std::uint16_t& v) {
        if (left() < 2) {
            return false;
        }
        v = static_cast<std::uint16_t>((d_[pos_] << 8) | d_[pos_ + 1]);
        pos_ += 2;
        return true;
    }
    bool u64(std::uint64_t& v) {
        if (left() < 8) {
            return false;
        }
        v = 0;
        for (int i = 0; i < 8; ++i) {
            v = (v << 8) | d_[pos_++];
        }
        return true;
    }
    bool bytes(std::uint8_t* out, std::size_t n) {
        if (left() < n) {
            return false;
        }
        std::memcpy(out, d_.data() + pos_, n);
        pos_ += n;
        return true;
    }
    bool short_string(std::string& out) {
        std::uint8_t n = 0;
        if (!u8(n) || left() < n) {
            return false;
        }
        out.assign(reinterpret_cast<const char*>(d_.data() + pos_), n);
        pos_ += n;
        return true;
    }
    std::size_t left() const { return d_.size() - pos_; }

private:
    std::span<const std::uint8_t> d_;
    std::size_t pos_ = 0;
};

} // namespace

std::string_view to_string(heartbeat_error e) noexcept {
    switch (e) {
    case heartbeat_error::none: return "none";
    case heartbeat_error::too_large: return "too_large";
    case heartbeat_error::bad_magic: return "bad_magic";
    case heartbeat_error::unsupported_version: return "unsupported_version";
    case heartbeat_error::truncated: return "truncated";
    case heartbeat_error::malformed: return "malformed";
    case heartbeat_error::unsigned_heartbeat: return "unsigned";
    case heartbeat_error::bad_signature: return "bad_signature";
    case heartbeat_error::signed_but_no_secret: return "signed_but_no_secret";
    }
    return "unknown";
}

std::vector<std::uint8_t> encode_heartbeat(const heartbeat& hb, std::string_view secret) {
    std::vector<std::uint8_t> out;
    out.reserve(256);
    out.insert(out.end(), magic, magic + 4);
    put8(out, version);
    put8(out, static_cast<std::uint8_t>((hb.leaving ? flag_leaving : 0) | (secret.empty() ? 0 : flag_signed)));
    put8(out, hb.proto_min);
    put8(out, hb.proto_max);
    put_short_string(out, hb.cluster);
    out.insert(out.end(), hb.id.bytes.begin(), hb.id.bytes.end());
    put64(out, hb.incarnation);
    put64(out, hb.alive_ms);
    put16(out, hb.port);
    put_short_string(out, hb.host);
    put_short_string(out, hb.node);
    if (hb.payload.size() > 255) {
        throw std::length_error("heartbeat payload has more than 255 entries");
    }
    put8(out, static_cast<std::uint8_t>(hb.payload.size()));
    for (const auto& [k, v] : hb.payload) {
        put_short_string(out, k);
        put_short_string(out, v);
    }
    if (!secret.empty()) {
        const auto mac = sign(secret, out);
        out.insert(out.end(), mac.begin(), mac.end());
    }
    if (out.size() > max_heartbeat_size) {
        throw std::length_error("heartbeat of " + std::to_string(out.size()) + " bytes exceeds " +
                                std::to_string(max_heartbeat_size));
    }
    return out;
}

heartbeat_error decode_heartbeat(std::span<const std::uint8_t> data, std::string_view secret,
                                 heartbeat& out) {
    if (data.size() > max_heartbeat_size) {
        return heartbeat_error::too_large;
    }
    if (data.size() < 6) {
        return data.size() >= 4 && std::memcmp(data.data(), magic, 4) != 0 ? heartbeat_error::bad_magic
                                                                          : heartbeat_error::truncated;
    }
    if (std::memcmp(data.data(), magic, 4) != 0) {
        return heartbeat_error::bad_magic;
    }
    if (data[4] != version) {
        return heartbeat_error::unsupported_version;
    }
    const std::uint8_t flags = data[5];
    if ((flags & ~(flag_leaving | flag_signed)) != 0) {
        return heartbeat_error::malformed;
    }
    const bool is_signed = (flags & flag_signed) != 0;
    // The tag is checked before a single field is trusted.
    if (!secret.empty() && !is_signed) {
        return heartbeat_error::unsigned_heartbeat;
    }
    if (secret.empty() && is_signed) {
        return heartbeat_error::signed_but_no_secret;
    }
    auto body = data;
    if (is_signed) {
        if (data.size() < 6 + mac_size) {
            return heartbeat_error::truncated;
        }
        body = data.first(data.size() - mac_size);
        const auto expected = sign(secret, body);
        std::uint8_t diff = 0;
        for (std::size_t i = 0; i < mac_size; ++i) {
            diff |= static_cast<std::uint8_t>(expected[i] ^ data[body.size() + i]);
        }
        if (diff != 0) {
            return heartbeat_error::bad_signature;
        }
    }
    cursor in(body.subspan(6));
    std::uint8_t count = 0;
    if (!in.u8(out.proto_min) || !in.u8(out.proto_max) || !in.short_string(out.cluster) ||
        !in.bytes(out.id.bytes.data(), out.id.bytes.size()) || !in.u64(out.incarnation) ||
        !in.u64(out.alive_ms) || !in.u16(out.port) || !in.short_string(out.host) ||
        !in.short_string(out.node) || !in.u8(count)) {
        return heartbeat_error::truncated;
    }
    out.payload.clear();
    for (std::uint8_t i = 0; i < count; ++i) {
        std::string k, v;
        if (!in.short_string(k) || !in.short_string(v)) {
            return heartbeat_error::truncated;
        }
        out.payload.emplace_back(std::move(k), std::move(v));
    }
    if (in.left() != 0 || out.proto_min > out.proto_max || out.id.is_nil() || out.port == 0 ||
        out.host.empty()) {
        return heartbeat_error::malformed;
    }
    out.leaving = (flags & flag_leaving) != 0;
    return heartbeat_error::none;
}

} // namespace troupe::membership
