//! RFC 4253 §7.2 key derivation, on the hash of a [`CryptoProvider`]: the
//! one place a finished key exchange turns into [`Keys`].

use std::fmt;

use zeroize::Zeroizing;

use crate::algorithm::{CipherAlgorithm, KdfHash, MacAlgorithm};
use crate::crypto::CryptoProvider;
use crate::error::Error;
use crate::keys::{KeyMaterial, Keys};

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
            &Self::encode_mpint(shared_secret),
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

    /// An unsigned big-endian integer as an SSH mpint (RFC 4251 §5): minimal
    /// two's complement with a `u32` length prefix: K as a key exchange
    /// hashes it.
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
        // The hash states ran on the stack below this frame.
        crate::wipe::scrub_stack();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_encoding() {
        assert_eq!(&KeyDerivation::encode_mpint(&[])[..], &[0, 0, 0, 0]);
        assert_eq!(&KeyDerivation::encode_mpint(&[0, 0])[..], &[0, 0, 0, 0]);
        assert_eq!(
            &KeyDerivation::encode_mpint(&[0, 0x7f])[..],
            &[0, 0, 0, 1, 0x7f]
        );
        assert_eq!(
            &KeyDerivation::encode_mpint(&[0x80])[..],
            &[0, 0, 0, 2, 0, 0x80]
        );
        // RFC 4251 §5 example: 0x9a378f9b2e332a7 encodes as 08 09 a3 78 f9 b2 e3 32 a7.
        assert_eq!(
            &KeyDerivation::encode_mpint(&[0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7])[..],
            &[0, 0, 0, 8, 0x09, 0xa3, 0x78, 0xf9, 0xb2, 0xe3, 0x32, 0xa7]
        );
    }
}
