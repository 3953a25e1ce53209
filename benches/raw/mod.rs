//! The baseline: the same cipher and MAC applied straight from the RustCrypto
//! primitives to a packet-sized buffer, with no framing, padding, buffering or
//! sequence bookkeeping. This is the work no packet layer can avoid.

use aes::{Aes128, Aes192, Aes256};
use ctr::cipher::{KeyIvInit, StreamCipher};
use ctr::Ctr128BE;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use ssh_packetizer::{CipherAlgorithm as C, MacAlgorithm as M};
use subtle::ConstantTimeEq;

trait RawOps {
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

impl<S: StreamCipher, H: Mac + Clone> CtrHmac<S, H> {
    fn sign(&self, data: &[u8], out: &mut [u8]) {
        let mut mac = self.mac.clone();
        mac.update(&self.seq.to_be_bytes());
        mac.update(data);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
}

impl<S: StreamCipher, H: Mac + Clone> RawOps for CtrHmac<S, H> {
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
    S: StreamCipher + KeyIvInit + 'static,
    H: Mac + KeyInit + Clone + 'static,
{
    Box::new(CtrHmac {
        cipher: S::new_from_slices(key, &[0x22; 16]).unwrap(),
        mac: <H as KeyInit>::new_from_slice(mac_key).unwrap(),
        etm,
        seq: 0,
    })
}

fn with_mac<S: StreamCipher + KeyIvInit + 'static>(m: M, key: &[u8]) -> Box<dyn RawOps> {
    let mac_key = vec![0x33; m.spec().key_len];
    let etm = m.spec().etm;
    match m {
        M::HmacSha1 | M::HmacSha1Etm => ctr_hmac::<S, Hmac<Sha1>>(key, &mac_key, etm),
        M::HmacSha256 | M::HmacSha256Etm => ctr_hmac::<S, Hmac<Sha256>>(key, &mac_key, etm),
        M::HmacSha512 | M::HmacSha512Etm => ctr_hmac::<S, Hmac<Sha512>>(key, &mac_key, etm),
        other => panic!("no raw baseline for {other}"),
    }
}

/// The raw primitives of one suite.
pub struct RawSuite(Box<dyn RawOps>);

impl RawSuite {
    pub fn new(c: C, m: M) -> RawSuite {
        let key = vec![0x11; c.spec().key_len];
        RawSuite(match c {
            C::Aes128Ctr => with_mac::<Ctr128BE<Aes128>>(m, &key),
            C::Aes192Ctr => with_mac::<Ctr128BE<Aes192>>(m, &key),
            C::Aes256Ctr => with_mac::<Ctr128BE<Aes256>>(m, &key),
            other => panic!("no raw baseline for {other}"),
        })
    }

    /// Encrypts and authenticates `packet` (length field first) into `tag`.
    pub fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
        self.0.seal(packet, tag)
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
