//! The provider seam: which library's primitives a connection's engines
//! run on, in the manner of rustls' `CryptoProvider`.
//!
//! A provider is a static value naming a backend (one implementation of
//! [`Backend`]) and whether it runs in FIPS mode. Engines ask it, per
//! algorithm, which provider supplies the primitive: itself when its
//! backend has it, RustCrypto when it does not, or, in FIPS mode, nobody
//! (the algorithm is refused rather than run outside the module).

use std::fmt;
use std::sync::OnceLock;

use super::{ChaChaPolyKey, GcmKey, MacKey, Transform};
use crate::algorithm::KdfHash;
use crate::algorithm::{CipherAlgorithm, CipherFamily, MacAlgorithm, MacHash, MacSpec};
use crate::error::Error;
use crate::keys::Keys;

/// What a provider's library supplies: the primitives behind the engines.
/// Each builder is called only for an algorithm its `has_` query accepts.
pub(crate) trait Backend: Sync {
    /// Whether the library has `cipher`'s primitive.
    fn has_cipher(&self, cipher: CipherAlgorithm) -> bool;
    /// Whether the library has the MAC built on `hash`.
    fn has_mac(&self, hash: MacHash) -> bool;
    /// AES-CTR, keyed and positioned at the IV.
    fn ctr(&self, keys: &Keys) -> Result<Box<dyn Transform>, Error>;
    /// A CBC chain (feature `legacy`).
    fn cbc(&self, keys: &Keys) -> Result<Box<dyn Transform>, Error> {
        Err(Error::Unsupported {
            algorithm: keys.cipher().name(),
        })
    }
    /// AES-GCM, keyed.
    fn gcm(&self, keys: &Keys) -> Result<Box<dyn GcmKey>, Error>;
    /// chacha20-poly1305@openssh.com, keyed.
    fn chacha_poly(&self, keys: &Keys) -> Result<Box<dyn ChaChaPolyKey>, Error> {
        Err(Error::Unsupported {
            algorithm: keys.cipher().name(),
        })
    }
    /// The MAC of `spec`'s row (`hash` is its hash) under `key`.
    fn mac(&self, spec: &MacSpec, hash: MacHash, key: &[u8]) -> Result<Box<dyn MacKey>, Error>;
    /// Appends the digest of the concatenated `parts` to `out` (the key
    /// derivation's hash).
    fn digest(&self, hash: KdfHash, parts: &[&[u8]], out: &mut Vec<u8>);
}

/// A source of the primitives the packet engines run on: RustCrypto (the
/// default, pure Rust), aws-lc-rs (feature `aws-lc-rs`, FIPS with `fips`)
/// or OpenSSL (feature `openssl`).
///
/// A connection takes the process default when its configuration is made
/// ([`CryptoProvider::get_default`]) unless the configuration names
/// another ([`crate::Config::crypto_provider`]). An algorithm the provider's
/// library lacks runs on RustCrypto instead, and
/// [`CryptoProvider::cipher_supplier`] says so; a FIPS provider refuses
/// it instead, and anything not FIPS-approved.
///
/// Providers interoperate byte for byte: the wire format is SSH's, not a
/// library's.
///
/// ```
/// use ssh_packetizer::{CipherAlgorithm, CryptoProvider, MacAlgorithm};
///
/// let provider = CryptoProvider::rust_crypto();
/// assert_eq!(provider.name(), "rustcrypto");
/// // Every algorithm of the build runs on RustCrypto itself.
/// let supplier = provider.cipher_supplier(CipherAlgorithm::ChaCha20Poly1305)?;
/// assert_eq!(supplier.name(), "rustcrypto");
/// assert!(provider.mac_supplier(MacAlgorithm::Umac64Etm).is_ok());
/// // The process default, unless another was installed: RustCrypto, or
/// // aws-lc-rs in a FIPS build.
/// let default = CryptoProvider::get_default();
/// assert!(CryptoProvider::available().contains(&default));
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
pub struct CryptoProvider {
    name: &'static str,
    fips: bool,
    backend: &'static dyn Backend,
}

static DEFAULT: OnceLock<&'static CryptoProvider> = OnceLock::new();

