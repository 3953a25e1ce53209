//! CBC with an HMAC (feature `legacy`): `aes128-cbc`, `aes192-cbc`,
//! `aes256-cbc` and `3des-cbc`, with a MAC in either of SSH's two ways
//! (see `with_mac`).
//!
//! The chain runs on across the packets of a direction (RFC 4253 §6.3): a
//! packet's IV is the last ciphertext block of the packet before, so one
//! encryptor or decryptor serves the direction until its keys change. An
//! engine does not know which direction it serves; it keeps both halves
//! of the mode and uses one.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::array::Array;
use cbc::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit,
};
use des::TdesEde3;

use crate::algorithm::CipherAlgorithm;
use crate::crypto::Transform;
use crate::error::Error;
use crate::keys::Keys;

/// One block cipher's CBC encryptor and decryptor, from the same key and IV.
pub(crate) struct Both<C: BlockCipherEncrypt + BlockCipherDecrypt> {
    encrypt: cbc::Encryptor<C>,
    decrypt: cbc::Decryptor<C>,
}

impl<C: BlockCipherEncrypt + BlockCipherDecrypt + KeyInit> Both<C> {
    fn new(keys: &Keys) -> Result<Both<C>, Error> {
        let bad = || Error::BadKeyLength {
            what: "key",
            expected: keys.cipher().spec().key_len(),
            got: keys.key().len(),
        };
        Ok(Both {
            encrypt: cbc::Encryptor::new_from_slices(keys.key(), keys.iv()).map_err(|_| bad())?,
            decrypt: cbc::Decryptor::new_from_slices(keys.key(), keys.iv()).map_err(|_| bad())?,
        })
    }

    /// Encrypts whole blocks in place (the caller aligned them).
    fn encrypt(&mut self, data: &mut [u8]) {
        let (blocks, rest) = Array::slice_as_chunks_mut(data);
        debug_assert!(rest.is_empty(), "CBC data is block-aligned");
        self.encrypt.encrypt_blocks(blocks);
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        let (blocks, rest) = Array::slice_as_chunks_mut(data);
        debug_assert!(rest.is_empty(), "CBC data is block-aligned");
        self.decrypt.decrypt_blocks(blocks);
    }
}

/// The engine for `keys`, each block cipher's chain in a box of its own
/// size (see `ctr::AesCtr` for why not one enum).
pub(crate) fn engine(keys: &Keys) -> Result<Box<dyn Transform>, Error> {
    Ok(match keys.cipher() {
        CipherAlgorithm::Aes128Cbc => Box::new(Both::<Aes128>::new(keys)?),
        CipherAlgorithm::Aes192Cbc => Box::new(Both::<Aes192>::new(keys)?),
        CipherAlgorithm::Aes256Cbc => Box::new(Both::<Aes256>::new(keys)?),
        CipherAlgorithm::TripleDesCbc => Box::new(Both::<TdesEde3>::new(keys)?),
        other => {
            return Err(Error::Unsupported {
                algorithm: other.name(),
            })
        }
    })
}

impl<C> Transform for Both<C>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + KeyInit,
    Both<C>: Send,
{
    fn encrypt(&mut self, data: &mut [u8]) {
        Both::encrypt(self, data);
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        Both::decrypt(self, data);
    }
}
