#!/usr/bin/env bash
# Heap allocations per packet under each crypto provider, C libraries
# included: valgrind counts every malloc (Rust's allocator and AWS-LC's and
# OpenSSL's own), and the loopback example runs twice, with N and 2N small
# packets; the difference over N is what one packet (sealed and opened)
# allocates. tests/zero_alloc.rs checks the Rust side in CI; this is the
# whole process. Options: PACKETS=N (default 20000).
# Needs valgrind, libssl-dev and pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --example loopback --features aws-lc-rs,openssl
loopback="${CARGO_TARGET_DIR:-target}/release/examples/loopback"
n="${PACKETS:-20000}"
allocs() {
  valgrind --error-exitcode=0 "$loopback" --quiet --provider "$1" --suite "$2" \
    --mib 1 --packets "$3" 2>&1 >/dev/null |
    sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' | tr -d ,
}
printf '%-36s %-10s %14s\n' suite provider "allocs/packet"
for suite in aes128-gcm chacha20-poly1305 aes128-ctr+hmac-sha2-256-etm aes256-ctr+hmac-sha2-512-etm; do
  for provider in rustcrypto aws-lc-rs openssl; do
    one=$(allocs "$provider" "$suite" "$n")
    two=$(allocs "$provider" "$suite" $((2 * n)))
    printf '%-36s %-10s %14s\n' "$suite" "$provider" \
      "$(python3 -c "print(f'{($two - $one) / $n:.4f}')")"
  done
done
