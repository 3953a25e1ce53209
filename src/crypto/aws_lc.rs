//! The aws-lc-rs provider (feature `aws-lc-rs`): AES-GCM, AES-CTR, the
//! SHA-1 and SHA-2 HMACs and OpenSSH's chacha20-poly1305 construction from
//! AWS-LC; UMAC, MD5 and CBC come from RustCrypto. With the `fips` feature
//! it is aws-lc-rs's FIPS build and runs in FIPS mode (the provider refuses
//! chacha20-poly1305, UMAC and the rest).
//!
//! Every AWS-LC key is expanded once, when the keys are installed: the AES
//! key schedule and GHASH key, the HMAC state with both pads absorbed
//! (cloned per packet, which copies it and allocates nothing).

use aws_lc_rs::aead::chacha20_poly1305_openssh::{OpeningKey, SealingKey};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::cipher::{
    EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::{digest, hmac};

use super::provider::{Backend, CryptoProvider};
use super::{ChaChaPolyKey, GcmKey, MacKey, Transform};
use crate::algorithm::KdfHash;
use crate::algorithm::{CipherAlgorithm, MacHash, MacSpec};
use crate::error::Error;
use crate::keys::Keys;

/// AWS-LC's primitives, through aws-lc-rs.
struct AwsLc;

pub(crate) static PROVIDER: CryptoProvider =
    CryptoProvider::new("aws-lc-rs", cfg!(feature = "fips"), &AwsLc);

fn bad_key(keys: &Keys) -> Error {
    Error::BadKeyLength {
        what: "key",
        expected: keys.cipher().spec().key_len(),
        got: keys.key().len(),
    }
}

impl Backend for AwsLc {
    fn has_cipher(&self, cipher: CipherAlgorithm) -> bool {
        use CipherAlgorithm::*;
        matches!(
            cipher,
            Aes128Ctr | Aes192Ctr | Aes256Ctr | Aes128Gcm | Aes256Gcm | ChaCha20Poly1305
        )
    }

    fn has_mac(&self, hash: MacHash) -> bool {
        matches!(hash, MacHash::Sha1 | MacHash::Sha256 | MacHash::Sha512)
    }

    fn ctr(&self, keys: &Keys) -> Result<Box<dyn Transform>, Error> {
        let algorithm = match keys.cipher() {
            CipherAlgorithm::Aes128Ctr => &AES_128,
            CipherAlgorithm::Aes192Ctr => &AES_192,
            CipherAlgorithm::Aes256Ctr => &AES_256,
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        };
        let key = UnboundCipherKey::new(algorithm, keys.key()).map_err(|_| bad_key(keys))?;
        let counter = keys.iv().try_into().map_err(|_| Error::BadKeyLength {
            what: "iv",
            expected: 16,
            got: keys.iv().len(),
        })?;
        Ok(Box::new(Ctr {
            key: EncryptingKey::ctr(key).map_err(|_| bad_key(keys))?,
            counter: u128::from_be_bytes(counter),
        }))
    }

    fn gcm(&self, keys: &Keys) -> Result<Box<dyn GcmKey>, Error> {
        let algorithm = match keys.cipher() {
            CipherAlgorithm::Aes128Gcm => &AES_128_GCM,
            CipherAlgorithm::Aes256Gcm => &AES_256_GCM,
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        };
        let key = UnboundKey::new(algorithm, keys.key()).map_err(|_| bad_key(keys))?;
        Ok(Box::new(Gcm(LessSafeKey::new(key))))
    }

    fn chacha_poly(&self, keys: &Keys) -> Result<Box<dyn ChaChaPolyKey>, Error> {
        let material: &[u8; 64] = keys.key().try_into().map_err(|_| bad_key(keys))?;
        // One direction's engine seals or opens, never both; the keys are
        // two ChaCha20 keys, which cost nothing to keep twice.
        Ok(Box::new(ChaChaPoly {
            sealing: SealingKey::new(material),
            opening: OpeningKey::new(material),
        }))
    }

    fn mac(&self, spec: &MacSpec, hash: MacHash, key: &[u8]) -> Result<Box<dyn MacKey>, Error> {
        let algorithm = match hash {
            MacHash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            MacHash::Sha256 => hmac::HMAC_SHA256,
            MacHash::Sha512 => hmac::HMAC_SHA512,
            _ => {
                return Err(Error::Unsupported {
                    algorithm: spec.name(),
                })
            }
        };
        Ok(Box::new(Hmac(hmac::Key::new(algorithm, key))))
    }

    fn digest(&self, hash: KdfHash, parts: &[&[u8]], out: &mut Vec<u8>) {
        let algorithm = match hash {
            KdfHash::Sha256 => &digest::SHA256,
            KdfHash::Sha512 => &digest::SHA512,
        };
        let mut context = digest::Context::new(algorithm);
        for part in parts {
            context.update(part);
        }
        // The digest value is a plain copy type aws-lc-rs does not wipe: a
        // stack copy of each KDF block outlives this call until the stack
        // is reused (SECURITY.md says so).
        out.extend_from_slice(context.finish().as_ref());
    }
}

/// AES-CTR: AWS-LC's counter mode from an explicit counter block, which
/// runs on across the packets of a direction. Every call is whole blocks
/// (the codec aligns what it encrypts), so the next call's counter is this
/// one's plus its blocks.
struct Ctr {
    key: EncryptingKey,
    counter: u128,
}

impl Ctr {
    fn apply(&mut self, data: &mut [u8]) {
        debug_assert!(data.len().is_multiple_of(16), "CTR data is block-aligned");
        let context = EncryptionContext::Iv128(self.counter.to_be_bytes().into());
        // CTR takes any length and the context is the right size: it
        // cannot fail.
        let _ = self.key.less_safe_encrypt(data, context);
        self.counter = self.counter.wrapping_add((data.len() / 16) as u128);
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.counter);
    }
}

