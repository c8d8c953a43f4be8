// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the HELLO/AUTH handshake. The input is a HELLO body from
// an unauthenticated peer: it is parsed, judged the way inbound_connection and
// peer_sender judge it, and both handshake MACs are computed over it. Besides
// crashes, the target traps when the MAC stops depending on the challenge, when
// the two directions' MACs coincide, or when the checks disagree with the
// protocol range; the input's tail also goes through parse_auth.
#include <troupe/transport/frame.hpp>
#include <troupe/transport/hello.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace {

using namespace troupe::transport;

using bytes = std::span<const std::uint8_t>;

constexpr std::string_view secret = "fuzz-secret";
constexpr std::string_view our_cluster = "fuzz-cluster";

void require(bool condition) {
    if (!condition) {
        __builtin_trap();
    }
}

/// What this node sends: a fixed identity, so that only the peer's half varies.
hello our_hello(std::uint8_t role) {
    hello h;
    h.role = role;
    for (std::size_t i = 0; i < h.id.bytes.size(); ++i) {
        h.id.bytes[i] = static_cast<std::uint8_t>(0xa0 + i);
    }
    h.incarnation = 1'700'000'000'000;
    h.port = 4000;
    h.cluster = std::string(our_cluster);
    h.node = "fuzz-node";
    h.host = "127.0.0.1";
    for (std::size_t i = 0; i < h.challenge.size(); ++i) {
        h.challenge[i] = static_cast<std::uint8_t>(i * 7);
    }
    return h;
}

/// The acceptor's verdict on a connector's HELLO (inbound_connection::handle_hello).
bool acceptor_accepts(const hello& peer, const hello& self) {
    if (peer.role != 0 || peer.id == self.id || peer.cluster != self.cluster) {
        return false;
    }
    return !(peer.proto_max < protocol_min || peer.proto_min > protocol_max);
}

/// The connector's verdict on an acceptor's answer (peer_sender::handle_hello,
/// with a secret configured).
bool connector_accepts(const hello& peer, const hello& self) {
    if (peer.role != 1 || peer.cluster != self.cluster || !peer.has_mac) {
        return false;
    }
    return mac_equal(peer.proof, handshake_mac(secret, true, self, peer));
}

/// The MAC must be a function of every challenge byte: flipping one (chosen by
/// the input) changes it. A collision here would mean HMAC-SHA256 is broken or,
/// far likelier, that the message no longer covers the nonce.
void check_mac_depends_on_challenge(const hello& connector, const hello& acceptor,
                                    std::size_t pick) {
    for (const bool as_acceptor : {true, false}) {
        const mac m = handshake_mac(secret, as_acceptor, connector, acceptor);
        require(mac_equal(m, m));
        const mac again = handshake_mac(secret, as_acceptor, connector, acceptor);
        require(mac_equal(m, again));

        hello c = connector;
        c.challenge[pick % c.challenge.size()] ^= 0x01;
        require(!mac_equal(m, handshake_mac(secret, as_acceptor, c, acceptor)));

        hello a = acceptor;
        a.challenge[(pick / 16) % a.challenge.size()] ^= 0x80;
        require(!mac_equal(m, handshake_mac(secret, as_acceptor, connector, a)));

        // Another secret, another MAC.
        require(!mac_equal(m, handshake_mac("fuzz-secreT", as_acceptor, connector, acceptor)));
    }
    // The two directions use different labels, so a peer cannot reflect our proof.
    require(!mac_equal(handshake_mac(secret, true, connector, acceptor),
                       handshake_mac(secret, false, connector, acceptor)));
}

void check_mac_equal(const mac& m, std::size_t pick) {
    require(mac_equal(m, m));
    mac flipped = m;
    flipped[pick % flipped.size()] ^= static_cast<std::uint8_t>(1u << (pick % 8));
    require(!mac_equal(m, flipped));
    require(!mac_equal(flipped, m));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const bytes input(data, size);
    std::size_t pick = 0;
    for (const auto b : input) {
        pick = pick * 31 + b;
    }

    hello peer;
    if (!parse_hello(input, peer)) {
        require(peer.role <= 1 && peer.proto_min <= peer.proto_max);

        // As the acceptor: the peer is the connector.
        const hello acceptor = our_hello(1);
        const bool accepted = acceptor_accepts(peer, acceptor);
        const bool overlap = peer.proto_min <= protocol_max && peer.proto_max >= protocol_min;
        if (accepted) {
            require(peer.role == 0 && peer.cluster == our_cluster && overlap);
        }
        check_mac_depends_on_challenge(peer, acceptor, pick);

        // As the connector: the peer answers as the acceptor. A peer that knows
        // the secret passes exactly when its proof is the MAC we compute.
        const hello connector = our_hello(0);
        hello honest = peer;
        honest.has_mac = true;
        honest.proof = handshake_mac(secret, true, connector, honest);
        require(connector_accepts(honest, connector) ==
                (honest.role == 1 && honest.cluster == our_cluster));
        if (peer.has_mac && !mac_equal(peer.proof, honest.proof)) {
            require(!connector_accepts(peer, connector));
        }
        check_mac_depends_on_challenge(connector, peer, pick);
        check_mac_equal(honest.proof, pick);

        // The connector's AUTH in answer, and the acceptor's check of it.
        const mac proof = handshake_mac(secret, false, peer, acceptor);
        buffer auth;
        append_auth(auth, proof);
        mac read{};
        require(!parse_auth(bytes(auth).subspan(header_size), read));
        require(mac_equal(read, handshake_mac(secret, false, peer, acceptor)));
    }

    // AUTH bodies: the whole input, and its last 32 bytes.
    mac proof{};
    if (!parse_auth(input, proof)) {
        require(size == proof.size());
        check_mac_equal(proof, pick);
    }
    if (size >= 32 && parse_auth(input.last(32), proof)) {
        require(false); // exactly 32 bytes always parse
    }
    return 0;
}
