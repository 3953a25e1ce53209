//! UMAC (RFC 4418) with 64- and 128-bit tags, as OpenSSH's
//! `umac-64@openssh.com` and `umac-128@openssh.com` use it: AES-128 as the
//! block cipher, the packet's sequence number as an 8-byte big-endian nonce.
//!
//! Written here because no maintained crate implements UMAC. The layers
//! follow the RFC: a KDF and a pad-derivation function over AES; UHASH made
//! of NH (L1, over 1024-byte chunks), a polynomial hash (L2, mod 2^64 - 59,
//! ramping to mod 2^128 - 159 past 16 MiB of input) and an inner product
//! (L3, mod 2^36 - 5). Every key is expanded once, when the keys are
//! installed; a tag costs the hashing and at most one AES block.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use zeroize::{Zeroize, Zeroizing};

/// The chunk NH hashes at a time (the L1 key's length, in bytes).
const L1_CHUNK: usize = 1024;
/// L2 hashes this many bytes of L1 output with the 64-bit polynomial; the
/// rest (messages over 16 MiB) with the 128-bit one.
const POLY64_LIMIT: usize = 1 << 17;
const P64: u64 = u64::MAX - 58; // 2^64 - 59
const P36: u64 = (1 << 36) - 5;
const P128: u128 = u128::MAX - 158; // 2^128 - 159
const MASK64: u64 = 0x01ff_ffff_01ff_ffff;
const MASK128: u128 = 0x01ff_ffff_01ff_ffff_01ff_ffff_01ff_ffff;

/// `numbytes` of key material for `index` (RFC 4418 §3.2.1).
fn kdf(aes: &Aes128, index: u64, numbytes: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(numbytes + 16));
    let mut counter = 1u64;
    while out.len() < numbytes {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&index.to_be_bytes());
        block[8..].copy_from_slice(&counter.to_be_bytes());
        let mut b = block.into();
        aes.encrypt_block(&mut b);
        out.extend_from_slice(&b);
        b.zeroize();
        counter += 1;
    }
    out.truncate(numbytes);
    out
}

/// One UHASH iteration's keys.
#[derive(Clone)]
struct Iteration {
    /// L2: the 64-bit and 128-bit polynomial keys, masked.
    k64: u64,
    k128: u128,
    /// L3: eight keys reduced mod 2^36 - 5, and the final 4-byte mask.
    l3: [u64; 8],
    l3_mask: u32,
}

/// A UMAC key expanded for one tag length (8 or 16 bytes).
#[derive(Clone)]
pub(crate) struct Umac {
    /// NH's key words (big-endian words of the KDF output), long enough for
    /// every iteration's 16-byte offset.
    l1: Zeroizing<Vec<u32>>,
    iterations: Vec<Iteration>,
    /// The pad's block cipher, keyed with KDF(K, 0, 16).
    pad: Aes128,
    tag_len: usize,
}

impl Drop for Umac {
    fn drop(&mut self) {
        for it in &mut self.iterations {
            it.k64.zeroize();
            it.k128.zeroize();
            it.l3.zeroize();
            it.l3_mask.zeroize();
        }
    }
}

