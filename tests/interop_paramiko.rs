//! Interop with paramiko's own Packetizer (tests/peers/paramiko_peer.py),
//! keys given on its command line, no key exchange: for every suite paramiko
//! supports, 2000 packets of varied sizes (1 byte to 32 KiB) go to paramiko,
//! which checks each byte for byte and echoes it; we check the echo. Both
//! directions, both implementations' framing, random padding ours, zero
//! padding paramiko's.
//!
//! With the `tokio` feature, the same through the async Packetizer's
//! halves (a writer task and the reader at once).
//!
//! Needs python3 with paramiko. Without it the tests show as ignored,
//! except under CI=true, where a missing peer is a failure. minissh against
//! paramiko's server Transport is in the `interop` package.

mod common;

use common::harness;

use ssh_packetizer::KeyMaterial;
use std::net::TcpListener;
use std::process::Command;

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

/// Why paramiko cannot run here, if it cannot.
fn paramiko_missing() -> Option<String> {
    harness::python_module_missing("paramiko")
}

/// Whether paramiko runs; under `CI=true` its absence is a failure.
fn paramiko_ready() -> bool {
    harness::peer_ready(paramiko_missing())
}

/// Every suite paramiko 5 can run: aes-ctr with its HMACs, and GCM (and,
/// with the `legacy` feature, its hmac-sha1-96, hmac-md5 and hmac-md5-96,
/// and aes-cbc and 3des-cbc with a sample of MACs, both modes).
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
    // With the legacy feature, paramiko's legacy MACs and CBC ciphers too.
    #[cfg(feature = "legacy")]
    for c in [C::Aes128Ctr, C::Aes256Ctr] {
        for m in [M::HmacSha1_96, M::HmacMd5, M::HmacMd5_96] {
            out.push((c, m));
        }
    }
    #[cfg(feature = "legacy")]
    for c in [C::Aes128Cbc, C::Aes192Cbc, C::Aes256Cbc, C::TripleDesCbc] {
        for m in [M::HmacSha1, M::HmacSha256, M::HmacSha512Etm, M::HmacMd5_96] {
            out.push((c, m));
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The keys each way and a running paramiko peer that connects to
/// `listener` and echoes what we send under them.
struct Peer {
    child: std::process::Child,
    to_peer: Keys,
    from_peer: Keys,
}

fn start_peer(c: C, m: M, listener: &TcpListener) -> Peer {
    let material = |seed: u8| common::material(c, m, seed);
    let (to_peer, from_peer) = (material(1), material(2));
    let keys = |mat: &common::Material| {
        Keys::new(
            c,
            m,
            KeyMaterial {
                key: &mat.key,
                iv: &mat.iv,
                mac_key: &mat.mac_key,
            },
        )
        .unwrap()
    };
    let port = listener.local_addr().unwrap().port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/paramiko_peer.py");
    let child = Command::new("python3")
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
    Peer {
        child,
        to_peer: keys(&to_peer),
        from_peer: keys(&from_peer),
    }
}

fn run(c: C, m: M) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = start_peer(c, m, &listener);
    let (stream, _) = listener.accept().unwrap();
    let mut p = Packetizer::tcp(stream).unwrap();
    // As a key exchange ends: NEWKEYS each way, each side switching.
    p.send_newkeys(peer.to_peer.clone()).unwrap();
    assert_eq!(p.read_message().unwrap().msg_type(), 21);
    p.set_inbound_cipher(peer.from_peer.clone()).unwrap();
    for i in 0..COUNT {
        let sent = payload(i);
        p.send_message(&sent)
            .unwrap_or_else(|e| panic!("{c}+{m}: sending {i}: {e}"));
        let echo = p
            .read_message()
            .unwrap_or_else(|e| panic!("{c}+{m}: reading echo {i}: {e}"));
        assert_eq!(echo.payload(), &sent[..], "{c}+{m}: echo {i}");
        // paramiko's NEWKEYS took its sequence number 0.
        assert_eq!(echo.seqno(), i as u32 + 1);
    }
    let status = peer.child.wait().unwrap();
    assert!(status.success(), "{c}+{m}: the paramiko peer failed");
}

/// As `run`, through the async Packetizer's halves: a writer task sends
/// every packet while the reader checks the echoes as they come.
#[cfg(feature = "tokio")]
fn run_async(c: C, m: M) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = start_peer(c, m, &listener);
    let (stream, _) = listener.accept().unwrap();
    stream.set_nonblocking(true).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::from_std(stream).unwrap();
        let mut p = ssh_packetizer::tokio::Packetizer::new(stream);
        p.send_newkeys(peer.to_peer.clone()).await.unwrap();
        assert_eq!(p.read_message().await.unwrap().msg_type(), 21);
        p.set_inbound_cipher(peer.from_peer.clone()).unwrap();
        let (mut reader, writer) = p.split_with(tokio::net::TcpStream::into_split);
        let sender = tokio::spawn(async move {
            for i in 0..COUNT {
                writer
                    .send_message(&payload(i))
                    .await
                    .unwrap_or_else(|e| panic!("{c}+{m}: sending {i}: {e}"));
            }
        });
        for i in 0..COUNT {
            let echo = reader
                .read_message()
                .await
                .unwrap_or_else(|e| panic!("{c}+{m}: reading echo {i}: {e}"));
            assert_eq!(echo.payload(), &payload(i)[..], "{c}+{m}: echo {i}");
            assert_eq!(echo.seqno(), i as u32 + 1);
        }
        sender.await.unwrap();
    });
    let status = peer.child.wait().unwrap();
    assert!(status.success(), "{c}+{m}: the paramiko peer failed");
}

#[cfg(feature = "tokio")]
fn paramiko_and_our_async_packetizer_agree_in_every_suite_both_ways() {
    if !paramiko_ready() {
        return;
    }
    for (c, m) in paramiko_suites() {
        run_async(c, m);
    }
}

fn paramiko_and_we_agree_in_every_suite_both_ways() {
    if !paramiko_ready() {
        return;
    }
    for (c, m) in paramiko_suites() {
        run(c, m);
    }
}

/// The tests (name, body, whether it needs the peer); a missing peer shows
/// them as ignored outside CI.
fn main() -> std::process::ExitCode {
    let tests: &[harness::PeerTest] = &[
        (
            "paramiko_and_we_agree_in_every_suite_both_ways",
            paramiko_and_we_agree_in_every_suite_both_ways,
            true,
        ),
        #[cfg(feature = "tokio")]
        (
            "paramiko_and_our_async_packetizer_agree_in_every_suite_both_ways",
            paramiko_and_our_async_packetizer_agree_in_every_suite_both_ways,
            true,
        ),
    ];
    harness::run_peer_tests(tests, paramiko_missing())
}
