//! What both benches share: the suites to run, their keys, and the baseline,
//! which is the same cipher and MAC applied straight from the RustCrypto
//! primitives to a packet-sized buffer, with no framing, padding, buffering or
//! sequence bookkeeping: the work no packet layer can avoid.

use aes::{Aes128, Aes192, Aes256};
use chacha20::ChaCha20Legacy;
use ctr::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use ctr::Ctr128BE;
use hmac::{Hmac, KeyInit, Mac};
use poly1305::Poly1305;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use ssh_packetizer::KeyMaterial;
use std::hint::black_box;
use std::time::{Duration, Instant};

use ssh_packetizer::algorithm::Mode;
use ssh_packetizer::{
    CipherAlgorithm as C, InputBuffer, Keys, MacAlgorithm as M, Opened, Opener, Sealer,
};
use subtle::ConstantTimeEq;

pub mod providers;

pub trait RawOps {
    /// Back to the first packet's keystream, nonce and sequence number, so a
    /// batch sealed from there opens (and verifies) again.
    fn rewind(&mut self);
    fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]);
    fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool;
    fn tag_len(&self) -> usize;
}

struct CtrHmac<S, H> {
    cipher: S,
    mac: H,
    etm: bool,
    seq: u32,
}

impl<S: StreamCipher + StreamCipherSeek, H: Mac + Clone> CtrHmac<S, H> {
    fn sign(&self, data: &[u8], out: &mut [u8]) {
        let mut mac = self.mac.clone();
        mac.update(&self.seq.to_be_bytes());
        mac.update(data);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
}

impl<S: StreamCipher + StreamCipherSeek, H: Mac + Clone> RawOps for CtrHmac<S, H> {
    fn rewind(&mut self) {
        self.cipher.seek(0u64);
        self.seq = 0;
    }

    fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
        if self.etm {
            self.cipher.apply_keystream(&mut packet[4..]);
            self.sign(packet, tag);
        } else {
            self.sign(packet, tag);
            self.cipher.apply_keystream(packet);
        }
        self.seq = self.seq.wrapping_add(1);
    }

    fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
        let mut expected = [0u8; 64];
        let expected = &mut expected[..tag.len()];
        let ok = if self.etm {
            self.sign(packet, expected);
            self.cipher.apply_keystream(&mut packet[4..]);
            expected.ct_eq(tag).into()
        } else {
            self.cipher.apply_keystream(packet);
            self.sign(packet, expected);
            expected.ct_eq(tag).into()
        };
        self.seq = self.seq.wrapping_add(1);
        ok
    }

    fn tag_len(&self) -> usize {
        <H as hmac::digest::OutputSizeUser>::output_size()
    }
}

fn ctr_hmac<S, H>(key: &[u8], mac_key: &[u8], etm: bool) -> Box<dyn RawOps>
where
    S: StreamCipher + StreamCipherSeek + KeyIvInit + 'static,
    H: Mac + KeyInit + Clone + 'static,
{
    Box::new(CtrHmac {
        cipher: S::new_from_slices(key, &[0x22; 16]).unwrap(),
        mac: <H as KeyInit>::new_from_slice(mac_key).unwrap(),
        etm,
        seq: 0,
    })
}

fn with_mac<S: StreamCipher + StreamCipherSeek + KeyIvInit + 'static>(
    m: M,
    key: &[u8],
) -> Box<dyn RawOps> {
    let mac_key = vec![0x33; m.spec().key_len()];
    let etm = m.spec().etm();
    match m {
        M::HmacSha1 | M::HmacSha1Etm => ctr_hmac::<S, Hmac<Sha1>>(key, &mac_key, etm),
        M::HmacSha256 | M::HmacSha256Etm => ctr_hmac::<S, Hmac<Sha256>>(key, &mac_key, etm),
        M::HmacSha512 | M::HmacSha512Etm => ctr_hmac::<S, Hmac<Sha512>>(key, &mac_key, etm),
        other => panic!("no raw baseline for {other}"),
    }
}

/// AES-GCM through the `aes-gcm` crate's detached in-place calls: the length
/// as associated data, a fresh nonce per packet.
struct RawGcm<A> {
    aead: A,
    nonce: aes_gcm::Nonce<aes_gcm::aead::consts::U12>,
}

const GCM_NONCE: [u8; 12] = [0x22; 12];

impl<
        A: aes_gcm::aead::AeadInOut<
            NonceSize = aes_gcm::aead::consts::U12,
            TagSize = aes_gcm::aead::consts::U16,
        >,
    > RawOps for RawGcm<A>
{
    fn rewind(&mut self) {
        self.nonce = GCM_NONCE.into();
    }

    fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
        let (aad, body) = packet.split_at_mut(4);
        let t = self
            .aead
            .encrypt_inout_detached(&self.nonce, aad, body.into())
            .unwrap();
        tag.copy_from_slice(&t);
        self.nonce[11] = self.nonce[11].wrapping_add(1);
    }

    fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
        let (aad, body) = packet.split_at_mut(4);
        let tag = aes_gcm::Tag::try_from(tag).unwrap();
        let ok = self
            .aead
            .decrypt_inout_detached(&self.nonce, aad, body.into(), &tag)
            .is_ok();
        self.nonce[11] = self.nonce[11].wrapping_add(1);
        ok
    }

    fn tag_len(&self) -> usize {
        16
    }
}