impl Umac {
    /// `key` is 16 bytes; `tag_len` 8 or 16.
    pub(crate) fn new(key: &[u8; 16], tag_len: usize) -> Umac {
        let aes = Aes128::new(key.into());
        let iters = tag_len / 4;
        let l1_bytes = kdf(&aes, 1, L1_CHUNK + (iters - 1) * 16);
        let l1 = Zeroizing::new(
            l1_bytes
                .chunks_exact(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .collect::<Vec<_>>(),
        );
        let l2 = kdf(&aes, 2, iters * 24);
        let l3a = kdf(&aes, 3, iters * 64);
        let l3b = kdf(&aes, 4, iters * 4);
        let be64 = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        let iterations = (0..iters)
            .map(|i| {
                let k2 = &l2[i * 24..(i + 1) * 24];
                let k3 = &l3a[i * 64..(i + 1) * 64];
                let mut l3 = [0u64; 8];
                for (j, k) in l3.iter_mut().enumerate() {
                    *k = be64(&k3[j * 8..(j + 1) * 8]) % P36;
                }
                Iteration {
                    k64: be64(&k2[..8]) & MASK64,
                    k128: u128::from_be_bytes(k2[8..24].try_into().unwrap_or([0; 16])) & MASK128,
                    l3,
                    l3_mask: u32::from_be_bytes(
                        l3b[i * 4..(i + 1) * 4].try_into().unwrap_or([0; 4]),
                    ),
                }
            })
            .collect();
        let pad_key = kdf(&aes, 0, 16);
        let mut pad_key16 = [0u8; 16];
        pad_key16.copy_from_slice(&pad_key);
        let pad = Aes128::new(&pad_key16.into());
        pad_key16.zeroize();
        Umac {
            l1,
            iterations,
            pad,
            tag_len,
        }
    }

    /// The tag of `message` under `nonce` (8 bytes), into `out` (the tag
    /// length).
    pub(crate) fn tag(&self, message: &[u8], nonce: &[u8; 8], out: &mut [u8]) {
        // PDF (RFC 4418 §3.2.2): a 64-bit tag is half of the AES block of
        // the nonce with its low bit cleared; the bit says which half.
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(nonce);
        let half = if self.tag_len == 8 {
            let bit = usize::from(nonce[7] & 1);
            block[7] &= !1;
            bit
        } else {
            0
        };
        let mut pad = block.into();
        self.pad.encrypt_block(&mut pad);
        let pad = &pad[half * 8..half * 8 + self.tag_len];
        for (i, it) in self.iterations.iter().enumerate() {
            let word = uhash_iteration(&self.l1[i * 4..], it, message);
            for (k, byte) in word.to_be_bytes().iter().enumerate() {
                out[i * 4 + k] = byte ^ pad[i * 4 + k];
            }
        }
    }
}

/// One iteration of UHASH: L1 (NH with this iteration's key offset), L2,
/// L3; 4 bytes of tag before the pad.
fn uhash_iteration(l1_key: &[u32], it: &Iteration, message: &[u8]) -> u32 {
    let l1_key = &l1_key[..L1_CHUNK / 4];
    // L1: one 64-bit word per 1024-byte chunk; the last (or only) chunk
    // padded with zeros to 32 bytes, each word plus the chunk's bit length.
    let mut l2 = Poly::new(it);
    let mut single = None;
    let chunks = message.len().div_ceil(L1_CHUNK).max(1);
    for c in 0..chunks {
        let chunk = &message[c * L1_CHUNK..message.len().min((c + 1) * L1_CHUNK)];
        let word = nh(l1_key, chunk).wrapping_add(8 * chunk.len() as u64);
        if chunks == 1 {
            single = Some(word);
        } else {
            l2.push(word);
        }
    }
    // A message of one chunk skips L2: its 8 bytes, zero-extended to 16.
    let b = match single {
        Some(word) => u128::from(word),
        None => l2.finish(),
    };
    l3(it, b)
}

/// NH over one chunk: 32-byte blocks of little-endian message words added
/// to the key words, multiplied in pairs 4 apart, summed mod 2^64. A short
/// last block (or an empty chunk) is padded with zeros to 32 bytes.
fn nh(key: &[u32], chunk: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut blocks = chunk.chunks_exact(32);
    let mut offset = 0;
    for block in &mut blocks {
        sum = sum.wrapping_add(nh_block(&key[offset..offset + 8], block));
        offset += 8;
    }
    let rest = blocks.remainder();
    if !rest.is_empty() || chunk.is_empty() {
        let mut padded = [0u8; 32];
        padded[..rest.len()].copy_from_slice(rest);
        sum = sum.wrapping_add(nh_block(&key[offset..offset + 8], &padded));
        padded.zeroize();
    }
    sum
}

#[inline(always)]
fn nh_block(key: &[u32], block: &[u8]) -> u64 {
    let m = |i: usize| {
        u32::from_le_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ])
    };
    let mut sum = 0u64;
    for j in 0..4 {
        let a = u64::from(m(j).wrapping_add(key[j]));
        let b = u64::from(m(j + 4).wrapping_add(key[j + 4]));
        sum = sum.wrapping_add(a * b);
    }
    sum
}

