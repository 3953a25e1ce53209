//! Raw baselines on the other providers' libraries (features `aws-lc-rs`
//! and `openssl`): the same cipher and MAC applied straight from aws-lc-rs
//! or the `openssl` crate, so each provider's codec is measured against its
//! own primitives. Where a provider runs an algorithm on RustCrypto (UMAC,
//! and chacha20-poly1305 for OpenSSL), its baseline is RustCrypto's.

use super::RawOps;
use ssh_packetizer::{CipherAlgorithm as C, MacAlgorithm as M};

#[cfg(feature = "aws-lc-rs")]
pub mod aws {
    use super::*;
    use aws_lc_rs::aead::chacha20_poly1305_openssh::{OpeningKey, SealingKey};
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
    use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey};
    use aws_lc_rs::hmac;
    use subtle::ConstantTimeEq;

    struct Gcm {
        key: LessSafeKey,
        counter: u64,
    }

    impl Gcm {
        fn nonce(&self) -> Nonce {
            let mut n = [0x22; 12];
            n[4..].copy_from_slice(&self.counter.to_be_bytes());
            Nonce::assume_unique_for_key(n)
        }
    }

    impl RawOps for Gcm {
        fn rewind(&mut self) {
            self.counter = 0;
        }
        fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
            let (aad, body) = packet.split_at_mut(4);
            let t = self
                .key
                .seal_in_place_separate_tag(self.nonce(), Aad::from(&*aad), body)
                .unwrap();
            tag.copy_from_slice(t.as_ref());
            self.counter += 1;
        }
        fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
            let (aad, body) = packet.split_at_mut(4);
            let ok = self
                .key
                .open_in_place_separate_tag(self.nonce(), Aad::from(&*aad), tag, body)
                .is_ok();
            self.counter += 1;
            ok
        }
        fn tag_len(&self) -> usize {
            16
        }
    }

    struct ChaCha {
        sealing: SealingKey,
        opening: OpeningKey,
        seq: u32,
    }

    impl RawOps for ChaCha {
        fn rewind(&mut self) {
            self.seq = 0;
        }
        fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
            let mut t = [0u8; 16];
            self.sealing.seal_in_place(self.seq, packet, &mut t);
            tag.copy_from_slice(&t);
            self.seq += 1;
        }
        fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
            let length: [u8; 4] = packet[..4].try_into().unwrap();
            std::hint::black_box(self.opening.decrypt_packet_length(self.seq, length));
            let ok = self
                .opening
                .open_in_place(self.seq, packet, tag.try_into().unwrap())
                .is_ok();
            self.seq += 1;
            ok
        }
        fn tag_len(&self) -> usize {
            16
        }
    }

    struct CtrHmac {
        key: EncryptingKey,
        counter: u128,
        mac: hmac::Key,
        len: usize,
        etm: bool,
        seq: u32,
    }

    impl CtrHmac {
        fn apply(&mut self, data: &mut [u8]) {
            let context = EncryptionContext::Iv128(self.counter.to_be_bytes().into());
            self.key.less_safe_encrypt(data, context).unwrap();
            self.counter += (data.len() / 16) as u128;
        }
        fn sign(&self, data: &[u8], out: &mut [u8]) {
            let mut ctx = hmac::Context::with_key(&self.mac);
            ctx.update(&self.seq.to_be_bytes());
            ctx.update(data);
            out.copy_from_slice(&ctx.sign().as_ref()[..out.len()]);
        }
    }

    impl RawOps for CtrHmac {
        fn rewind(&mut self) {
            self.counter = u128::from_be_bytes([0x22; 16]);
            self.seq = 0;
        }
        fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
            if self.etm {
                self.apply(&mut packet[4..]);
                self.sign(packet, tag);
            } else {
                self.sign(packet, tag);
                self.apply(packet);
            }
            self.seq = self.seq.wrapping_add(1);
        }
        fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
            let mut expected = [0u8; 64];
            let expected = &mut expected[..self.len];
            if self.etm {
                self.sign(packet, expected);
                self.apply(&mut packet[4..]);
            } else {
                self.apply(packet);
                self.sign(packet, expected);
            }
            self.seq = self.seq.wrapping_add(1);
            expected.ct_eq(tag).into()
        }
        fn tag_len(&self) -> usize {
            self.len
        }
    }

    /// aws-lc-rs's primitives for `c` and `m`, or `None` where the
    /// provider runs RustCrypto's.
    pub fn raw(c: C, m: M, key: &[u8]) -> Option<Box<dyn RawOps>> {
        Some(match c {
            C::Aes128Gcm | C::Aes256Gcm => {
                let alg = if c == C::Aes128Gcm {
                    &AES_128_GCM
                } else {
                    &AES_256_GCM
                };
                Box::new(Gcm {
                    key: LessSafeKey::new(UnboundKey::new(alg, key).unwrap()),
                    counter: 0,
                })
            }
            C::ChaCha20Poly1305 => {
                let material: &[u8; 64] = key.try_into().unwrap();
                Box::new(ChaCha {
                    sealing: SealingKey::new(material),
                    opening: OpeningKey::new(material),
                    seq: 0,
                })
            }
            C::Aes128Ctr | C::Aes192Ctr | C::Aes256Ctr => {
                let alg = match c {
                    C::Aes128Ctr => &aws_lc_rs::cipher::AES_128,
                    C::Aes192Ctr => &aws_lc_rs::cipher::AES_192,
                    _ => &aws_lc_rs::cipher::AES_256,
                };
                let hash = match m {
                    M::HmacSha1 | M::HmacSha1Etm => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    M::HmacSha256 | M::HmacSha256Etm => hmac::HMAC_SHA256,
                    M::HmacSha512 | M::HmacSha512Etm => hmac::HMAC_SHA512,
                    _ => return None,
                };
                let mac_key = vec![0x33; m.spec().key_len()];
                Box::new(CtrHmac {
                    key: EncryptingKey::ctr(UnboundCipherKey::new(alg, key).unwrap()).unwrap(),
                    counter: u128::from_be_bytes([0x22; 16]),
                    mac: hmac::Key::new(hash, &mac_key),
                    len: m.spec().mac_len(),
                    etm: m.spec().etm(),
                    seq: 0,
                })
            }
            _ => return None,
        })
    }
}

