//! The read loop both async drivers share, as a poll function: look at the
//! core (the decisions are [`crate::read_loop`]'s, shared with the sync
//! drivers), write what is pending without waiting for it, run the timer,
//! read more, take in what the read gave. This moves bytes and reads
//! tokio's clock.
//!
//! Cancel safety comes from where the state lives: every byte read is in
//! the input buffer and every byte to write in the core's output (or the
//! writer's buffer) before a poll returns, so dropping the future that
//! polls this loses nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::timer::{now, Timer};
use crate::codec::InputBuffer;
use crate::connection::Connection;
use crate::error::Error;
use crate::read_loop::{self, look, took, CoreSide, Got, Next, ReadState, Wanted};

/// Bytes read on the stack at a packet boundary with nothing buffered and
/// less than this allocated, so a connection at rest allocates nothing to
/// wait with and one trading small packets never grows a large buffer: the
/// bytes are copied into one of just their size (or of the packet's, if it
/// is larger). A buffer grown by a stream of packets is read into directly.
const SCRATCH: usize = 16 * 1024;

/// One async driver's view of its connection.
pub(crate) trait AsyncSide: CoreSide {
    /// One read into the input buffer.
    fn poll_read_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Got>>;

    /// Writes what is pending, as far as the stream takes it now.
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;

    /// The driver's timer.
    fn timer(&mut self) -> &mut Timer;

    /// Registers the pending read to be woken when another task changes
    /// the core (a split reader); the whole Packetizer has no other task.
    fn park(&mut self, _cx: &Context<'_>) {}

    /// Nothing is buffered either way and buffers are held: the connection
    /// rests, and may give them back later.
    fn holds_idle_memory(&mut self) -> bool;

    /// Gives the buffers of a connection at rest back.
    fn release_idle(&mut self);
}

/// Polls until the core has what `wanted` waits for.
pub(crate) fn poll_wait<S: AsyncSide, T>(
    side: &mut S,
    state: &mut ReadState,
    cx: &mut Context<'_>,
    wanted: &mut Wanted<impl read_loop::CorePoll<T>>,
) -> Poll<Result<T, Error>> {
    // Before any look at the core: a change made after this wakes us, one
    // made before is seen by the looks below.
    side.park(cx);
    let result = match poll_inner(side, state, cx, wanted) {
        Poll::Pending => return Poll::Pending,
        Poll::Ready(result) => result,
    };
    if let Err(e) = &result {
        // Exactly the errors for which the core queued a DISCONNECT: one
        // try to write it, never a wait.
        if e.disconnect_reason().is_some() {
            let _ = side.poll_write_pending(cx);
        }
    }
    Poll::Ready(result)
}

fn poll_inner<S: AsyncSide, T>(
    side: &mut S,
    state: &mut ReadState,
    cx: &mut Context<'_>,
    wanted: &mut Wanted<impl read_loop::CorePoll<T>>,
) -> Poll<Result<T, Error>> {
    loop {
        let deadline = match look(side, state, wanted) {
            Ok(Next::Found(found)) => {
                // Output queued meanwhile (a keepalive) goes out as far as
                // it can without waiting; the rest with the next call. What
                // was found is taken off the input already (a packet's
                // sequence number has moved on), so it is returned whatever
                // the write does: a write error is kept by the core, and
                // the next call answers `Failed` with it as the cause.
                let _ = side.poll_write_pending(cx);
                return Poll::Ready(Ok(found));
            }
            Ok(Next::Read { deadline }) => deadline,
            Err(e) => return Poll::Ready(Err(e)),
        };
        // A write that must wait never holds up the read: its waker is
        // registered and the loop goes on.
        if let Poll::Ready(Err(e)) = side.poll_write_pending(cx) {
            return Poll::Ready(Err(e));
        }
        if poll_timer(side, deadline, cx).is_ready() {
            continue;
        }
        let got = match side.poll_read_stream(cx) {
            Poll::Pending => {
                if side.holds_idle_memory() {
                    side.timer().resting(now());
                    // The release deadline may be the nearest now.
                    if poll_timer(side, deadline, cx).is_ready() {
                        continue;
                    }
                }
                return Poll::Pending;
            }
            Poll::Ready(got) => got,
        };
        if matches!(got, Ok(Got::Data(1..))) {
            side.timer().moving();
        }
        if let Err(e) = took(side, wanted, got, now()) {
            return Poll::Ready(Err(e));
        }
    }
}

/// Polls the timer for the core's `deadline` (or the release); when it
/// fired, runs the core's timers and gives the buffers back if the rest
/// lasted long enough.
fn poll_timer<S: AsyncSide>(
    side: &mut S,
    deadline: Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if side.timer().poll(deadline, cx).is_pending() {
        return Poll::Pending;
    }
    let now = now();
    side.with_core(|core, _| core.handle_timeout(now));
    if side.timer().release_due(now) {
        side.timer().moving();
        if side.holds_idle_memory() {
            side.release_idle();
        }
    }
    Poll::Ready(())
}

/// Where a read of the stream goes: the input buffer and the core it is
/// reported to, reached with or without a lock.
pub(crate) trait ReadInto {
    /// Whether the read goes through the stack: a packet boundary with
    /// nothing buffered and a small buffer (see [`SCRATCH`]).
    fn at_rest(&mut self) -> bool;