/// L2: the polynomial hash of the L1 words (RFC 4418 §5.3), mod 2^64 - 59
/// for the first 2^17 bytes, then mod 2^128 - 159 over the rest.
struct Poly<'a> {
    it: &'a Iteration,
    y64: u64,
    bytes: usize,
    /// Past the ramp: the 128-bit state and the 64-bit word waiting for its
    /// partner (words are 16 bytes there).
    y128: Option<u128>,
    half: Option<u64>,
}

impl Poly<'_> {
    fn new(it: &Iteration) -> Poly<'_> {
        Poly {
            it,
            y64: 1,
            bytes: 0,
            y128: None,
            half: None,
        }
    }

    fn push(&mut self, word: u64) {
        if self.bytes < POLY64_LIMIT {
            self.y64 = poly64_step(self.it.k64, self.y64, word);
            self.bytes += 8;
            return;
        }
        // The ramp: a 128-bit polynomial from 1 over the 64-bit result,
        // then the rest of the words in pairs.
        let (k128, y64) = (self.it.k128, self.y64);
        let y = *self
            .y128
            .get_or_insert_with(|| poly128_step(k128, 1, u128::from(y64)));
        match self.half.take() {
            None => self.half = Some(word),
            Some(high) => {
                let m = (u128::from(high) << 64) | u128::from(word);
                self.y128 = Some(poly128_step(self.it.k128, y, m));
            }
        }
    }

    fn finish(mut self) -> u128 {
        let Some(_) = self.y128 else {
            return u128::from(self.y64);
        };
        // Past the ramp: 0x80 then zeros to a 16-byte word.
        let y = self.y128.unwrap_or(0);
        let m = match self.half.take() {
            Some(high) => (u128::from(high) << 64) | (0x80u128 << 56),
            None => 0x80u128 << 120,
        };
        poly128_step(self.it.k128, y, m)
    }
}

/// `k * y + m` mod 2^64 - 59, with the RFC's escape for words at or past
/// 2^64 - 2^32.
fn poly64_step(k: u64, y: u64, m: u64) -> u64 {
    let step = |y: u64, m: u64| -> u64 {
        let r = (u128::from(k) * u128::from(y) + u128::from(m)) % u128::from(P64);
        r as u64
    };
    if m >= u64::MAX - u64::from(u32::MAX) {
        // 2^64 - 2^32 and above: the marker p - 1, then m - 59.
        let y = step(y, P64 - 1);
        step(y, m - 59)
    } else {
        step(y, m)
    }
}

/// `k * y + m` mod 2^128 - 159, with the escape for words at or past
/// 2^128 - 2^96.
fn poly128_step(k: u128, y: u128, m: u128) -> u128 {
    if m >= u128::MAX - ((1u128 << 96) - 1) {
        let y = mul_add_mod_p128(k, y, P128 - 1);
        mul_add_mod_p128(k, y, m - 159)
    } else {
        mul_add_mod_p128(k, y, m)
    }
}

/// `k * y + m` mod 2^128 - 159, for `y`, `m` < 2^128 and `k` masked.
fn mul_add_mod_p128(k: u128, y: u128, m: u128) -> u128 {
    // The 256-bit product as four 64-bit limbs.
    let (k0, k1) = (k as u64 as u128, k >> 64);
    let (y0, y1) = (y as u64 as u128, y >> 64);
    let p00 = k0 * y0;
    let p01 = k0 * y1;
    let p10 = k1 * y0;
    let p11 = k1 * y1;
    let (mid, carry_mid) = p01.overflowing_add(p10);
    let (lo, carry_lo) = p00.overflowing_add(mid << 64);
    let hi = p11 + (mid >> 64) + (u128::from(carry_mid) << 64) + u128::from(carry_lo);
    // 2^128 = 159 (mod p): hi * 2^128 + lo = hi * 159 + lo.
    let reduce = |hi: u128, lo: u128| -> (u128, u128) {
        let (h0, h1) = (hi as u64 as u128, hi >> 64);
        let t0 = h0 * 159;
        let t1 = h1 * 159; // times 2^64
        let (s, c1) = lo.overflowing_add(t0);
        let (s, c2) = s.overflowing_add(t1 << 64);
        (u128::from(c1) + u128::from(c2) + (t1 >> 64), s)
    };
    let (hi, lo) = reduce(hi, lo);
    let (hi, lo) = reduce(hi, lo);
    let (mut r, c) = lo.overflowing_add(hi * 159);
    if c {
        r = r.wrapping_add(159);
    }
    let (mut r, c) = r.overflowing_add(m);
    if c {
        r = r.wrapping_add(159);
    }
    while r >= P128 {
        r -= P128;
    }
    r
}

