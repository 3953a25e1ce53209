//! The receiving half of the codec.

use std::ops::Range;

use zeroize::{Zeroize, Zeroizing};

use super::input::{InputBuffer, READ_ROOM};
use super::{DirectionState, MIN_PADDING};
use crate::algorithm::CipherAlgorithm;
use crate::compress::Inflater;
use crate::crypto::MAX_TAG_LEN;
use crate::error::{Error, Latch};
use crate::keys::Keys;
use crate::msg::NEWKEYS;
use crate::rekey::RekeyLimits;

/// One packet taken off the wire: its payload, borrowed from the Opener's
/// buffer, and its sequence number.
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

/// What [`Opener::next_packet`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opened<'a> {
    /// A whole, authenticated packet.
    Packet(Packet<'a>),
    /// At least this many more bytes are needed before the next step. Never
    /// more than the maximum packet length plus 4 and the MAC.
    NeedMore(usize),
    /// The last packet was NEWKEYS: nothing more is read until
    /// [`Opener::set_keys`] installs the keys that follow it.
    AwaitingKeys,
}

/// What [`Opener::step`] found; the packet itself is then borrowed with
/// [`Opener::packet`]. Owning nothing, it lets a read loop wait for more
/// bytes and return the packet after the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A whole, authenticated packet is ready: [`Opener::packet`].
    Ready,
    /// At least this many more bytes are needed.
    NeedMore(usize),
    /// The last packet was NEWKEYS: install the next keys first.
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

/// What [`Opener::open_in_place`] found in a caller's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// A whole, authenticated packet at the start of the buffer, decrypted in
    /// place.
    Packet {
        /// Where the payload lies in the buffer.
        payload: Range<usize>,
        /// How many bytes the packet took on the wire (drop them before the
        /// next call).
        wire_len: usize,
        /// The inbound sequence number it carried.
        seqno: u32,
    },
    /// At least this many more bytes are needed. Call again with the same
    /// bytes at the start of the buffer and more after them.
    NeedMore(usize),
    /// The last packet was NEWKEYS: the bytes after it are under keys not
    /// yet installed. Call [`Opener::set_keys`], then again.
    AwaitingKeys,
}

/// Where the payload of the packet just returned lies.
#[derive(Clone, Debug)]
pub(crate) enum PayloadAt {
    /// In the wire buffer, decrypted in place.
    Wire(Range<usize>),
    /// In the inflate buffer, while compression is on.
    Inflated,
}

/// The packet-reading state machine, over whatever buffer holds the bytes.
pub(crate) struct OpenCore {
    pub(super) state: DirectionState,
    progress: Progress,
    /// NEWKEYS was returned and no keys were installed since.
    awaiting_keys: bool,
    latch: Latch,
    inflater: Option<Inflater>,
    /// The last payload, inflated, while compression is on.
    inflated: Zeroizing<Vec<u8>>,
    /// The packet last returned by [`OpenCore::advance`], until the next.
    current: Option<(PayloadAt, u32)>,
    /// The wire length of the packet last returned.
    last_wire_len: usize,
    /// What the discard found, reported once it has run.
    discarded: Option<Error>,
}

/// Turns wire bytes back into payloads for one direction.
///
/// Feed it bytes ([`Opener::feed`], or read straight into
/// [`Opener::unfilled`] and call [`Opener::filled`]) and call
/// [`Opener::next_packet`] until it asks for more. Every bound is checked on
/// the length bytes before anything else is buffered or awaited, MACs and tags
/// are verified before decryption wherever the mode allows, and the buffer
/// never holds more than one maximum packet plus one read (64 KiB): once it
/// does, `feed` takes nothing until packets are drained. After NEWKEYS it
/// stops ([`Opened::AwaitingKeys`]) until the next keys are installed, so
/// draining everything buffered never reads new-key bytes with old keys.
///
/// Every receive error is fatal: the stream cannot be resynchronised, so
/// afterwards every call returns [`Error::Failed`] with that error.
///
/// A read loop that returns the packet it waited for:
///
/// ```
/// use ssh_packetizer::{Error, Opener, Packet, Sealer, Step};
///
/// fn next<'a>(opener: &'a mut Opener, wire: &mut &[u8]) -> Result<Packet<'a>, Error> {
///     loop {
///         match opener.step()? {
///             Step::Ready => break,
///             Step::NeedMore(_) if !wire.is_empty() => {
///                 let n = opener.feed(wire);
///                 *wire = &wire[n..];
///             }
///             _ => return Err(Error::Closed),
///         }
///     }
///     Ok(opener.packet().expect("step said Ready"))
/// }
///
/// let mut bytes = Vec::new();
/// Sealer::new().seal(b"\x05hello", &mut bytes)?;
/// let mut opener = Opener::new();
/// let packet = next(&mut opener, &mut &bytes[..])?;
/// assert_eq!(packet.payload(), b"\x05hello");
/// # Ok::<(), Error>(())
/// ```
pub struct Opener {
    pub(super) core: OpenCore,
    input: InputBuffer,
}