/// OpenSSH's ChaCha20-Poly1305 straight from `chacha20` and `poly1305`:
/// header key on the length, main key block 0 for the Poly1305 key, the body
/// from block 1, the tag over everything.
struct RawChaChaPoly {
    main: chacha20::Key,
    header: chacha20::Key,
    seq: u64,
}

/// Poly1305 the fastest way the crate offers: whole blocks through `update`.
fn poly_tag(mut poly: Poly1305, data: &[u8]) -> poly1305::Tag {
    use poly1305::universal_hash::UniversalHash;
    let whole = data.len() - data.len() % 16;
    poly.update(poly1305::Block::slice_as_chunks(&data[..whole]).0);
    poly.compute_unpadded(&data[whole..])
}

impl RawChaChaPoly {
    fn streams(&self) -> (ChaCha20Legacy, Poly1305) {
        let nonce = chacha20::LegacyNonce::from(self.seq.to_be_bytes());
        let mut main = ChaCha20Legacy::new(&self.main, &nonce);
        let mut poly_key = poly1305::Key::default();
        main.apply_keystream(&mut poly_key);
        main.seek(64u64);
        (
            main,
            <Poly1305 as poly1305::universal_hash::KeyInit>::new(&poly_key),
        )
    }

    fn header(&self, length: &mut [u8]) {
        let nonce = chacha20::LegacyNonce::from(self.seq.to_be_bytes());
        ChaCha20Legacy::new(&self.header, &nonce).apply_keystream(length);
    }
}

impl RawOps for RawChaChaPoly {
    fn rewind(&mut self) {
        self.seq = 0;
    }

    fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
        let (mut main, poly) = self.streams();
        self.header(&mut packet[..4]);
        main.apply_keystream(&mut packet[4..]);
        tag.copy_from_slice(&poly_tag(poly, packet));
        self.seq += 1;
    }

    fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
        let (mut main, poly) = self.streams();
        let mut length = [0u8; 4];
        length.copy_from_slice(&packet[..4]);
        self.header(&mut length);
        let ok = poly_tag(poly, packet).as_slice().ct_eq(tag).into();
        main.apply_keystream(&mut packet[4..]);
        self.seq += 1;
        black_box(length);
        ok
    }

    fn tag_len(&self) -> usize {
        16
    }
}

/// The raw primitives of one suite.
pub struct RawSuite(Box<dyn RawOps>);

impl RawSuite {
    /// `provider`'s own primitives for the suite, RustCrypto's where the
    /// provider runs RustCrypto's.
    pub fn for_provider(provider: &str, c: C, m: M) -> RawSuite {
        let key = vec![0x11; c.spec().key_len()];
        match providers::raw(provider, c, m, &key) {
            Some(raw) => RawSuite(raw),
            None => RawSuite::new(c, m),
        }
    }

    pub fn new(c: C, m: M) -> RawSuite {
        let key = vec![0x11; c.spec().key_len()];
        RawSuite(match c {
            C::Aes128Ctr => with_mac::<Ctr128BE<Aes128>>(m, &key),
            C::Aes192Ctr => with_mac::<Ctr128BE<Aes192>>(m, &key),
            C::Aes256Ctr => with_mac::<Ctr128BE<Aes256>>(m, &key),
            C::Aes128Gcm => Box::new(RawGcm {
                aead: aes_gcm::Aes128Gcm::new_from_slice(&key).unwrap(),
                nonce: GCM_NONCE.into(),
            }),
            C::Aes256Gcm => Box::new(RawGcm {
                aead: aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap(),
                nonce: GCM_NONCE.into(),
            }),
            C::ChaCha20Poly1305 => Box::new(RawChaChaPoly {
                main: chacha20::Key::try_from(&key[..32]).unwrap(),
                header: chacha20::Key::try_from(&key[32..]).unwrap(),
                seq: 0,
            }),
            other => panic!("no raw baseline for {other}"),
        })
    }

    /// Encrypts and authenticates `packet` (length field first) into `tag`.
    pub fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
        self.0.seal(packet, tag)
    }

    /// Back to the state the first packet was sealed in.
    pub fn rewind(&mut self) {
        self.0.rewind()
    }

    /// Authenticates and decrypts `packet`.
    pub fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
        self.0.open(packet, tag)
    }

    /// The MAC or tag length.
    pub fn tag_len(&self) -> usize {
        self.0.tag_len()
    }
}

