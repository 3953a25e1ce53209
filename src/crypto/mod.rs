//! One engine per cipher family: pure transforms on byte slices, over the
//! primitives of a [`CryptoProvider`].
//!
//! An engine knows nothing of padding, sequence bookkeeping or buffering; it
//! is handed a packet region (the 4 length bytes first) and a tag region, in
//! the spirit of OpenSSH's `cipher_crypt(seq, dst, src, len, aadlen, authlen)`.
//! The one thing that differs per mode is how the length field is treated:
//! in the clear for the clear mode, encrypt-then-MAC and GCM, encrypted with
//! the rest for encrypt-and-MAC, separately keyed for ChaCha20-Poly1305.
//! Each engine keeps its expanded key schedule for the life of its keys.
//!
//! What is SSH's (the nonce schedule of GCM, the two ways of combining a
//! cipher with a MAC, the constant-time MAC check, CBC's discard) is written
//! once here; a provider supplies only the primitives, through the four
//! traits below, and `provider` decides which provider supplies each.

#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
mod clear;
mod gcm;
mod kdf;
pub(crate) mod mac;
#[cfg(feature = "openssl")]
mod openssl;
pub(crate) mod provider;
pub(crate) mod rustcrypto;
mod with_mac;

use crate::algorithm::CipherFamily;
use crate::error::Error;
use crate::keys::Keys;
use crate::wipe::scrubbed;

use self::clear::Clear;
use self::gcm::Gcm;
pub use self::kdf::{Direction, KeyDerivation};
pub use self::provider::CryptoProvider;
use self::with_mac::WithMac;

/// A provider's cipher half of a cipher-with-MAC suite: a keystream or a
/// block chain that runs on across the packets of a direction.
pub(crate) trait Transform: Send {
    /// Encrypts `data` in place (whole blocks for a block mode).
    fn encrypt(&mut self, data: &mut [u8]);
    /// Decrypts `data` in place.
    fn decrypt(&mut self, data: &mut [u8]);
}

/// A provider's keyed MAC.
pub(crate) trait MacKey: Send {
    /// Writes the first `out.len()` bytes of the MAC of packet `seq` over
    /// `data` (for an HMAC, of `u32 seq || data`). `false` only if the
    /// library failed (a C library may), and then `out` means nothing.
    fn sign(&mut self, seq: u32, data: &[u8], out: &mut [u8]) -> bool;
}

/// A provider's AES-GCM under one key; the nonce is given.
pub(crate) trait GcmKey: Send {
    /// Encrypts `body` in place and writes the tag. `false` only past GCM's
    /// size limit.
    fn seal(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &mut [u8]) -> bool;
    /// Checks the tag and decrypts `body` in place; on a bad tag `body`
    /// holds no plaintext (not decrypted, or wiped after).
    fn open(&mut self, nonce: &[u8; 12], aad: &[u8], body: &mut [u8], tag: &[u8]) -> bool;
}

/// A provider's chacha20-poly1305@openssh.com for one direction.
pub(crate) trait ChaChaPolyKey: Send {
    /// The packet's length, decrypted from the first 4 bytes of `head`
    /// into a copy: the buffer keeps the encrypted bytes the tag covers.
    fn read_length(&mut self, seq: u32, head: &[u8]) -> Option<u32>;
    /// Encrypts `packet` (length first) in place and writes the tag.
    fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]);
    /// Checks the tag over the encrypted packet and, only if it verifies,
    /// decrypts the body; the length bytes stay encrypted.
    fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool;
}

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
    /// AES-CTR or CBC with a MAC.
    WithMac(Box<WithMac>),
    Gcm(Box<Gcm>),
    /// Boxed twice so that every variant is one thin pointer: with a fat
    /// one here, the other variants would leave 8 bytes of the enum
    /// unwritten, and whatever the stack held there (a nonce, say) would be
    /// copied into the heap with it.
    ChaChaPoly(Box<Box<dyn ChaChaPolyKey>>),
}

impl Engine {
    /// The clear mode, before the first NEWKEYS.
    pub(crate) fn clear() -> Engine {
        Engine {
            kind: Kind::Clear(Clear),
            aead_tag_len: 0,
        }
    }

