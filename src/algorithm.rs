//! The table of every algorithm the crate knows: SSH names, sizes and modes.
//!
//! This is data, not logic, in the spirit of OpenSSH's `ciphers[]` and
//! `macs[]` tables. Every other module asks this table; no other module spells
//! an algorithm name.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How a cipher family turns plaintext into ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherFamily {
    /// No encryption (before the first NEWKEYS).
    Clear,
    /// AES in counter mode; needs a separate MAC.
    AesCtr,
    /// AES-GCM as OpenSSH defines it (RFC 5647 style); its tag replaces the MAC.
    AesGcm,
    /// ChaCha20 with Poly1305 as OpenSSH defines it; its tag replaces the MAC.
    ChaChaPoly,
    /// A block cipher in CBC mode (AES or 3DES; feature `legacy`); needs a
    /// separate MAC.
    Cbc,
}

impl CipherFamily {
    /// Whether the family authenticates on its own (no MAC is negotiated).
    pub fn is_aead(self) -> bool {
        matches!(self, CipherFamily::AesGcm | CipherFamily::ChaChaPoly)
    }
}

/// One row of the cipher table.
#[derive(Debug)]
pub struct CipherSpec {
    name: &'static str,
    family: CipherFamily,
    key_len: usize,
    iv_len: usize,
    block_size: usize,
    tag_len: usize,
    legacy: bool,
}

impl CipherSpec {
    /// The SSH name, as negotiated in KEXINIT.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The family, which decides the wire mode.
    pub fn family(&self) -> CipherFamily {
        self.family
    }

    /// Key length in bytes.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// IV length in bytes (0 when the cipher takes none).
    pub fn iv_len(&self) -> usize {
        self.iv_len
    }

    /// The block size packets are aligned to. ChaCha20-Poly1305 and the clear
    /// mode use 8, as OpenSSH does; this is also the size rekey budgets count.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The AEAD tag length in bytes (0 for non-AEAD ciphers).
    pub fn tag_len(&self) -> usize {
        self.tag_len
    }
}

/// One row of the MAC table.
#[derive(Debug)]
pub struct MacSpec {
    name: &'static str,
    hash: Option<MacHash>,
    key_len: usize,
    mac_len: usize,
    etm: bool,
    legacy: bool,
}

impl MacSpec {
    /// The SSH name, as negotiated in KEXINIT.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The hash under the HMAC, or `None` for the `none` MAC.
    pub fn hash(&self) -> Option<MacHash> {
        self.hash
    }

    /// MAC key length in bytes.
    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// MAC output length in bytes, as sent on the wire.
    pub fn mac_len(&self) -> usize {
        self.mac_len
    }

    /// Encrypt-then-MAC (`-etm@openssh.com`): the length travels in the clear
    /// and the MAC covers the ciphertext.
    pub fn etm(&self) -> bool {
        self.etm
    }
}

/// The hash functions an HMAC can be built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MacHash {
    /// SHA-1 (hmac-sha1).
    Sha1,
    /// SHA-256 (hmac-sha2-256).
    Sha256,
    /// SHA-512 (hmac-sha2-512).
    Sha512,
    /// MD5 (hmac-md5; feature `legacy`).
    Md5,
    /// Not a hash under an HMAC: UMAC (RFC 4418) over AES-128, with the
    /// row's MAC length as its tag length (8 or 16 bytes).
    Umac,
}

/// How length, encryption and authentication combine for a cipher and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// No encryption, no MAC: before the first NEWKEYS.
    Clear,
    /// The whole packet, length included, is encrypted; the MAC covers the
    /// plaintext (RFC 4253 §6.4).
    EncryptAndMac,
    /// The length is sent in the clear; the MAC covers the ciphertext and is
    /// checked before decrypting (`-etm@openssh.com`).
    EncryptThenMac,
    /// An AEAD cipher with its own tag (GCM, ChaCha20-Poly1305).
    Aead,
}

/// What negotiation needs of an algorithm kind: its names, and whether this
/// build runs it.
pub(crate) trait Named: FromStr + Copy {
    fn is_available(self) -> bool;
}