#[cfg(feature = "openssl")]
pub mod ossl {
    use super::*;
    use openssl::cipher::Cipher;
    use openssl::cipher_ctx::CipherCtx;
    use openssl::sha::{Sha1, Sha256, Sha512};
    use subtle::ConstantTimeEq;

    struct Gcm {
        seal: CipherCtx,
        open: CipherCtx,
        counter: u64,
    }

    impl Gcm {
        fn nonce(&self) -> [u8; 12] {
            let mut n = [0x22; 12];
            n[4..].copy_from_slice(&self.counter.to_be_bytes());
            n
        }
    }

    impl RawOps for Gcm {
        fn rewind(&mut self) {
            self.counter = 0;
        }
        fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
            let nonce = self.nonce();
            let (aad, body) = packet.split_at_mut(4);
            let len = body.len();
            let c = &mut self.seal;
            c.encrypt_init(None, None, Some(&nonce)).unwrap();
            c.cipher_update(aad, None).unwrap();
            c.cipher_update_inplace(body, len).unwrap();
            c.cipher_final(&mut []).unwrap();
            c.tag(tag).unwrap();
            self.counter += 1;
        }
        fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
            let nonce = self.nonce();
            let (aad, body) = packet.split_at_mut(4);
            let len = body.len();
            let c = &mut self.open;
            c.decrypt_init(None, None, Some(&nonce)).unwrap();
            c.set_tag(tag).unwrap();
            c.cipher_update(aad, None).unwrap();
            c.cipher_update_inplace(body, len).unwrap();
            self.counter += 1;
            c.cipher_final(&mut []).is_ok()
        }
        fn tag_len(&self) -> usize {
            16
        }
    }

    /// The states after the HMAC pads, copied per packet (one per bench
    /// run, so its size does not matter).
    #[derive(Clone)]
    #[allow(clippy::large_enum_variant)]
    enum Pads {
        Sha1(Sha1, Sha1),
        Sha256(Sha256, Sha256),
        Sha512(Sha512, Sha512),
    }

    macro_rules! hmac_with {
        ($inner:expr, $outer:expr, $seq:expr, $data:expr, $out:expr) => {{
            let mut i = $inner.clone();
            i.update(&$seq.to_be_bytes());
            i.update($data);
            let ih = i.finish();
            let mut o = $outer.clone();
            o.update(&ih);
            let full = o.finish();
            $out.copy_from_slice(&full[..$out.len()]);
        }};
    }

    /// HMAC over libcrypto's SHA contexts, states after the pads computed
    /// once, as the provider does.
    struct CtrHmac {
        ctr: CipherCtx,
        cipher: &'static openssl::cipher::CipherRef,
        key: Vec<u8>,
        pads: Pads,
        len: usize,
        etm: bool,
        seq: u32,
    }

    impl CtrHmac {
        fn apply(&mut self, data: &mut [u8]) {
            let len = data.len();
            self.ctr.cipher_update_inplace(data, len).unwrap();
        }
        fn sign(&mut self, data: &[u8], out: &mut [u8]) {
            match &self.pads {
                Pads::Sha1(i, o) => hmac_with!(i, o, self.seq, data, out),
                Pads::Sha256(i, o) => hmac_with!(i, o, self.seq, data, out),
                Pads::Sha512(i, o) => hmac_with!(i, o, self.seq, data, out),
            }
        }
    }

    impl RawOps for CtrHmac {
        fn rewind(&mut self) {
            self.ctr
                .encrypt_init(Some(self.cipher), Some(&self.key), Some(&[0x22; 16]))
                .unwrap();
            self.seq = 0;
        }
        fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) {
            if self.etm {
                self.apply(&mut packet[4..]);
                self.sign(packet, tag);
            } else {
                self.sign(packet, tag);
                self.apply(packet);
            }
            self.seq = self.seq.wrapping_add(1);
        }
        fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
            let mut expected = [0u8; 64];
            let len = self.len;
            if self.etm {
                self.sign(packet, &mut expected[..len]);
                self.apply(&mut packet[4..]);
            } else {
                self.apply(packet);
                self.sign(packet, &mut expected[..len]);
            }
            self.seq = self.seq.wrapping_add(1);
            expected[..len].ct_eq(tag).into()
        }
        fn tag_len(&self) -> usize {
            self.len
        }
    }

    /// libcrypto's primitives for `c` and `m`, or `None` where the provider
    /// runs RustCrypto's.
    pub fn raw(c: C, m: M, key: &[u8]) -> Option<Box<dyn RawOps>> {
        Some(match c {
            C::Aes128Gcm | C::Aes256Gcm => {
                let cipher = if c == C::Aes128Gcm {
                    Cipher::aes_128_gcm()
                } else {
                    Cipher::aes_256_gcm()
                };
                let mut seal = CipherCtx::new().unwrap();
                seal.encrypt_init(Some(cipher), Some(key), None).unwrap();
                let mut open = CipherCtx::new().unwrap();
                open.decrypt_init(Some(cipher), Some(key), None).unwrap();
                Box::new(Gcm {
                    seal,
                    open,
                    counter: 0,
                })
            }
            C::Aes128Ctr | C::Aes192Ctr | C::Aes256Ctr => {
                let cipher = match c {
                    C::Aes128Ctr => Cipher::aes_128_ctr(),
                    C::Aes192Ctr => Cipher::aes_192_ctr(),
                    _ => Cipher::aes_256_ctr(),
                };
                let block = if matches!(m, M::HmacSha512 | M::HmacSha512Etm) {
                    128
                } else {
                    64
                };
                let mut padded = vec![0u8; block];
                padded[..m.spec().key_len()].fill(0x33);
                let ipad: Vec<u8> = padded.iter().map(|b| b ^ 0x36).collect();
                let opad: Vec<u8> = padded.iter().map(|b| b ^ 0x5c).collect();
                macro_rules! states {
                    ($ty:ident) => {{
                        let (mut i, mut o) = ($ty::new(), $ty::new());
                        i.update(&ipad);
                        o.update(&opad);
                        Pads::$ty(i, o)
                    }};
                }
                let pads = match m {
                    M::HmacSha1 | M::HmacSha1Etm => states!(Sha1),
                    M::HmacSha256 | M::HmacSha256Etm => states!(Sha256),
                    M::HmacSha512 | M::HmacSha512Etm => states!(Sha512),
                    _ => return None,
                };
                let mut raw = CtrHmac {
                    ctr: CipherCtx::new().unwrap(),
                    cipher,
                    key: key.to_vec(),
                    pads,
                    len: m.spec().mac_len(),
                    etm: m.spec().etm(),
                    seq: 0,
                };
                raw.rewind();
                Box::new(raw)
            }
            _ => return None,
        })
    }
}

/// `provider`'s raw primitives for `c` and `m`; `None` where it runs
/// RustCrypto's (the caller then takes RustCrypto's baseline).
pub fn raw(provider: &str, c: C, m: M, key: &[u8]) -> Option<Box<dyn RawOps>> {
    let _ = (c, m, key);
    match provider {
        #[cfg(feature = "aws-lc-rs")]
        "aws-lc-rs" => aws::raw(c, m, key),
        #[cfg(feature = "openssl")]
        "openssl" => ossl::raw(c, m, key),
        _ => None,
    }
}
