//! The RustCrypto provider: pure Rust, in every build, and the fallback
//! for what another provider's library lacks (UMAC, MD5, CBC and 3DES,
//! and chacha20-poly1305@openssh.com for OpenSSL).

#[cfg(feature = "legacy")]
mod cbc;
mod chachapoly;
mod ctr;
mod gcm;
mod hmac;
pub(crate) mod umac;

use sha2::{Digest, Sha256, Sha512};

use super::provider::{Backend, CryptoProvider};
use super::{ChaChaPolyKey, GcmKey, MacKey, Transform};
use crate::algorithm::KdfHash;
use crate::algorithm::{CipherAlgorithm, CipherFamily, MacHash, MacSpec};
use crate::error::Error;
use crate::keys::Keys;

/// The RustCrypto crates' primitives.
pub(crate) struct RustCrypto;

pub(crate) static PROVIDER: CryptoProvider = CryptoProvider::new("rustcrypto", false, &RustCrypto);

fn digest_into<D: Digest>(parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut hash = D::new();
    for part in parts {
        hash.update(part);
    }
    let mut block = hash.finalize();
    out.extend_from_slice(&block);
    // Each digest is key material: wipe it once it is copied out.
    zeroize::Zeroize::zeroize(&mut block[..]);
}

impl Backend for RustCrypto {
    fn has_cipher(&self, cipher: CipherAlgorithm) -> bool {
        // Everything the build has (CBC only with `legacy`).
        cipher.is_available() && cipher.spec().family() != CipherFamily::Clear
    }

    fn has_mac(&self, hash: MacHash) -> bool {
        hash != MacHash::Md5 || cfg!(feature = "legacy")
    }

    fn ctr(&self, keys: &Keys) -> Result<Box<dyn Transform>, Error> {
        ctr::engine(keys)
    }

    #[cfg(feature = "legacy")]
    fn cbc(&self, keys: &Keys) -> Result<Box<dyn Transform>, Error> {
        cbc::engine(keys)
    }

    fn gcm(&self, keys: &Keys) -> Result<Box<dyn GcmKey>, Error> {
        Ok(Box::new(gcm::AesGcm::new(keys)?))
    }

    fn chacha_poly(&self, keys: &Keys) -> Result<Box<dyn ChaChaPolyKey>, Error> {
        Ok(Box::new(chachapoly::ChaChaPoly::new(keys)?))
    }

    fn mac(&self, spec: &MacSpec, hash: MacHash, key: &[u8]) -> Result<Box<dyn MacKey>, Error> {
        if hash == MacHash::Umac {
            let key: &[u8; 16] = key.try_into().map_err(|_| Error::BadKeyLength {
                what: "mac key",
                expected: 16,
                got: key.len(),
            })?;
            return Ok(Box::new(umac::Umac::new(key, spec.mac_len())));
        }
        hmac::keyed_hmac(spec, hash, key)
    }

    fn digest(&self, hash: KdfHash, parts: &[&[u8]], out: &mut Vec<u8>) {
        match hash {
            KdfHash::Sha256 => digest_into::<Sha256>(parts, out),
            KdfHash::Sha512 => digest_into::<Sha512>(parts, out),
        }
    }
}
