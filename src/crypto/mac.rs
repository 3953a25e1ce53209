//! HMAC over a sequence number and a byte range, as SSH MACs are defined.
//!
//! The keyed HMAC state (inner and outer pads already absorbed) is built once
//! per key and cloned per packet, so no packet pays for key setup.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::algorithm::MacHash;
use crate::error::Error;

/// The longest MAC any supported algorithm produces (hmac-sha2-512).
pub(crate) const MAX_MAC_LEN: usize = 64;

/// A keyed HMAC for one direction.
#[derive(Clone)]
pub(crate) enum PacketMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

fn keyed<M: KeyInit>(key: &[u8]) -> Result<M, Error> {
    M::new_from_slice(key).map_err(|_| Error::BadKeyLength {
        what: "mac key",
        expected: key.len(),
        got: key.len(),
    })
}

/// `HMAC(key, u32 seq || data)` written to `out`, which must be the MAC length.
fn sign_with<M: Mac + Clone>(keyed: &M, seq: u32, data: &[u8], out: &mut [u8]) {
    let mut mac = keyed.clone();
    mac.update(&seq.to_be_bytes());
    mac.update(data);
    out.copy_from_slice(&mac.finalize().into_bytes());
}

impl PacketMac {
    pub(crate) fn new(hash: MacHash, key: &[u8]) -> Result<PacketMac, Error> {
        Ok(match hash {
            MacHash::Sha1 => PacketMac::Sha1(keyed(key)?),
            MacHash::Sha256 => PacketMac::Sha256(keyed(key)?),
            MacHash::Sha512 => PacketMac::Sha512(keyed(key)?),
        })
    }

    /// The MAC length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            PacketMac::Sha1(_) => 20,
            PacketMac::Sha256(_) => 32,
            PacketMac::Sha512(_) => 64,
        }
    }

    /// Writes the MAC of `seq || data` to `out` (exactly [`Self::len`] bytes).
    pub(crate) fn sign(&self, seq: u32, data: &[u8], out: &mut [u8]) {
        match self {
            PacketMac::Sha1(m) => sign_with(m, seq, data, out),
            PacketMac::Sha256(m) => sign_with(m, seq, data, out),
            PacketMac::Sha512(m) => sign_with(m, seq, data, out),
        }
    }

    /// Whether `tag` is the MAC of `seq || data`, compared in constant time.
    pub(crate) fn verify(&self, seq: u32, data: &[u8], tag: &[u8]) -> bool {
        let mut expected = [0u8; MAX_MAC_LEN];
        let expected = &mut expected[..self.len()];
        self.sign(seq, data, expected);
        expected.ct_eq(tag).into()
    }
}
