//! The OpenSSL provider (feature `openssl`, the system's libcrypto through
//! the `openssl` crate): AES-GCM, AES-CTR and the SHA-1 and SHA-2 HMACs,
//! the primitives OpenSSH itself runs on; chacha20-poly1305, UMAC, MD5 and
//! CBC come from RustCrypto, and so does the key derivation's hash (whose
//! output RustCrypto wipes).
//!
//! Each direction keeps its OpenSSL contexts for the life of its keys: the
//! AES key schedule is expanded once, and GCM only resets its IV per
//! packet. OpenSSL cleanses its contexts when they are freed.

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::hash::{Hasher, MessageDigest};
use zeroize::Zeroizing;

use super::provider::{Backend, CryptoProvider};
use super::{GcmKey, MacKey, Transform};
use crate::algorithm::{CipherAlgorithm, MacHash, MacSpec};
use crate::error::Error;
use crate::keys::{KdfHash, Keys};

/// libcrypto's primitives, through the `openssl` crate.
struct OpenSsl;

pub(crate) static PROVIDER: CryptoProvider = CryptoProvider::new("openssl", false, &OpenSsl);

fn bad_key(keys: &Keys) -> Error {
    Error::BadKeyLength {
        what: "key",
        expected: keys.cipher().spec().key_len(),
        got: keys.key().len(),
    }
}

/// A failure of libcrypto itself while keying (out of memory, a broken
/// installation): reported as the algorithm being unusable.
fn unusable(keys: &Keys) -> Error {
    Error::Unsupported {
        algorithm: keys.cipher().name(),
    }
}

impl Backend for OpenSsl {
    fn has_cipher(&self, cipher: CipherAlgorithm) -> bool {
        use CipherAlgorithm::*;
        matches!(
            cipher,
            Aes128Ctr | Aes192Ctr | Aes256Ctr | Aes128Gcm | Aes256Gcm
        )
    }

    fn has_mac(&self, hash: MacHash) -> bool {
        matches!(hash, MacHash::Sha1 | MacHash::Sha256 | MacHash::Sha512)
    }

    fn ctr(&self, keys: &Keys) -> Result<Box<dyn Transform>, Error> {
        let cipher: &CipherRef = match keys.cipher() {
            CipherAlgorithm::Aes128Ctr => Cipher::aes_128_ctr(),
            CipherAlgorithm::Aes192Ctr => Cipher::aes_192_ctr(),
            CipherAlgorithm::Aes256Ctr => Cipher::aes_256_ctr(),
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        };
        if keys.key().len() != cipher.key_length() || keys.iv().len() != 16 {
            return Err(bad_key(keys));
        }
        let mut ctx = CipherCtx::new().map_err(|_| unusable(keys))?;
        // CTR is its own inverse: one encrypting context serves either
        // direction, its counter running on across the packets.
        ctx.encrypt_init(Some(cipher), Some(keys.key()), Some(keys.iv()))
            .map_err(|_| unusable(keys))?;
        Ok(Box::new(Ctr(ctx)))
    }

    fn gcm(&self, keys: &Keys) -> Result<Box<dyn GcmKey>, Error> {
        let cipher: &CipherRef = match keys.cipher() {
            CipherAlgorithm::Aes128Gcm => Cipher::aes_128_gcm(),
            CipherAlgorithm::Aes256Gcm => Cipher::aes_256_gcm(),
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        };
        if keys.key().len() != cipher.key_length() {
            return Err(bad_key(keys));
        }
        // Both contexts are keyed now; per packet only the IV is set.
        let mut seal = CipherCtx::new().map_err(|_| unusable(keys))?;
        seal.encrypt_init(Some(cipher), Some(keys.key()), None)
            .map_err(|_| unusable(keys))?;
        let mut open = CipherCtx::new().map_err(|_| unusable(keys))?;
        open.decrypt_init(Some(cipher), Some(keys.key()), None)
            .map_err(|_| unusable(keys))?;
        Ok(Box::new(Gcm { seal, open }))
    }

    fn mac(&self, spec: &MacSpec, hash: MacHash, key: &[u8]) -> Result<Box<dyn MacKey>, Error> {
        let (digest, block) = match hash {
            MacHash::Sha1 => (MessageDigest::sha1(), 64),
            MacHash::Sha256 => (MessageDigest::sha256(), 64),
            MacHash::Sha512 => (MessageDigest::sha512(), 128),
            _ => {
                return Err(Error::Unsupported {
                    algorithm: spec.name(),
                })
            }
        };
        match Hmac::keyed(digest, block, key) {
            Some(hmac) => Ok(Box::new(hmac)),
            None => Err(Error::Unsupported {
                algorithm: spec.name(),
            }),
        }
    }

