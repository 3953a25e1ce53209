//! The receiving half of the codec.

use std::ops::Range;

use super::input::{InputBuffer, PayloadAt, READ_ROOM};
use super::{DirectionState, MIN_PADDING};
use crate::algorithm::CipherAlgorithm;
use crate::compress::Inflater;
use crate::crypto::MAX_TAG_LEN;
use crate::error::{Error, Latch};
use crate::keys::Keys;
use crate::msg::NEWKEYS;
use crate::rekey::RekeyLimits;

/// One packet taken off the wire: its payload, borrowed from the
/// [`InputBuffer`] it was read from, and its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    payload: &'a [u8],
    seqno: u32,
}

impl<'a> Packet<'a> {
    pub(crate) fn new(payload: &'a [u8], seqno: u32) -> Packet<'a> {
        Packet { payload, seqno }
    }

    /// The payload, message type byte first (never empty).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The SSH message number (the payload's first byte; payloads are never
    /// empty).
    pub fn msg_type(&self) -> u8 {
        self.payload.first().copied().unwrap_or(0)
    }

    /// The inbound sequence number this packet carried.
    pub fn seqno(&self) -> u32 {
        self.seqno
    }
}

/// What a read found: [`Opener::next_packet`] and
/// [`Connection::poll_packet`](crate::Connection::poll_packet) answer with
/// it. The packet borrows the [`InputBuffer`], which keeps it until the
/// next read ([`InputBuffer::packet`]), so a loop that waits for bytes can
/// break on `Packet(_)` and take the packet from the buffer after the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opened<'a> {
    /// A whole, authenticated packet.
    Packet(Packet<'a>),
    /// At least this many more bytes are needed before the next step. Never
    /// more than the maximum packet length plus 4 and the MAC.
    NeedMore(usize),
    /// The last packet was NEWKEYS: nothing more is read until the keys
    /// that follow it are installed ([`Opener::set_keys`],
    /// [`Connection::set_inbound_keys`](crate::Connection::set_inbound_keys)).
    AwaitingKeys,
}

/// Where the Opener stands in the packet it is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// Waiting for the bytes that reveal the next packet's length.
    Head,
    /// The length is known and checked; waiting for the rest.
    Body { packet_len: usize },
    /// CBC encrypt-and-MAC found a bad length or MAC: the input is taken up
    /// to one maximum packet from the start of the bad one, and decrypted
    /// and MACed, before the error is reported (OpenSSH's discard).
    Discard,
}

/// What one attempt to open the packet at the start of the unread bytes
/// found.
enum Found {
    /// A whole, authenticated packet, decrypted in place.
    Packet {
        /// Where the payload lies in the bytes given.
        payload: Range<usize>,
        /// How many bytes the packet took on the wire.
        wire_len: usize,
        /// The inbound sequence number it carried.
        seqno: u32,
    },
    /// At least this many more bytes are needed.
    NeedMore(usize),
}

/// Turns wire bytes back into payloads for one direction.
///
/// The bytes live in an [`InputBuffer`] the caller owns and lends to each
/// call: read into [`Opener::unfilled`] and report with
/// [`Opener::filled`], or copy them in with [`Opener::feed`]; then call
/// [`Opener::next_packet`] until it asks for more. Every bound is checked
/// on the length bytes before anything else is buffered or awaited, MACs
/// and tags are verified before decryption wherever the mode allows, and
/// the buffer never holds more than one maximum packet plus one read
/// (64 KiB): once it does, `feed` takes nothing until packets are drained.
/// After NEWKEYS it stops ([`Opened::AwaitingKeys`]) until the next keys
/// are installed, so draining everything buffered never reads new-key
/// bytes with old keys.
///
/// Every receive error is fatal: the stream cannot be resynchronised, so
/// afterwards every call returns [`Error::Failed`] with that error.
///
/// A read loop that returns the packet it waited for:
///
/// ```
/// use ssh_packetizer::{Error, InputBuffer, Opened, Opener, Packet, Sealer};
///
/// fn next<'a>(
///     opener: &mut Opener,
///     input: &'a mut InputBuffer,
///     wire: &mut &[u8],
/// ) -> Result<Packet<'a>, Error> {
///     loop {
///         match opener.next_packet(input)? {
///             Opened::Packet(_) => break,
///             Opened::NeedMore(_) if !wire.is_empty() => {
///                 let n = opener.feed(input, wire);
///                 *wire = &wire[n..];
///             }
///             _ => return Err(Error::Closed),
///         }
///     }
///     // The buffer keeps the packet until it is read again.
///     Ok(input.packet().expect("a packet was just taken"))
/// }
///
/// let mut bytes = Vec::new();
/// Sealer::new().seal(b"\x05hello", &mut bytes)?;
/// let (mut opener, mut input) = (Opener::new(), InputBuffer::new());
/// let packet = next(&mut opener, &mut input, &mut &bytes[..])?;
/// assert_eq!(packet.payload(), b"\x05hello");
/// # Ok::<(), Error>(())
/// ```
pub struct Opener {
    pub(super) state: DirectionState,
    progress: Progress,
    /// NEWKEYS was returned and no keys were installed since.
    awaiting_keys: bool,
    latch: Latch,
    inflater: Option<Inflater>,
    /// The wire length of the packet last returned.
    last_wire_len: usize,
    /// What the discard found, reported once it has run. Boxed: an inline
    /// `None` would leave the size of an `Error` unwritten in the Opener,
    /// which the stack's leftovers (another connection's keys, say) would
    /// fill when the Opener is built and moved into the heap.
    discarded: Option<Box<Error>>,
}

