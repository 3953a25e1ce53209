//! The sans-IO packet codec: [`Sealer`] turns payloads into wire packets and
//! [`Opener`] turns wire bytes back into payloads.
//!
//! No I/O, no clock, no threads: both are deterministic state machines over
//! byte buffers, so they can be fuzzed and driven by any runtime. What they
//! share, the per-direction state (engine, sequence number, limits, rekey
//! budget), lives here.

pub(crate) mod input;
pub(crate) mod opener;
mod sealer;

pub use input::InputBuffer;
pub use opener::{Opened, Opener, Packet};
pub use sealer::Sealer;

use crate::algorithm::{CipherAlgorithm, CompressionAlgorithm, Mode};
use crate::crypto::{CryptoProvider, Engine};
use crate::error::Error;
use crate::keys::Keys;
use crate::rekey::{Budget, RekeyLimits};

/// The default maximum `packet_length`, as OpenSSH's `PACKET_MAX_SIZE`.
pub const DEFAULT_MAX_PACKET_LEN: usize = 256 * 1024;
/// The smallest maximum a caller may set: RFC 4253 §6.1 requires every
/// implementation to handle packets of 35000 bytes.
pub const MIN_MAX_PACKET_LEN: usize = 35_000;
/// The largest maximum a caller may set; it bounds the Opener's buffer.
pub const MAX_MAX_PACKET_LEN: usize = 16 * 1024 * 1024;

/// The smallest `padding_length` RFC 4253 allows.
const MIN_PADDING: usize = 4;

/// Where the block alignment starts and how big the blocks are.
#[derive(Clone, Copy, Debug)]
struct Framing {
    block: usize,
    /// 4 when the length field is inside the aligned region, 0 when it is
    /// outside (encrypt-then-MAC, AEAD).
    aligned_prefix: usize,
    /// Whether a cipher is on (padding is random then, zeros otherwise).
    encrypts: bool,
}

impl Framing {
    fn of(keys: &Keys) -> Framing {
        let mode = keys.mode();
        Framing {
            block: keys.cipher().spec().block_size(),
            aligned_prefix: if mode.length_outside_alignment() {
                0
            } else {
                4
            },
            encrypts: mode != Mode::Clear,
        }
    }

    /// The smallest padding that aligns a payload of `payload_len` bytes.
    fn padding_len(&self, payload_len: usize) -> usize {
        let unpadded = self.aligned_prefix + 1 + payload_len;
        let pad = self.block - unpadded % self.block;
        if pad < MIN_PADDING {
            pad + self.block
        } else {
            pad
        }
    }

    /// Whether `packet_len` puts the aligned region on a block boundary.
    fn is_aligned(&self, packet_len: usize) -> bool {
        (self.aligned_prefix + packet_len).is_multiple_of(self.block)
    }
}

/// What one direction of a connection keeps between packets.
struct DirectionState {
    engine: Engine,
    /// Whose primitives the next keys' engine runs on.
    provider: &'static CryptoProvider,
    framing: Framing,
    cipher: CipherAlgorithm,
    seqno: u32,
    initial_kex_done: bool,
    max_packet_len: usize,
    limits: RekeyLimits,
    budget: Budget,
    /// The compression negotiated with the current keys.
    compression: CompressionAlgorithm,
    /// Delayed compression (`zlib@openssh.com`) was started: user
    /// authentication succeeded, so later key sets compress at once too.
    authenticated: bool,
}

impl DirectionState {
    fn new() -> DirectionState {
        let keys = Keys::clear();
        DirectionState {
            engine: Engine::clear(),
            provider: CryptoProvider::get_default(),
            framing: Framing::of(&keys),
            cipher: keys.cipher(),
            seqno: 0,
            initial_kex_done: false,
            max_packet_len: DEFAULT_MAX_PACKET_LEN,
            limits: RekeyLimits::default(),
            budget: Budget::new(keys.cipher(), RekeyLimits::default()),
            compression: CompressionAlgorithm::None,
            authenticated: false,
        }
    }

    /// Whether payloads are compressed now under the current keys.
    fn compressing(&self) -> bool {
        let spec = self.compression.spec();
        spec.deflates() && (!spec.delayed() || self.authenticated)
    }

    /// Switches to `keys`, starting a fresh rekey budget. Nothing changes if
    /// the keys cannot be installed.
    fn install(&mut self, keys: &Keys) -> Result<(), Error> {
        self.install_engine(Engine::new(keys, self.provider)?, keys);
        Ok(())
    }

    /// Switches to an engine already expanded from `keys`: cannot fail.
    fn install_engine(&mut self, engine: Engine, keys: &Keys) {
        self.engine = engine;
        self.framing = Framing::of(keys);
        self.cipher = keys.cipher();
        self.budget = Budget::new(keys.cipher(), self.limits);
        self.compression = keys.compression();
    }

    fn set_max_packet_len(&mut self, len: usize) -> Result<(), Error> {
        check_max_packet_len(len)?;
        self.max_packet_len = len;
        Ok(())
    }

    fn set_rekey_limits(&mut self, limits: RekeyLimits) {
        self.limits = limits;
        self.budget.set_limits(limits);
    }

    /// Refuses the packet that would wrap the sequence number while the
    /// initial key exchange is still running (Terrapin), before anything of it
    /// is processed.
    fn check_wrap(&self) -> Result<(), Error> {
        if self.seqno == u32::MAX && !self.initial_kex_done {
            return Err(Error::SequenceWrapped);
        }
        Ok(())
    }

    /// Counts a finished packet and moves to the next sequence number.
    fn finish_packet(&mut self, packet_len: usize) {
        let wire_len = 4 + packet_len + self.engine.tag_len();
        self.budget
            .record(wire_len, self.framing.aligned_prefix + packet_len);
        self.seqno = self.seqno.wrapping_add(1);
    }
}

/// Refuses a maximum packet length outside `MIN_MAX_PACKET_LEN..=MAX_MAX_PACKET_LEN`.
pub(crate) fn check_max_packet_len(len: usize) -> Result<(), Error> {
    if !(MIN_MAX_PACKET_LEN..=MAX_MAX_PACKET_LEN).contains(&len) {
        return Err(Error::InvalidMaxPacketLength {
            requested: len,
            min: MIN_MAX_PACKET_LEN,
            max: MAX_MAX_PACKET_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::MacAlgorithm;
    use crate::keys::KeyMaterial;

    fn framing(cipher: CipherAlgorithm, mac: MacAlgorithm) -> Framing {
        let spec = cipher.spec();
        let keys = Keys::new(
            cipher,
            mac,
            KeyMaterial {
                key: &vec![0; spec.key_len()],
                iv: &vec![0; spec.iv_len()],
                mac_key: &vec![0; mac.spec().key_len()],
            },
        )
        .unwrap();
        Framing::of(&keys)
    }

    #[test]
    fn padding_is_minimal_and_aligns() {
        let suites = [
            framing(CipherAlgorithm::None, MacAlgorithm::None),
            framing(CipherAlgorithm::Aes128Ctr, MacAlgorithm::HmacSha1),
            framing(CipherAlgorithm::Aes256Ctr, MacAlgorithm::HmacSha256Etm),
        ];
        for f in suites {
            for payload in 1..200 {
                let pad = f.padding_len(payload);
                assert!((4..f.block + 4).contains(&pad), "pad {pad}");
                assert!(f.is_aligned(1 + payload + pad));
            }
        }
    }
}