impl Default for Opener {
    fn default() -> Self {
        Opener::new()
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("cipher", &self.core.state.cipher.name())
            .field("seqno", &self.core.state.seqno)
            .field("buffered", &self.buffered())
            .field("failed", &self.is_failed())
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An Opener in the clear mode, sequence number 0.
    pub fn new() -> Opener {
        Opener {
            core: OpenCore::new(),
            input: InputBuffer::default(),
        }
    }

    /// Installs new keys for the packets read from now on, at a packet
    /// boundary (typically right after NEWKEYS was returned). Bytes already
    /// buffered beyond that packet are read with the new keys.
    pub fn set_keys(&mut self, keys: Keys) -> Result<(), Error> {
        self.core.set_keys(keys)
    }

    /// Starts `zlib@openssh.com` decompression: user authentication
    /// succeeded. Key sets installed later decompress from their first packet.
    pub fn start_delayed_compression(&mut self) {
        self.core.start_delayed_compression();
    }

    /// Runs the engines of keys installed from now on with `provider`'s
    /// primitives (the process default until this is called); the keys in
    /// use keep theirs.
    pub fn set_crypto_provider(&mut self, provider: &'static crate::CryptoProvider) {
        self.core.state.provider = provider;
    }

    /// The provider the next keys' engine will run on.
    pub fn crypto_provider(&self) -> &'static crate::CryptoProvider {
        self.core.state.provider
    }

    /// The sequence number the next packet will carry.
    pub fn seqno(&self) -> u32 {
        self.core.state.seqno
    }

    /// Sets the next sequence number, for test vectors and tests that
    /// start near a wrap (feature `test-util`). The transport only ever
    /// resets it (see [`Self::reset_seqno`]).
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_seqno(&mut self, seqno: u32) {
        self.core.state.seqno = seqno;
    }

    /// Resets the sequence number to 0, as strict key exchange
    /// (`kex-strict-*-v00@openssh.com`) demands right after NEWKEYS.
    pub fn reset_seqno(&mut self) {
        self.core.state.seqno = 0;
    }

    /// Marks the initial key exchange as done: from now on the sequence
    /// number may wrap. Before this, a wrap is [`Error::SequenceWrapped`].
    pub fn mark_initial_kex_done(&mut self) {
        self.core.state.initial_kex_done = true;
    }

    /// Sets the largest `packet_length` handled (default 256 KiB; 35000 to
    /// 16 MiB).
    pub fn set_max_packet_len(&mut self, len: usize) -> Result<(), Error> {
        self.core.state.set_max_packet_len(len)
    }

    /// The largest `packet_length` handled.
    pub fn max_packet_len(&self) -> usize {
        self.core.state.max_packet_len
    }

    /// Sets the byte limit counted against the keys (the time limit and the
    /// grace allowance are the connection core's).
    pub fn set_rekey_limits(&mut self, limits: RekeyLimits) {
        self.core.state.set_rekey_limits(limits);
    }

    /// Whether the inbound direction crossed a limit under its current keys (2^32
    /// blocks or 1 GiB for small blocks, 2^31 packets, the byte limit):
    /// time for new keys. New keys start a fresh budget.
    pub fn budget_spent(&self) -> bool {
        self.core.state.budget.is_spent()
    }

    /// The cipher currently installed.
    pub fn cipher(&self) -> CipherAlgorithm {
        self.core.state.cipher
    }

    /// Whether payloads are compressed now.
    pub fn is_compressing(&self) -> bool {
        self.core.state.compressing()
    }

    /// Bytes held that belong to packets not yet returned.
    pub fn buffered(&self) -> usize {
        self.input.buffered()
    }

    /// Whether the Opener has failed and refuses further input.
    pub fn is_failed(&self) -> bool {
        self.core.latch.is_set()
    }

    /// Whether NEWKEYS was returned and the next keys are not installed yet.
    pub fn is_awaiting_keys(&self) -> bool {
        self.core.awaiting_keys
    }

