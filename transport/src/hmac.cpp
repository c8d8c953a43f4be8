// SPDX-License-Identifier: Apache-2.0
#include <troupe/transport/hello.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace troupe::transport {

mac hmac_sha256(std::string_view key, std::span<const std::uint8_t> data) {
    mac out{};
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
             out.data(), &len) == nullptr ||
        len != out.size()) {
        throw std::runtime_error("HMAC-SHA256 failed (OpenSSL)");
    }
    return out;
}

nonce random_nonce() {
    nonce n{};
    if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
        throw std::runtime_error("RAND_bytes failed (OpenSSL)");
    }
    return n;
}

} // namespace troupe::transport