    /// Expands `keys` into a ready engine, with `provider`'s primitives (or
    /// those of the provider it falls back to).
    pub(crate) fn new(keys: &Keys, provider: &'static CryptoProvider) -> Result<Engine, Error> {
        let engine = scrubbed(|| Self::expand(keys, provider));
        // The expansion ran in frames below this one, and each engine was
        // built on the stack before it was moved into its box: `scrubbed`
        // wipes what those frames left, before a later move of a larger
        // value (an error into its `Arc`, say) carries it into the heap.
        engine
    }

    fn expand(keys: &Keys, provider: &'static CryptoProvider) -> Result<Engine, Error> {
        let cipher = keys.cipher();
        let kind = match cipher.spec().family() {
            CipherFamily::Clear => return Ok(Engine::clear()),
            family => {
                let backend = provider.cipher_supplier(cipher)?.backend();
                match family {
                    CipherFamily::AesCtr | CipherFamily::Cbc => {
                        let transform = scrubbed(|| {
                            if family == CipherFamily::Cbc {
                                backend.cbc(keys)
                            } else {
                                backend.ctr(keys)
                            }
                        })?;
                        let with_mac = scrubbed(|| WithMac::new(provider, keys, transform))?;
                        Kind::WithMac(Box::new(with_mac))
                    }
                    CipherFamily::AesGcm => {
                        let key = scrubbed(|| backend.gcm(keys))?;
                        Kind::Gcm(Box::new(Gcm::new(keys, key)?))
                    }
                    _ => Kind::ChaChaPoly(Box::new(scrubbed(|| backend.chacha_poly(keys))?)),
                }
            }
        };
        Ok(Engine {
            kind,
            aead_tag_len: cipher.spec().tag_len(),
        })
    }

    /// Bytes of MAC or tag after each packet.
    pub(crate) fn tag_len(&self) -> usize {
        match &self.kind {
            Kind::Clear(_) => 0,
            Kind::WithMac(e) => e.tag_len(),
            Kind::Gcm(_) | Kind::ChaChaPoly(_) => self.aead_tag_len,
        }
    }

    /// How many leading bytes must be present to learn the packet length.
    pub(crate) fn head_len(&self) -> usize {
        match &self.kind {
            Kind::WithMac(e) => e.head_len(),
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
            Kind::WithMac(e) => e.read_length(head),
            Kind::Gcm(_) => length_prefix(head),
            Kind::ChaChaPoly(e) => e.read_length(seq, head),
        }
    }

    /// Encrypts `packet` (length field first) in place and writes its tag.
    /// `false` only if the packet is beyond what the cipher can seal (GCM's
    /// 64 GiB), which no allowed packet length reaches.
    pub(crate) fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) -> bool {
        let sealed = self.seal_inner(seq, packet, tag);
        // The primitives' frames below this one may hold round keys.
        crate::wipe::scrub_after_packet();
        sealed
    }

    #[inline(never)]
    fn seal_inner(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) -> bool {
        match &mut self.kind {
            Kind::Clear(_) => true,
            Kind::WithMac(e) => {
                e.seal(seq, packet, tag);
                true
            }
            Kind::Gcm(e) => e.seal(packet, tag),
            Kind::ChaChaPoly(e) => {
                e.seal(seq, packet, tag);
                true
            }
        }
    }

    /// Authenticates and decrypts `packet` in place; `false` if the MAC or tag
    /// does not verify. Called once per packet, after [`Self::read_length`].
    pub(crate) fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        let opened = self.open_inner(seq, packet, tag);
        crate::wipe::scrub_after_packet();
        opened
    }

    #[inline(never)]
    fn open_inner(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        match &mut self.kind {
            Kind::Clear(_) => true,
            Kind::WithMac(e) => e.open(seq, packet, tag),
            Kind::Gcm(e) => e.open(packet, tag),
            Kind::ChaChaPoly(e) => e.open(seq, packet, tag),
        }
    }

    /// Whether a bad length or MAC waits for the discard (CBC in
    /// encrypt-and-MAC mode; see the Opener).
    pub(crate) fn discards(&self) -> bool {
        // Only CBC in encrypt-and-MAC mode: the countermeasure is against
        // attacks on CBC's decrypted length block.
        match &self.kind {
            Kind::WithMac(e) => e.is_cbc() && e.encrypt_and_mac(),
            _ => false,
        }
    }

    /// The discard's work over the bytes it took, the same for every cause.
    pub(crate) fn discard_work(&mut self, seq: u32, packet: &mut [u8]) {
        if let Kind::WithMac(e) = &mut self.kind {
            crate::wipe::scrubbed(|| e.discard_work(seq, packet));
        }
    }
}