static AVAILABLE: &[&CryptoProvider] = &[
    &super::rustcrypto::PROVIDER,
    #[cfg(feature = "aws-lc-rs")]
    &super::aws_lc::PROVIDER,
    #[cfg(feature = "openssl")]
    &super::openssl::PROVIDER,
];

impl CryptoProvider {
    pub(crate) const fn new(
        name: &'static str,
        fips: bool,
        backend: &'static dyn Backend,
    ) -> CryptoProvider {
        CryptoProvider {
            name,
            fips,
            backend,
        }
    }

    /// RustCrypto: pure Rust, in every build, and the fallback for what
    /// another provider's library lacks.
    pub fn rust_crypto() -> &'static CryptoProvider {
        &super::rustcrypto::PROVIDER
    }

    /// aws-lc-rs (feature `aws-lc-rs`): AES-GCM, AES-CTR, the HMACs and
    /// OpenSSH's chacha20-poly1305 construction. With the `fips` feature it
    /// is aws-lc-rs's FIPS build, in FIPS mode.
    #[cfg(feature = "aws-lc-rs")]
    pub fn aws_lc_rs() -> &'static CryptoProvider {
        &super::aws_lc::PROVIDER
    }

    /// OpenSSL (feature `openssl`, the system's libcrypto): AES-GCM,
    /// AES-CTR and the HMACs, the primitives OpenSSH itself runs on.
    #[cfg(feature = "openssl")]
    pub fn openssl() -> &'static CryptoProvider {
        &super::openssl::PROVIDER
    }

    /// Every provider of this build, RustCrypto first.
    pub fn available() -> &'static [&'static CryptoProvider] {
        AVAILABLE
    }

    /// The provider of this build called `name` ("rustcrypto", "aws-lc-rs",
    /// "openssl").
    pub fn by_name(name: &str) -> Option<&'static CryptoProvider> {
        AVAILABLE.iter().copied().find(|p| p.name == name)
    }

    /// Its name: "rustcrypto", "aws-lc-rs" or "openssl".
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether it runs in FIPS mode: only FIPS-approved algorithms, all
    /// from its own module.
    pub fn is_fips(&self) -> bool {
        self.fips
    }

    /// Makes this the process default, for connections made from now on.
    /// Once only: if a default was installed already, that one is returned
    /// as the error and stays.
    pub fn install_default(&'static self) -> Result<(), &'static CryptoProvider> {
        let mut installed = true;
        let current = DEFAULT.get_or_init(|| {
            installed = false;
            self
        });
        if installed && !std::ptr::eq(*current, self) {
            Err(current)
        } else {
            Ok(())
        }
    }

    /// The process default: the installed one, else the build's own
    /// (RustCrypto; aws-lc-rs in FIPS mode with the `fips` feature, so that
    /// a FIPS build never runs outside its module by default).
    pub fn get_default() -> &'static CryptoProvider {
        DEFAULT.get().copied().unwrap_or_else(Self::build_default)
    }

    fn build_default() -> &'static CryptoProvider {
        #[cfg(feature = "fips")]
        {
            &super::aws_lc::PROVIDER
        }
        #[cfg(not(feature = "fips"))]
        {
            &super::rustcrypto::PROVIDER
        }
    }

    pub(crate) fn backend(&self) -> &'static dyn Backend {
        self.backend
    }

    /// Which provider runs `cipher` for this one: itself, RustCrypto when
    /// its library lacks it, or (FIPS mode) an error for an algorithm it
    /// must not run.
    pub fn cipher_supplier(
        &'static self,
        cipher: CipherAlgorithm,
    ) -> Result<&'static CryptoProvider, Error> {
        if !cipher.is_available() {
            return Err(Error::Unsupported {
                algorithm: cipher.name(),
            });
        }
        let has = self.backend.has_cipher(cipher);
        if self.fips && !(has && fips_approved_cipher(cipher)) {
            return Err(self.refuses(cipher.name()));
        }
        Ok(self.or_fallback(has, cipher.name()))
    }

    /// As [`CryptoProvider::cipher_supplier`], for a MAC (`none` is
    /// supplied by anyone).
    pub fn mac_supplier(
        &'static self,
        mac: MacAlgorithm,
    ) -> Result<&'static CryptoProvider, Error> {
        if !mac.is_available() {
            return Err(Error::Unsupported {
                algorithm: mac.name(),
            });
        }
        match mac.spec().hash() {
            Some(hash) => self.mac_supplier_by_hash(mac.name(), hash),
            None => Ok(self),
        }
    }

    pub(crate) fn mac_supplier_by_hash(
        &'static self,
        name: &'static str,
        hash: MacHash,
    ) -> Result<&'static CryptoProvider, Error> {
        let has = self.backend.has_mac(hash);
        if self.fips && !(has && fips_approved_mac(hash)) {
            return Err(self.refuses(name));
        }
        Ok(self.or_fallback(has, name))
    }

    /// Whether a connection on this provider can run `cipher` at all
    /// (negotiation should offer only those).
    pub fn allows_cipher(&'static self, cipher: CipherAlgorithm) -> bool {
        self.cipher_supplier(cipher).is_ok()
    }

    /// Whether a connection on this provider can run `mac` at all.
    pub fn allows_mac(&'static self, mac: MacAlgorithm) -> bool {
        self.mac_supplier(mac).is_ok()
    }

    fn or_fallback(&'static self, has: bool, algorithm: &str) -> &'static CryptoProvider {
        if has {
            self
        } else {
            log::debug!(
                "{algorithm}: not in the {} provider, RustCrypto's instead",
                self.name
            );
            Self::rust_crypto()
        }
    }

    fn refuses(&self, algorithm: &'static str) -> Error {
        Error::NotApproved {
            algorithm,
            provider: self.name,
        }
    }
}

