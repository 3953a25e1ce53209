//! HMAC over RustCrypto's hashes (`hmac`, `sha1`, `sha2`, and `md-5` with
//! the `legacy` feature).
//!
//! The keyed state, both pads absorbed, is built once per key and cloned
//! per packet: no packet pays for key setup.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::algorithm::{MacHash, MacSpec};
use crate::crypto::MacKey;
use crate::error::Error;

/// A keyed HMAC.
#[derive(Clone)]
pub(crate) enum KeyedHmac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
    #[cfg(feature = "legacy")]
    Md5(Hmac<md5::Md5>),
}

fn keyed<M: KeyInit>(key: &[u8]) -> Result<M, Error> {
    M::new_from_slice(key).map_err(|_| Error::BadKeyLength {
        what: "mac key",
        expected: key.len(),
        got: key.len(),
    })
}

/// The first `out.len()` bytes of `HMAC(key, u32 seq || data)`, into `out`.
fn sign_with<M: Mac + Clone>(keyed: &M, seq: u32, data: &[u8], out: &mut [u8]) {
    let mut mac = keyed.clone();
    mac.update(&seq.to_be_bytes());
    mac.update(data);
    let full = mac.finalize().into_bytes();
    let n = out.len();
    out.copy_from_slice(&full[..n]);
}

impl KeyedHmac {
    /// The HMAC of `spec`'s row (`hash` is its hash) under `key`.
    pub(crate) fn new(spec: &MacSpec, hash: MacHash, key: &[u8]) -> Result<KeyedHmac, Error> {
        Ok(match hash {
            MacHash::Sha1 => KeyedHmac::Sha1(keyed(key)?),
            MacHash::Sha256 => KeyedHmac::Sha256(keyed(key)?),
            MacHash::Sha512 => KeyedHmac::Sha512(keyed(key)?),
            #[cfg(feature = "legacy")]
            MacHash::Md5 => KeyedHmac::Md5(keyed(key)?),
            #[cfg(not(feature = "legacy"))]
            MacHash::Md5 => {
                return Err(Error::Unsupported {
                    algorithm: spec.name(),
                })
            }
            MacHash::Umac => {
                return Err(Error::Unsupported {
                    algorithm: spec.name(),
                })
            }
        })
    }
}

impl MacKey for KeyedHmac {
    fn sign(&mut self, seq: u32, data: &[u8], out: &mut [u8]) -> bool {
        match self {
            KeyedHmac::Sha1(m) => sign_with(m, seq, data, out),
            KeyedHmac::Sha256(m) => sign_with(m, seq, data, out),
            KeyedHmac::Sha512(m) => sign_with(m, seq, data, out),
            #[cfg(feature = "legacy")]
            KeyedHmac::Md5(m) => sign_with(m, seq, data, out),
        }
        true
    }
}