    /// The room to read into, held by nothing while the read waits.
    fn room(&mut self) -> &mut [u8];

    /// `n` bytes were read into the room at `now`.
    fn filled(&mut self, n: usize, now: Instant);

    /// Copies bytes read elsewhere in; returns how many were taken.
    fn feed(&mut self, bytes: &[u8], now: Instant) -> usize;
}

/// Whether a read into `input` goes through the stack.
pub(crate) fn reads_at_rest(core: &Connection, input: &InputBuffer) -> bool {
    input.allocated() < SCRATCH && input.buffered() == 0 && !core.opener().is_mid_packet()
}

/// A core and the input lent to it, both held for the read: the whole
/// Packetizer's.
pub(crate) struct Lent<'a> {
    pub(crate) core: &'a mut Connection,
    pub(crate) input: &'a mut InputBuffer,
}

impl ReadInto for Lent<'_> {
    fn at_rest(&mut self) -> bool {
        reads_at_rest(self.core, self.input)
    }

    fn room(&mut self) -> &mut [u8] {
        self.core.recv_buf(self.input)
    }

    fn filled(&mut self, n: usize, now: Instant) {
        self.core.recv_filled(self.input, n, now);
    }

    fn feed(&mut self, bytes: &[u8], now: Instant) -> usize {
        self.core.feed(self.input, bytes, now)
    }
}

/// Reads from `io` into `to` and reports the bytes with the time: through a
/// stack buffer at rest (see [`SCRATCH`]), else straight into the room the
/// core offers.
pub(crate) fn poll_read_into<R: AsyncRead + Unpin>(
    io: &mut R,
    to: &mut impl ReadInto,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Got>> {
    // A buffer a stream of packets grew reads straight in; a connection
    // that rests or trades small packets copies them from the stack.
    if to.at_rest() {
        let mut scratch = [0u8; SCRATCH];
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(io).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let got = buf.filled();
        if got.is_empty() {
            return Poll::Ready(Ok(Got::Eof));
        }
        // An empty buffer has room for far more than one scratch read (the
        // input bound is at least 35000 + 64 KiB); were it ever otherwise,
        // say so rather than drop the rest.
        let taken = to.feed(got, now());
        if taken < got.len() {
            return Poll::Ready(Err(io::Error::other(
                "the input bound is smaller than one stack read",
            )));
        }
        return Poll::Ready(Ok(Got::Data(taken)));
    }
    let (n, offered) = {
        let room = to.room();
        let offered = room.len();
        let mut buf = ReadBuf::new(room);
        match Pin::new(io).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        (buf.filled().len(), offered)
    };
    if n > 0 {
        to.filled(n, now());
    }
    // Nothing read into room that was there: the peer closed.
    Poll::Ready(Ok(match (n, offered) {
        (0, 1..) => Got::Eof,
        (n, _) => Got::Data(n),
    }))
}

/// Bytes waiting to be written, and where their fate is reported: the
/// core's output (the whole Packetizer) or a split writer's outbound half.
pub(crate) trait Output {
    /// The bytes to write next; empty when nothing is pending.
    fn pending(&mut self) -> Result<&[u8], Error>;

    /// `n` of them were written.
    fn written(&mut self, n: usize);

    /// The stream failed: the connection's first error.
    fn failed(&mut self, e: io::Error) -> Error;
}

/// The whole Packetizer's output. It does not look at the core's error
/// first: a DISCONNECT queued by a failure or a close goes out too.
impl Output for Connection {
    fn pending(&mut self) -> Result<&[u8], Error> {
        Ok(self.pending_output())
    }

    fn written(&mut self, n: usize) {
        self.output_written(n, now());
    }

    fn failed(&mut self, e: io::Error) -> Error {
        self.fail_with(Error::Io(e))
    }
}

/// Writes `out` as far as the stream takes it now, then flushes the stream
/// (`unflushed`: bytes were written since the last flush).
pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut impl Output,
    unflushed: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    loop {
        let bytes = match out.pending() {
            Ok([]) => break,
            Ok(bytes) => bytes,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match Pin::new(&mut *io).poll_write(cx, bytes) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(n)) if n > 0 => {
                out.written(n);
                *unflushed = true;
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(result) => {
                let e = result
                    .err()
                    .unwrap_or_else(|| io::ErrorKind::WriteZero.into());
                return Poll::Ready(Err(out.failed(e)));
            }
        }
    }
    if *unflushed {
        match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(out.failed(e))),
        }
    }
    Poll::Ready(Ok(()))
}
