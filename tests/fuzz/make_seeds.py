#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the binary seeds of tests/fuzz/corpus/{frame,hello}_fuzz.

Valid frames give libFuzzer a head start past the magic, version, type and length
checks; it mutates from there. The layout follows transport/include/troupe/
transport/frame.hpp and hello.hpp (all integers big-endian). Run it again after a
wire-format change:  python3 tests/fuzz/make_seeds.py
"""
import pathlib
import struct

here = pathlib.Path(__file__).resolve().parent
HELLO, AUTH, DATA, ACK, NACK, PING, PONG, BYE = range(1, 9)


def frame(kind, body, flags=0):
    return b"TRUP" + struct.pack(">BBHI", 1, kind, flags, len(body)) + body


def name(text):
    raw = text.encode()
    return struct.pack(">B", len(raw)) + raw


def hello_body(role, cluster="fuzz-cluster", node="n1", host="127.0.0.1",
               proto=(1, 1), mac=None):
    body = struct.pack(">BBB", proto[0], proto[1], role)
    body += bytes(range(16))                                 # member id
    body += struct.pack(">QH", 1_700_000_000_000, 4000)      # incarnation, port
    body += name(cluster) + name(node) + name(host)
    body += bytes(range(0x40, 0x50))                         # nonce
    body += struct.pack(">B", 0) if mac is None else struct.pack(">B", 32) + mac
    return body


def data_body(msg_id, options, context, payload):
    ctx = context.encode()
    return struct.pack(">QIB", msg_id, options, len(ctx)) + ctx + payload


def ack_body(msg_id, status, reason=""):
    raw = reason.encode()
    return struct.pack(">QBH", msg_id, status, len(raw)) + raw


def bye_body(reason):
    raw = reason.encode()
    return struct.pack(">H", len(raw)) + raw


def write(target, seeds):
    folder = here / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for seed_name, content in seeds.items():
        (folder / seed_name).write_bytes(content)


mac = bytes(range(0x80, 0xa0))
connector = hello_body(0)
acceptor = hello_body(1, node="n2", mac=mac)

write("frame_fuzz", {
    "hello": frame(HELLO, connector),
    "hello_mac": frame(HELLO, acceptor),
    "auth": frame(AUTH, mac),
    "data": frame(DATA, data_body(1, 6, "sessions", b"\x00\x01payload")),
    "data_empty": frame(DATA, data_body(2, 8, "", b"")),
    "ack": frame(ACK, ack_body(1, 0)),
    "nack": frame(NACK, ack_body(1, 1, "listener threw: boom")),
    "ping_pong": frame(PING, struct.pack(">Q", 7)) + frame(PONG, struct.pack(">Q", 7)),
    "bye": frame(BYE, bye_body("wrong cluster")),
    # A whole connection, and one cut off in the middle of a frame.
    "stream": frame(HELLO, connector) + frame(AUTH, mac)
              + frame(DATA, data_body(3, 2, "app", b"x" * 40)) + frame(PING, struct.pack(">Q", 1))
              + frame(BYE, bye_body("stopping")),
    "partial": frame(DATA, data_body(4, 8, "app", b"y" * 20))[:30],
})

write("hello_fuzz", {
    "connector": connector,
    "acceptor_mac": acceptor,
    "wrong_cluster": hello_body(0, cluster="other"),
    "proto_range": hello_body(0, proto=(2, 5)),
    "auth": mac,
})
