//! The inbound byte buffer: where wire bytes wait until packets are taken
//! out of them, and where the packet last taken stays until the next read.
//!
//! Bounded: it never holds more than one maximum packet plus one read, so a
//! peer (or a feed loop) cannot grow it further; the room it offers shrinks
//! to nothing until packets are drained. After a packet larger than the
//! steady state needs, it goes back to its steady size once it is empty,
//! wiped first, so a burst of large packets does not pin memory and small
//! packets never allocate.

use std::ops::Range;

use zeroize::{Zeroize, Zeroizing};

use crate::codec::{Packet, MIN_MAX_PACKET_LEN};
use crate::crypto::MAX_TAG_LEN;

/// Free room offered for each read at most, so a socket reader fills large
/// chunks and many small packets are parsed per read.
pub(crate) const READ_ROOM: usize = 64 * 1024;

/// The room offered for the first reads: it doubles, up to [`READ_ROOM`],
/// each time a read fills it, so a connection that only ever sees small
/// packets never grows a 64 KiB buffer.
const FIRST_READ_ROOM: usize = 16 * 1024;

/// The buffer size that packets up to the RFC's 35000 bytes never exceed:
/// a partial packet, one read and the room for the next. Larger buffers are
/// given back once empty.
const STEADY_LEN: usize = 2 * READ_ROOM + MIN_MAX_PACKET_LEN + 4 + MAX_TAG_LEN;

/// Where the payload of the packet last taken lies.
#[derive(Clone, Debug)]
pub(crate) enum PayloadAt {
    /// In the wire bytes, decrypted in place.
    Wire(Range<usize>),
    /// In the inflate buffer, while compression is on.
    Inflated,
}

/// The wire bytes of one direction, read and not yet taken: the one input
/// every reader of packets uses.
///
/// A driver owns one per connection (or per reading half) and lends it to
/// each call that reads: [`Connection::recv_buf`](crate::Connection::recv_buf)
/// offers room in it for a socket read, [`Connection::feed`](crate::Connection::feed)
/// copies bytes in, [`Connection::poll_packet`](crate::Connection::poll_packet)
/// takes the next packet out of it (the [`Opener`](crate::Opener) has the
/// same calls without the connection's rules). Because the connection
/// keeps none of it, a reader can fill it without holding the connection:
/// the split halves read the socket with no lock held.
///
/// Packets are decrypted in place and their payloads borrowed from here;
/// the packet last taken stays readable ([`InputBuffer::packet`]) until
/// the next call that reads into or from the buffer. Inflated payloads
/// (zlib) live here too. It is bounded by the reader's maximum packet plus
/// one 64 KiB read, shrinks back once empty after a large packet, and
/// wipes what it held before giving memory back or being dropped.
///
/// ```
/// use ssh_packetizer::{InputBuffer, Opened, Opener, Sealer};
///
/// let mut wire = Vec::new();
/// Sealer::new().seal(b"\x05hello", &mut wire)?;
/// let (mut opener, mut input) = (Opener::new(), InputBuffer::new());
/// assert_eq!(opener.feed(&mut input, &wire), wire.len());
/// match opener.next_packet(&mut input)? {
///     Opened::Packet(p) => assert_eq!(p.payload(), b"\x05hello"),
///     other => panic!("{other:?}"),
/// }
/// // Still there until the buffer is read again.
/// assert_eq!(input.packet().unwrap().seqno(), 0);
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
#[derive(Default)]
pub struct InputBuffer {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    start: usize,
    /// End of the bytes received.
    end: usize,
    /// Length of the packet last returned, released on the next call (its
    /// payload is borrowed until then).
    consumed: usize,
    /// The end of the room last offered: `filled` never counts past it.
    offered_end: usize,
    /// The furthest end ever filled since the buffer was last given back:
    /// everything past it is still the zeros it was grown with.
    high_water: usize,
    /// Reads start small and grow while they fill their room (the async
    /// drivers); otherwise every read offers [`READ_ROOM`].
    adaptive: bool,
    /// The room offered for an adaptive read now (0: the first size).
    read_room: usize,
    /// The last offer was a read's (not a feed's, which is always filled):
    /// filling it grows the next read's room.
    offered_for_read: bool,
    /// The packet last taken: where its payload lies and its sequence
    /// number, until the next call that reads.
    last: Option<(PayloadAt, u32)>,
    /// The last payload, inflated, while compression is on.
    inflated: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for InputBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the bytes: they are plaintext once decrypted.
        f.debug_struct("InputBuffer")
            .field("buffered", &self.buffered())
            .field("allocated", &self.allocated())
            .finish_non_exhaustive()
    }
}

impl InputBuffer {
    /// An empty buffer; it allocates on the first read. Every read is
    /// offered 64 KiB (or the rest of a larger packet).
    pub fn new() -> InputBuffer {
        InputBuffer::default()
    }

