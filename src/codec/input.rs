//! The inbound byte buffer: where wire bytes wait until packets are taken
//! out of them.
//!
//! Bounded: it never holds more than one maximum packet plus one read, so a
//! peer (or a feed loop) cannot grow it further; the room it offers shrinks
//! to nothing until packets are drained. After a packet larger than the
//! steady state needs, it goes back to its steady size once it is empty,
//! wiped first, so a burst of large packets does not pin memory and small
//! packets never allocate.

use zeroize::Zeroize;

use crate::codec::MIN_MAX_PACKET_LEN;
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

/// Wire bytes received and not yet taken.
#[derive(Default)]
pub(crate) struct InputBuffer {
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
}

impl InputBuffer {
    /// Bytes held that no returned packet has claimed.
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start - self.consumed
    }

    /// Forgets the packet last returned; an empty buffer larger than the
    /// steady size is wiped and shrunk.
    pub(crate) fn release_consumed(&mut self) {
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

    /// Bytes at `range` of the buffer.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
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

    /// Reads start at 16 KiB and double, up to 64 KiB, while they fill
    /// their room: for drivers that keep many connections, most of which
    /// trade small packets.
    #[cfg(any(test, feature = "tokio"))]
    pub(crate) fn set_adaptive_reads(&mut self) {
        self.adaptive = true;
    }

    /// Gives the whole allocation back if nothing is held (a connection at
    /// rest): the bytes ever filled are wiped first. The next read grows it
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
        true
    }

    /// How much of the buffer is allocated, for the memory tests.
    pub(crate) fn allocated(&self) -> usize {
        self.buf.capacity()
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
        b.set_adaptive_reads();
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
        let mut b = InputBuffer::default();
        b.set_adaptive_reads();
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
        b.set_adaptive_reads();
        assert!(b.release_idle());
        assert_eq!(
            b.room(0, 100_000).len(),
            FIRST_READ_ROOM,
            "from the first size"
        );
    }
}
