#!/usr/bin/env python3
"""paramiko's own Packetizer pair over 127.0.0.1 TCP, the client and the
server in two processes (one GIL each), for bench/vs-paramiko.sh.

For each suite: MIB MiB in SIZE-byte payloads, then PACKETS payloads of
SMALL bytes, the client sending and the server reading and checking each
length; prints one line per suite: name, MB/s, packets/s (wall, from the
client's first send to the server's acknowledgement).
"""
import argparse
import os
import socket
import sys
import time

import paramiko
from paramiko.message import Message
from paramiko.packet import Packetizer

Transport = paramiko.Transport

SUITES = [
    ("aes128-gcm@openssh.com", "none"),
    ("aes256-gcm@openssh.com", "none"),
    ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha2-256"),
    ("aes128-ctr", "hmac-sha1-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha1"),
    ("aes128-ctr", "hmac-sha2-512-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha2-512"),
    ("aes192-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-512-etm@openssh.com"),
]


def available(cipher, mac):
    """Whether this paramiko has the suite (5.1 has no hmac-sha1-etm)."""
    return cipher in Transport._cipher_info and (mac == "none" or mac in Transport._mac_info)


def engine(cipher, key, iv, encrypt, aead):
    op = Transport._ENCRYPT if encrypt else Transport._DECRYPT
    return Transport._get_engine(Transport, cipher, key, iv, op, aead)


def install(p, cipher, mac, outbound):
    info = Transport._cipher_info[cipher]
    aead = info.get("is_aead", False)
    key = bytes(range(info["key-size"]))
    iv = bytes(range(100, 100 + (12 if aead else info["block-size"])))
    mac_info = None if aead else Transport._mac_info[mac]
    common = dict(
        block_engine=engine(cipher, key, iv, outbound, aead),
        block_size=info["block-size"],
        mac_engine=None if aead else mac_info["class"],
        mac_size=16 if aead else mac_info["size"],
        mac_key=None if aead else bytes(range(50, 50 + mac_info["size"])),
        etm=(not aead) and mac.endswith("-etm@openssh.com"),
        aead=aead,
    )
    if outbound:
        p.set_outbound_cipher(sdctr=cipher.endswith("-ctr"), iv_out=iv if aead else None, **common)
    else:
        p.set_inbound_cipher(iv_in=iv if aead else None, **common)


def message(size):
    m = Message()
    m.add_byte(bytes([94]))
    m.add_bytes(b"\x5e" * (size - 1))
    return m


def serve(listener, cipher, mac, runs):
    conn, _ = listener.accept()
    p = Packetizer(conn)
    install(p, cipher, mac, outbound=False)
    install(p, cipher, mac, outbound=True)
    for size, count in runs:
        for i in range(count):
            _, m = p.read_message()
            if len(m.asbytes()) + 1 != size:
                sys.exit(f"packet {i}: {len(m.asbytes()) + 1} bytes, not {size}")
        p.send_message(message(8))
    conn.close()


def run_suite(cipher, mac, runs):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    pid = os.fork()
    if pid == 0:
        try:
            serve(listener, cipher, mac, runs)
        finally:
            os._exit(0)
    listener_port = listener.getsockname()[1]
    conn = socket.create_connection(("127.0.0.1", listener_port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    p = Packetizer(conn)
    install(p, cipher, mac, outbound=True)
    install(p, cipher, mac, outbound=False)
    rates = []
    for size, count in runs:
        m = message(size)
        start = time.perf_counter()
        for _ in range(count):
            p.send_message(m)
        p.read_message()
        rates.append(count / (time.perf_counter() - start))
    conn.close()
    os.waitpid(pid, 0)
    listener.close()
    return rates


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--mib", type=int, default=64)
    a.add_argument("--size", type=int, default=32768)
    a.add_argument("--packets", type=int, default=20000)
    a.add_argument("--small", type=int, default=64)
    a.add_argument("--suite", default="")
    o = a.parse_args()
    big = (o.mib << 20) // o.size
    print(f"# paramiko {paramiko.__version__}")
    for cipher, mac in SUITES:
        name = cipher if mac == "none" else f"{cipher}+{mac}"
        if o.suite not in name or not available(cipher, mac):
            continue
        # The rates are per message: one run of big ones, one of small.
        big_rate, small_rate = run_suite(cipher, mac, [(o.size, big), (o.small, o.packets)])
        print(f"{name} {big_rate * o.size / 1e6:.0f} {small_rate:.0f}", flush=True)


if __name__ == "__main__":
    main()
