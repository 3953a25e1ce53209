#!/usr/bin/env python3
"""paramiko's SSHClient against `minissh serve`, for minissh/tests/server.rs.

For every cipher paramiko has (or those named with --cipher), connects with
only that cipher enabled, runs `sha256sum; echo ... >&2; exit 5` with
random input, and checks the digest, the stderr line and the exit status.
Prints one line per cipher ("aes128-ctr hmac-sha2-256 ok") and exits 0 when
all passed; otherwise a message on stderr and exit 1.
"""
import argparse
import hashlib
import os
import sys

import paramiko


def run(port, key, cipher, mac, size):
    preferred = paramiko.Transport._preferred_ciphers
    disabled = {"ciphers": [c for c in preferred if c != cipher]}
    if mac:
        disabled["macs"] = [m for m in paramiko.Transport._preferred_macs if m != mac]
    client = paramiko.SSHClient()
    # The server's key is new to this client: the test checks algorithms,
    # not host keys (minissh's own client tests those).
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        "127.0.0.1",
        port=port,
        username="tester",
        key_filename=key,
        look_for_keys=False,
        allow_agent=False,
        disabled_algorithms=disabled,
        timeout=20,
    )
    try:
        data = os.urandom(size)
        stdin, stdout, stderr = client.exec_command(
            "sha256sum; echo paramiko-stderr >&2; exit 5", timeout=60
        )
        stdin.write(data)
        stdin.channel.shutdown_write()
        out = stdout.read().decode()
        err = stderr.read().decode()
        status = stdout.channel.recv_exit_status()
        used = client.get_transport().remote_cipher, client.get_transport().remote_mac
    finally:
        client.close()
    want = hashlib.sha256(data).hexdigest()
    if not out.startswith(want):
        raise SystemExit(f"{cipher}: digest {out!r}, expected {want}")
    if err.strip() != "paramiko-stderr":
        raise SystemExit(f"{cipher}: stderr {err!r}")
    if status != 5:
        raise SystemExit(f"{cipher}: exit status {status}")
    if used[0] != cipher:
        raise SystemExit(f"{cipher}: negotiated {used}")
    return used


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("key")
    p.add_argument("--cipher", action="append", default=[])
    p.add_argument("--mac", action="append", default=[])
    p.add_argument("--size", type=int, default=300_000)
    args = p.parse_args()
    ciphers = args.cipher or list(paramiko.Transport._preferred_ciphers)
    for cipher in ciphers:
        # A non-AEAD cipher also goes through every MAC paramiko has.
        aead = "gcm" in cipher or "chacha" in cipher
        macs = [None] if aead else args.mac or list(paramiko.Transport._preferred_macs)
        for mac in macs:
            used = run(args.port, args.key, cipher, mac, args.size)
            print(f"{used[0]} {used[1]} ok", flush=True)


if __name__ == "__main__":
    main()
