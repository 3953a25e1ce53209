//! Interop with paramiko's own Packetizer (tests/peers/paramiko_peer.py),
//! keys given on its command line, no key exchange: for every suite paramiko
//! supports, 2000 packets of varied sizes (1 byte to 32 KiB) go to paramiko,
//! which checks each byte for byte and echoes it; we check the echo. Both
//! directions, both implementations' framing, random padding ours, zero
//! padding paramiko's.
//!
//! Needs python3 with paramiko. Without it the test says so and passes,
//! except under CI=true, where a missing peer is a failure.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};

use ssh_packetizer::{CipherAlgorithm as C, Keys, MacAlgorithm as M, Packetizer};

const COUNT: usize = 2000;

fn size_of(i: usize) -> usize {
    if i.is_multiple_of(50) {
        32 * 1024
    } else if i.is_multiple_of(7) {
        1
    } else {
        (i * 7919) % 3000 + 1
    }
}

fn payload(i: usize) -> Vec<u8> {
    let mut p = vec![94u8];
    p.extend((0..size_of(i) - 1).map(|k| ((i * 31 + k) % 251) as u8));
    p
}

fn paramiko_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import paramiko"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "paramiko is missing under CI=true: .ci/run must install it (pip install paramiko)"
            );
        }
        eprintln!("SKIPPED: python3 with paramiko is not installed (pip install paramiko)");
    }
    ok
}

/// Every suite paramiko 5 can run: aes-ctr with its HMACs, and GCM.
fn paramiko_suites() -> Vec<(C, M)> {
    let mut out = Vec::new();
    for c in [C::Aes128Ctr, C::Aes192Ctr, C::Aes256Ctr] {
        for m in [
            M::HmacSha1,
            M::HmacSha256,
            M::HmacSha512,
            M::HmacSha256Etm,
            M::HmacSha512Etm,
        ] {
            out.push((c, m));
        }
    }
    out.push((C::Aes128Gcm, M::None));
    out.push((C::Aes256Gcm, M::None));
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run(c: C, m: M) {
    let material = |seed: u8| common::material(c, m, seed);
    let (to_peer, from_peer) = (material(1), material(2));
    let keys = |mat: &common::Material| Keys::new(c, m, &mat.key, &mat.iv, &mat.mac_key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/paramiko_peer.py");
    let mut peer = Command::new("python3")
        .args([
            script,
            "--port",
            &port,
            "--cipher",
            c.name(),
            "--mac",
            m.name(),
        ])
        .args(["--count", &COUNT.to_string()])
        .args([
            "--in-key",
            &hex(&to_peer.key),
            "--in-iv",
            &hex(&to_peer.iv),
            "--in-mac-key",
            &hex(&to_peer.mac_key),
        ])
        .args([
            "--out-key",
            &hex(&from_peer.key),
            "--out-iv",
            &hex(&from_peer.iv),
        ])
        .args(["--out-mac-key", &hex(&from_peer.mac_key)])
        .spawn()
        .expect("python3 runs");
    let (stream, _) = listener.accept().unwrap();
    let mut p = Packetizer::tcp(stream).unwrap();
    p.set_outbound_cipher(keys(&to_peer)).unwrap();
    p.set_inbound_cipher(keys(&from_peer)).unwrap();
    for i in 0..COUNT {
        let sent = payload(i);
        p.send_message(&sent)
            .unwrap_or_else(|e| panic!("{c}+{m}: sending {i}: {e}"));
        let echo = p
            .read_message()
            .unwrap_or_else(|e| panic!("{c}+{m}: reading echo {i}: {e}"));
        assert_eq!(echo.payload(), &sent[..], "{c}+{m}: echo {i}");
        assert_eq!(echo.seqno(), i as u32);
    }
    let status = peer.wait().unwrap();
    assert!(status.success(), "{c}+{m}: the paramiko peer failed");
}

#[test]
fn paramiko_and_we_agree_in_every_suite_both_ways() {
    if !paramiko_ready() {
        return;
    }
    for (c, m) in paramiko_suites() {
        run(c, m);
    }
}