    /// Free room to read wire bytes into; report how many were written with
    /// [`Opener::filled`]. 64 KiB, or the rest of the packet being read if
    /// that is more, but never past one maximum packet plus 64 KiB held in
    /// all: empty when the buffer is full (drain packets first).
    pub fn unfilled(&mut self) -> &mut [u8] {
        self.core.room(&mut self.input)
    }

    /// Records that `n` bytes were written at the start of
    /// [`Opener::unfilled`]. Clamped to the room that was offered.
    pub fn filled(&mut self, n: usize) {
        self.input.filled(n);
    }

    /// Copies as much of `data` as there is room for and returns how many
    /// bytes were taken; offer the rest after [`Opener::next_packet`] has
    /// drained the buffer. Takes nothing once one maximum packet plus 64 KiB
    /// is held.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        // Room for these bytes (or the rest of the packet), not a whole
        // socket read: a feeding driver has its bytes already.
        let room = self.core.feed_room(&mut self.input, data.len());
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.filled(n);
        n
    }

    /// The next whole packet, or how many more bytes are needed for it.
    pub fn next_packet(&mut self) -> Result<Opened<'_>, Error> {
        Ok(match self.step()? {
            Step::Ready => match self.packet() {
                Some(packet) => Opened::Packet(packet),
                None => Opened::NeedMore(0),
            },
            Step::NeedMore(n) => Opened::NeedMore(n),
            Step::AwaitingKeys => Opened::AwaitingKeys,
        })
    }

    /// Takes the next packet off the buffer if it is whole; borrow it with
    /// [`Opener::packet`]. Unlike [`Opener::next_packet`] this borrows
    /// nothing, so a loop can call it, wait for bytes, and return the packet
    /// after the loop (see the example on [`Opener`]).
    pub fn step(&mut self) -> Result<Step, Error> {
        self.core.advance(&mut self.input)
    }

    /// The packet the last [`Opener::step`] made ready, until the next call
    /// that takes `&mut self`.
    pub fn packet(&self) -> Option<Packet<'_>> {
        self.core.packet(&self.input)
    }

    /// The buffered bytes no packet has claimed yet, for reading raw bytes
    /// (the identification line) through the same buffer as the packets
    /// that follow them. Empty while a packet is half read.
    pub fn raw_buffered(&self) -> &[u8] {
        self.core.raw_buffered(&self.input)
    }

    /// Takes `n` raw bytes (at most [`Opener::raw_buffered`]'s length) off the
    /// front of the buffer. Only between packets.
    pub fn consume_raw(&mut self, n: usize) -> Result<(), Error> {
        self.core.consume_raw(&mut self.input, n)
    }

    /// Reads the next packet straight from a caller's buffer, decrypting it
    /// in place: no copy into the Opener. `buf` must start at a packet
    /// boundary, or at the same packet as the previous call that returned
    /// [`Frame::NeedMore`] with those bytes unchanged (its head may already be
    /// decrypted). After a [`Frame::Packet`], drop `wire_len` bytes from the
    /// front before the next call.
    ///
    /// For callers that own their buffer (an async codec's `BytesMut`, a
    /// fuzzer's input); do not mix with [`Opener::feed`] on one Opener.
    ///
    /// Not while compression is on: an inflated payload cannot live in the
    /// caller's buffer ([`Error::Unsupported`], nothing read).
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<Frame, Error> {
        self.core.open_in_place(buf)
    }

    /// The most bytes one packet can occupy on the wire under the current
    /// maximum: length field, packet and the longest tag.
    pub fn max_wire_len(&self) -> usize {
        self.core.max_wire_len()
    }

    /// The most input bytes this Opener holds at once: one maximum packet
    /// plus one 64 KiB read.
    pub fn input_limit(&self) -> usize {
        self.core.input_limit()
    }

    pub(crate) fn core(&self) -> &OpenCore {
        &self.core
    }

    pub(crate) fn core_mut(&mut self) -> &mut OpenCore {
        &mut self.core
    }

    /// The core and the Opener's own buffer, for the connection.
    pub(crate) fn parts(&mut self) -> (&mut OpenCore, &mut InputBuffer) {
        (&mut self.core, &mut self.input)
    }

    /// Bytes the input buffer has allocated.
    pub(crate) fn input_allocated(&self) -> usize {
        self.input.allocated()
    }

    /// Reads into the input buffer start small (see
    /// `InputBuffer::set_adaptive_reads`).
    #[cfg(feature = "tokio")]
    pub(crate) fn set_adaptive_reads(&mut self) {
        self.input.set_adaptive_reads();
    }

    /// Gives the input buffer's memory back if no byte is held and no packet
    /// is half read.
    pub(crate) fn release_idle(&mut self) -> bool {
        !self.core.mid_packet() && self.input.release_idle()
    }

    /// The buffer, for a driver that reads its bytes elsewhere (a split
    /// reader); the Opener's own stays empty then.
    pub(crate) fn take_input(&mut self) -> InputBuffer {
        std::mem::take(&mut self.input)
    }
}

