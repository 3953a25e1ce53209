#!/usr/bin/env python3
"""Side by side with paramiko: paramiko's Packetizer pair
(bench/paramiko_pair.py) against ours (the loopback example), suite by
suite and alternating, over 127.0.0.1 TCP: MB/s at 32 KiB payloads and
packets/s at 64 bytes, and our figure over paramiko's. Run by
bench/vs-paramiko.sh, which builds the example first.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def short(name):
    return name.replace("@openssh.com", "")


def ours(loopback, provider, suite, mib, packets):
    out = subprocess.run(
        [loopback, "--quiet", "--provider", provider, "--suite", suite,
         "--mib", str(mib), "--packets", str(packets)],
        check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[0] == suite and cols[1] == provider:
            return float(cols[2]), float(cols[3])
    sys.exit(f"no row for {suite} ({provider}) in:\n{out}")


def theirs(suite, mib, packets):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "paramiko_pair.py"), "--suite", suite,
         "--mib", str(mib), "--packets", str(packets)],
        check=True, capture_output=True, text=True).stdout
    version = out.splitlines()[0]
    for line in out.splitlines()[1:]:
        name, mb, pkts = line.split()
        if short(name) == suite:
            return version, float(mb), float(pkts)
    sys.exit(f"no paramiko row for {suite} in:\n{out}")


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--loopback", required=True)
    a.add_argument("--provider", default="rustcrypto",
                   help="a provider, or a comma-separated list (the best is taken)")
    a.add_argument("--mib", type=int, default=256)
    a.add_argument("--packets", type=int, default=40000)
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--suite", default="")
    o = a.parse_args()
    sys.path.insert(0, HERE)
    from paramiko_pair import SUITES, available
    providers = o.provider.split(",")
    print(f"127.0.0.1 TCP, {o.rounds} rounds alternating, medians; ours on {', '.join(providers)}"
          " (the best per column); paramiko's send_message writes each message at once,"
          " ours sends 64-byte payloads in batches of 64")
    print(f"{'suite':30} {'paramiko':>8} {'ours':>6} {'x':>5} | {'paramiko':>9} {'ours':>9} {'x':>6}")
    print(f"{'':30} {'MB/s':>8} {'@32K':>6} {'':>5} | {'pkts/s':>9} {'@64':>9} {'':>6}")
    median = lambda v: sorted(v)[len(v) // 2]
    for cipher, mac in SUITES:
        suite = short(cipher if mac == "none" else f"{cipher}+{mac}")
        if o.suite not in suite or not available(cipher, mac):
            continue
        p_mb, p_pk, o_mb, o_pk = [], [], [], []
        for _ in range(o.rounds):
            version, mb, pk = theirs(suite, max(o.mib // 4, 16), max(o.packets // 4, 5000))
            p_mb.append(mb)
            p_pk.append(pk)
            best = [ours(o.loopback, p, suite, o.mib, o.packets * 10) for p in providers]
            o_mb.append(max(b[0] for b in best))
            o_pk.append(max(b[1] for b in best))
        pm, pp, om, op = map(median, (p_mb, p_pk, o_mb, o_pk))
        print(f"{suite:30} {pm:>8.0f} {om:>6.0f} {om / pm:>5.2f} | {pp:>9.0f} {op:>9.0f} {op / pp:>6.1f}",
              flush=True)
    print(f"({version})")


if __name__ == "__main__":
    main()
