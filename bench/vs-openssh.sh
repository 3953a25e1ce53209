#!/usr/bin/env bash
# OpenSSH's ssh against minissh on the same private sshd: 1 GiB down and up
# per suite, clients alternated, client CPU seconds per GiB and their ratio.
# Options go to the binary: --gib N, --rounds N, --suite FILTER; --server
# compares the servers instead (OpenSSH's ssh against sshd and against
# `minissh serve`, the server's CPU per GiB).
# Needs openssh-server and openssh-client (apt-get install -y openssh-server openssh-client).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p minissh --bins
exec "${CARGO_TARGET_DIR:-target}/release/vs-openssh" "$@"
