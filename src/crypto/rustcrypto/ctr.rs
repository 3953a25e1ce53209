//! AES-CTR (RustCrypto's `aes` and `ctr`); the MAC is added by `with_mac`.
//!
//! The CTR keystream runs on across the packets of a direction; only a key
//! switch, which builds a new engine, starts it again.

use aes::{Aes128, Aes192, Aes256};
use ctr::cipher::{KeyIvInit, StreamCipher};
use ctr::Ctr128BE;

use crate::algorithm::CipherAlgorithm;
use crate::crypto::Transform;
use crate::error::Error;
use crate::keys::Keys;

pub(crate) enum AesCtr {
    Aes128(Ctr128BE<Aes128>),
    Aes192(Ctr128BE<Aes192>),
    Aes256(Ctr128BE<Aes256>),
}

fn keystream<C: KeyIvInit>(keys: &Keys) -> Result<C, Error> {
    C::new_from_slices(keys.key(), keys.iv()).map_err(|_| Error::BadKeyLength {
        what: "key",
        expected: keys.cipher().spec().key_len(),
        got: keys.key().len(),
    })
}

impl AesCtr {
    pub(crate) fn new(keys: &Keys) -> Result<AesCtr, Error> {
        Ok(match keys.cipher() {
            CipherAlgorithm::Aes128Ctr => AesCtr::Aes128(keystream(keys)?),
            CipherAlgorithm::Aes192Ctr => AesCtr::Aes192(keystream(keys)?),
            CipherAlgorithm::Aes256Ctr => AesCtr::Aes256(keystream(keys)?),
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        })
    }

    fn apply(&mut self, data: &mut [u8]) {
        match self {
            AesCtr::Aes128(c) => c.apply_keystream(data),
            AesCtr::Aes192(c) => c.apply_keystream(data),
            AesCtr::Aes256(c) => c.apply_keystream(data),
        }
    }
}

impl Transform for AesCtr {
    fn encrypt(&mut self, data: &mut [u8]) {
        self.apply(data);
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        self.apply(data);
    }
}