macro_rules! algorithm_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $spec:ty, $table:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $row:expr, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        static $table: &[$spec] = &[ $( $row, )+ ];

        impl $name {
            /// Every algorithm of this kind, in table order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// This algorithm's row of the table.
            pub fn spec(self) -> &'static $spec {
                &$table[self as usize]
            }

            /// The SSH name.
            pub fn name(self) -> &'static str {
                self.spec().name
            }

            /// Whether this is one of the legacy algorithms (CBC, 3DES,
            /// MD5, the truncated MACs), which run only with the `legacy`
            /// feature and are never in the default preference lists.
            pub fn is_legacy(self) -> bool {
                self.spec().legacy
            }

            /// Whether this build can run it: every algorithm but the
            /// legacy ones, which need the `legacy` feature.
            pub fn is_available(self) -> bool {
                !self.is_legacy() || cfg!(feature = "legacy")
            }
        }

        impl Named for $name {
            fn is_available(self) -> bool {
                $name::is_available(self)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(name: &str) -> Result<Self, Error> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|alg| alg.name() == name)
                    .ok_or_else(|| Error::UnknownAlgorithm { name: name.to_owned() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

const fn cipher(
    name: &'static str,
    family: CipherFamily,
    key_len: usize,
    iv_len: usize,
    block_size: usize,
    tag_len: usize,
) -> CipherSpec {
    CipherSpec {
        name,
        family,
        key_len,
        iv_len,
        block_size,
        tag_len,
        legacy: false,
    }
}

const fn mac(name: &'static str, hash: MacHash, len: usize, etm: bool) -> MacSpec {
    MacSpec {
        name,
        hash: Some(hash),
        key_len: len,
        mac_len: len,
        etm,
        legacy: false,
    }
}

/// A UMAC row: a 16-byte AES key and a tag of `tag_len` bytes.
const fn umac(name: &'static str, tag_len: usize, etm: bool) -> MacSpec {
    MacSpec {
        name,
        hash: Some(MacHash::Umac),
        key_len: 16,
        mac_len: tag_len,
        etm,
        legacy: false,
    }
}

/// A legacy CBC cipher (feature `legacy`): no AEAD tag, a MAC of its own.
const fn legacy_cbc(name: &'static str, key_len: usize, block_size: usize) -> CipherSpec {
    CipherSpec {
        name,
        family: CipherFamily::Cbc,
        key_len,
        iv_len: block_size,
        block_size,
        tag_len: 0,
        legacy: true,
    }
}

/// A legacy HMAC (feature `legacy`): its key is the hash's length, its MAC
/// `mac_len` bytes (the -96 forms send the first 12).
const fn legacy_mac(
    name: &'static str,
    hash: MacHash,
    key_len: usize,
    mac_len: usize,
    etm: bool,
) -> MacSpec {
    MacSpec {
        name,
        hash: Some(hash),
        key_len,
        mac_len,
        etm,
        legacy: true,
    }
}

use CipherFamily::{AesCtr, AesGcm, ChaChaPoly, Clear};

algorithm_enum! {
    /// A cipher, by its SSH name.
    CipherAlgorithm, CipherSpec, CIPHERS {
        /// `none`: no encryption, before the first NEWKEYS.
        None = cipher("none", Clear, 0, 0, 8, 0),
        /// `aes128-ctr`
        Aes128Ctr = cipher("aes128-ctr", AesCtr, 16, 16, 16, 0),
        /// `aes192-ctr`
        Aes192Ctr = cipher("aes192-ctr", AesCtr, 24, 16, 16, 0),
        /// `aes256-ctr`
        Aes256Ctr = cipher("aes256-ctr", AesCtr, 32, 16, 16, 0),
        /// `aes128-gcm@openssh.com`
        Aes128Gcm = cipher("aes128-gcm@openssh.com", AesGcm, 16, 12, 16, 16),
        /// `aes256-gcm@openssh.com`
        Aes256Gcm = cipher("aes256-gcm@openssh.com", AesGcm, 32, 12, 16, 16),
        /// `chacha20-poly1305@openssh.com`
        ChaCha20Poly1305 = cipher("chacha20-poly1305@openssh.com", ChaChaPoly, 64, 0, 8, 16),
        /// `aes128-cbc` (legacy)
        Aes128Cbc = legacy_cbc("aes128-cbc", 16, 16),
        /// `aes192-cbc` (legacy)
        Aes192Cbc = legacy_cbc("aes192-cbc", 24, 16),
        /// `aes256-cbc` (legacy)
        Aes256Cbc = legacy_cbc("aes256-cbc", 32, 16),
        /// `3des-cbc` (legacy): 8-byte blocks, so a 1 GiB rekey budget.
        TripleDesCbc = legacy_cbc("3des-cbc", 24, 8),
    }
}

algorithm_enum! {
    /// A MAC, by its SSH name.
    MacAlgorithm, MacSpec, MACS {
        /// `none`: no MAC (the clear mode, or with an AEAD cipher).
        None = MacSpec { name: "none", hash: None, key_len: 0, mac_len: 0, etm: false, legacy: false },
        /// `hmac-sha1`
        HmacSha1 = mac("hmac-sha1", MacHash::Sha1, 20, false),
        /// `hmac-sha2-256`
        HmacSha256 = mac("hmac-sha2-256", MacHash::Sha256, 32, false),
        /// `hmac-sha2-512`
        HmacSha512 = mac("hmac-sha2-512", MacHash::Sha512, 64, false),
        /// `hmac-sha1-etm@openssh.com`
        HmacSha1Etm = mac("hmac-sha1-etm@openssh.com", MacHash::Sha1, 20, true),
        /// `hmac-sha2-256-etm@openssh.com`
        HmacSha256Etm = mac("hmac-sha2-256-etm@openssh.com", MacHash::Sha256, 32, true),
        /// `hmac-sha2-512-etm@openssh.com`
        HmacSha512Etm = mac("hmac-sha2-512-etm@openssh.com", MacHash::Sha512, 64, true),
        /// `umac-64@openssh.com`
        Umac64 = umac("umac-64@openssh.com", 8, false),
        /// `umac-128@openssh.com`
        Umac128 = umac("umac-128@openssh.com", 16, false),
        /// `umac-64-etm@openssh.com`
        Umac64Etm = umac("umac-64-etm@openssh.com", 8, true),
        /// `umac-128-etm@openssh.com`
        Umac128Etm = umac("umac-128-etm@openssh.com", 16, true),
        /// `hmac-sha1-96` (legacy)
        HmacSha1_96 = legacy_mac("hmac-sha1-96", MacHash::Sha1, 20, 12, false),
        /// `hmac-md5` (legacy)
        HmacMd5 = legacy_mac("hmac-md5", MacHash::Md5, 16, 16, false),
        /// `hmac-md5-96` (legacy)
        HmacMd5_96 = legacy_mac("hmac-md5-96", MacHash::Md5, 16, 12, false),
        /// `hmac-sha1-96-etm@openssh.com` (legacy)
        HmacSha1_96Etm = legacy_mac("hmac-sha1-96-etm@openssh.com", MacHash::Sha1, 20, 12, true),
        /// `hmac-md5-etm@openssh.com` (legacy)
        HmacMd5Etm = legacy_mac("hmac-md5-etm@openssh.com", MacHash::Md5, 16, 16, true),
        /// `hmac-md5-96-etm@openssh.com` (legacy)
        HmacMd5_96Etm = legacy_mac("hmac-md5-96-etm@openssh.com", MacHash::Md5, 16, 12, true),
    }
}

/// One row of the compression table.
#[derive(Debug)]
pub struct CompressionSpec {
    name: &'static str,
    deflates: bool,
    delayed: bool,
    legacy: bool,
}

impl CompressionSpec {
    /// The SSH name, as negotiated in KEXINIT.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether payloads are deflated at all.
    pub fn deflates(&self) -> bool {
        self.deflates
    }

    /// Whether compression waits for user authentication to succeed
    /// (`zlib@openssh.com`) rather than starting with the keys (`zlib`).
    pub fn delayed(&self) -> bool {
        self.delayed
    }
}

const fn compression(name: &'static str, deflates: bool, delayed: bool) -> CompressionSpec {
    CompressionSpec {
        name,
        deflates,
        delayed,
        legacy: false,
    }
}

algorithm_enum! {
    /// A compression method, by its SSH name.
    CompressionAlgorithm, CompressionSpec, COMPRESSIONS {
        /// `none`
        None = compression("none", false, false),
        /// `zlib`: starts with the new keys.
        Zlib = compression("zlib", true, false),
        /// `zlib@openssh.com`: starts once user authentication succeeded.
        ZlibOpenSsh = compression("zlib@openssh.com", true, true),
    }
}

impl CipherAlgorithm {
    /// Whether this cipher authenticates on its own (no MAC is used).
    pub fn is_aead(self) -> bool {
        self.spec().family.is_aead()
    }
}

impl Mode {
    /// The mode a cipher and MAC combine into, or an error for pairs this crate
    /// refuses: an AEAD cipher with a MAC, an encrypting cipher without one
    /// (unauthenticated encryption), or a MAC without encryption.
    pub fn of(cipher: CipherAlgorithm, mac: MacAlgorithm) -> Result<Mode, Error> {
        let family = cipher.spec().family;
        let mode = match (family, mac) {
            (Clear, MacAlgorithm::None) => Some(Mode::Clear),
            (AesGcm | ChaChaPoly, MacAlgorithm::None) => Some(Mode::Aead),
            (AesCtr | CipherFamily::Cbc, m) if m != MacAlgorithm::None => Some(if m.spec().etm() {
                Mode::EncryptThenMac
            } else {
                Mode::EncryptAndMac
            }),
            _ => None,
        };
        mode.ok_or(Error::IncompatibleAlgorithms {
            cipher: cipher.name(),
            mac: mac.name(),
        })
    }

    /// Whether the 4 length bytes are sent in the clear (and so are outside the
    /// block-aligned region). ChaCha20-Poly1305 encrypts them with a separate
    /// key but, as here, aligns only the rest.
    pub fn length_outside_alignment(self) -> bool {
        matches!(self, Mode::EncryptThenMac | Mode::Aead)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for &c in CipherAlgorithm::ALL {
            assert_eq!(c.name().parse::<CipherAlgorithm>().unwrap(), c);
            assert_eq!(c.to_string(), c.name());
        }
        for &m in MacAlgorithm::ALL {
            assert_eq!(m.name().parse::<MacAlgorithm>().unwrap(), m);
        }
        for &z in CompressionAlgorithm::ALL {
            assert_eq!(z.name().parse::<CompressionAlgorithm>().unwrap(), z);
        }
    }

    #[test]
    fn legacy_algorithms_run_only_with_their_feature() {
        use MacAlgorithm as M;
        let legacy: Vec<_> = M::ALL.iter().filter(|m| m.is_legacy()).collect();
        assert_eq!(legacy.len(), 6, "sha1-96, md5, md5-96, each plain and etm");
        for m in legacy {
            assert_eq!(m.is_available(), cfg!(feature = "legacy"), "{m}");
        }
        assert!(M::HmacSha256Etm.is_available());
        assert_eq!(M::HmacMd5_96.spec().mac_len(), 12);
        assert_eq!(M::HmacMd5_96.spec().key_len(), 16);
        assert_eq!(M::HmacSha1_96Etm.spec().key_len(), 20);
    }

    #[test]
    fn unknown_name_is_named_in_the_error() {
        let err = "blowfish-cbc".parse::<CipherAlgorithm>().unwrap_err();
        assert!(matches!(&err, Error::UnknownAlgorithm { name } if name == "blowfish-cbc"));
        assert!(err.to_string().contains("blowfish-cbc"));
        assert!("hmac-ripemd160".parse::<MacAlgorithm>().is_err());
    }

    #[test]
    fn table_sizes_match_the_reference() {
        use CipherAlgorithm as C;
        let sizes: Vec<_> = C::ALL
            .iter()
            .map(|c| (c.spec().key_len, c.spec().iv_len, c.spec().tag_len))
            .collect();
        assert_eq!(
            sizes,
            [
                (0, 0, 0),
                (16, 16, 0),
                (24, 16, 0),
                (32, 16, 0),
                (16, 12, 16),
                (32, 12, 16),
                (64, 0, 16),
                // aes128/192/256-cbc, 3des-cbc (OpenSSH's
                // cipher.c): the IV is one block.
                (16, 16, 0),
                (24, 16, 0),
                (32, 16, 0),
                (24, 8, 0)
            ]
        );
        assert_eq!(MacAlgorithm::HmacSha1Etm.spec().mac_len, 20);
        assert_eq!(MacAlgorithm::HmacSha512.spec().key_len, 64);
    }

    #[test]
    fn modes_of_pairs() {
        use CipherAlgorithm as C;
        use MacAlgorithm as M;
        assert_eq!(Mode::of(C::None, M::None).unwrap(), Mode::Clear);
        assert_eq!(
            Mode::of(C::Aes128Ctr, M::HmacSha256).unwrap(),
            Mode::EncryptAndMac
        );
        assert_eq!(
            Mode::of(C::Aes256Ctr, M::HmacSha1Etm).unwrap(),
            Mode::EncryptThenMac
        );
        assert_eq!(Mode::of(C::Aes128Gcm, M::None).unwrap(), Mode::Aead);
        assert!(Mode::of(C::Aes128Ctr, M::None).is_err());
        assert!(Mode::of(C::ChaCha20Poly1305, M::HmacSha1).is_err());
        assert!(Mode::of(C::None, M::HmacSha1).is_err());
    }
}