/// L3: the inner product of B's eight 16-bit words with the keys, mod
/// 2^36 - 5, then mod 2^32, masked.
fn l3(it: &Iteration, b: u128) -> u32 {
    let bytes = b.to_be_bytes();
    let mut y = 0u64;
    for (j, k) in it.l3.iter().enumerate() {
        let m = u64::from(u16::from_be_bytes([bytes[2 * j], bytes[2 * j + 1]]));
        // m < 2^16 and k < 2^36: each term fits, and the sum of eight too.
        y += m * k;
    }
    ((y % P36) as u32) ^ it.l3_mask
}

/// OpenSSH's umac: the 64-bit big-endian sequence number is the nonce, and
/// the sequence number is not hashed.
impl crate::crypto::MacKey for Umac {
    fn sign(&mut self, seq: u32, data: &[u8], out: &mut [u8]) -> bool {
        self.tag(data, &u64::from(seq).to_be_bytes(), out);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn tag(message: &[u8], tag_len: usize) -> String {
        let umac = Umac::new(b"abcdefghijklmnop", tag_len);
        let mut out = [0u8; 16];
        umac.tag(message, b"bcdefghi", &mut out[..tag_len]);
        hex(&out[..tag_len])
    }

    fn repeat(unit: &[u8], n: usize) -> Vec<u8> {
        unit.iter().copied().cycle().take(unit.len() * n).collect()
    }

    /// RFC 4418's appendix (K = "abcdefghijklmnop", nonce "bcdefghi"), with
    /// the erratum for 'a' * 2^25; the 128-bit tags begin with the RFC's
    /// 96-bit ones, their last 4 bytes from other implementations' tables.
    #[test]
    fn rfc4418_vectors() {
        let cases: [(&[u8], usize, &str, &str); 7] = [
            (
                b"",
                0,
                "6e155fad26900be1",
                "32fedb100c79ad58f07ff7643cc60465",
            ),
            (
                b"a",
                3,
                "44b5cb542f220104",
                "185e4fe905cba7bd85e4c2dc3d117d8d",
            ),
            (
                b"a",
                1 << 10,
                "26bf2f5d60118bd9",
                "7a54abe04af82d60fb298c3cbd195bcb",
            ),
            (
                b"a",
                1 << 15,
                "27f8ef643b0d118d",
                "7b136bd911e4b734286ef2be501f2c3c",
            ),
            (
                b"a",
                1 << 20,
                "a4477e87e9f55853",
                "f8acfa3ac31cfeea047f7b115b03bef5",
            ),
            (b"abc", 1, "d4d7b9f6bd4fbfcf", "883c3d4b97a61976ffcf2323"),
            (b"abc", 500, "d4cf26ddefd5c01a", "8824a260c53c66a36c9260a6"),
        ];
        for (unit, n, t64, t128) in cases {
            let message = if n == 0 { Vec::new() } else { repeat(unit, n) };
            assert_eq!(tag(&message, 8), t64, "umac-64, {n} x {unit:?}");
            assert!(
                tag(&message, 16).starts_with(t128),
                "umac-128, {n} x {unit:?}"
            );
        }
    }

    /// Past 16 MiB of input L2 ramps to the 128-bit polynomial: RFC 4418's
    /// 'a' * 2^25 vector as its erratum corrects it, and the two lengths
    /// either side of the ramp.
    #[test]
    fn rfc4418_vectors_past_the_ramp() {
        let message = vec![b'a'; 1 << 25];
        assert_eq!(tag(&message, 8), "faca46f856e9b45f");
        assert_eq!(tag(&message, 16), "a621c2457c0012e64f3fdae9e7e1870c");
        assert_eq!(tag(&message[..(1 << 24) - 1], 8), "fce61c9ee7d13958");
        assert_eq!(tag(&message[..1 << 24], 8), "de9359204d2ecb26");
    }
}