impl OpenCore {
    fn new() -> OpenCore {
        OpenCore {
            state: DirectionState::new(),
            progress: Progress::Head,
            awaiting_keys: false,
            latch: Latch::default(),
            inflater: None,
            inflated: Zeroizing::new(Vec::new()),
            current: None,
            last_wire_len: 0,
            discarded: None,
        }
    }

    pub(crate) fn set_keys(&mut self, keys: Keys) -> Result<(), Error> {
        self.latch.check()?;
        if self.progress != Progress::Head {
            return Err(Error::NotAtPacketBoundary);
        }
        self.state.install(&keys)?;
        self.inflater = self.state.compressing().then(Inflater::new);
        self.awaiting_keys = false;
        Ok(())
    }

    pub(crate) fn start_delayed_compression(&mut self) {
        self.state.authenticated = true;
        if self.inflater.is_none() && self.state.compressing() {
            self.inflater = Some(Inflater::new());
        }
    }

    /// The wire length of the packet last returned.
    pub(crate) fn last_wire_len(&self) -> usize {
        self.last_wire_len
    }

    /// Whether a packet is half read (its head is known).
    pub(crate) fn mid_packet(&self) -> bool {
        self.progress != Progress::Head
    }

    pub(crate) fn max_wire_len(&self) -> usize {
        4 + self.state.max_packet_len + MAX_TAG_LEN
    }

    pub(crate) fn input_limit(&self) -> usize {
        self.max_wire_len() + READ_ROOM
    }

