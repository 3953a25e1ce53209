//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod data;
pub mod harness;

// Not every test binary uses both.
#[allow(unused_imports)]
pub use data::{payload, Recorded};

use serde_json::Value;
use ssh_packetizer::KeyMaterial;
use ssh_packetizer::{CipherAlgorithm, InputBuffer, Keys, MacAlgorithm, Opened, Opener};

/// Decodes a hex string.
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// One packet of a known-answer suite.
pub struct VectorPacket {
    pub seqno: u32,
    pub payload: Vec<u8>,
    pub wire: Vec<u8>,
}

/// One known-answer suite from tests/data/suites.json.
pub struct Suite {
    pub cipher: CipherAlgorithm,
    pub mac: MacAlgorithm,
    pub key: Vec<u8>,
    pub iv: Vec<u8>,
    pub mac_key: Vec<u8>,
    pub first_seqno: u32,
    pub packets: Vec<VectorPacket>,
}

impl Suite {
    pub fn keys(&self) -> Keys {
        Keys::new(
            self.cipher,
            self.mac,
            KeyMaterial {
                key: &self.key,
                iv: &self.iv,
                mac_key: &self.mac_key,
            },
        )
        .expect("vector keys")
    }

    pub fn name(&self) -> String {
        format!("{} + {}", self.cipher, self.mac)
    }
}

