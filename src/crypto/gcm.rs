//! aes128-gcm@openssh.com and aes256-gcm@openssh.com (RFC 5647 as OpenSSH
//! uses it), over any provider's AES-GCM.
//!
//! The 4 length bytes travel in the clear as associated data; the rest of the
//! packet is encrypted and a 16-byte tag follows. The 12-byte nonce is the IV:
//! its first 4 bytes fixed, its last 8 a big-endian invocation counter that
//! advances once per packet. The sequence number plays no part. The
//! provider's key keeps its expanded schedule for the life of the keys; the
//! nonce schedule is kept here, the same for every provider.

use zeroize::Zeroize;

use super::GcmKey;
use crate::error::Error;
use crate::keys::Keys;

/// One direction's AES-GCM state: the provider's key and the next nonce.
pub(crate) struct Gcm {
    key: Box<dyn GcmKey>,
    nonce: [u8; 12],
}

impl Drop for Gcm {
    fn drop(&mut self) {
        // The nonce is a copy of the IV (and the counter since).
        self.nonce.zeroize();
    }
}

impl Gcm {
    pub(crate) fn new(keys: &Keys, key: Box<dyn GcmKey>) -> Result<Gcm, Error> {
        let nonce = keys.iv().try_into().map_err(|_| Error::BadKeyLength {
            what: "iv",
            expected: 12,
            got: keys.iv().len(),
        })?;
        Ok(Gcm { key, nonce })
    }

    /// Moves the invocation counter (the nonce's last 8 bytes) on by one.
    fn advance_nonce(&mut self) {
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&self.nonce[4..]);
        let next = u64::from_be_bytes(counter).wrapping_add(1);
        self.nonce[4..].copy_from_slice(&next.to_be_bytes());
    }

    /// Encrypts `packet[4..]` with `packet[..4]` as associated data. `false`
    /// only if the packet exceeds GCM's own size limit (64 GiB), which the
    /// codec's maximum packet length rules out.
    pub(crate) fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) -> bool {
        let (aad, body) = packet.split_at_mut(4);
        let sealed = self.key.seal(&self.nonce, aad, body, tag);
        if sealed {
            self.advance_nonce();
        }
        sealed
    }

    /// Verifies the tag and decrypts `packet[4..]` in place (RustCrypto and
    /// AWS-LC check the tag first; OpenSSL's EVP checks it last and the
    /// provider wipes the body on failure). The counter advances only on
    /// success.
    pub(crate) fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> bool {
        let (aad, body) = packet.split_at_mut(4);
        let opened = self.key.open(&self.nonce, aad, body, tag);
        if opened {
            self.advance_nonce();
        }
        opened
    }
}
