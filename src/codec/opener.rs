//! The receiving half of the codec.

use std::ops::Range;

use super::{DirectionState, MIN_PADDING};
use crate::compress::Inflater;
use crate::crypto::MAX_TAG_LEN;
use crate::error::Error;
use crate::keys::Keys;

/// Free room the Opener offers for each read, so a socket reader fills large
/// chunks and many small packets are parsed per read.
const READ_ROOM: usize = 64 * 1024;

/// One packet taken off the wire: its payload, borrowed from the Opener's
/// buffer, and its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    payload: &'a [u8],
    seqno: u32,
}

impl<'a> Packet<'a> {
    /// The payload, message type byte first (never empty).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The SSH message number (the payload's first byte).
    pub fn msg_type(&self) -> u8 {
        self.payload[0]
    }

    /// The inbound sequence number this packet carried.
    pub fn seqno(&self) -> u32 {
        self.seqno
    }
}

/// What [`Opener::next_packet`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened<'a> {
    /// A whole, authenticated packet.
    Packet(Packet<'a>),
    /// At least this many more bytes are needed before the next step. Never
    /// more than the maximum packet length plus 4 and the MAC.
    NeedMore(usize),
}

/// Where the Opener stands in the packet it is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// Waiting for the bytes that reveal the next packet's length.
    Head,
    /// The length is known and checked; waiting for the rest.
    Body { packet_len: usize },
}

/// What [`Opener::open_in_place`] found in a caller's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

/// Where a payload [`Opener::advance`] found lies.
#[derive(Clone, Debug)]
pub(crate) enum PayloadAt {
    /// In the wire buffer, decrypted in place.
    Wire(Range<usize>),
    /// In the inflate buffer, while compression is on.
    Inflated,
}

/// What [`Opener::advance`] found: [`Opened`] with the payload located, not
/// borrowed.
pub(crate) enum Ready {
    Packet { payload: PayloadAt, seqno: u32 },
    NeedMore(usize),
}

/// The packet-reading state machine, over whatever buffer holds the bytes.
pub(super) struct OpenCore {
    pub(super) state: DirectionState,
    progress: Progress,
}

/// Turns wire bytes back into payloads for one direction.
///
/// Feed it bytes ([`Opener::feed`], or read straight into
/// [`Opener::unfilled`] and call [`Opener::filled`]) and call
/// [`Opener::next_packet`] until it asks for more. Every bound is checked on
/// the length bytes before anything else is buffered or awaited, MACs and tags
/// are verified before decryption wherever the mode allows, and the buffer
/// never grows past one maximum packet plus one read.
///
/// Every receive error is fatal: the stream cannot be resynchronised, so
/// afterwards every call returns [`Error::Closed`].
pub struct Opener {
    pub(super) core: OpenCore,
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    start: usize,
    /// End of the bytes received.
    end: usize,
    /// Length of the packet last returned, released on the next call (its
    /// payload is borrowed until then).
    consumed: usize,
    failed: bool,
    inflater: Option<Inflater>,
    /// The last payload, inflated, while compression is on.
    inflated: Vec<u8>,
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
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An Opener in the clear mode, sequence number 0.
    pub fn new() -> Opener {
        Opener {
            core: OpenCore {
                state: DirectionState::new(),
                progress: Progress::Head,
            },
            buf: Vec::new(),
            start: 0,
            end: 0,
            consumed: 0,
            failed: false,
            inflater: None,
            inflated: Vec::new(),
        }
    }

