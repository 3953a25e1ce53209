//! Rekey limits and the per-direction budget that counts against them.
//!
//! A direction needs new keys once it has moved, since its last key switch,
//! 2^31 packets, or the cipher's safe volume (RFC 4344: 2^32 blocks for
//! 16-byte-block ciphers; 1 GiB for 8-byte blocks, where OpenSSH also counts
//! ChaCha20-Poly1305), or the caller's own byte limit. Crossing any of these
//! marks the budget spent. What follows (a rekey request, the grace
//! allowance granted to the peer, paramiko's 2^29 packets or bytes, and
//! [`Error::RekeyIgnored`](crate::Error::RekeyIgnored) past it) is the
//! connection core's, counted there once for both directions.
//!
//! Time limits need a clock, which the codec does not have: the connection
//! core turns `max_time` into a deadline from the `now` its driver gives it.

use std::time::Duration;

use crate::algorithm::{CipherAlgorithm, CipherFamily};

/// Packets per key, both directions (OpenSSH and Go use the same).
const PACKET_LIMIT: u64 = 1 << 31;
/// Bytes per key for ciphers with 8-byte blocks (and ChaCha20-Poly1305).
const SMALL_BLOCK_BYTE_LIMIT: u64 = 1 << 30;
/// paramiko's grace allowance after a rekey request.
pub(crate) const DEFAULT_GRACE: u64 = 1 << 29;

/// Limits a caller adds to the cipher's own, and the grace allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyLimits {
    /// Rekey after this many wire bytes in one direction (OpenSSH's
    /// `RekeyLimit` data part). `None`: only the cipher's own limit.
    pub max_bytes: Option<u64>,
    /// Rekey after this much time under one key (`RekeyLimit` time part).
    pub max_time: Option<Duration>,
    /// Inbound packets tolerated after a rekey became needed.
    pub grace_packets: u64,
    /// Inbound wire bytes tolerated after a rekey became needed.
    pub grace_bytes: u64,
}

impl Default for RekeyLimits {
    fn default() -> Self {
        RekeyLimits {
            max_bytes: None,
            max_time: None,
            grace_packets: DEFAULT_GRACE,
            grace_bytes: DEFAULT_GRACE,
        }
    }
}

impl RekeyLimits {
    /// Whether a key in use for `since_switch` has outlived `max_time`.
    pub fn time_exceeded(&self, since_switch: Duration) -> bool {
        self.max_time.is_some_and(|max| since_switch >= max)
    }
}

/// What one direction has spent since its last key switch.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    limits: RekeyLimits,
    /// `None` in the clear, where there is no key to wear out.
    block_limit: Option<(u64, u64)>,
    blocks: u64,
    packets: u64,
    bytes: u64,
    /// A limit was crossed under these keys.
    spent: bool,
}

impl Budget {
    /// A fresh budget for `cipher` under `limits`.
    pub(crate) fn new(cipher: CipherAlgorithm, limits: RekeyLimits) -> Budget {
        let spec = cipher.spec();
        let block = spec.block_size() as u64;
        let block_limit = match spec.family() {
            CipherFamily::Clear => None,
            _ if block >= 16 => Some((block, 1u64 << (2 * block).min(63))),
            _ => Some((block, SMALL_BLOCK_BYTE_LIMIT / block)),
        };
        Budget {
            limits,
            block_limit,
            blocks: 0,
            packets: 0,
            bytes: 0,
            spent: false,
        }
    }

    /// Replaces the caller's limits, keeping what was spent.
    pub(crate) fn set_limits(&mut self, limits: RekeyLimits) {
        self.limits = limits;
    }

    /// Counts one packet: `wire_len` bytes on the wire, of which
    /// `encrypted_len` went through the cipher.
    pub(crate) fn record(&mut self, wire_len: usize, encrypted_len: usize) {
        let wire = wire_len as u64;
        self.packets += 1;
        self.bytes = self.bytes.saturating_add(wire);
        if let Some((block, _)) = self.block_limit {
            self.blocks = self
                .blocks
                .saturating_add((encrypted_len as u64).div_ceil(block));
        }
        if !self.spent && self.exhausted() {
            self.spent = true;
        }
    }

    /// Whether this direction crossed a limit under its current keys.
    pub(crate) fn is_spent(&self) -> bool {
        self.spent
    }

    fn exhausted(&self) -> bool {
        let Some((_, block_limit)) = self.block_limit else {
            return false;
        };
        self.blocks >= block_limit
            || self.packets >= PACKET_LIMIT
            || self.limits.max_bytes.is_some_and(|max| self.bytes >= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_limit_is_2_pow_32_blocks() {
        let mut b = Budget::new(CipherAlgorithm::Aes128Ctr, RekeyLimits::default());
        // Jump close to the limit without moving 64 GiB through the test.
        b.blocks = (1 << 32) - 3;
        b.record(52, 32); // two blocks: one short of the limit
        assert!(!b.is_spent());
        b.record(36, 16);
        assert!(b.is_spent());
    }

    #[test]
    fn three_des_gets_the_1_gib_budget_of_8_byte_blocks() {
        let mut b = Budget::new(CipherAlgorithm::TripleDesCbc, RekeyLimits::default());
        assert_eq!(b.block_limit, Some((8, (1 << 30) / 8)));
        b.blocks = (1 << 27) - 2;
        b.record(28, 8);
        assert!(!b.is_spent());
        b.record(28, 8);
        assert!(b.is_spent());
    }

    #[test]
    fn chacha_counts_as_an_8_byte_block_cipher() {
        let mut b = Budget::new(CipherAlgorithm::ChaCha20Poly1305, RekeyLimits::default());
        b.blocks = (1 << 27) - 1;
        assert!(!b.is_spent());
        b.record(28, 8);
        assert!(b.is_spent());
    }

    #[test]
    fn packet_limit_applies_to_every_cipher() {
        let mut b = Budget::new(CipherAlgorithm::Aes256Ctr, RekeyLimits::default());
        b.packets = PACKET_LIMIT - 1;
        b.record(36, 16);
        assert!(b.is_spent());
    }

    #[test]
    fn the_clear_mode_never_needs_a_rekey() {
        let limits = RekeyLimits {
            max_bytes: Some(1),
            ..RekeyLimits::default()
        };
        let mut b = Budget::new(CipherAlgorithm::None, limits);
        b.record(1000, 1000);
        assert!(!b.is_spent());
    }

    #[test]
    fn time_limit() {
        let limits = RekeyLimits {
            max_time: Some(Duration::from_secs(60)),
            ..RekeyLimits::default()
        };
        assert!(!limits.time_exceeded(Duration::from_secs(59)));
        assert!(limits.time_exceeded(Duration::from_secs(60)));
        assert!(!RekeyLimits::default().time_exceeded(Duration::MAX));
    }
}
