#!/usr/bin/env python3
"""asyncssh's client against `minissh serve`, for minissh/tests/server.rs.

For each cipher (and MAC) named, connects with only those enabled, runs
`sha256sum; echo ... >&2; exit 6` with random input, checks the digest,
the stderr line and the exit status, then echoes 4 MB through `cat` with
asyncssh set to rekey after every megabyte (client-started rekeys). Prints one line per suite and exits 0 when all passed.
"""
import argparse
import asyncio
import hashlib
import os

import asyncssh


async def run(port, key, cipher, mac, size):
    options = dict(
        username="tester",
        client_keys=[key],
        known_hosts=None,
        encryption_algs=[cipher],
        agent_path=None,
        rekey_bytes=1_000_000,
    )
    if mac:
        options["mac_algs"] = [mac]
    async with asyncssh.connect("127.0.0.1", port, **options) as conn:
        data = os.urandom(size)
        result = await conn.run("sha256sum; echo asyncssh-stderr >&2; exit 6", input=data, encoding=None)
        want = hashlib.sha256(data).hexdigest().encode()
        if not result.stdout.startswith(want):
            raise SystemExit(f"{cipher}: digest {result.stdout!r}")
        if result.stderr.strip() != b"asyncssh-stderr":
            raise SystemExit(f"{cipher}: stderr {result.stderr!r}")
        if result.exit_status != 6:
            raise SystemExit(f"{cipher}: exit status {result.exit_status}")
        # Rekeys started by the client while data flows both ways.
        echo = os.urandom(4 * 1024 * 1024)
        result = await conn.run("cat", input=echo, encoding=None)
        if result.stdout != echo:
            raise SystemExit(f"{cipher}: the echo across rekeys came back wrong ({len(result.stdout)} bytes)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("key")
    p.add_argument("--suite", action="append", required=True, help="CIPHER or CIPHER,MAC")
    p.add_argument("--size", type=int, default=300_000)
    args = p.parse_args()
    for suite in args.suite:
        cipher, _, mac = suite.partition(",")
        asyncio.run(run(args.port, args.key, cipher, mac or None, args.size))
        print(f"{suite} ok", flush=True)


if __name__ == "__main__":
    main()
