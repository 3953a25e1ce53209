//! CBC with an HMAC (feature `legacy`): `aes128-cbc`, `aes192-cbc`,
//! `aes256-cbc` and `3des-cbc`, encrypt-and-MAC and encrypt-then-MAC.
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

use super::mac::PacketMac;
use crate::algorithm::CipherAlgorithm;
use crate::error::Error;
use crate::keys::Keys;

/// One block cipher's CBC encryptor and decryptor, from the same key and IV.
struct Both<C: BlockCipherEncrypt + BlockCipherDecrypt> {
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

enum Chain {
    Aes128(Both<Aes128>),
    Aes192(Both<Aes192>),
    Aes256(Both<Aes256>),
    TripleDes(Both<TdesEde3>),
}

impl Chain {
    fn new(keys: &Keys) -> Result<Chain, Error> {
        Ok(match keys.cipher() {
            CipherAlgorithm::Aes128Cbc => Chain::Aes128(Both::new(keys)?),
            CipherAlgorithm::Aes192Cbc => Chain::Aes192(Both::new(keys)?),
            CipherAlgorithm::Aes256Cbc => Chain::Aes256(Both::new(keys)?),
            CipherAlgorithm::TripleDesCbc => Chain::TripleDes(Both::new(keys)?),
            other => {
                return Err(Error::Unsupported {
                    algorithm: other.name(),
                })
            }
        })
    }

    fn encrypt(&mut self, data: &mut [u8]) {
        match self {
            Chain::Aes128(c) => c.encrypt(data),
            Chain::Aes192(c) => c.encrypt(data),
            Chain::Aes256(c) => c.encrypt(data),
            Chain::TripleDes(c) => c.encrypt(data),
        }
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        match self {
            Chain::Aes128(c) => c.decrypt(data),
            Chain::Aes192(c) => c.decrypt(data),
            Chain::Aes256(c) => c.decrypt(data),
            Chain::TripleDes(c) => c.decrypt(data),
        }
    }
}

/// A CBC chain plus a keyed HMAC for one direction.
pub(crate) struct CbcHmac {
    chain: Chain,
    mac: PacketMac,
    etm: bool,
    /// The cipher's block size, from its row of the table.
    block: usize,
}

impl CbcHmac {
    pub(crate) fn new(keys: &Keys) -> Result<CbcHmac, Error> {
        let spec = keys.mac().spec();
        if spec.hash().is_none() {
            return Err(Error::IncompatibleAlgorithms {
                cipher: keys.cipher().name(),
                mac: spec.name(),
            });
        }
        Ok(CbcHmac {
            chain: Chain::new(keys)?,
            mac: PacketMac::new(spec, keys.mac_key())?,
            etm: spec.etm(),
            block: keys.cipher().spec().block_size(),
        })
    }

    pub(crate) fn tag_len(&self) -> usize {
        self.mac.len()
    }

    /// Whether this direction is encrypt-and-MAC, where a bad length or MAC
    /// must not be told apart (OpenSSH's discard).
    pub(crate) fn encrypt_and_mac(&self) -> bool {
        !self.etm
    }

    /// The discard's work once its last byte is in, the same whatever
    /// failed: decrypt every whole block after the first and MAC all of
    /// `packet` (the chain is dead, so what it decrypts to is thrown away).
    pub(crate) fn discard_work(&mut self, seq: u32, packet: &mut [u8]) {
        let block = self.block;
        let whole = packet.len() / block * block;
        if whole > block {
            self.chain.decrypt(&mut packet[block..whole]);
        }
        let mut tag = [0u8; super::mac::MAX_MAC_LEN];
        let n = self.mac.len();
        self.mac.sign(seq, packet, &mut tag[..n]);
        std::hint::black_box(&tag);
    }

    /// One block when the length is encrypted, the 4 clear bytes with
    /// encrypt-then-MAC.
    pub(crate) fn head_len(&self) -> usize {
        if self.etm {
            4
        } else {
            self.block
        }
    }

    /// The packet length from the head; with encrypt-and-MAC this decrypts
    /// the first block in place, and [`Self::open`] goes on from the next.
    pub(crate) fn read_length(&mut self, head: &mut [u8]) -> Option<u32> {
        if !self.etm {
            let block = self.block;
            self.chain.decrypt(head.get_mut(..block)?);
        }
        super::length_prefix(head)
    }

    pub(crate) fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) {
        if self.etm {
            self.chain.encrypt(&mut packet[4..]);
            self.mac.sign(seq, packet, tag);
        } else {
            self.mac.sign(seq, packet, tag);
            self.chain.encrypt(packet);
        }
    }

    pub(crate) fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        if self.etm {
            if !self.mac.verify(seq, packet, tag) {
                return false;
            }
            self.chain.decrypt(&mut packet[4..]);
            true
        } else {
            let block = self.block;
            let Some(rest) = packet.get_mut(block..) else {
                return false;
            };
            self.chain.decrypt(rest);
            self.mac.verify(seq, packet, tag)
        }
    }
}
