//! The sending half of the codec.

use super::{DirectionState, MIN_PADDING};
use crate::error::Error;
use crate::keys::Keys;
use crate::padding::{PaddingSource, RandomPadding};

/// Turns payloads into wire packets for one direction.
///
/// Starts in the clear mode; [`Sealer::set_keys`] switches keys at a packet
/// boundary. Padding is the minimum that aligns, random whenever a cipher is
/// on (from a [`PaddingSource`], [`RandomPadding`] unless replaced) and zeros
/// in the clear.
pub struct Sealer {
    pub(super) state: DirectionState,
    padding: Box<dyn PaddingSource>,
}

impl Default for Sealer {
    fn default() -> Self {
        Sealer::new()
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("cipher", &self.state.cipher.name())
            .field("seqno", &self.state.seqno)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A Sealer in the clear mode, sequence number 0.
    pub fn new() -> Sealer {
        Sealer {
            state: DirectionState::new(),
            padding: Box::new(RandomPadding::new()),
        }
    }

    /// Installs new keys for the packets sealed from now on and starts a fresh
    /// rekey budget. The sequence number carries on (see
    /// [`Sealer::reset_seqno`] for strict key exchange). On error nothing
    /// changes.
    pub fn set_keys(&mut self, keys: Keys) -> Result<(), Error> {
        self.state.install(&keys)
    }

    /// Replaces the source of padding bytes used while a cipher is on.
    pub fn set_padding_source(&mut self, source: Box<dyn PaddingSource>) {
        self.padding = source;
    }

    /// The wire size of the packet that sealing a payload of `payload_len`
    /// bytes would produce, for sizing buffers.
    pub fn sealed_len(&self, payload_len: usize) -> usize {
        let f = self.state.framing;
        4 + 1 + payload_len + f.padding_len(payload_len) + self.state.engine.tag_len()
    }

    /// Appends one wire packet carrying `payload` (message type byte first) to
    /// `out` and returns the sequence number it was sealed under.
    ///
    /// On error nothing is appended and no state changes: an empty payload, a
    /// payload that does not fit the maximum packet length, a sequence
    /// number that would wrap during the initial key exchange, or a failing
    /// padding source.
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<u32, Error> {
        if payload.is_empty() {
            return Err(Error::EmptyPayload);
        }
        let framing = self.state.framing;
        let padding_len = framing.padding_len(payload.len());
        let packet_len = 1 + payload.len() + padding_len;
        if packet_len > self.state.max_packet_len {
            return Err(Error::PayloadTooLarge {
                len: payload.len(),
                max: self.state.max_packet_len,
            });
        }
        self.state.check_wrap()?;
        debug_assert!((MIN_PADDING..=usize::from(u8::MAX)).contains(&padding_len));

        let base = out.len();
        let tag_len = self.state.engine.tag_len();
        out.reserve(4 + packet_len + tag_len);
        // packet_len <= MAX_MAX_PACKET_LEN and padding_len < 20: both fit.
        out.extend_from_slice(&(packet_len as u32).to_be_bytes());
        out.push(padding_len as u8);
        out.extend_from_slice(payload);
        // Zeros for the padding and the tag; the padding is overwritten below
        // when a cipher is on, the tag by the engine.
        out.resize(base + 4 + packet_len + tag_len, 0);
        let (packet, tag) = out[base..].split_at_mut(4 + packet_len);
        if framing.encrypts {
            if let Err(e) = self.padding.fill(&mut packet[5 + payload.len()..]) {
                out.truncate(base);
                return Err(e);
            }
        }
        let seqno = self.state.seqno;
        self.state.engine.seal(seqno, packet, tag);
        self.state.finish_packet(packet_len);
        Ok(seqno)
    }
}
