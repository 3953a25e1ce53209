#!/usr/bin/env bash
# OpenSSH's ssh against minissh on the same private sshd: 1 GiB down and up
# per suite, clients alternated, client CPU seconds per GiB and their ratio.
# Options go to the binary: --gib N, --rounds N, --suite FILTER; --server
# compares the servers instead (OpenSSH's ssh against sshd and against
# `minissh serve`, the server's CPU per GiB); --provider LIST|all runs
# minissh on each crypto provider named (rustcrypto, aws-lc-rs, openssl),
# for which minissh is built with the aws-lc-rs and openssl features;
# --russh adds russh's client (or, with --server, its server) beside them.
# Needs openssh-server and openssh-client (apt-get install -y openssh-server
# openssh-client); with --provider, also libssl-dev and pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."
features=""
for arg in "$@"; do
  if [ "$arg" = "--provider" ]; then features="minissh/aws-lc-rs,minissh/openssl"; fi
  # russh's client and server (bench/russh, a project of its own).
  if [ "$arg" = "--russh" ]; then
    cargo build --release -q --manifest-path bench/russh/Cargo.toml
  fi
done
# minissh's binary, and the tool (in the test-only interop package).
cargo build --release -q -p minissh -p interop --bins ${features:+--features "$features"}
exec "${CARGO_TARGET_DIR:-target}/release/vs-openssh" "$@"