    /// The free room `input` offers for the next read under this core's
    /// bounds.
    pub(crate) fn room<'a>(&mut self, input: &'a mut InputBuffer) -> &'a mut [u8] {
        self.current = None;
        let wanted = self.still_needed(input.buffered());
        input.room(wanted, self.input_limit())
    }

    /// Room for `len` bytes the caller already has (or the rest of the
    /// packet, if that is more), under the input bound.
    pub(crate) fn feed_room<'a>(&mut self, input: &'a mut InputBuffer, len: usize) -> &'a mut [u8] {
        self.current = None;
        let wanted = self.still_needed(input.buffered());
        input.room_at_least(wanted, len, self.input_limit())
    }

    /// The bytes the packet being read needs in all (for an EOF report):
    /// the whole wire length once the length is known, else the head.
    pub(crate) fn wanted_total(&self) -> usize {
        self.still_needed(0)
    }

    /// What the peer's EOF means with `got` bytes of the next packet
    /// buffered: [`Error::Closed`] at a packet boundary with nothing
    /// buffered, [`Error::EofWhileDiscarding`] during the CBC discard,
    /// [`Error::Eof`] anywhere else.
    pub(crate) fn eof(&self, got: usize) -> Error {
        if self.progress == Progress::Discard {
            let cause = self.discarded.as_ref().map_or(
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
        if got == 0 && !self.mid_packet() {
            return Error::Closed;
        }
        Error::Eof {
            needed: self.wanted_total().max(got + 1),
            got,
        }
    }

    pub(crate) fn advance(&mut self, input: &mut InputBuffer) -> Result<Step, Error> {
        self.latch.check()?;
        self.current = None;
        input.release_consumed();
        if self.awaiting_keys {
            return Ok(Step::AwaitingKeys);
        }
        let offset = input.offset();
        let frame = match self.open_frame(input.unread()) {
            Ok(frame) => frame,
            Err(e) => return Err(self.latch.record(e)),
        };
        let (payload, wire_len, seqno) = match frame {
            Frame::NeedMore(n) => return Ok(Step::NeedMore(n)),
            Frame::AwaitingKeys => return Ok(Step::AwaitingKeys),
            Frame::Packet {
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
                if self.inflated.len() > READ_ROOM {
                    // The last payload was larger than the steady state
                    // needs and has been given up: back to the steady size,
                    // wiped.
                    self.inflated.zeroize();
                    self.inflated.shrink_to(READ_ROOM);
                }
                let max = self.state.max_packet_len;
                if let Err(e) = inflater.decompress(input.slice(payload), &mut self.inflated, max) {
                    return Err(self.latch.record(e));
                }
                PayloadAt::Inflated
            }
        };
        self.current = Some((at, seqno));
        if self.packet(input).is_some_and(|p| p.msg_type() == NEWKEYS) {
            self.awaiting_keys = true;
        }
        Ok(Step::Ready)
    }

    /// Where the payload of the packet last returned lies, and its sequence
    /// number.
    pub(crate) fn current(&self) -> Option<(PayloadAt, u32)> {
        self.current.clone()
    }

    /// The inflated payload of the packet last returned.
    pub(crate) fn inflated(&self) -> &[u8] {
        &self.inflated
    }

    pub(crate) fn packet<'a>(&'a self, input: &'a InputBuffer) -> Option<Packet<'a>> {
        let (at, seqno) = self.current.as_ref()?;
        let payload = match at {
            PayloadAt::Wire(range) => input.slice(range.clone()),
            PayloadAt::Inflated => &self.inflated[..],
        };
        Some(Packet {
            payload,
            seqno: *seqno,
        })
    }

    pub(crate) fn raw_buffered<'a>(&self, input: &'a InputBuffer) -> &'a [u8] {
        if self.progress != Progress::Head {
            return &[];
        }
        input.unread_ref()
    }

    pub(crate) fn consume_raw(&mut self, input: &mut InputBuffer, n: usize) -> Result<(), Error> {
        self.latch.check()?;
        if self.progress != Progress::Head {
            return Err(Error::NotAtPacketBoundary);
        }
        self.current = None;
        input.release_consumed();
        input.claim(n);
        input.release_consumed();
        Ok(())
    }

    pub(crate) fn open_in_place(&mut self, buf: &mut [u8]) -> Result<Frame, Error> {
        self.latch.check()?;
        if self.inflater.is_some() {
            return Err(Error::Unsupported {
                algorithm: self.state.compression.name(),
            });
        }
        if self.awaiting_keys {
            return Ok(Frame::AwaitingKeys);
        }
        let frame = self.open_frame(buf).map_err(|e| self.latch.record(e))?;
        if let Frame::Packet {
            payload, wire_len, ..
        } = &frame
        {
            self.last_wire_len = *wire_len;
            if buf[payload.start] == NEWKEYS {
                self.awaiting_keys = true;
            }
        }
        Ok(frame)
    }

    /// Whether this direction's budget is spent under the current keys.
    pub(crate) fn budget_spent(&self) -> bool {
        self.state.budget.is_spent()
    }

    /// Inbound sequence number to 0 (strict kex, after NEWKEYS).
    pub(crate) fn reset_seqno(&mut self) {
        self.state.seqno = 0;
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
    fn corrupt(&mut self, e: Error, buf: &mut [u8]) -> Result<Frame, Error> {
        if !self.state.engine.discards() {
            return Err(e);
        }
        self.discarded = Some(e);
        self.progress = Progress::Discard;
        self.discard(buf)
    }

    /// Waits for the whole discard, then does the same work whatever
    /// failed (decrypts and MACs everything it took), so neither the bytes
    /// taken nor the time from the last of them to the error depends on the
    /// cause, and reports one error, the same for every cause. (The real
    /// check of a bad MAC ran earlier, while the rest was still coming, as
    /// in OpenSSH.)
    fn discard(&mut self, buf: &mut [u8]) -> Result<Frame, Error> {
        if self.progress != Progress::Discard {
            return Ok(Frame::NeedMore(0));
        }
        let total = self.discard_len();
        if buf.len() < total {
            return Ok(Frame::NeedMore(total - buf.len()));
        }
        let tag_len = self.state.engine.tag_len();
        let seqno = self.state.seqno;
        self.state
            .engine
            .discard_work(seqno, &mut buf[..total - tag_len]);
        let cause = self.discarded.take().unwrap_or(Error::MacMismatch {
            seqno: self.state.seqno,
        });
        Err(Error::PacketCorrupt {
            cause: Box::new(cause),
            discarded: total,
        })
    }

    fn open_frame(&mut self, buf: &mut [u8]) -> Result<Frame, Error> {
        let seqno = self.state.seqno;
        let available = buf.len();
        let packet_len =
            match self.progress {
                Progress::Discard => return self.discard(buf),
                Progress::Body { packet_len } => packet_len,
                Progress::Head => {
                    let head_len = self.state.engine.head_len();
                    if available < head_len {
                        return Ok(Frame::NeedMore(head_len - available));
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
            return Ok(Frame::NeedMore(total - available));
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
        Ok(Frame::Packet {
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
