//! Per-direction key material and RFC 4253 §7.2 key derivation.
//!
//! [`Keys`] holds what one direction of a connection needs after NEWKEYS: the
//! cipher and MAC algorithms and their key, IV and MAC key. It checks lengths
//! against the algorithm table when built, wipes its bytes when dropped, and
//! never prints them.

use std::fmt;

use zeroize::Zeroizing;

use crate::algorithm::{CipherAlgorithm, CompressionAlgorithm, MacAlgorithm, Mode};
use crate::crypto::CryptoProvider;
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

/// The hash a key exchange method uses, which also derives its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfHash {
    /// SHA-256 (curve25519-sha256, ecdh-sha2-nistp256, diffie-hellman-group14-sha256, ...).
    Sha256,
    /// SHA-512 (diffie-hellman-group16-sha512, sntrup761x25519-sha512, ...).
    Sha512,
}

/// Which way key material flows; decides the letters of RFC 4253 §7.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: IV 'A', key 'C', MAC key 'E'.
    ClientToServer,
    /// Server to client: IV 'B', key 'D', MAC key 'F'.
    ServerToClient,
}

/// RFC 4253 §7.2 key derivation from a finished key exchange.
///
/// `K1 = HASH(K || H || X || session_id)`, `Kn = HASH(K || H || K1 || ... ||
/// K(n-1))`, concatenated until long enough.
pub struct KeyDerivation {
    hash: KdfHash,
    /// Whose hash derives: the process default provider unless set.
    provider: &'static CryptoProvider,
    /// K as it is hashed (mpint or string encoding, with its length prefix).
    encoded_k: Zeroizing<Vec<u8>>,
    exchange_hash: Vec<u8>,
    session_id: Vec<u8>,
}

impl KeyDerivation {
    /// Derivation from a shared secret given as an unsigned big-endian integer,
    /// as most key exchange methods (Diffie-Hellman, ECDH, curve25519) define
    /// it; it is encoded as an SSH mpint here.
    pub fn from_shared_secret(
        hash: KdfHash,
        shared_secret: &[u8],
        exchange_hash: &[u8],
        session_id: &[u8],
    ) -> KeyDerivation {
        Self::from_encoded_secret(
            hash,
            &encode_mpint(shared_secret),
            exchange_hash,
            session_id,
        )
    }

    /// Derivation from K already in its wire encoding, length prefix included
    /// (the post-quantum hybrid methods encode K as a string, not an mpint).
    pub fn from_encoded_secret(
        hash: KdfHash,
        encoded_k: &[u8],
        exchange_hash: &[u8],
        session_id: &[u8],
    ) -> KeyDerivation {
        KeyDerivation {
            hash,
            provider: CryptoProvider::get_default(),
            encoded_k: Zeroizing::new(encoded_k.to_vec()),
            exchange_hash: exchange_hash.to_vec(),
            session_id: session_id.to_vec(),
        }
    }

    /// Derives with `provider`'s hash (a FIPS provider's own, so that the
    /// keys never leave its module's primitives) instead of the process
    /// default's.
    pub fn with_crypto_provider(mut self, provider: &'static CryptoProvider) -> KeyDerivation {
        self.provider = provider;
        self
    }

    /// `len` bytes of key material for `letter` ('A' to 'F').
    pub fn derive(&self, letter: u8, len: usize) -> Zeroizing<Vec<u8>> {
        // Every provider has SHA-256 and SHA-512, FIPS ones included.
        let backend = self.provider.backend();
        let (k, h) = (&self.encoded_k[..], &self.exchange_hash[..]);
        let mut out = Zeroizing::new(Vec::with_capacity(len + 64));
        backend.digest(self.hash, &[k, h, &[letter], &self.session_id], &mut out);
        while out.len() < len {
            let so_far = Zeroizing::new(out.to_vec());
            backend.digest(self.hash, &[k, h, &so_far], &mut out);
        }
        out.truncate(len);
        out
    }

    /// The [`Keys`] for one direction, with each piece as long as the table
    /// says `cipher` and `mac` need.
    pub fn keys(
        &self,
        direction: Direction,
        cipher: CipherAlgorithm,
        mac: MacAlgorithm,
    ) -> Result<Keys, Error> {
        let (iv, key, mac_key) = match direction {
            Direction::ClientToServer => (b'A', b'C', b'E'),
            Direction::ServerToClient => (b'B', b'D', b'F'),
        };
        Keys::new(
            cipher,
            mac,
            KeyMaterial {
                key: &self.derive(key, cipher.spec().key_len()),
                iv: &self.derive(iv, cipher.spec().iv_len()),
                mac_key: &self.derive(mac_key, mac.spec().key_len()),
            },
        )
    }
}

impl fmt::Debug for KeyDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDerivation")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// An unsigned big-endian integer as an SSH mpint (RFC 4251 §5): minimal
/// two's complement with a `u32` length prefix.
pub fn encode_mpint(unsigned_be: &[u8]) -> Zeroizing<Vec<u8>> {
    let first = unsigned_be
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(unsigned_be.len());
    let digits = &unsigned_be[first..];
    let sign_pad = usize::from(digits.first().is_some_and(|&b| b & 0x80 != 0));
    let body_len = digits.len() + sign_pad;
    let mut out = Zeroizing::new(Vec::with_capacity(4 + body_len));
    // An mpint longer than u32::MAX cannot come out of any key exchange.
    out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes());
    if sign_pad == 1 {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
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

    #[test]
    fn mpint_encoding() {
        assert_eq!(&encode_mpint(&[])[..], &[0, 0, 0, 0]);
        assert_eq!(&encode_mpint(&[0, 0])[..], &[0, 0, 0, 0]);
        assert_eq!(&encode_mpint(&[0, 0x7f])[..], &[0, 0, 0, 1, 0x7f]);
        assert_eq!(&encode_mpint(&[0x80])[..], &[0, 0, 0, 2, 0, 0x80]);
        // RFC 4251 §5 example: 0x9a378f9b2e332a7 encodes as 08 09 a3 78 f9 b2 e3 32 a7.
        assert_eq!(
            &encode_mpint(&[0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7])[..],
            &[0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]
        );
    }
}
