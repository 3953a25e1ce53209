//! AES-GCM under one key (RustCrypto's `aes-gcm`); the nonce schedule is
//! the shared `crypto::gcm`'s.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce, Tag};

use crate::algorithm::CipherAlgorithm;
use crate::crypto::GcmKey;
use crate::error::Error;
use crate::keys::Keys;

/// The expanded AES key schedule and GHASH key.
pub(crate) enum AesGcm {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
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

impl AesGcm {
    pub(crate) fn new(keys: &Keys) -> Result<AesGcm, Error> {
        Ok(match keys.cipher() {
            CipherAlgorithm::Aes128Gcm => AesGcm::Aes128(keyed(keys)?),
            CipherAlgorithm::Aes256Gcm => AesGcm::Aes256(keyed(keys)?),
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        })
    }
}

impl GcmKey for AesGcm {
    fn seal(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &mut [u8]) -> bool {
        let nonce = Nonce::from(*nonce);
        let sealed = match self {
            AesGcm::Aes128(c) => c.encrypt_inout_detached(&nonce, aad, body.into()),
            AesGcm::Aes256(c) => c.encrypt_inout_detached(&nonce, aad, body.into()),
        };
        match sealed {
            Ok(t) => {
                tag.copy_from_slice(&t);
                true
            }
            Err(_) => false,
        }
    }

    fn open(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = Tag::try_from(tag) else {
            return false;
        };
        let nonce = Nonce::from(*nonce);
        let opened = match self {
            AesGcm::Aes128(c) => c.decrypt_inout_detached(&nonce, aad, body.into(), &tag),
            AesGcm::Aes256(c) => c.decrypt_inout_detached(&nonce, aad, body.into(), &tag),
        };
        opened.is_ok()
    }
}
