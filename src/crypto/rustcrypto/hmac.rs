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

/// A keyed HMAC over one hash, boxed as its own type: an enum of the
/// hashes would be as large as the largest, and the tail past a smaller
/// one would carry whatever the stack held into the box, unwiped (see
/// `ctr::AesCtr`).
#[derive(Clone)]
pub(crate) struct KeyedHmac<M>(M);

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

/// The HMAC of `spec`'s row (`hash` is its hash) under `key`.
pub(crate) fn keyed_hmac(
    spec: &MacSpec,
    hash: MacHash,
    key: &[u8],
) -> Result<Box<dyn MacKey>, Error> {
    Ok(match hash {
        MacHash::Sha1 => Box::new(KeyedHmac(keyed::<Hmac<Sha1>>(key)?)),
        MacHash::Sha256 => Box::new(KeyedHmac(keyed::<Hmac<Sha256>>(key)?)),
        MacHash::Sha512 => Box::new(KeyedHmac(keyed::<Hmac<Sha512>>(key)?)),
        #[cfg(feature = "legacy")]
        MacHash::Md5 => Box::new(KeyedHmac(keyed::<Hmac<md5::Md5>>(key)?)),
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

impl<M: Mac + Clone + Send> MacKey for KeyedHmac<M> {
    fn sign(&mut self, seq: u32, data: &[u8], out: &mut [u8]) -> bool {
        sign_with(&self.0, seq, data, out);
        true
    }
}