/// Every suite in the project's copy of the shared vectors.
pub fn suites() -> Vec<Suite> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/suites.json");
    let text = std::fs::read_to_string(path).expect("tests/data/suites.json");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_owned();
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| {
            let mac = s(v, "mac");
            Suite {
                cipher: s(v, "cipher").parse().expect("known cipher"),
                mac: if mac.is_empty() {
                    MacAlgorithm::None
                } else {
                    mac.parse().expect("known MAC")
                },
                key: hex(&s(v, "key")),
                iv: hex(&s(v, "iv")),
                mac_key: hex(&s(v, "mac_key")),
                first_seqno: v["first_seqno"].as_u64().expect("first_seqno") as u32,
                packets: v["packets"]
                    .as_array()
                    .expect("packets")
                    .iter()
                    .map(|p| VectorPacket {
                        seqno: p["seqno"].as_u64().expect("seqno") as u32,
                        payload: hex(&s(p, "payload")),
                        wire: hex(&s(p, "wire")),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Keys of the right lengths for `cipher` and `mac`, filled from `seed`.
pub fn keys_for(cipher: CipherAlgorithm, mac: MacAlgorithm, seed: u8) -> Keys {
    let m = material(cipher, mac, seed);
    Keys::new(
        cipher,
        mac,
        KeyMaterial {
            key: &m.key,
            iv: &m.iv,
            mac_key: &m.mac_key,
        },
    )
    .expect("lengths from the table")
}

/// Every cipher and MAC pair the crate can run today.
pub fn supported_suites() -> Vec<(CipherAlgorithm, MacAlgorithm)> {
    let mut out = vec![(CipherAlgorithm::None, MacAlgorithm::None)];
    for &c in CipherAlgorithm::ALL {
        for &m in MacAlgorithm::ALL {
            // Legacy algorithms only in a build with the `legacy` feature.
            let runs = c.is_available() && m.is_available();
            if c != CipherAlgorithm::None
                && runs
                && ssh_packetizer::algorithm::Mode::of(c, m).is_ok()
            {
                let keys = keys_for(c, m, 0);
                if ssh_packetizer::Sealer::new().set_keys(keys).is_ok() {
                    out.push((c, m));
                }
            }
        }
    }
    out
}

/// Switches `tx`'s outbound keys and `rx`'s inbound keys the way a key
/// exchange does: `tx` sends NEWKEYS and switches, `rx` reads it and installs
/// the keys. Both ends on this thread (the stream must hold one packet).
pub fn switch_keys<A, B>(
    tx: &mut ssh_packetizer::Packetizer<A>,
    rx: &mut ssh_packetizer::Packetizer<B>,
    keys: Keys,
) where
    A: std::io::Read + std::io::Write,
    B: std::io::Read + std::io::Write,
{
    tx.send_newkeys(keys.clone()).unwrap();
    assert_eq!(rx.read_message().unwrap().msg_type(), 21);
    rx.set_inbound_cipher(keys).unwrap();
}

/// Feeds `wire` to `opener` whole and returns every packet as (payload, seqno).
pub fn open_all(
    opener: &mut Opener,
    opener_in: &mut InputBuffer,
    wire: &[u8],
) -> Result<Vec<(Vec<u8>, u32)>, ssh_packetizer::Error> {
    let mut out = Vec::new();
    let mut rest = wire;
    loop {
        let taken = opener.feed(opener_in, rest);
        rest = &rest[taken..];
        while let Opened::Packet(p) = opener.next_packet(opener_in)? {
            out.push((p.payload().to_vec(), p.seqno()));
        }
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

/// Raw key material, as `keys_for` builds it, for crafting packets by hand.
pub struct Material {
    pub key: Vec<u8>,
    pub iv: Vec<u8>,
    pub mac_key: Vec<u8>,
}

/// The bytes `keys_for(cipher, mac, seed)` uses.
pub fn material(cipher: CipherAlgorithm, mac: MacAlgorithm, seed: u8) -> Material {
    let fill = |len: usize, salt: u8| -> Vec<u8> {
        (0..len)
            .map(|i| {
                seed.wrapping_mul(31)
                    .wrapping_add(salt)
                    .wrapping_add(i as u8)
            })
            .collect()
    };
    Material {
        key: fill(cipher.spec().key_len(), 1),
        iv: fill(cipher.spec().iv_len(), 2),
        mac_key: fill(mac.spec().key_len(), 3),
    }
}

/// A reference aes128-ctr + hmac-sha2-256 (or its -etm form) built straight on
/// the primitives, to craft packets the Sealer would refuse to make.
pub struct CraftAes128Sha256 {
    ctr: ctr::Ctr128BE<aes::Aes128>,
    mac_key: Vec<u8>,
    etm: bool,
}

impl CraftAes128Sha256 {
    pub fn new(seed: u8, etm: bool) -> Self {
        use ctr::cipher::KeyIvInit;
        let mac = if etm {
            MacAlgorithm::HmacSha256Etm
        } else {
            MacAlgorithm::HmacSha256
        };
        let m = material(CipherAlgorithm::Aes128Ctr, mac, seed);
        CraftAes128Sha256 {
            ctr: ctr::Ctr128BE::new_from_slices(&m.key, &m.iv).unwrap(),
            mac_key: m.mac_key,
            etm,
        }
    }

    pub fn keys(seed: u8, etm: bool) -> Keys {
        let mac = if etm {
            MacAlgorithm::HmacSha256Etm
        } else {
            MacAlgorithm::HmacSha256
        };
        keys_for(CipherAlgorithm::Aes128Ctr, mac, seed)
    }

    /// Encrypts and MACs `plain` (length field first, any content) as packet `seq`.
    pub fn craft(&mut self, seq: u32, plain: &[u8]) -> Vec<u8> {
        use ctr::cipher::StreamCipher;
        use hmac::{KeyInit, Mac};
        let mut wire = plain.to_vec();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.mac_key).unwrap();
        mac.update(&seq.to_be_bytes());
        if self.etm {
            self.ctr.apply_keystream(&mut wire[4..]);
            mac.update(&wire);
        } else {
            mac.update(&wire);
            self.ctr.apply_keystream(&mut wire);
        }
        wire.extend_from_slice(&mac.finalize().into_bytes());
        wire
    }
}

/// A plaintext packet with explicit fields: no checks, for crafting bad ones.
pub fn plain_packet(packet_len: u32, padding_len: u8, body: &[u8]) -> Vec<u8> {
    let mut p = packet_len.to_be_bytes().to_vec();
    p.push(padding_len);
    p.extend_from_slice(body);
    p
}

/// Reference AEAD sealing straight on the primitives, to craft packets the
/// Sealer refuses to make (bad padding, empty payloads).
pub fn craft_aead(
    cipher: CipherAlgorithm,
    seed: u8,
    seq: u32,
    counter: u64,
    plain: &[u8],
) -> Vec<u8> {
    let m = material(cipher, MacAlgorithm::None, seed);
    let mut wire = plain.to_vec();
    match cipher {
        CipherAlgorithm::Aes128Gcm | CipherAlgorithm::Aes256Gcm => {
            use aes_gcm::aead::AeadInOut;
            use aes_gcm::KeyInit;
            let mut nonce = m.iv.clone();
            let base = u64::from_be_bytes(nonce[4..].try_into().unwrap());
            nonce[4..].copy_from_slice(&base.wrapping_add(counter).to_be_bytes());
            let nonce = aes_gcm::Nonce::try_from(&nonce[..]).unwrap();
            let (aad, body) = wire.split_at_mut(4);
            let tag = if cipher == CipherAlgorithm::Aes128Gcm {
                aes_gcm::Aes128Gcm::new_from_slice(&m.key)
                    .unwrap()
                    .encrypt_inout_detached(&nonce, aad, body.into())
            } else {
                aes_gcm::Aes256Gcm::new_from_slice(&m.key)
                    .unwrap()
                    .encrypt_inout_detached(&nonce, aad, body.into())
            }
            .unwrap();
            wire.extend_from_slice(&tag);
        }
        CipherAlgorithm::ChaCha20Poly1305 => {
            use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
            use poly1305::universal_hash::KeyInit;
            let nonce = u64::from(seq).to_be_bytes();
            let mut header =
                chacha20::ChaCha20Legacy::new_from_slices(&m.key[32..], &nonce).unwrap();
            header.apply_keystream(&mut wire[..4]);
            let mut main = chacha20::ChaCha20Legacy::new_from_slices(&m.key[..32], &nonce).unwrap();
            let mut poly_key = [0u8; 32];
            main.apply_keystream(&mut poly_key);
            main.seek(64u64);
            main.apply_keystream(&mut wire[4..]);
            let tag = poly1305::Poly1305::new_from_slice(&poly_key)
                .unwrap()
                .compute_unpadded(&wire);
            wire.extend_from_slice(&tag);
        }
        other => panic!("{other} is not an AEAD cipher"),
    }
    wire
}

/// The AEAD suites.
pub fn aead_ciphers() -> [CipherAlgorithm; 3] {
    [
        CipherAlgorithm::Aes128Gcm,
        CipherAlgorithm::Aes256Gcm,
        CipherAlgorithm::ChaCha20Poly1305,
    ]
}

/// One step of a [`Scripted`] stream's reads.
#[derive(Debug)]
pub enum Step {
    /// Bytes to hand out, at most a read's worth at a time.
    Data(Vec<u8>),
    /// A read timeout: the clock moves on by this much, the read fails with
    /// `WouldBlock`.
    Tick(std::time::Duration),
    /// A read error of this kind.
    Fail(std::io::ErrorKind),
    /// Time passes before the next step, with no timeout: a slow peer.
    Wait(std::time::Duration),
}

/// A stream whose reads follow a script and whose writes are recorded; EOF
/// once the script runs out.
pub struct Scripted {
    pub steps: std::collections::VecDeque<Step>,
    pub clock: std::sync::Arc<ssh_packetizer::ManualClock>,
    pub written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Hand out at most this many bytes per read.
    pub max_read: usize,
    /// Fail writes with this kind, once set.
    pub write_error: Option<std::io::ErrorKind>,
    /// Each failed write lets this much time pass (a write timeout).
    pub write_tick: std::time::Duration,
    /// Take at most this many bytes in all; past it, writes time out
    /// (`WouldBlock` after `write_tick`): a peer that stopped reading.
    pub write_limit: Option<usize>,
}

impl Scripted {
    pub fn new(steps: Vec<Step>) -> Scripted {
        Scripted {
            steps: steps.into(),
            clock: std::sync::Arc::new(ssh_packetizer::ManualClock::new()),
            written: Default::default(),
            max_read: usize::MAX,
            write_error: None,
            write_tick: std::time::Duration::ZERO,
            write_limit: None,
        }
    }

    /// A client Packetizer over this stream, its timers on the script's
    /// clock.
    pub fn packetizer(self) -> ssh_packetizer::Packetizer<Scripted> {
        self.packetizer_with(ssh_packetizer::Config::client())
    }

    /// As [`Scripted::packetizer`], with `config`.
    pub fn packetizer_with(
        self,
        config: ssh_packetizer::Config,
    ) -> ssh_packetizer::Packetizer<Scripted> {
        let clock = self.clock.clone();
        let mut p = ssh_packetizer::Packetizer::with_clock(self, config, clock);
        // The script's timeouts take no real time.
        p.set_nonblocking_backoff(std::time::Duration::ZERO);
        p
    }
}

impl std::io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.steps.pop_front() {
            None => Ok(0),
            Some(Step::Data(mut data)) => {
                let n = data.len().min(buf.len()).min(self.max_read);
                buf[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    self.steps.push_front(Step::Data(data.split_off(n)));
                }
                Ok(n)
            }
            Some(Step::Tick(by)) => {
                self.clock.advance(by);
                Err(std::io::ErrorKind::WouldBlock.into())
            }
            Some(Step::Fail(kind)) => Err(kind.into()),
            Some(Step::Wait(by)) => {
                self.clock.advance(by);
                self.read(buf)
            }
        }
    }
}

impl std::io::Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(kind) = self.write_error {
            self.clock.advance(self.write_tick);
            return Err(kind.into());
        }
        let mut written = self.written.lock().unwrap();
        let room = self
            .write_limit
            .map_or(buf.len(), |limit| limit.saturating_sub(written.len()));
        let n = buf.len().min(room);
        if n == 0 && !buf.is_empty() {
            self.clock.advance(self.write_tick);
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The wire bytes of `payloads` sealed in the clear from sequence number 0.
pub fn clear_stream(payloads: &[&[u8]]) -> Vec<u8> {
    let mut sealer = ssh_packetizer::Sealer::new();
    let mut wire = Vec::new();
    for p in payloads {
        sealer.seal(p, &mut wire).unwrap();
    }
    wire
}

/// What [`Driven::poll_packet`] found, without the packet's borrow (the
/// packet is then [`Driven::packet`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A packet was taken: [`Driven::packet`].
    Packet,
    /// At least this many more bytes are needed.
    NeedMore(usize),
    /// NEWKEYS was read; the inbound keys come first.
    AwaitingKeys,
}

/// A connection core and the input buffer its driver lends it, as a
/// driver keeps them; derefs to the core.
pub struct Driven {
    pub conn: ssh_packetizer::Connection,
    pub input: InputBuffer,
}

impl std::ops::Deref for Driven {
    type Target = ssh_packetizer::Connection;
    fn deref(&self) -> &ssh_packetizer::Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Driven {
    fn deref_mut(&mut self) -> &mut ssh_packetizer::Connection {
        &mut self.conn
    }
}

impl Driven {
    pub fn new(config: ssh_packetizer::Config, now: std::time::Instant) -> Driven {
        Driven {
            conn: ssh_packetizer::Connection::new(config, now),
            input: InputBuffer::new(),
        }
    }

    pub fn feed(&mut self, data: &[u8], now: std::time::Instant) -> usize {
        self.conn.feed(&mut self.input, data, now)
    }

    pub fn poll_packet(&mut self) -> Result<Found, ssh_packetizer::Error> {
        Ok(match self.conn.poll_packet(&mut self.input)? {
            Opened::Packet(_) => Found::Packet,
            Opened::NeedMore(n) => Found::NeedMore(n),
            _ => Found::AwaitingKeys,
        })
    }

    pub fn packet(&self) -> Option<ssh_packetizer::Packet<'_>> {
        self.input.packet()
    }

    pub fn recv_eof(&mut self, raw_needed: Option<usize>) -> ssh_packetizer::Error {
        self.conn.recv_eof(&self.input, raw_needed)
    }

    pub fn poll_identification(
        &mut self,
    ) -> Result<Option<ssh_packetizer::Identification>, ssh_packetizer::Error> {
        self.conn.poll_identification(&mut self.input)
    }

    pub fn raw_buffered(&self) -> &[u8] {
        self.conn.raw_buffered(&self.input)
    }
}
