//! The OpenSSL provider (feature `openssl`, the system's libcrypto through
//! the `openssl` crate): AES-GCM, AES-CTR and the SHA-1 and SHA-2 HMACs,
//! the primitives OpenSSH itself runs on; chacha20-poly1305, UMAC, MD5 and
//! CBC come from RustCrypto, and so does the key derivation's hash (whose
//! output RustCrypto wipes).
//!
//! Each direction keeps its OpenSSL contexts for the life of its keys: the
//! AES key schedule is expanded once, GCM only resets its IV per packet,
//! and the HMAC states after the pads are computed once. OpenSSL cleanses
//! its cipher contexts when they are freed; the HMAC states are ours and
//! overwritten on drop.

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use zeroize::Zeroizing;

use super::provider::{Backend, CryptoProvider};
use super::{GcmKey, MacKey, Transform};
use crate::algorithm::KdfHash;
use crate::algorithm::{CipherAlgorithm, MacHash, MacSpec};
use crate::error::Error;
use crate::keys::Keys;

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
        Ok(match hash {
            MacHash::Sha1 => Box::new(Hmac::<openssl::sha::Sha1>::keyed(key)),
            MacHash::Sha256 => Box::new(Hmac::<openssl::sha::Sha256>::keyed(key)),
            MacHash::Sha512 => Box::new(Hmac::<openssl::sha::Sha512>::keyed(key)),
            _ => {
                return Err(Error::Unsupported {
                    algorithm: spec.name(),
                })
            }
        })
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
        // A keyed CTR context takes any length in place: this fails only if
        // libcrypto breaks. Then the bytes are wiped, never left as they
        // were: sealing sends zeros (not the plaintext), and opening yields
        // zeros, whose padding length of 0 the Opener refuses.
        if self.0.cipher_update_inplace(data, len).is_err() {
            log::error!("OpenSSL failed in AES-CTR; the data is wiped");
            zeroize::Zeroize::zeroize(data);
        }
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

/// libcrypto's SHA-1 and SHA-2 through their plain context structs
/// (`openssl::sha`): no EVP, so no context to allocate, and a state is
/// copied by value.
trait PlainHash: Clone + Send + 'static {
    /// The hash's block size.
    const BLOCK: usize;
    /// The digest.
    type Digest: AsRef<[u8]> + zeroize::Zeroize;
    fn fresh() -> Self;
    fn absorb(&mut self, data: &[u8]);
    fn digest(self) -> Self::Digest;
}

macro_rules! plain_hash {
    ($ty:ty, $block:expr, $len:expr) => {
        impl PlainHash for $ty {
            const BLOCK: usize = $block;
            type Digest = [u8; $len];
            fn fresh() -> Self {
                <$ty>::new()
            }
            fn absorb(&mut self, data: &[u8]) {
                self.update(data);
            }
            fn digest(self) -> [u8; $len] {
                self.finish()
            }
        }
    };
}

plain_hash!(openssl::sha::Sha1, 64, 20);
plain_hash!(openssl::sha::Sha256, 64, 32);
plain_hash!(openssl::sha::Sha512, 128, 64);

/// HMAC (RFC 2104) over libcrypto's hash: the states after each pad block
/// are computed once per key and copied per packet, as OpenSSH's own HMAC
/// does, with no allocation (EVP's digest contexts allocate at every
/// initialisation in OpenSSL 3, eight times a packet in both directions).
struct Hmac<H: PlainHash> {
    /// The state after the key (hashed if longer than a block,
    /// zero-padded) XOR 0x36; on the heap, so that it is overwritten in
    /// place on drop.
    inner: Box<H>,
    /// The same after the key XOR 0x5c.
    outer: Box<H>,
}

impl<H: PlainHash> Hmac<H> {
    fn keyed(key: &[u8]) -> Hmac<H> {
        let mut padded = Zeroizing::new(vec![0u8; H::BLOCK]);
        if key.len() > H::BLOCK {
            let mut hash = H::fresh();
            hash.absorb(key);
            let hashed = Zeroizing::new(hash.digest());
            padded[..hashed.as_ref().len()].copy_from_slice(hashed.as_ref());
        } else {
            padded[..key.len()].copy_from_slice(key);
        }
        let state = |byte: u8| {
            let pad = Zeroizing::new(padded.iter().map(|k| k ^ byte).collect::<Vec<u8>>());
            let mut hash = H::fresh();
            hash.absorb(&pad);
            Box::new(hash)
        };
        Hmac {
            inner: state(0x36),
            outer: state(0x5c),
        }
    }
}

impl<H: PlainHash> Drop for Hmac<H> {
    fn drop(&mut self) {
        // The key-derived states are overwritten with the hash's public
        // initial state before their memory is freed; black_box keeps the
        // stores from being elided as dead.
        *self.inner = H::fresh();
        *self.outer = H::fresh();
        std::hint::black_box((&*self.inner, &*self.outer));
    }
}

impl<H: PlainHash> MacKey for Hmac<H> {
    fn sign(&mut self, seq: u32, data: &[u8], out: &mut [u8]) -> bool {
        let mut inner = (*self.inner).clone();
        inner.absorb(&seq.to_be_bytes());
        inner.absorb(data);
        let inner = inner.digest();
        let mut outer = (*self.outer).clone();
        outer.absorb(inner.as_ref());
        let full = outer.digest();
        let n = out.len();
        out.copy_from_slice(&full.as_ref()[..n]);
        true
    }
}
