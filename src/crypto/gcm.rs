//! aes128-gcm@openssh.com and aes256-gcm@openssh.com (RFC 5647 as OpenSSH
//! uses it).
//!
//! The 4 length bytes travel in the clear as associated data; the rest of the
//! packet is encrypted and a 16-byte tag follows. The 12-byte nonce is the IV:
//! its first 4 bytes fixed, its last 8 a big-endian invocation counter that
//! advances once per packet. The sequence number plays no part. The AES key
//! schedule and the GHASH key are expanded once, when the keys are installed.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce, Tag};

use crate::algorithm::CipherAlgorithm;
use crate::error::Error;
use crate::keys::Keys;

enum AesGcm {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// One direction's AES-GCM state: the expanded cipher and the next nonce.
pub(crate) struct Gcm {
    cipher: AesGcm,
    nonce: Nonce<aes_gcm::aead::consts::U12>,
}

fn keyed<C: KeyInit>(keys: &Keys) -> Result<Box<C>, Error> {
    C::new_from_slice(keys.key())
        .map(Box::new)
        .map_err(|_| Error::BadKeyLength {
            what: "key",
            expected: keys.cipher().spec().key_len(),
            got: keys.key().len(),
        })
}

impl Drop for Gcm {
    fn drop(&mut self) {
        // The nonce is a copy of the IV (and the counter since).
        zeroize::Zeroize::zeroize(&mut self.nonce[..]);
    }
}

impl Gcm {
    pub(crate) fn new(keys: &Keys) -> Result<Gcm, Error> {
        let cipher = match keys.cipher() {
            CipherAlgorithm::Aes128Gcm => AesGcm::Aes128(keyed(keys)?),
            CipherAlgorithm::Aes256Gcm => AesGcm::Aes256(keyed(keys)?),
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        };
        let nonce = Nonce::try_from(keys.iv()).map_err(|_| Error::BadKeyLength {
            what: "iv",
            expected: 12,
            got: keys.iv().len(),
        })?;
        Ok(Gcm { cipher, nonce })
    }

    /// Moves the invocation counter (the nonce's last 8 bytes) on by one.
    fn advance_nonce(&mut self) {
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&self.nonce[4..]);
        let next = u64::from_be_bytes(counter).wrapping_add(1);
        self.nonce[4..].copy_from_slice(&next.to_be_bytes());
    }

    /// Encrypts `packet[4..]` with `packet[..4]` as associated data. `false`
    /// only if the packet exceeds GCM's own size limit (64 GiB), which the
    /// codec's maximum packet length rules out.
    pub(crate) fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) -> bool {
        let (aad, body) = packet.split_at_mut(4);
        let sealed = match &self.cipher {
            AesGcm::Aes128(c) => c.encrypt_inout_detached(&self.nonce, aad, body.into()),
            AesGcm::Aes256(c) => c.encrypt_inout_detached(&self.nonce, aad, body.into()),
        };
        match sealed {
            Ok(t) => {
                tag.copy_from_slice(&t);
                self.advance_nonce();
                true
            }
            Err(_) => false,
        }
    }

    /// Verifies the tag (the crate checks it before decrypting) and decrypts
    /// `packet[4..]` in place. The counter advances only on success.
    pub(crate) fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = Tag::try_from(tag) else {
            return false;
        };
        let (aad, body) = packet.split_at_mut(4);
        let opened = match &self.cipher {
            AesGcm::Aes128(c) => c.decrypt_inout_detached(&self.nonce, aad, body.into(), &tag),
            AesGcm::Aes256(c) => c.decrypt_inout_detached(&self.nonce, aad, body.into(), &tag),
        };
        if opened.is_ok() {
            self.advance_nonce();
        }
        opened.is_ok()
    }
}
