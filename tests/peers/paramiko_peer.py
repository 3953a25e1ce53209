#!/usr/bin/env python3
"""An echo peer on paramiko's own Packetizer, for tests/interop_paramiko.rs.

Connects to 127.0.0.1:PORT, switches keys as a key exchange ends (reads the
peer's NEWKEYS in the clear and installs the inbound keys given on the
command line, sends its own NEWKEYS and installs the outbound keys), then
reads COUNT messages, checks each
against the payload formula the Rust side uses, and echoes it back. Exits 0
when every message matched, non-zero with a message on stderr otherwise.
"""
import argparse
import socket
import sys

import paramiko
from paramiko.message import Message
from paramiko.packet import Packetizer

Transport = paramiko.Transport


def size_of(i):
    if i % 50 == 0:
        return 32 * 1024
    if i % 7 == 0:
        return 1
    return (i * 7919) % 3000 + 1


def payload(i):
    n = size_of(i)
    return bytes([94]) + bytes((i * 31 + k) % 251 for k in range(n - 1))


def engine(cipher, key, iv, encrypt, aead):
    # Transport._get_engine reads only class attributes: paramiko's own path.
    op = Transport._ENCRYPT if encrypt else Transport._DECRYPT
    return Transport._get_engine(Transport, cipher, key, iv, op, aead)


def install(p, cipher, mac, key, iv, mac_key, outbound):
    info = Transport._cipher_info[cipher]
    aead = info.get("is_aead", False)
    block_size = info["block-size"]
    mac_info = Transport._mac_info.get(mac) if not aead else None
    common = dict(
        block_engine=engine(cipher, key, iv, outbound, aead),
        block_size=block_size,
        mac_engine=None if aead else mac_info["class"],
        mac_size=16 if aead else mac_info["size"],
        mac_key=None if aead else mac_key,
        etm=(not aead) and mac.endswith("-etm@openssh.com"),
        aead=aead,
    )
    if outbound:
        p.set_outbound_cipher(sdctr=cipher.endswith("-ctr"), iv_out=iv if aead else None, **common)
    else:
        p.set_inbound_cipher(iv_in=iv if aead else None, **common)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--cipher", required=True)
    a.add_argument("--mac", default="none")
    a.add_argument("--count", type=int, default=2000)
    for side in ("in", "out"):
        for part in ("key", "iv", "mac-key"):
            a.add_argument(f"--{side}-{part}", default="")
    o = a.parse_args()
    h = bytes.fromhex
    sock = socket.create_connection(("127.0.0.1", o.port))
    sock.settimeout(30)
    p = Packetizer(sock)
    cmd, _ = p.read_message()
    if cmd != 21:
        sys.exit(f"paramiko: expected NEWKEYS first, got message {cmd}")
    install(p, o.cipher, o.mac, h(o.in_key), h(o.in_iv), h(o.in_mac_key), outbound=False)
    p.send_message(Message(bytes([21])))
    install(p, o.cipher, o.mac, h(o.out_key), h(o.out_iv), h(o.out_mac_key), outbound=True)
    for i in range(o.count):
        cmd, msg = p.read_message()
        got = bytes([cmd]) + msg.asbytes()
        if got != payload(i):
            sys.exit(f"paramiko: message {i} differs ({len(got)} bytes, expected {size_of(i)})")
        p.send_message(Message(got))
    p.close()
    sock.close()


if __name__ == "__main__":
    main()