    /// An empty buffer whose reads start at 16 KiB and double, up to
    /// 64 KiB, while they fill their room: for a server that keeps many
    /// connections, most of which trade small packets.
    pub fn with_growing_reads() -> InputBuffer {
        let mut input = InputBuffer::default();
        input.adaptive = true;
        input
    }

    /// Bytes held that no returned packet has claimed.
    pub fn buffered(&self) -> usize {
        self.end - self.start - self.consumed
    }

    /// The packet last taken out of this buffer, until the next call that
    /// reads into or from it.
    pub fn packet(&self) -> Option<Packet<'_>> {
        let (at, seqno) = self.last.as_ref()?;
        let payload = match at {
            PayloadAt::Wire(range) => &self.buf[range.clone()],
            PayloadAt::Inflated => &self.inflated[..],
        };
        Some(Packet::new(payload, *seqno))
    }

    /// Heap bytes the buffer holds now (the wire bytes and the inflate
    /// buffer), for memory accounting.
    pub fn allocated(&self) -> usize {
        self.buf.capacity() + self.inflated.capacity()
    }

    /// Records where the packet just claimed has its payload.
    pub(crate) fn set_last(&mut self, at: PayloadAt, seqno: u32) {
        self.last = Some((at, seqno));
    }

    /// The compressed payload at `range` and the inflate buffer to write
    /// it into. The inflate buffer goes back to the steady size, wiped,
    /// after a payload larger than the steady state needs.
    pub(crate) fn for_inflating(&mut self, range: Range<usize>) -> (&[u8], &mut Vec<u8>) {
        if self.inflated.len() > READ_ROOM {
            self.inflated.zeroize();
            self.inflated.shrink_to(READ_ROOM);
        }
        (&self.buf[range], &mut self.inflated)
    }

    /// Forgets the packet last returned; an empty buffer larger than the
    /// steady size is wiped and shrunk.
    pub(crate) fn release_consumed(&mut self) {
        self.last = None;
        self.start += self.consumed;
        self.consumed = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.offered_end = 0;
            if self.buf.capacity() > STEADY_LEN {
                // Plaintext of the last packets lies here: wipe it before the
                // allocator gets the memory back.
                self.buf.zeroize();
                self.buf.shrink_to(STEADY_LEN);
                self.high_water = 0;
            }
        }
    }

    /// The unclaimed bytes, for the packet reader (which may decrypt them in
    /// place).
    pub(crate) fn unread(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// The unclaimed bytes, read-only.
    pub(crate) fn unread_ref(&self) -> &[u8] {
        &self.buf[self.start + self.consumed..self.end]
    }

    /// Offset of the unclaimed bytes in the buffer.
    pub(crate) fn offset(&self) -> usize {
        self.start
    }

    /// Marks `n` bytes from the start of the unclaimed bytes as taken; they
    /// stay readable until the next release.
    pub(crate) fn claim(&mut self, n: usize) {
        self.consumed = n.min(self.end - self.start);
    }

    /// Free room to read into: at least `wanted` (the rest of the packet
    /// being read) or one read, whichever is more, but never past `limit`
    /// bytes held in all. Empty when the buffer is full: drain packets.
    pub(crate) fn room(&mut self, wanted: usize, limit: usize) -> &mut [u8] {
        let read = match self.adaptive {
            true => self.read_room.max(FIRST_READ_ROOM),
            false => READ_ROOM,
        };
        let room = self.offer(wanted, read, limit);
        self.offered_for_read = true;
        &mut self.buf[room]
    }

    /// As [`Self::room`], with `read` in place of the 64 KiB read: a driver
    /// that copies in bytes it already has (a feed) asks for just those.
    pub(crate) fn room_at_least(&mut self, wanted: usize, read: usize, limit: usize) -> &mut [u8] {
        let room = self.offer(wanted, read, limit);
        &mut self.buf[room]
    }

    /// Makes room as [`Self::room_at_least`] says and returns where it lies.
    fn offer(&mut self, wanted: usize, read: usize, limit: usize) -> std::ops::Range<usize> {
        self.offered_for_read = false;
        self.release_consumed();
        let have = self.end - self.start;
        // Never less than the rest of the packet being read, even if the
        // limit was lowered since its length was accepted.
        let room = wanted.max(read).min(limit.saturating_sub(have)).max(wanted);
        if self.buf.len() - self.end < room {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < room {
                crate::wipe::resize_wiped(&mut self.buf, self.end + room);
            }
        }
        let end = self.end;
        self.offered_end = end + room;
        end..end + room
    }

    /// Records that `n` bytes were written at the start of [`Self::room`].
    /// Clamped to the room that was offered.
    pub(crate) fn filled(&mut self, n: usize) {
        let end = (self.end + n).min(self.offered_end).min(self.buf.len());
        if self.offered_for_read && end == self.offered_end && n > 0 {
            // The read filled all it was offered: more may be waiting.
            self.read_room = (self.read_room.max(FIRST_READ_ROOM) * 2).min(READ_ROOM);
        }
        self.end = end.max(self.end);
        self.high_water = self.high_water.max(self.end);
        // The offer is used up: a second `filled` without `room` adds nothing.
        self.offered_end = self.end;
    }

    /// Gives the whole allocation back if nothing is held (a connection at
    /// rest; the caller checks no packet is half read): the bytes ever
    /// filled are wiped first. The next read grows it
    /// again. Returns whether there was anything to give back.
    pub(crate) fn release_idle(&mut self) -> bool {
        self.release_consumed();
        if self.start != self.end || self.buf.capacity() == 0 {
            return false;
        }
        let used = self.high_water.min(self.buf.len());
        self.buf[..used].zeroize();
        // The rest is the zeros it was grown with: no need to wipe it.
        self.buf = Vec::new();
        self.high_water = 0;
        self.read_room = 0;
        // The inflate buffer is a `Zeroizing`: wiped as it goes.
        self.inflated = Zeroizing::new(Vec::new());
        true
    }
}

