//! The sending half of the codec.

use super::{DirectionState, MIN_PADDING};
use crate::compress::Deflater;
use zeroize::Zeroizing;

use crate::algorithm::CipherAlgorithm;
use crate::error::{Error, Latch};
use crate::keys::Keys;
use crate::padding::{PaddingSource, RandomPadding};
use crate::rekey::RekeyLimits;

/// Bytes in front of every payload: `packet_length` and `padding_length`.
const HEADER_LEN: usize = 5;
/// More padding than any block size needs (at most 16 + 3).
const MAX_PADDING: usize = 32;

/// Turns payloads into wire packets for one direction.
///
/// ```
/// use ssh_packetizer::{CipherAlgorithm, KeyMaterial, Keys, MacAlgorithm, Sealer};
///
/// let mut sealer = Sealer::new();
/// let mut wire = Vec::new();
/// // In the clear: 4 length bytes, the padding length, the payload, padding.
/// assert_eq!(sealer.seal(b"\x14kexinit", &mut wire)?, 0);
/// assert_eq!(wire.len() % 8, 0);
/// // NEWKEYS and the switch to the next keys in one step.
/// let keys = Keys::new(
///     CipherAlgorithm::ChaCha20Poly1305,
///     MacAlgorithm::None,
///     KeyMaterial { key: &[7; 64], iv: &[], mac_key: &[] },
/// )?;
/// assert_eq!(sealer.seal_newkeys(keys, &mut wire)?, 1);
/// assert_eq!(sealer.cipher(), CipherAlgorithm::ChaCha20Poly1305);
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
///
/// Starts in the clear mode; [`Sealer::set_keys`] switches keys at a packet
/// boundary. Padding is the minimum that aligns, random whenever a cipher is
/// on (from a [`PaddingSource`], [`RandomPadding`] unless replaced) and zeros
/// in the clear.
pub struct Sealer {
    pub(super) state: DirectionState,
    padding: Box<dyn PaddingSource>,
    deflater: Option<Deflater>,
    /// Where a payload is compressed before it replaces the original.
    compressed: Zeroizing<Vec<u8>>,
    /// The first fatal error (a failed deflate stream, a sequence number
    /// that would wrap): nothing is sealed after it.
    latch: Latch,
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
            deflater: None,
            compressed: Zeroizing::new(Vec::new()),
            latch: Latch::default(),
        }
    }

    /// Installs new keys for the packets sealed from now on and starts a fresh
    /// rekey budget. The sequence number carries on (see
    /// [`Sealer::reset_seqno`] for strict key exchange). On error nothing
    /// changes. The compression the keys carry starts with a fresh stream
    /// (delayed compression once [`Sealer::start_delayed_compression`] ran).
    pub fn set_keys(&mut self, keys: Keys) -> Result<(), Error> {
        self.latch.check()?;
        self.state.install(&keys)?;
        self.deflater = self.state.compressing().then(Deflater::new);
        Ok(())
    }

    /// Seals NEWKEYS under the current keys and switches to `keys` in one
    /// step: no other packet can be sealed between the two. The keys are
    /// expanded first, so if they cannot be installed nothing is sealed and
    /// nothing changes. Returns NEWKEYS's sequence number; the caller resets
    /// the sequence number after it for strict kex (the connection core does
    /// that itself).
    pub fn seal_newkeys(&mut self, keys: Keys, out: &mut Vec<u8>) -> Result<u32, Error> {
        self.latch.check()?;
        let engine = crate::crypto::Engine::new(&keys, self.state.provider)?;
        let seqno = self.seal(&[crate::msg::NEWKEYS], out)?;
        self.state.install_engine(engine, &keys);
        self.deflater = self.state.compressing().then(Deflater::new);
        Ok(seqno)
    }

    /// Whether a payload of `len` bytes fits the maximum packet length under
    /// any keys and compression, so it can be held for after a key switch.
    pub(crate) fn fits_after_any_switch(&self, len: usize) -> bool {
        len > 0 && 1 + len + Deflater::max_growth(len) + MAX_PADDING <= self.state.max_packet_len
    }

    /// Starts `zlib@openssh.com` compression: user authentication succeeded
    /// (the server after sending USERAUTH_SUCCESS, the client after reading
    /// it). Key sets installed later compress from their first packet.
    pub fn start_delayed_compression(&mut self) {
        self.state.authenticated = true;
        if self.deflater.is_none() && self.state.compressing() {
            self.deflater = Some(Deflater::new());
        }
    }

    /// Runs the engines of keys installed from now on with `provider`'s
    /// primitives (the process default until this is called); the keys in
    /// use keep theirs.
    pub fn set_crypto_provider(&mut self, provider: &'static crate::CryptoProvider) {
        self.state.provider = provider;
    }

    /// The provider the next keys' engine will run on.
    pub fn crypto_provider(&self) -> &'static crate::CryptoProvider {
        self.state.provider
    }

    /// The sequence number the next packet will carry.
    pub fn seqno(&self) -> u32 {
        self.state.seqno
    }

    /// Sets the next sequence number, for test vectors and tests that
    /// start near a wrap (feature `test-util`). The transport only ever
    /// resets it (see [`Self::reset_seqno`]).
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_seqno(&mut self, seqno: u32) {
        self.state.seqno = seqno;
    }

    /// Resets the sequence number to 0, as strict key exchange
    /// (`kex-strict-*-v00@openssh.com`) demands right after NEWKEYS.
    pub fn reset_seqno(&mut self) {
        self.state.seqno = 0;
    }

    /// Marks the initial key exchange as done: from now on the sequence
    /// number may wrap. Before this, a wrap is [`Error::SequenceWrapped`].
    pub fn mark_initial_kex_done(&mut self) {
        self.state.initial_kex_done = true;
    }

    /// Sets the largest `packet_length` handled (default 256 KiB; 35000 to
    /// 16 MiB).
    pub fn set_max_packet_len(&mut self, len: usize) -> Result<(), Error> {
        self.state.set_max_packet_len(len)
    }

    /// The largest `packet_length` handled.
    pub fn max_packet_len(&self) -> usize {
        self.state.max_packet_len
    }

    /// Sets the byte limit counted against the keys (the time limit and the
    /// grace allowance are the connection core's).
    pub fn set_rekey_limits(&mut self, limits: RekeyLimits) {
        self.state.set_rekey_limits(limits);
    }

    /// Whether the outbound direction crossed a limit under its current keys (2^32
    /// blocks or 1 GiB for small blocks, 2^31 packets, the byte limit):
    /// time for new keys. New keys start a fresh budget.
    pub fn budget_spent(&self) -> bool {
        self.state.budget.is_spent()
    }

    /// The cipher currently installed.
    pub fn cipher(&self) -> CipherAlgorithm {
        self.state.cipher
    }

    /// Whether payloads are compressed now.
    pub fn is_compressing(&self) -> bool {
        self.state.compressing()
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
    /// On error `out` is as it was and no state changes: an empty payload, a
    /// payload that does not fit the maximum packet length, a sequence
    /// number that would wrap during the initial key exchange, or a failing
    /// padding source.
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<u32, Error> {
        // Room for the whole packet first: growing `out` once the plaintext
        // is in would leave a copy of it in the freed block.
        crate::wipe::reserve_wiped(out, self.sealed_len(payload.len()));
        let start = self.start_packet(out);
        out.extend_from_slice(payload);
        self.finish_packet(out, start)
    }

    /// Starts a packet at the end of `out` by reserving its header; append
    /// the payload to `out`, then call [`Sealer::finish_packet`] with the
    /// offset returned. Lets a caller serialise a message straight into the
    /// output buffer, so the payload is never copied.
    pub fn start_packet(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        start
    }

    /// Finishes the packet begun at `start` by [`Sealer::start_packet`]: the
    /// payload is everything in `out` after the reserved header. Pads,
    /// encrypts and authenticates in place and returns the sequence number.
    ///
    /// On error `out` is wiped and truncated back to `start` (the payload
    /// with it) and
    /// no state changes; the errors are those of [`Sealer::seal`]. A fatal
    /// one (a failed deflate stream) is kept: every later call answers
    /// [`Error::Failed`] with it.
    pub fn finish_packet(&mut self, out: &mut Vec<u8>, start: usize) -> Result<u32, Error> {
        let result = self.latch.check().and_then(|()| self.frame(out, start));
        match result {
            Ok(seqno) => Ok(seqno),
            Err(e) => {
                // The refused payload was already in `out`: wiped, not just
                // cut off, or its bytes would stay in the spare capacity
                // until the buffer is freed.
                zeroize::Zeroize::zeroize(&mut out[start..]);
                out.truncate(start);
                Err(self.latch.record(e))
            }
        }
    }

    /// Whether a fatal error stopped this Sealer.
    pub fn is_failed(&self) -> bool {
        self.latch.is_set()
    }

    fn frame(&mut self, out: &mut Vec<u8>, start: usize) -> Result<u32, Error> {
        let mut payload_len = match out.len().checked_sub(start + HEADER_LEN) {
            Some(len) if len > 0 => len,
            _ => return Err(Error::EmptyPayload),
        };
        let framing = self.state.framing;
        // With compression, everything that can refuse the packet runs before
        // the deflate stream sees it: a refused packet must not advance it.
        let mut drawn = [0u8; MAX_PADDING];
        if let Some(deflater) = &mut self.deflater {
            let worst = payload_len + Deflater::max_growth(payload_len);
            if 1 + worst + framing.block + 3 > self.state.max_packet_len {
                return Err(Error::PayloadTooLarge {
                    len: payload_len,
                    max: self.state.max_packet_len,
                });
            }
            self.state.check_wrap()?;
            if framing.encrypts {
                self.padding.fill(&mut drawn)?;
            }
            self.compressed.clear();
            deflater.compress(&out[start + HEADER_LEN..], &mut self.compressed)?;
            // The plaintext goes: a shorter compressed copy must not leave
            // its tail in `out`'s spare room.
            zeroize::Zeroize::zeroize(&mut out[start + HEADER_LEN..]);
            out.truncate(start + HEADER_LEN);
            out.extend_from_slice(&self.compressed);
            payload_len = self.compressed.len();
        }
        let padding_len = framing.padding_len(payload_len);
        let packet_len = 1 + payload_len + padding_len;
        if packet_len > self.state.max_packet_len {
            return Err(Error::PayloadTooLarge {
                len: payload_len,
                max: self.state.max_packet_len,
            });
        }
        self.state.check_wrap()?;
        debug_assert!((MIN_PADDING..=usize::from(u8::MAX)).contains(&padding_len));

        let tag_len = self.state.engine.tag_len();
        // Zeros for the padding and the tag; the padding is overwritten below
        // when a cipher is on, the tag by the engine.
        crate::wipe::resize_wiped(out, start + 4 + packet_len + tag_len);
        let (packet, tag) = out[start..].split_at_mut(4 + packet_len);
        // packet_len <= MAX_MAX_PACKET_LEN and padding_len < 20: both fit.
        packet[..4].copy_from_slice(&(packet_len as u32).to_be_bytes());
        packet[4] = padding_len as u8;
        let padding = &mut packet[HEADER_LEN + payload_len..];
        if !framing.encrypts {
            // The clear mode pads with the zeros `resize` wrote.
        } else if self.deflater.is_some() {
            padding.copy_from_slice(&drawn[..padding_len]);
        } else {
            self.padding.fill(padding)?;
        }
        let seqno = self.state.seqno;
        if !self.state.engine.seal(seqno, packet, tag) {
            return Err(Error::PayloadTooLarge {
                len: payload_len,
                max: self.state.max_packet_len,
            });
        }
        self.state.finish_packet(packet_len);
        Ok(seqno)
    }
}