    /// Installs new keys for the packets read from now on, at a packet
    /// boundary (typically right after NEWKEYS was returned). Bytes already
    /// buffered beyond that packet are read with the new keys.
    pub fn set_keys(&mut self, keys: Keys) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        if self.core.progress != Progress::Head {
            return Err(Error::NotAtPacketBoundary);
        }
        self.core.state.install(&keys)?;
        self.inflater = self.core.state.compressing().then(Inflater::new);
        Ok(())
    }

    /// Starts `zlib@openssh.com` decompression: user authentication
    /// succeeded. Key sets installed later decompress from their first packet.
    pub fn start_delayed_compression(&mut self) {
        self.core.state.authenticated = true;
        if self.inflater.is_none() && self.core.state.compressing() {
            self.inflater = Some(Inflater::new());
        }
    }

    /// Bytes held that belong to packets not yet returned.
    pub fn buffered(&self) -> usize {
        self.end - self.start - self.consumed
    }

    /// Whether the Opener has failed and refuses further input.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Free room to read wire bytes into; report how many were written with
    /// [`Opener::filled`]. At least 64 KiB, and always enough for the rest of
    /// the packet being read.
    pub fn unfilled(&mut self) -> &mut [u8] {
        self.release_consumed();
        let wanted = self.core.still_needed(self.end - self.start).max(READ_ROOM);
        if self.buf.len() - self.end < wanted {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < wanted {
                self.buf.resize(self.end + wanted, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written at the start of
    /// [`Opener::unfilled`]. Clamped to the room that was offered.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Copies as much of `data` as there is room for (at least 64 KiB, or all
    /// of it) and returns how many bytes were taken; offer the rest after
    /// [`Opener::next_packet`] has drained the buffer.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let room = self.unfilled();
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.filled(n);
        n
    }

    /// The next whole packet, or how many more bytes are needed for it.
    pub fn next_packet(&mut self) -> Result<Opened<'_>, Error> {
        Ok(match self.advance()? {
            Ready::Packet { payload, seqno } => Opened::Packet(self.packet_at(payload, seqno)),
            Ready::NeedMore(n) => Opened::NeedMore(n),
        })
    }

    /// [`Opener::next_packet`] with the payload as a range of the buffer, so
    /// a caller can wait for more bytes in a loop and borrow the payload after
    /// it ([`Opener::packet_at`]).
    pub(crate) fn advance(&mut self) -> Result<Ready, Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        self.release_consumed();
        let start = self.start;
        match self.core.step(&mut self.buf[start..self.end]) {
            Ok(Frame::NeedMore(n)) => Ok(Ready::NeedMore(n)),
            Ok(Frame::Packet {
                payload,
                wire_len,
                seqno,
            }) => {
                self.consumed = wire_len;
                let payload = start + payload.start..start + payload.end;
                let Some(inflater) = &mut self.inflater else {
                    return Ok(Ready::Packet {
                        payload: PayloadAt::Wire(payload),
                        seqno,
                    });
                };
                let max = self.core.state.max_packet_len;
                match inflater.decompress(&self.buf[payload], &mut self.inflated, max) {
                    Ok(()) => Ok(Ready::Packet {
                        payload: PayloadAt::Inflated,
                        seqno,
                    }),
                    Err(e) => {
                        self.failed = true;
                        Err(e)
                    }
                }
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// The packet [`Opener::advance`] just returned. Only valid until the
    /// next call that takes `&mut self`.
    pub(crate) fn packet_at(&self, payload: PayloadAt, seqno: u32) -> Packet<'_> {
        let payload = match payload {
            PayloadAt::Wire(range) => &self.buf[range],
            PayloadAt::Inflated => &self.inflated[..],
        };
        Packet { payload, seqno }
    }

    /// The buffered bytes no packet has claimed yet, for reading raw bytes
    /// (the identification line) through the same buffer as the packets that
    /// follow them. Empty while a packet is half read.
    pub fn raw_buffered(&self) -> &[u8] {
        if self.core.progress != Progress::Head {
            return &[];
        }
        &self.buf[self.start + self.consumed..self.end]
    }

    /// Takes `n` raw bytes (at most [`Opener::raw_buffered`]'s length) off the
    /// front of the buffer. Only between packets.
    pub fn consume_raw(&mut self, n: usize) -> Result<(), Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        if self.core.progress != Progress::Head {
            return Err(Error::NotAtPacketBoundary);
        }
        self.release_consumed();
        self.consumed = n.min(self.end - self.start);
        self.release_consumed();
        Ok(())
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
        if self.failed {
            return Err(Error::Closed);
        }
        if self.inflater.is_some() {
            return Err(Error::Unsupported {
                algorithm: self.core.state.compression.name(),
            });
        }
        self.core.step(buf).inspect_err(|_| self.failed = true)
    }

    fn release_consumed(&mut self) {
        self.start += self.consumed;
        self.consumed = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The most bytes one packet can occupy on the wire under the current
    /// maximum: length field, packet and the longest tag.
    pub fn max_wire_len(&self) -> usize {
        4 + self.core.state.max_packet_len + MAX_TAG_LEN
    }
}

impl OpenCore {
    /// Bytes still missing before the next step can be taken.
    fn still_needed(&self, have: usize) -> usize {
        let want = match self.progress {
            Progress::Head => self.state.engine.head_len(),
            Progress::Body { packet_len } => 4 + packet_len + self.state.engine.tag_len(),
        };
        want.saturating_sub(have)
    }

    fn step(&mut self, buf: &mut [u8]) -> Result<Frame, Error> {
        let seqno = self.state.seqno;
        let available = buf.len();
        let packet_len =
            match self.progress {
                Progress::Body { packet_len } => packet_len,
                Progress::Head => {
                    let head_len = self.state.engine.head_len();
                    if available < head_len {
                        return Ok(Frame::NeedMore(head_len - available));
                    }
                    self.state.check_wrap()?;
                    if self.state.budget.grace_exceeded() {
                        return Err(Error::RekeyIgnored);
                    }
                    let head = &mut buf[..head_len];
                    let len = self.state.engine.read_length(seqno, head).ok_or(
                        Error::BadPacketLength {
                            len: 0,
                            max: self.max_len_u32(),
                        },
                    )?;
                    let packet_len = self.check_length(len)?;
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
            return Err(Error::MacMismatch { seqno });
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