/// Every suite with a cipher on that this build runs, and its display name.
pub fn suites() -> Vec<(C, M, String)> {
    let mut out = Vec::new();
    for &c in C::ALL {
        for &m in M::ALL {
            // Legacy rows only in a build with the `legacy` feature.
            let runnable = c.is_available()
                && m.is_available()
                && Mode::of(c, m).is_ok_and(|mode| mode != Mode::Clear)
                && Sealer::new().set_keys(keys(c, m)).is_ok();
            if runnable {
                let name = if m == M::None {
                    c.to_string()
                } else {
                    format!("{c}+{m}")
                };
                out.push((c, m, name));
            }
        }
    }
    out
}

/// Fixed keys for `c` and `m`, the same bytes the baseline uses.
pub fn keys(c: C, m: M) -> Keys {
    let spec = c.spec();
    Keys::new(
        c,
        m,
        KeyMaterial {
            key: &vec![0x11; spec.key_len()],
            iv: &vec![0x22; spec.iv_len()],
            mac_key: &vec![0x33; m.spec().key_len()],
        },
    )
    .expect("lengths from the table")
}

/// Packets per timed batch when opening; they are sealed untimed beforehand.
pub const BATCH: usize = 64;

/// The two ways to hand wire bytes to an Opener's input.
#[derive(Clone, Copy, Debug)]
pub enum OpenForm {
    /// `feed` + `next_packet`: the bytes are copied in from the caller's,
    /// and the copy is timed.
    Feed,
    /// `unfilled` + `filled` + `next_packet`: the bytes land in the room
    /// the Opener offers, as a socket read puts them, and only the opening
    /// is timed (the read is the kernel's copy, not the codec's).
    Room,
}

/// Clears `wire` and seals `count` packets carrying `payload` into it.
pub fn seal_batch(sealer: &mut Sealer, payload: &[u8], count: usize, wire: &mut Vec<u8>) {
    wire.clear();
    for _ in 0..count {
        sealer
            .seal(payload, wire)
            .expect("sealing a benchmark payload");
    }
}

/// Opens every packet in `wire` (whole packets only) through `input`;
/// returns the seconds the form counts (see [`OpenForm`]).
pub fn open_batch(
    opener: &mut Opener,
    input: &mut InputBuffer,
    wire: &[u8],
    form: OpenForm,
) -> f64 {
    let mut spent = Duration::ZERO;
    let mut rest = wire;
    let mut opened = 0;
    while !rest.is_empty() {
        let start = Instant::now();
        let n = match form {
            OpenForm::Feed => opener.feed(input, rest),
            OpenForm::Room => {
                let room = opener.unfilled(input);
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                opener.filled(input, n);
                n
            }
        };
        // A socket read's copy into the room is not the codec's.
        let start = match form {
            OpenForm::Feed => start,
            OpenForm::Room => Instant::now(),
        };
        rest = &rest[n..];
        while let Opened::Packet(p) = opener.next_packet(input).expect("a sealed packet") {
            black_box(p.payload());
            opened += 1;
        }
        spent += start.elapsed();
    }
    black_box(opened);
    spent.as_secs_f64()
}

/// [`BATCH`] distinct packets sealed with the raw primitives, so the raw
/// baseline reads as much memory per batch as the codec does.
pub struct RawBatch {
    raw: RawSuite,
    wire: Vec<u8>,
    wire_len: usize,
}

impl RawBatch {
    /// A batch of packets of `wire_len` bytes (tag included) for `c` and `m`.
    pub fn new(c: C, m: M, wire_len: usize) -> RawBatch {
        RawBatch::for_provider("rustcrypto", c, m, wire_len)
    }

    /// As [`RawBatch::new`], on `provider`'s primitives.
    pub fn for_provider(provider: &str, c: C, m: M, wire_len: usize) -> RawBatch {
        let mut batch = RawBatch {
            raw: RawSuite::for_provider(provider, c, m),
            wire: vec![0x5e; wire_len * BATCH],
            wire_len,
        };
        batch.reseal();
        batch
    }

    /// Seals the batch afresh from the first packet's state and rewinds.
    fn reseal(&mut self) {
        self.raw.rewind();
        let tag_len = self.raw.tag_len();
        for chunk in self.wire.chunks_mut(self.wire_len) {
            let (packet, tag) = chunk.split_at_mut(self.wire_len - tag_len);
            self.raw.seal(packet, tag);
        }
        self.raw.rewind();
    }

    /// Authenticates and decrypts every packet of the batch, returning the
    /// seconds that took; the batch is sealed again afterwards, untimed.
    /// Panics if a packet fails to verify: a baseline that rejects skips the
    /// decryption (GCM does) and would flatter itself.
    pub fn open_timed(&mut self) -> f64 {
        let tag_len = self.raw.tag_len();
        let start = std::time::Instant::now();
        let mut verified = 0;
        for chunk in self.wire.chunks_mut(self.wire_len) {
            let (packet, tag) = chunk.split_at_mut(self.wire_len - tag_len);
            verified += usize::from(self.raw.open(black_box(packet), tag));
        }
        let spent = start.elapsed().as_secs_f64();
        assert_eq!(verified, BATCH, "the raw baseline must verify every packet");
        self.reseal();
        spent
    }
}