/// The ciphers a FIPS module may run here: AES in CTR and GCM (the CBC
/// forms come only from RustCrypto, so they are refused with the rest).
fn fips_approved_cipher(cipher: CipherAlgorithm) -> bool {
    matches!(
        cipher.spec().family(),
        CipherFamily::AesCtr | CipherFamily::AesGcm
    )
}

/// The MACs a FIPS module may run: the SHA-1 and SHA-2 HMACs.
fn fips_approved_mac(hash: MacHash) -> bool {
    matches!(hash, MacHash::Sha1 | MacHash::Sha256 | MacHash::Sha512)
}

impl fmt::Debug for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoProvider")
            .field("name", &self.name)
            .field("fips", &self.fips)
            .finish()
    }
}

impl PartialEq for CryptoProvider {
    fn eq(&self, other: &CryptoProvider) -> bool {
        self.name == other.name && self.fips == other.fips
    }
}

impl Eq for CryptoProvider {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Sealer;
    use crate::keys::KeyMaterial;

    /// FIPS mode's rules over RustCrypto's backend: the rules are the
    /// provider's, whatever the library, so they can be checked in every
    /// build (the real FIPS provider needs aws-lc-rs's FIPS build).
    static STRICT: CryptoProvider =
        CryptoProvider::new("strict", true, &super::super::rustcrypto::RustCrypto);

    fn keys(cipher: CipherAlgorithm, mac: MacAlgorithm) -> Keys {
        let (c, m) = (cipher.spec(), mac.spec());
        Keys::new(
            cipher,
            mac,
            KeyMaterial {
                key: &vec![1; c.key_len()],
                iv: &vec![2; c.iv_len()],
                mac_key: &vec![3; m.key_len()],
            },
        )
        .unwrap()
    }

