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

use crate::algorithm::CipherFamily;
use crate::error::Error;
use crate::keys::Keys;

#[cfg(feature = "legacy")]
use self::cbc::CbcHmac;
use self::chachapoly::ChaChaPoly;
use self::clear::Clear;
use self::ctr::CtrHmac;
use self::gcm::Gcm;

/// The tag both AEAD families append.
const AEAD_TAG_LEN: usize = 16;

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
    Gcm(Box<Gcm>),
    ChaChaPoly(Box<ChaChaPoly>),
    #[cfg(feature = "legacy")]
    Cbc(Box<CbcHmac>),
}

impl Engine {
    /// The clear mode, before the first NEWKEYS.
    pub(crate) fn clear() -> Engine {
        Engine::Clear(Clear)
    }

    /// Expands `keys` into a ready engine.
    pub(crate) fn new(keys: &Keys) -> Result<Engine, Error> {
        match keys.cipher().spec().family() {
            CipherFamily::Clear => Ok(Engine::clear()),
            CipherFamily::AesCtr => Ok(Engine::Ctr(Box::new(CtrHmac::new(keys)?))),
            CipherFamily::AesGcm => Ok(Engine::Gcm(Box::new(Gcm::new(keys)?))),
            CipherFamily::ChaChaPoly => Ok(Engine::ChaChaPoly(Box::new(ChaChaPoly::new(keys)?))),
            #[cfg(feature = "legacy")]
            CipherFamily::Cbc => Ok(Engine::Cbc(Box::new(CbcHmac::new(keys)?))),
            #[cfg(not(feature = "legacy"))]
            CipherFamily::Cbc => Err(Error::Unsupported {
                algorithm: keys.cipher().name(),
            }),
        }
    }

    /// Bytes of MAC or tag after each packet.
    pub(crate) fn tag_len(&self) -> usize {
        match self {
            Engine::Clear(_) => 0,
            Engine::Ctr(e) => e.tag_len(),
            Engine::Gcm(_) | Engine::ChaChaPoly(_) => AEAD_TAG_LEN,
            #[cfg(feature = "legacy")]
            Engine::Cbc(e) => e.tag_len(),
        }
    }

    /// How many leading bytes must be present to learn the packet length.
    pub(crate) fn head_len(&self) -> usize {
        match self {
            Engine::Ctr(e) => e.head_len(),
            #[cfg(feature = "legacy")]
            Engine::Cbc(e) => e.head_len(),
            // The length is in the clear (or, for ChaCha20-Poly1305, in its
            // own 4 encrypted bytes).
            Engine::Clear(_) | Engine::Gcm(_) | Engine::ChaChaPoly(_) => 4,
        }
    }

    /// The packet length from the first [`Self::head_len`] bytes of a packet,
    /// which this may decrypt in place. `None` only if `head` is too short.
    pub(crate) fn read_length(&mut self, seq: u32, head: &mut [u8]) -> Option<u32> {
        match self {
            Engine::Clear(e) => e.read_length(head),
            Engine::Ctr(e) => e.read_length(head),
            Engine::Gcm(_) => length_prefix(head),
            Engine::ChaChaPoly(e) => e.read_length(seq, head),
            #[cfg(feature = "legacy")]
            Engine::Cbc(e) => e.read_length(head),
        }
    }

    /// Encrypts `packet` (length field first) in place and writes its tag.
    /// `false` only if the packet is beyond what the cipher can seal (GCM's
    /// 64 GiB), which no allowed packet length reaches.
    pub(crate) fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) -> bool {
        match self {
            Engine::Clear(_) => true,
            Engine::Ctr(e) => {
                e.seal(seq, packet, tag);
                true
            }
            Engine::Gcm(e) => e.seal(packet, tag),
            Engine::ChaChaPoly(e) => {
                e.seal(seq, packet, tag);
                true
            }
            #[cfg(feature = "legacy")]
            Engine::Cbc(e) => {
                e.seal(seq, packet, tag);
                true
            }
        }
    }

    /// Authenticates and decrypts `packet` in place; `false` if the MAC or tag
    /// does not verify. Called once per packet, after [`Self::read_length`].
    pub(crate) fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        match self {
            Engine::Clear(_) => true,
            Engine::Ctr(e) => e.open(seq, packet, tag),
            Engine::Gcm(e) => e.open(packet, tag),
            Engine::ChaChaPoly(e) => e.open(seq, packet, tag),
            #[cfg(feature = "legacy")]
            Engine::Cbc(e) => e.open(seq, packet, tag),
        }
    }

    /// CBC in encrypt-and-MAC mode: a bad length or MAC is not reported
    /// until the discard has run (see the Opener), and here is the MAC it
    /// spends its time on.
    pub(crate) fn discard_mac(&self) -> Option<&mac::PacketMac> {
        match self {
            #[cfg(feature = "legacy")]
            Engine::Cbc(e) if e.encrypt_and_mac() => Some(e.mac()),
            _ => None,
        }
    }
}