    fn digest(&self, hash: KdfHash, parts: &[&[u8]], out: &mut Vec<u8>) {
        super::rustcrypto::PROVIDER
            .backend()
            .digest(hash, parts, out);
    }
}

/// AES-CTR: one streaming context.
struct Ctr(CipherCtx);

impl Ctr {
    fn apply(&mut self, data: &mut [u8]) {
        let len = data.len();
        // A keyed CTR context takes any length in place: this cannot fail
        // short of libcrypto breaking, and then the MAC check fails.
        let _ = self.0.cipher_update_inplace(data, len);
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

/// AES-GCM: a keyed context for each way (a direction uses one).
struct Gcm {
    seal: CipherCtx,
    open: CipherCtx,
}

impl GcmKey for Gcm {
    fn seal(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &mut [u8]) -> bool {
        let ctx = &mut self.seal;
        let len = body.len();
        ctx.encrypt_init(None, None, Some(nonce)).is_ok()
            && ctx.cipher_update(aad, None).is_ok()
            && ctx.cipher_update_inplace(body, len).is_ok()
            && ctx.cipher_final(&mut []).is_ok()
            && ctx.tag(tag).is_ok()
    }

    /// EVP checks the tag only at the end, after decrypting: on a bad tag
    /// the body (now unauthenticated plaintext) is wiped before the
    /// failure is reported.
    fn open(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &[u8]) -> bool {
        let ctx = &mut self.open;
        let len = body.len();
        let opened = ctx.decrypt_init(None, None, Some(nonce)).is_ok()
            && ctx.set_tag(tag).is_ok()
            && ctx.cipher_update(aad, None).is_ok()
            && ctx.cipher_update_inplace(body, len).is_ok()
            && ctx.cipher_final(&mut []).is_ok();
        if !opened {
            zeroize::Zeroize::zeroize(body);
        }
        opened
    }
}

/// HMAC (RFC 2104) over libcrypto's hash, with the two pad blocks kept
/// (wiped on drop) and hashed again per packet, in two reused contexts:
/// the `openssl` crate offers no way to copy a hash state into an existing
/// context, and a fresh copy per packet would allocate in C each time.
struct Hmac {
    inner: Hasher,
    outer: Hasher,
    /// The key (hashed if longer than a block, zero-padded) XOR 0x36.
    inner_pad: Zeroizing<Vec<u8>>,
    /// The same XOR 0x5c.
    outer_pad: Zeroizing<Vec<u8>>,
}

impl Hmac {
    fn keyed(digest: MessageDigest, block: usize, key: &[u8]) -> Option<Hmac> {
        let mut padded = Zeroizing::new(vec![0u8; block]);
        if key.len() > block {
            let mut hasher = Hasher::new(digest).ok()?;
            hasher.update(key).ok()?;
            let hashed = hasher.finish().ok()?;
            padded[..hashed.len()].copy_from_slice(&hashed);
        } else {
            padded[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| Zeroizing::new(padded.iter().map(|k| k ^ byte).collect::<Vec<u8>>());
        Some(Hmac {
            inner: Hasher::new(digest).ok()?,
            outer: Hasher::new(digest).ok()?,
            inner_pad: pad(0x36),
            outer_pad: pad(0x5c),
        })
    }

    fn full(&mut self, seq: u32, data: &[u8]) -> Option<openssl::hash::DigestBytes> {
        self.inner.update(&self.inner_pad).ok()?;
        self.inner.update(&seq.to_be_bytes()).ok()?;
        self.inner.update(data).ok()?;
        let inner = self.inner.finish().ok()?;
        self.outer.update(&self.outer_pad).ok()?;
        self.outer.update(&inner).ok()?;
        self.outer.finish().ok()
    }
}

impl MacKey for Hmac {
    fn sign(&mut self, seq: u32, data: &[u8], out: &mut [u8]) -> bool {
        let Some(full) = self.full(seq, data) else {
            return false;
        };
        let n = out.len();
        out.copy_from_slice(&full[..n]);
        true
    }
}
