//! One engine per cipher family: pure transforms on byte slices.
//!
//! An engine knows nothing of padding, sequence bookkeeping or buffering; it
//! is handed a packet region (the 4 length bytes first) and a tag region, in
//! the spirit of OpenSSH's `cipher_crypt(seq, dst, src, len, aadlen, authlen)`.
//! The one thing that differs per mode is how the length field is treated:
//! in the clear for the clear mode, encrypt-then-MAC and GCM, encrypted with
//! the rest for encrypt-and-MAC, separately keyed for ChaCha20-Poly1305.
//! Each engine keeps its expanded key schedule for the life of its keys.

mod clear;
mod ctr;
pub(crate) mod mac;

use crate::algorithm::CipherFamily;
use crate::error::Error;
use crate::keys::Keys;

use self::clear::Clear;
use self::ctr::CtrHmac;

/// The longest MAC or tag any engine appends.
pub(crate) const MAX_TAG_LEN: usize = mac::MAX_MAC_LEN;

/// The packet length from the first 4 bytes of `head`.
fn length_prefix(head: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = head.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// The installed transform of one direction.
pub(crate) enum Engine {
    Clear(Clear),
    Ctr(Box<CtrHmac>),
}

impl Engine {
    /// The clear mode, before the first NEWKEYS.
    pub(crate) fn clear() -> Engine {
        Engine::Clear(Clear)
    }

    /// Expands `keys` into a ready engine.
    pub(crate) fn new(keys: &Keys) -> Result<Engine, Error> {
        match keys.cipher().spec().family {
            CipherFamily::Clear => Ok(Engine::clear()),
            CipherFamily::AesCtr => Ok(Engine::Ctr(Box::new(CtrHmac::new(keys)?))),
            CipherFamily::AesGcm | CipherFamily::ChaChaPoly => Err(Error::Unsupported {
                algorithm: keys.cipher().name(),
            }),
        }
    }

    /// Bytes of MAC or tag after each packet.
    pub(crate) fn tag_len(&self) -> usize {
        match self {
            Engine::Clear(_) => 0,
            Engine::Ctr(e) => e.tag_len(),
        }
    }

    /// How many leading bytes must be present to learn the packet length.
    pub(crate) fn head_len(&self) -> usize {
        match self {
            Engine::Clear(_) => 4,
            Engine::Ctr(e) => e.head_len(),
        }
    }

    /// The packet length from the first [`Self::head_len`] bytes of a packet,
    /// which this may decrypt in place. `None` only if `head` is too short.
    pub(crate) fn read_length(&mut self, _seq: u32, head: &mut [u8]) -> Option<u32> {
        match self {
            Engine::Clear(e) => e.read_length(head),
            Engine::Ctr(e) => e.read_length(head),
        }
    }

    /// Encrypts `packet` (length field first) in place and writes its tag.
    pub(crate) fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) {
        match self {
            Engine::Clear(_) => {}
            Engine::Ctr(e) => e.seal(seq, packet, tag),
        }
    }

    /// Authenticates and decrypts `packet` in place; `false` if the MAC or tag
    /// does not verify. Called once per packet, after [`Self::read_length`].
    pub(crate) fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        match self {
            Engine::Clear(_) => true,
            Engine::Ctr(e) => e.open(seq, packet, tag),
        }
    }
}
