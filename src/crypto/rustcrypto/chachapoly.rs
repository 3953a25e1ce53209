//! chacha20-poly1305@openssh.com, as OpenSSH's PROTOCOL.chacha20poly1305
//! defines it, over RustCrypto's `chacha20` and `poly1305`.
//!
//! The 64-byte key splits into K_main (bytes 0..32), which encrypts the
//! packet, and K_header (bytes 32..64), which encrypts only the 4 length
//! bytes. Both run the original 64-bit-nonce ChaCha20 with the sequence number
//! as a big-endian nonce. The first 32 bytes of K_main's keystream block 0 key
//! a one-time Poly1305 over the encrypted length and the ciphertext; the
//! payload is encrypted from block 1. Deriving that one-time key is the only
//! per-packet setup, and it is part of the construction: the ChaCha20 "key
//! schedule" is the key itself.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::{ChaCha20Legacy, Key, LegacyNonce};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::ChaChaPolyKey;
use crate::error::Error;
use crate::keys::Keys;

/// Bytes of one ChaCha20 keystream block.
const BLOCK: usize = 64;

/// The keys of one direction.
pub(crate) struct ChaChaPoly {
    main: Zeroizing<Key>,
    header: Zeroizing<Key>,
}

/// Poly1305 over `data`, unpadded as OpenSSH computes it. Whole 16-byte
/// blocks go through `update`, which lets the SIMD backend take several at a
/// time (half again as fast on 32 KiB as one block at a time); only the tail
/// goes through `compute_unpadded`.
fn tag(mut poly: Poly1305, data: &[u8]) -> poly1305::Tag {
    let whole = data.len() - data.len() % poly1305::BLOCK_SIZE;
    let (blocks, _) = poly1305::Block::slice_as_chunks(&data[..whole]);
    poly.update(blocks);
    poly.compute_unpadded(&data[whole..])
}

fn nonce(seq: u32) -> LegacyNonce {
    LegacyNonce::from(u64::from(seq).to_be_bytes())
}

impl ChaChaPoly {
    pub(crate) fn new(keys: &Keys) -> Result<ChaChaPoly, Error> {
        let key = keys.key();
        if key.len() != 2 * 32 {
            return Err(Error::BadKeyLength {
                what: "key",
                expected: 64,
                got: key.len(),
            });
        }
        let mut main = Zeroizing::new(Key::default());
        let mut header = Zeroizing::new(Key::default());
        main.copy_from_slice(&key[..32]);
        header.copy_from_slice(&key[32..]);
        Ok(ChaChaPoly { main, header })
    }

    /// The K_main keystream for packet `seq`, positioned at block 1, and the
    /// Poly1305 instance keyed from block 0.
    fn packet_keys(&self, seq: u32) -> (ChaCha20Legacy, Poly1305) {
        let mut stream = ChaCha20Legacy::new(&self.main, &nonce(seq));
        let mut block0 = Zeroizing::new([0u8; BLOCK]);
        stream.write_keystream(&mut block0[..]);
        let mut poly_key = Zeroizing::new(poly1305::Key::default());
        poly_key.copy_from_slice(&block0[..32]);
        (stream, Poly1305::new(&poly_key))
    }
}

impl ChaChaPolyKey for ChaChaPoly {
    fn read_length(&mut self, seq: u32, head: &[u8]) -> Option<u32> {
        let mut length: [u8; 4] = head.get(..4)?.try_into().ok()?;
        ChaCha20Legacy::new(&self.header, &nonce(seq)).apply_keystream(&mut length);
        Some(u32::from_be_bytes(length))
    }

    fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) {
        let (mut stream, poly) = self.packet_keys(seq);
        ChaCha20Legacy::new(&self.header, &nonce(seq)).apply_keystream(&mut packet[..4]);
        stream.apply_keystream(&mut packet[4..]);
        tag.copy_from_slice(&self::tag(poly, packet));
    }

    /// Verifies the tag over the still-encrypted packet, and only then
    /// decrypts the body; the length bytes stay encrypted in the buffer.
    fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> bool {
        let (mut stream, poly) = self.packet_keys(seq);
        let expected = self::tag(poly, packet);
        if !bool::from(expected.as_slice().ct_eq(tag)) {
            return false;
        }
        stream.apply_keystream(&mut packet[4..]);
        true
    }
}
