//! AES-CTR with an HMAC: encrypt-and-MAC (RFC 4253 §6) and encrypt-then-MAC
//! (`-etm@openssh.com`).
//!
//! The CTR keystream runs on across the packets of a direction; only a key
//! switch, which builds a new engine, starts it again.

use aes::{Aes128, Aes192, Aes256};
use ctr::cipher::{KeyIvInit, StreamCipher};
use ctr::Ctr128BE;

use super::mac::PacketMac;
use crate::algorithm::CipherAlgorithm;
use crate::error::Error;
use crate::keys::Keys;

enum AesCtr {
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
    fn new(keys: &Keys) -> Result<AesCtr, Error> {
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

/// AES-CTR keystream plus a keyed HMAC for one direction.
pub(crate) struct CtrHmac {
    cipher: AesCtr,
    mac: PacketMac,
    etm: bool,
    /// The cipher's block size, from its row of the table: in
    /// encrypt-and-MAC mode the first block is decrypted to learn the
    /// packet length.
    block: usize,
}

impl CtrHmac {
    pub(crate) fn new(keys: &Keys) -> Result<CtrHmac, Error> {
        let spec = keys.mac().spec();
        if spec.hash().is_none() {
            return Err(Error::IncompatibleAlgorithms {
                cipher: keys.cipher().name(),
                mac: spec.name(),
            });
        }
        Ok(CtrHmac {
            cipher: AesCtr::new(keys)?,
            mac: PacketMac::new(spec, keys.mac_key())?,
            etm: spec.etm(),
            block: keys.cipher().spec().block_size(),
        })
    }

    pub(crate) fn tag_len(&self) -> usize {
        self.mac.len()
    }

    /// How many leading bytes reveal the length: one AES block when the length
    /// is encrypted, the 4 clear bytes with encrypt-then-MAC.
    pub(crate) fn head_len(&self) -> usize {
        if self.etm {
            4
        } else {
            self.block
        }
    }

    /// The packet length from the first [`Self::head_len`] bytes. With
    /// encrypt-and-MAC this decrypts that block in place and moves the
    /// keystream on; [`Self::open`] then finishes the same packet.
    pub(crate) fn read_length(&mut self, head: &mut [u8]) -> Option<u32> {
        if !self.etm {
            let block = self.block;
            self.cipher.apply(head.get_mut(..block)?);
        }
        super::length_prefix(head)
    }

    pub(crate) fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) {
        if self.etm {
            self.cipher.apply(&mut packet[4..]);
            self.mac.sign(seq, packet, tag);
        } else {
            self.mac.sign(seq, packet, tag);
            self.cipher.apply(packet);
        }
    }

    /// Authenticates and decrypts a packet whose head went through
    /// [`Self::read_length`]. With encrypt-then-MAC nothing is decrypted
    /// unless the MAC verifies.
    pub(crate) fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        if self.etm {
            if !self.mac.verify(seq, packet, tag) {
                return false;
            }
            self.cipher.apply(&mut packet[4..]);
            true
        } else {
            let block = self.block;
            let Some(rest) = packet.get_mut(block..) else {
                return false;
            };
            self.cipher.apply(rest);
            self.mac.verify(seq, packet, tag)
        }
    }
}