impl Transform for Ctr {
    fn encrypt(&mut self, data: &mut [u8]) {
        self.apply(data);
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        self.apply(data);
    }
}

/// AES-GCM under one key.
struct Gcm(LessSafeKey);

impl GcmKey for Gcm {
    fn seal(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &mut [u8]) -> bool {
        let nonce = Nonce::assume_unique_for_key(*nonce);
        match self
            .0
            .seal_in_place_separate_tag(nonce, Aad::from(aad), body)
        {
            Ok(t) => {
                tag.copy_from_slice(t.as_ref());
                true
            }
            Err(_) => false,
        }
    }

    fn open(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &[u8]) -> bool {
        let nonce = Nonce::assume_unique_for_key(*nonce);
        self.0
            .open_in_place_separate_tag(nonce, Aad::from(aad), tag, body)
            .is_ok()
    }
}

/// OpenSSH's construction, as aws-lc-rs has it.
struct ChaChaPoly {
    sealing: SealingKey,
    opening: OpeningKey,
}

impl ChaChaPolyKey for ChaChaPoly {
    fn read_length(&mut self, seq: u32, head: &[u8]) -> Option<u32> {
        let encrypted: [u8; 4] = head.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(
            self.opening.decrypt_packet_length(seq, encrypted),
        ))
    }

    fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) {
        let mut out = [0u8; 16];
        self.sealing.seal_in_place(seq, packet, &mut out);
        tag.copy_from_slice(&out);
    }

    fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = <&[u8; 16]>::try_from(tag) else {
            return false;
        };
        // The tag is checked (in constant time) before anything is
        // decrypted.
        self.opening.open_in_place(seq, packet, tag).is_ok()
    }
}

/// An HMAC key, both pads absorbed.
struct Hmac(hmac::Key);

impl MacKey for Hmac {
    fn sign(&mut self, seq: u32, data: &[u8], out: &mut [u8]) -> bool {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(&seq.to_be_bytes());
        context.update(data);
        let n = out.len();
        out.copy_from_slice(&context.sign().as_ref()[..n]);
        true
    }
}
