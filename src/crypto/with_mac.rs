//! A cipher with a separate MAC, in the two ways SSH combines them:
//! encrypt-and-MAC (RFC 4253 §6: the MAC covers the plaintext, the length is
//! encrypted with the rest) and encrypt-then-MAC (`-etm@openssh.com`: the
//! length travels in the clear and the MAC covers the ciphertext, checked
//! before anything is decrypted). CTR and CBC differ only in the cipher,
//! and the cipher and the MAC may come from different providers.

use super::mac::PacketMac;
use super::provider::CryptoProvider;
use super::Transform;
use crate::error::Error;
use crate::keys::Keys;

/// A cipher plus a keyed MAC for one direction.
pub(crate) struct WithMac {
    cipher: Box<dyn Transform>,
    mac: PacketMac,
    etm: bool,
    /// The cipher's block size, from its row of the table: in
    /// encrypt-and-MAC mode the first block is decrypted to learn the
    /// packet length.
    block: usize,
    /// The cipher is a CBC chain (which the Opener's discard protects).
    cbc: bool,
}

impl WithMac {
    /// `cipher` under the MAC `keys` name, from `provider` (or the provider
    /// it falls back to).
    pub(crate) fn new(
        provider: &'static CryptoProvider,
        keys: &Keys,
        cipher: Box<dyn Transform>,
    ) -> Result<WithMac, Error> {
        let spec = keys.mac().spec();
        if spec.hash().is_none() {
            return Err(Error::IncompatibleAlgorithms {
                cipher: keys.cipher().name(),
                mac: spec.name(),
            });
        }
        Ok(WithMac {
            cipher,
            mac: PacketMac::new(provider, spec, keys.mac_key())?,
            etm: spec.etm(),
            block: keys.cipher().spec().block_size(),
            cbc: keys.cipher().spec().family() == crate::algorithm::CipherFamily::Cbc,
        })
    }

    pub(crate) fn tag_len(&self) -> usize {
        self.mac.len()
    }

    /// Whether the cipher is a CBC chain.
    pub(crate) fn is_cbc(&self) -> bool {
        self.cbc
    }

    /// Whether the length is encrypted and the MAC covers the plaintext.
    pub(crate) fn encrypt_and_mac(&self) -> bool {
        !self.etm
    }

    /// How many leading bytes reveal the length: one block when the length
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
    /// cipher on; [`Self::open`] then finishes the same packet.
    pub(crate) fn read_length(&mut self, head: &mut [u8]) -> Option<u32> {
        if !self.etm {
            let block = self.block;
            self.cipher.decrypt(head.get_mut(..block)?);
        }
        super::length_prefix(head)
    }

    pub(crate) fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) {
        if self.etm {
            self.cipher.encrypt(&mut packet[4..]);
            self.mac.sign(seq, packet, tag);
        } else {
            self.mac.sign(seq, packet, tag);
            self.cipher.encrypt(packet);
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
            self.cipher.decrypt(&mut packet[4..]);
            true
        } else {
            let block = self.block;
            let Some(rest) = packet.get_mut(block..) else {
                return false;
            };
            self.cipher.decrypt(rest);
            self.mac.verify(seq, packet, tag)
        }
    }

    /// The CBC discard's work once its last byte is in, the same whatever
    /// failed: decrypt every whole block after the first and MAC all of
    /// `packet` (the chain is dead, so what it decrypts to is thrown away).
    pub(crate) fn discard_work(&mut self, seq: u32, packet: &mut [u8]) {
        let block = self.block;
        let whole = packet.len() / block * block;
        if whole > block {
            self.cipher.decrypt(&mut packet[block..whole]);
        }
        let mut tag = [0u8; super::mac::MAX_MAC_LEN];
        let n = self.mac.len();
        self.mac.sign(seq, packet, &mut tag[..n]);
        std::hint::black_box(&tag);
    }
}