    #[test]
    fn fips_mode_runs_only_approved_algorithms_from_its_own_library() {
        for c in [
            CipherAlgorithm::Aes128Ctr,
            CipherAlgorithm::Aes256Ctr,
            CipherAlgorithm::Aes128Gcm,
        ] {
            assert_eq!(STRICT.cipher_supplier(c).unwrap(), &STRICT, "{c}");
        }
        for m in [MacAlgorithm::HmacSha1, MacAlgorithm::HmacSha512Etm] {
            assert_eq!(STRICT.mac_supplier(m).unwrap(), &STRICT, "{m}");
        }
        let refused = STRICT.cipher_supplier(CipherAlgorithm::ChaCha20Poly1305);
        assert!(matches!(
            refused,
            Err(Error::NotApproved {
                algorithm: "chacha20-poly1305@openssh.com",
                provider: "strict"
            })
        ));
        assert!(STRICT.mac_supplier(MacAlgorithm::Umac128Etm).is_err());
        assert!(!STRICT.allows_cipher(CipherAlgorithm::ChaCha20Poly1305));
        assert!(STRICT.allows_mac(MacAlgorithm::HmacSha256));
        #[cfg(feature = "legacy")]
        {
            assert!(STRICT.cipher_supplier(CipherAlgorithm::Aes128Cbc).is_err());
            assert!(STRICT
                .cipher_supplier(CipherAlgorithm::TripleDesCbc)
                .is_err());
            assert!(STRICT.mac_supplier(MacAlgorithm::HmacMd5).is_err());
        }
    }

    #[test]
    fn refused_keys_change_nothing() {
        let mut sealer = Sealer::new();
        sealer.set_crypto_provider(&STRICT);
        let err = sealer
            .set_keys(keys(CipherAlgorithm::ChaCha20Poly1305, MacAlgorithm::None))
            .unwrap_err();
        assert!(matches!(err, Error::NotApproved { .. }), "{err:?}");
        assert!(!err.is_fatal());
        // A MAC refused with an approved cipher: refused too.
        let err = sealer
            .set_keys(keys(CipherAlgorithm::Aes128Ctr, MacAlgorithm::Umac64Etm))
            .unwrap_err();
        assert!(matches!(err, Error::NotApproved { .. }), "{err:?}");
        // Still in the clear mode: the payload goes out as it is.
        let mut wire = Vec::new();
        sealer.seal(&[2, 7, 7], &mut wire).unwrap();
        assert_eq!(&wire[5..8], [2, 7, 7]);
        // And approved keys are taken.
        sealer
            .set_keys(keys(CipherAlgorithm::Aes128Gcm, MacAlgorithm::None))
            .unwrap();
    }

    #[test]
    fn a_provider_without_an_algorithm_falls_back_to_rust_crypto() {
        /// A library with nothing but AES-GCM.
        struct GcmOnly;
        impl Backend for GcmOnly {
            fn has_cipher(&self, cipher: CipherAlgorithm) -> bool {
                cipher.spec().family() == CipherFamily::AesGcm
            }
            fn has_mac(&self, _: MacHash) -> bool {
                false
            }
            fn ctr(&self, _: &Keys) -> Result<Box<dyn Transform>, Error> {
                unreachable!("never asked: it has no CTR")
            }
            fn gcm(&self, keys: &Keys) -> Result<Box<dyn GcmKey>, Error> {
                super::super::rustcrypto::RustCrypto.gcm(keys)
            }
            fn mac(&self, _: &MacSpec, _: MacHash, _: &[u8]) -> Result<Box<dyn MacKey>, Error> {
                unreachable!("never asked: it has no MAC")
            }
            fn digest(&self, hash: KdfHash, parts: &[&[u8]], out: &mut Vec<u8>) {
                super::super::rustcrypto::RustCrypto.digest(hash, parts, out)
            }
        }
        static PARTIAL: CryptoProvider = CryptoProvider::new("partial", false, &GcmOnly);
        let rust_crypto = CryptoProvider::rust_crypto();
        assert_eq!(
            PARTIAL.cipher_supplier(CipherAlgorithm::Aes128Gcm).unwrap(),
            &PARTIAL
        );
        assert_eq!(
            PARTIAL.cipher_supplier(CipherAlgorithm::Aes128Ctr).unwrap(),
            rust_crypto
        );
        assert_eq!(
            PARTIAL.mac_supplier(MacAlgorithm::HmacSha256).unwrap(),
            rust_crypto
        );
        // CTR and its MAC both come from RustCrypto and work.
        let mut sealer = Sealer::new();
        sealer.set_crypto_provider(&PARTIAL);
        sealer
            .set_keys(keys(CipherAlgorithm::Aes128Ctr, MacAlgorithm::HmacSha256))
            .unwrap();
        let mut wire = Vec::new();
        sealer.seal(&[2, 1], &mut wire).unwrap();
    }
}
