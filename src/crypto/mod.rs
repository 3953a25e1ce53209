//! One engine per cipher family: pure transforms on byte slices.
//!
//! An engine knows nothing of padding, sequence bookkeeping or buffering; it
//! is handed a packet region (the 4 length bytes first) and a tag region, in
//! the spirit of OpenSSH's `cipher_crypt(seq, dst, src, len, aadlen, authlen)`.
//! The one thing that differs per mode is how the length field is treated:
//! in the clear for the clear mode, encrypt-then-MAC and GCM, encrypted with
//! the rest for encrypt-and-MAC, separately keyed for ChaCha20-Poly1305.
//! Each engine keeps its expanded key schedule for the life of its keys.

#[cfg(feature = "legacy")]
mod cbc;
mod chachapoly;
mod clear;
mod ctr;
mod gcm;
pub(crate) mod mac;
mod umac;
mod with_mac;

use crate::algorithm::CipherFamily;
use crate::error::Error;
use crate::keys::Keys;

#[cfg(feature = "legacy")]
use self::cbc::CbcHmac;
use self::chachapoly::ChaChaPoly;
use self::clear::Clear;
use self::ctr::CtrHmac;
use self::gcm::Gcm;

/// The longest MAC or tag any engine appends.
pub(crate) const MAX_TAG_LEN: usize = mac::MAX_MAC_LEN;

/// The packet length from the first 4 bytes of `head`.
fn length_prefix(head: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = head.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// The installed transform of one direction, and the AEAD tag length its
/// row of the table gives (0 for the others, whose MAC says its own).
pub(crate) struct Engine {
    kind: Kind,
    aead_tag_len: usize,
}

enum Kind {
    Clear(Clear),
    Ctr(Box<CtrHmac>),
    Gcm(Box<Gcm>),
    ChaChaPoly(Box<ChaChaPoly>),
    #[cfg(feature = "legacy")]
    Cbc(Box<CbcHmac>),
}

impl Engine {
    /// The clear mode, before the first NEWKEYS.
    pub(crate) fn clear() -> Engine {
        Engine {
            kind: Kind::Clear(Clear),
            aead_tag_len: 0,
        }
    }

    /// Expands `keys` into a ready engine.
    pub(crate) fn new(keys: &Keys) -> Result<Engine, Error> {
        let kind = match keys.cipher().spec().family() {
            CipherFamily::Clear => return Ok(Engine::clear()),
            CipherFamily::AesCtr => Kind::Ctr(Box::new(ctr::ctr_hmac(keys)?)),
            CipherFamily::AesGcm => Kind::Gcm(Box::new(Gcm::new(keys)?)),
            CipherFamily::ChaChaPoly => Kind::ChaChaPoly(Box::new(ChaChaPoly::new(keys)?)),
            #[cfg(feature = "legacy")]
            CipherFamily::Cbc => Kind::Cbc(Box::new(cbc::cbc_hmac(keys)?)),
            #[cfg(not(feature = "legacy"))]
            CipherFamily::Cbc => {
                return Err(Error::Unsupported {
                    algorithm: keys.cipher().name(),
                })
            }
        };
        Ok(Engine {
            kind,
            aead_tag_len: keys.cipher().spec().tag_len(),
        })
    }

    /// Bytes of MAC or tag after each packet.
    pub(crate) fn tag_len(&self) -> usize {
        match &self.kind {
            Kind::Clear(_) => 0,
            Kind::Ctr(e) => e.tag_len(),
            Kind::Gcm(_) | Kind::ChaChaPoly(_) => self.aead_tag_len,
            #[cfg(feature = "legacy")]
            Kind::Cbc(e) => e.tag_len(),
        }
    }

    /// How many leading bytes must be present to learn the packet length.
    pub(crate) fn head_len(&self) -> usize {
        match &self.kind {
            Kind::Ctr(e) => e.head_len(),
            #[cfg(feature = "legacy")]
            Kind::Cbc(e) => e.head_len(),
            // The length is in the clear (or, for ChaCha20-Poly1305, in its
            // own 4 encrypted bytes).
            Kind::Clear(_) | Kind::Gcm(_) | Kind::ChaChaPoly(_) => 4,
        }
    }

    /// The packet length from the first [`Self::head_len`] bytes of a packet,
    /// which this may decrypt in place. `None` only if `head` is too short.
    pub(crate) fn read_length(&mut self, seq: u32, head: &mut [u8]) -> Option<u32> {
        match &mut self.kind {
            Kind::Clear(e) => e.read_length(head),
            Kind::Ctr(e) => e.read_length(head),
            Kind::Gcm(_) => length_prefix(head),
            Kind::ChaChaPoly(e) => e.read_length(seq, head),
            #[cfg(feature = "legacy")]
            Kind::Cbc(e) => e.read_length(head),
        }
    }

    /// Encrypts `packet` (length field first) in place and writes its tag.
    /// `false` only if the packet is beyond what the cipher can seal (GCM's
    /// 64 GiB), which no allowed packet length reaches.
    pub(crate) fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) -> bool {
        match &mut self.kind {
            Kind::Clear(_) => true,
            Kind::Ctr(e) => {
                e.seal(seq, packet, tag);
                true
            }
            Kind::Gcm(e) => e.seal(packet, tag),
            Kind::ChaChaPoly(e) => {
                e.seal(seq, packet, tag);
                true
            }
            #[cfg(feature = "legacy")]
            Kind::Cbc(e) => {
                e.seal(seq, packet, tag);
                true
            }
        }
    }

    /// Authenticates and decrypts `packet` in place; `false` if the MAC or tag
    /// does not verify. Called once per packet, after [`Self::read_length`].
    pub(crate) fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        match &mut self.kind {
            Kind::Clear(_) => true,
            Kind::Ctr(e) => e.open(seq, packet, tag),
            Kind::Gcm(e) => e.open(packet, tag),
            Kind::ChaChaPoly(e) => e.open(seq, packet, tag),
            #[cfg(feature = "legacy")]
            Kind::Cbc(e) => e.open(seq, packet, tag),
        }
    }

    /// Whether a bad length or MAC waits for the discard (CBC in
    /// encrypt-and-MAC mode; see the Opener).
    pub(crate) fn discards(&self) -> bool {
        match &self.kind {
            #[cfg(feature = "legacy")]
            Kind::Cbc(e) => e.encrypt_and_mac(),
            _ => false,
        }
    }

    /// The discard's work over the bytes it took, the same for every cause.
    pub(crate) fn discard_work(&mut self, _seq: u32, _packet: &mut [u8]) {
        #[cfg(feature = "legacy")]
        if let Kind::Cbc(e) = &mut self.kind {
            e.discard_work(_seq, _packet);
        }
    }
}
