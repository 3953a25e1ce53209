#!/usr/bin/env bash
# paramiko's Packetizer pair against ours (the loopback example) over
# 127.0.0.1 TCP, suite by suite: MB/s at 32 KiB and packets/s at 64 bytes.
# Options go to bench/vs_paramiko.py: --provider LIST (rustcrypto,
# aws-lc-rs, openssl; the best of them per column), --mib N, --packets N,
# --rounds N, --suite FILTER. Needs paramiko (pip install paramiko); with
# --provider aws-lc-rs or openssl, libssl-dev and pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --example loopback --features aws-lc-rs,openssl
exec python3 bench/vs_paramiko.py --loopback "${CARGO_TARGET_DIR:-target}/release/examples/loopback" "$@"
