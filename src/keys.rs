//! Per-direction key material (the RFC 4253 §7.2 derivation that fills it
//! is [`crate::KeyDerivation`]).
//!
//! [`Keys`] holds what one direction of a connection needs after NEWKEYS: the
//! cipher and MAC algorithms and their key, IV and MAC key. It checks lengths
//! against the algorithm table when built, wipes its bytes when dropped, and
//! never prints them.

use std::fmt;

use zeroize::Zeroizing;

use crate::algorithm::{CipherAlgorithm, CompressionAlgorithm, MacAlgorithm, Mode};
use crate::error::Error;

/// The three pieces of one direction's key material, each by name, so a key
/// and an IV of the same length cannot trade places unnoticed at the call
/// site (aes128-ctr's are both 16 bytes).
#[derive(Clone, Copy)]
pub struct KeyMaterial<'a> {
    /// The cipher key (RFC 4253 §7.2 letters C and D).
    pub key: &'a [u8],
    /// The IV (letters A and B); empty for ciphers that take none.
    pub iv: &'a [u8],
    /// The MAC key (letters E and F); empty with an AEAD cipher.
    pub mac_key: &'a [u8],
}

impl fmt::Debug for KeyMaterial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("iv", &format_args!("<{} bytes>", self.iv.len()))
            .field("mac_key", &format_args!("<{} bytes>", self.mac_key.len()))
            .finish()
    }
}

/// Key material for one direction of a connection.
///
/// ```
/// use ssh_packetizer::{CipherAlgorithm, KeyMaterial, Keys, MacAlgorithm};
///
/// let keys = Keys::new(
///     CipherAlgorithm::Aes128Ctr,
///     MacAlgorithm::HmacSha256Etm,
///     KeyMaterial { key: &[1; 16], iv: &[2; 16], mac_key: &[3; 32] },
/// )?;
/// assert_eq!(keys.cipher().name(), "aes128-ctr");
/// assert!(format!("{keys:?}").contains("<16 bytes>")); // sizes only, never bytes
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
#[derive(Clone)]
pub struct Keys {
    cipher: CipherAlgorithm,
    mac: MacAlgorithm,
    mode: Mode,
    compression: CompressionAlgorithm,
    key: Zeroizing<Vec<u8>>,
    iv: Zeroizing<Vec<u8>>,
    mac_key: Zeroizing<Vec<u8>>,
}

impl Keys {
    /// Key material for `cipher` and `mac`. Each length is checked against the
    /// algorithm table; the error names the field that is wrong. An AEAD cipher
    /// takes [`MacAlgorithm::None`] and an empty MAC key.
    pub fn new(
        cipher: CipherAlgorithm,
        mac: MacAlgorithm,
        material: KeyMaterial<'_>,
    ) -> Result<Keys, Error> {
        let KeyMaterial { key, iv, mac_key } = material;
        let mode = Mode::of(cipher, mac)?;
        for (available, algorithm) in [
            (cipher.is_available(), cipher.name()),
            (mac.is_available(), mac.name()),
        ] {
            // A legacy algorithm in a build without the `legacy` feature.
            if !available {
                return Err(Error::Unsupported { algorithm });
            }
        }
        let c = cipher.spec();
        let m = mac.spec();
        for (what, expected, got) in [
            ("key", c.key_len(), key.len()),
            ("iv", c.iv_len(), iv.len()),
            ("mac key", m.key_len(), mac_key.len()),
        ] {
            if expected != got {
                return Err(Error::BadKeyLength {
                    what,
                    expected,
                    got,
                });
            }
        }
        Ok(Keys {
            cipher,
            mac,
            mode,
            compression: CompressionAlgorithm::None,
            key: Zeroizing::new(key.to_vec()),
            iv: Zeroizing::new(iv.to_vec()),
            mac_key: Zeroizing::new(mac_key.to_vec()),
        })
    }

    /// No encryption and no MAC: the state before the first NEWKEYS.
    pub fn clear() -> Keys {
        Keys {
            cipher: CipherAlgorithm::None,
            mac: MacAlgorithm::None,
            mode: Mode::Clear,
            compression: CompressionAlgorithm::None,
            key: Zeroizing::new(Vec::new()),
            iv: Zeroizing::new(Vec::new()),
            mac_key: Zeroizing::new(Vec::new()),
        }
    }

    /// The cipher these keys are for.
    pub fn cipher(&self) -> CipherAlgorithm {
        self.cipher
    }

    /// The MAC these keys are for ([`MacAlgorithm::None`] with AEAD ciphers).
    pub fn mac(&self) -> MacAlgorithm {
        self.mac
    }

    /// How the cipher and MAC combine on the wire.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The same keys with `compression` negotiated for their direction.
    /// Installing them starts a fresh compression stream, as OpenSSH does at
    /// every NEWKEYS.
    pub fn with_compression(mut self, compression: CompressionAlgorithm) -> Keys {
        self.compression = compression;
        self
    }

    /// The compression negotiated with these keys.
    pub fn compression(&self) -> CompressionAlgorithm {
        self.compression
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn iv(&self) -> &[u8] {
        &self.iv
    }

    pub(crate) fn mac_key(&self) -> &[u8] {
        &self.mac_key
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only sizes: the bytes themselves must never reach a log.
        f.debug_struct("Keys")
            .field("cipher", &self.cipher.name())
            .field("mac", &self.mac.name())
            .field("compression", &self.compression.name())
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("iv", &format_args!("<{} bytes>", self.iv.len()))
            .field("mac_key", &format_args!("<{} bytes>", self.mac_key.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_field_by_field() {
        let c = CipherAlgorithm::Aes128Ctr;
        let m = MacAlgorithm::HmacSha256;
        assert!(Keys::new(
            c,
            m,
            KeyMaterial {
                key: &[0; 16],
                iv: &[0; 16],
                mac_key: &[0; 32],
            },
        )
        .is_ok());
        let err = Keys::new(
            c,
            m,
            KeyMaterial {
                key: &[0; 15],
                iv: &[0; 16],
                mac_key: &[0; 32],
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::BadKeyLength {
                what: "key",
                expected: 16,
                got: 15
            }
        ));
        let err = Keys::new(
            c,
            m,
            KeyMaterial {
                key: &[0; 16],
                iv: &[0; 12],
                mac_key: &[0; 32],
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::BadKeyLength { what: "iv", .. }));
        let err = Keys::new(
            c,
            m,
            KeyMaterial {
                key: &[0; 16],
                iv: &[0; 16],
                mac_key: &[0; 20],
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::BadKeyLength {
                what: "mac key",
                expected: 32,
                got: 20
            }
        ));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let keys = Keys::new(
            CipherAlgorithm::Aes128Ctr,
            MacAlgorithm::HmacSha1,
            KeyMaterial {
                key: &[0xAB; 16],
                iv: &[0xCD; 16],
                mac_key: &[0xEF; 20],
            },
        )
        .unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("aes128-ctr"));
        for needle in ["171", "ab", "AB", "205", "cd", "239", "ef"] {
            assert!(!shown.contains(needle), "{shown} shows {needle}");
        }
    }
}