impl Default for Opener {
    fn default() -> Self {
        Opener::new()
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("cipher", &self.state.cipher.name())
            .field("seqno", &self.state.seqno)
            .field("mid_packet", &self.is_mid_packet())
            .field("failed", &self.is_failed())
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An Opener in the clear mode, sequence number 0.
    pub fn new() -> Opener {
        Opener {
            state: DirectionState::new(),
            progress: Progress::Head,
            awaiting_keys: false,
            latch: Latch::default(),
            inflater: None,
            last_wire_len: 0,
            discarded: None,
        }
    }

    // ------------------------------------------------------------ settings

    /// Installs new keys for the packets read from now on, at a packet
    /// boundary (typically right after NEWKEYS was returned). Bytes already
    /// buffered beyond that packet are read with the new keys.
    pub fn set_keys(&mut self, keys: Keys) -> Result<(), Error> {
        self.latch.check()?;
        if self.progress != Progress::Head {
            return Err(Error::NotAtPacketBoundary);
        }
        self.state.install(&keys)?;
        self.inflater = self.state.compressing().then(Inflater::new);
        self.awaiting_keys = false;
        Ok(())
    }

    /// Starts `zlib@openssh.com` decompression: user authentication
    /// succeeded. Key sets installed later decompress from their first packet.
    pub fn start_delayed_compression(&mut self) {
        self.state.authenticated = true;
        if self.inflater.is_none() && self.state.compressing() {
            self.inflater = Some(Inflater::new());
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

    // --------------------------------------------------------------- state

    /// Whether the inbound direction crossed a limit under its current keys (2^32
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

    /// Whether the Opener has failed and refuses further input.
    pub fn is_failed(&self) -> bool {
        self.latch.is_set()
    }

    /// Whether NEWKEYS was returned and the next keys are not installed yet.
    pub fn is_awaiting_keys(&self) -> bool {
        self.awaiting_keys
    }

    /// Whether a packet is half read: its length is known (or a corrupt
    /// one is being discarded), and the input holds no packet boundary.
    pub fn is_mid_packet(&self) -> bool {
        self.progress != Progress::Head
    }

    /// The most bytes one packet can occupy on the wire under the current
    /// maximum: length field, packet and the longest tag.
    pub fn max_wire_len(&self) -> usize {
        4 + self.state.max_packet_len + MAX_TAG_LEN
    }

    /// The most bytes an input read by this Opener holds at once: one
    /// maximum packet plus one 64 KiB read.
    pub fn input_limit(&self) -> usize {
        self.max_wire_len() + READ_ROOM
    }

    // --------------------------------------------------------------- input

    /// Free room in `input` to read wire bytes into; report how many were
    /// written with [`Opener::filled`]. 64 KiB (less at first for a buffer
    /// with growing reads), or the rest of the packet being read if that
    /// is more, but never past [`Opener::input_limit`] held in all: empty
    /// when the buffer is full (take packets out first).
    pub fn unfilled<'a>(&self, input: &'a mut InputBuffer) -> &'a mut [u8] {
        let wanted = self.still_needed(input.buffered());
        input.room(wanted, self.input_limit())
    }

    /// Records that `n` bytes were written at the start of the room
    /// [`Opener::unfilled`] offered last. Clamped to that room.
    pub fn filled(&self, input: &mut InputBuffer, n: usize) {
        input.filled(n);
    }

    /// Copies as much of `data` into `input` as there is room for and
    /// returns how many bytes were taken; offer the rest after
    /// [`Opener::next_packet`] has drained the buffer. Takes nothing once
    /// [`Opener::input_limit`] bytes are held.
    pub fn feed(&self, input: &mut InputBuffer, data: &[u8]) -> usize {
        // Room for these bytes (or the rest of the packet), not a whole
        // socket read: a feeding driver has its bytes already.
        let wanted = self.still_needed(input.buffered());
        let room = input.room_at_least(wanted, data.len(), self.input_limit());
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        input.filled(n);
        n
    }

    /// Takes the next whole packet out of `input`, or says how many more
    /// bytes it needs. The packet stays in `input` until the next read.
    pub fn next_packet<'a>(&mut self, input: &'a mut InputBuffer) -> Result<Opened<'a>, Error> {
        self.latch.check()?;
        input.release_consumed();
        if self.awaiting_keys {
            return Ok(Opened::AwaitingKeys);
        }
        let offset = input.offset();
        let found = match self.open_frame(input.unread()) {
            Ok(found) => found,
            Err(e) => return Err(self.latch.record(e)),
        };
        let (payload, wire_len, seqno) = match found {
            Found::NeedMore(n) => return Ok(Opened::NeedMore(n)),
            Found::Packet {
                payload,
                wire_len,
                seqno,
            } => (payload, wire_len, seqno),
        };
        input.claim(wire_len);
        self.last_wire_len = wire_len;
        let payload = offset + payload.start..offset + payload.end;
        let at = match &mut self.inflater {
            None => PayloadAt::Wire(payload),
            Some(inflater) => {
                let max = self.state.max_packet_len;
                let (compressed, inflated) = input.for_inflating(payload);
                if let Err(e) = inflater.decompress(compressed, inflated, max) {
                    return Err(self.latch.record(e));
                }
                PayloadAt::Inflated
            }
        };
        input.set_last(at, seqno);
        let packet = input.packet().ok_or(Error::InvalidCall {
            reason: "a packet was just taken",
        })?;
        if packet.msg_type() == NEWKEYS {
            self.awaiting_keys = true;
        }
        Ok(Opened::Packet(packet))
    }

    /// The bytes in `input` no packet has claimed yet, for reading raw
    /// bytes (the identification line) through the same buffer as the
    /// packets that follow them. Empty while a packet is half read.
    pub fn raw_buffered<'a>(&self, input: &'a InputBuffer) -> &'a [u8] {
        if self.is_mid_packet() {
            return &[];
        }
        input.unread_ref()
    }

    /// Takes `n` raw bytes (at most [`Opener::raw_buffered`]'s length) off
    /// the front of `input`. Only between packets.
    pub fn consume_raw(&mut self, input: &mut InputBuffer, n: usize) -> Result<(), Error> {
        self.latch.check()?;
        if self.is_mid_packet() {
            return Err(Error::NotAtPacketBoundary);
        }
        input.release_consumed();
        input.claim(n);
        input.release_consumed();
        Ok(())
    }

    // ------------------------------------------------- for the connection

    /// The wire length of the packet last returned.
    pub(crate) fn last_wire_len(&self) -> usize {
        self.last_wire_len
    }

    /// The bytes the packet being read needs in all (for an EOF report):
    /// the whole wire length once the length is known, else the head.
    fn wanted_total(&self) -> usize {
        self.still_needed(0)
    }

    /// What the peer's EOF means with `got` bytes of the next packet
    /// buffered: [`Error::Closed`] at a packet boundary with nothing
    /// buffered, [`Error::EofWhileDiscarding`] during the CBC discard,
    /// [`Error::Eof`] anywhere else.
    pub(crate) fn eof(&self, got: usize) -> Error {
        if self.progress == Progress::Discard {
            let cause = self.discarded.as_deref().map_or(
                Error::MacMismatch {
                    seqno: self.state.seqno,
                },
                Error::duplicate,
            );
            return Error::EofWhileDiscarding {
                cause: Box::new(cause),
                got,
            };
        }
        if got == 0 && !self.is_mid_packet() {
            return Error::Closed;
        }
        Error::Eof {
            needed: self.wanted_total().max(got + 1),
            got,
        }
    }

    /// Bytes still missing before the next step can be taken.
    fn still_needed(&self, have: usize) -> usize {
        let want = match self.progress {
            Progress::Head => self.state.engine.head_len(),
            Progress::Body { packet_len } => 4 + packet_len + self.state.engine.tag_len(),
            Progress::Discard => self.discard_len(),
        };
        want.saturating_sub(have)
    }

    /// How much the discard takes from the start of the bad packet,
    /// whatever was wrong with it: the largest packet this side accepts,
    /// with its length field and MAC.
    fn discard_len(&self) -> usize {
        4 + self.state.max_packet_len + self.state.engine.tag_len()
    }

    /// A bad length or MAC: under CBC encrypt-and-MAC the discard starts
    /// (and the error waits for it), in every other mode the error is
    /// returned now.
    fn corrupt(&mut self, e: Error, buf: &mut [u8]) -> Result<Found, Error> {
        if !self.state.engine.discards() {
            return Err(e);
        }
        self.discarded = Some(Box::new(e));
        self.progress = Progress::Discard;
        self.discard(buf)
    }

    /// Waits for the whole discard, then does the same work whatever
    /// failed (decrypts and MACs everything it took), so neither the bytes
    /// taken nor the time from the last of them to the error depends on the
    /// cause, and reports one error, the same for every cause. (The real
    /// check of a bad MAC ran earlier, while the rest was still coming, as
    /// in OpenSSH.)
    fn discard(&mut self, buf: &mut [u8]) -> Result<Found, Error> {
        if self.progress != Progress::Discard {
            return Ok(Found::NeedMore(0));
        }
        let total = self.discard_len();
        if buf.len() < total {
            return Ok(Found::NeedMore(total - buf.len()));
        }
        let tag_len = self.state.engine.tag_len();
        let seqno = self.state.seqno;
        self.state
            .engine
            .discard_work(seqno, &mut buf[..total - tag_len]);
        let cause = self
            .discarded
            .take()
            .unwrap_or(Box::new(Error::MacMismatch {
                seqno: self.state.seqno,
            }));
        Err(Error::PacketCorrupt {
            cause,
            discarded: total,
        })
    }

    fn open_frame(&mut self, buf: &mut [u8]) -> Result<Found, Error> {
        let seqno = self.state.seqno;
        let available = buf.len();
        let packet_len =
            match self.progress {
                Progress::Discard => return self.discard(buf),
                Progress::Body { packet_len } => packet_len,
                Progress::Head => {
                    let head_len = self.state.engine.head_len();
                    if available < head_len {
                        return Ok(Found::NeedMore(head_len - available));
                    }
                    self.state.check_wrap()?;
                    let head = &mut buf[..head_len];
                    let len = self.state.engine.read_length(seqno, head).ok_or(
                        Error::BadPacketLength {
                            len: 0,
                            max: self.max_len_u32(),
                        },
                    )?;
                    let packet_len = match self.check_length(len) {
                        Ok(packet_len) => packet_len,
                        Err(e) => return self.corrupt(e, buf),
                    };
                    self.progress = Progress::Body { packet_len };
                    packet_len
                }
            };

        let tag_len = self.state.engine.tag_len();
        let total = 4 + packet_len + tag_len;
        if available < total {
            return Ok(Found::NeedMore(total - available));
        }
        let wire = &mut buf[..total];
        let (packet, tag) = wire.split_at_mut(4 + packet_len);
        if !self.state.engine.open(seqno, packet, tag) {
            return self.corrupt(Error::MacMismatch { seqno }, buf);
        }
        let padding = packet[4];
        let padding_len = usize::from(padding);
        // packet_len >= 5 was checked, so the subtraction cannot underflow.
        if padding_len < MIN_PADDING || padding_len > packet_len - 2 {
            return Err(Error::BadPadding {
                padding,
                packet_len: packet_len as u32,
            });
        }
        self.state.finish_packet(packet_len);
        self.progress = Progress::Head;
        Ok(Found::Packet {
            payload: 5..4 + packet_len - padding_len,
            wire_len: total,
            seqno,
        })
    }

    fn max_len_u32(&self) -> u32 {
        // MAX_MAX_PACKET_LEN fits in a u32.
        self.state.max_packet_len as u32
    }

    /// Checks a received `packet_length` against the bounds and the block
    /// alignment, before any byte of the body is awaited.
    fn check_length(&self, len: u32) -> Result<usize, Error> {
        let max = self.state.max_packet_len;
        let packet_len = len as usize;
        if packet_len < 5 || packet_len > max {
            return Err(Error::BadPacketLength {
                len,
                max: self.max_len_u32(),
            });
        }
        if !self.state.framing.is_aligned(packet_len) {
            return Err(Error::BadBlockAlignment {
                len,
                block: self.state.framing.block,
            });
        }
        Ok(packet_len)
    }
}