impl Drop for InputBuffer {
    fn drop(&mut self) {
        // Decrypted packets are decrypted in place: wipe them.
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_bounded_by_the_limit() {
        let mut b = InputBuffer::default();
        let limit = 100_000;
        let mut taken = 0;
        loop {
            let room = b.room(0, limit);
            if room.is_empty() {
                break;
            }
            let n = room.len();
            room.fill(1);
            b.filled(n);
            taken += n;
        }
        assert_eq!(taken, limit);
        b.claim(limit);
        b.release_consumed();
        assert_eq!(
            b.room(0, limit).len(),
            READ_ROOM,
            "full reads grew the room"
        );
    }

    #[test]
    fn a_large_buffer_shrinks_once_empty() {
        let mut b = InputBuffer::default();
        let room = b.room(1_000_000, 2_000_000);
        let n = room.len();
        b.filled(n);
        assert!(b.allocated() >= 1_000_000);
        b.claim(n / 2);
        b.release_consumed();
        assert!(b.allocated() >= 1_000_000, "not empty yet: kept");
        b.claim(n - n / 2);
        b.release_consumed();
        assert!(b.allocated() <= STEADY_LEN, "{}", b.allocated());
    }

    #[test]
    fn the_read_room_grows_only_while_reads_fill_it() {
        let mut b = InputBuffer::default();
        assert_eq!(b.room(0, 1 << 20).len(), READ_ROOM, "fixed unless asked");
        let mut b = InputBuffer::with_growing_reads();
        assert_eq!(b.room(0, 1 << 20).len(), FIRST_READ_ROOM);
        b.filled(100);
        assert_eq!(b.room(0, 1 << 20).len(), FIRST_READ_ROOM, "a short read");
        b.filled(FIRST_READ_ROOM);
        assert_eq!(b.room(0, 1 << 20).len(), 2 * FIRST_READ_ROOM);
        b.filled(2 * FIRST_READ_ROOM);
        b.room(0, 1 << 20);
        b.filled(4 * FIRST_READ_ROOM);
        assert_eq!(b.room(0, 1 << 20).len(), READ_ROOM, "at most READ_ROOM");
        // The rest of a large packet is offered whatever the read size.
        b.claim(b.buffered());
        assert_eq!(b.room(200_000, 1 << 20).len(), 200_000);
    }

    #[test]
    fn feeds_do_not_grow_the_read_room() {
        let mut b = InputBuffer::with_growing_reads();
        for _ in 0..5 {
            let n = b.room_at_least(0, 500, 1 << 20).len();
            b.filled(n);
            b.claim(n);
        }
        assert_eq!(b.room(0, 1 << 20).len(), FIRST_READ_ROOM);
    }

    #[test]
    fn an_idle_buffer_is_given_back_and_a_busy_one_kept() {
        let mut b = InputBuffer::default();
        assert!(!b.release_idle(), "nothing allocated: nothing to give");
        let room = b.room_at_least(0, 100, 1000);
        assert_eq!(room.len(), 100, "only what the feed needs");
        room.fill(7);
        b.filled(100);
        b.claim(40);
        assert!(!b.release_idle(), "60 bytes still held");
        assert!(b.allocated() >= 100);
        b.claim(60);
        assert!(b.release_idle());
        assert_eq!(b.allocated(), 0);
        // It grows again on demand.
        assert_eq!(b.room(0, 100_000).len(), READ_ROOM);
        b.filled(0);
        b.claim(b.buffered());
        assert!(b.release_idle());
        let mut b = InputBuffer::with_growing_reads();
        b.room(0, 100_000);
        b.filled(FIRST_READ_ROOM);
        b.claim(b.buffered());
        assert!(b.release_idle());
        assert_eq!(
            b.room(0, 100_000).len(),
            FIRST_READ_ROOM,
            "from the first size"
        );
    }
}
