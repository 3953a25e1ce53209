//! The read loop both async drivers share, as a poll function: ask the core,
//! service its events, write what is pending without waiting for it, run
//! the timer, read more. Every decision is the core's; this moves bytes and
//! reads tokio's clock.
//!
//! Cancel safety comes from where the state lives: every byte read is in
//! the input buffer and every byte to write in the core's output (or the
//! writer's buffer) before a poll returns, so dropping the future that
//! polls this loses nothing.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, ReadBuf};

use super::timer::{now, Timer};
use crate::codec::InputBuffer;
use crate::connection::Connection;
use crate::error::Error;
use crate::read_loop::{run_keepalive, CoreSide, ReadState};

/// Bytes read on the stack at a packet boundary with nothing buffered and
/// less than this allocated, so a connection at rest allocates nothing to
/// wait with and one trading small packets never grows a large buffer: the
/// bytes are copied into one of just their size (or of the packet's, if it
/// is larger). A buffer grown by a stream of packets is read into directly.
const SCRATCH: usize = 16 * 1024;

/// What one read of the stream gave.
pub(crate) enum Got {
    /// Bytes arrived, already in the input buffer and reported to the
    /// core with the time.
    Data(usize),
    /// The peer closed its side.
    Eof,
}

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

/// Polls until `poll` finds what it wants in the buffered input (see the
/// sync `wait_for`: the same rules for `check_rekey` and `raw_needed`).
pub(crate) fn poll_wait<S: AsyncSide, T>(
    side: &mut S,
    state: &mut ReadState,
    cx: &mut Context<'_>,
    check_rekey: bool,
    raw_needed: Option<usize>,
    poll: &mut impl FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<T>, Error>,
) -> Poll<Result<T, Error>> {
    // Before any look at the core: a change made after this wakes us, one
    // made before is seen by the looks below.
    side.park(cx);
    let result = match poll_inner(side, state, cx, check_rekey, raw_needed, poll) {
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
    check_rekey: bool,
    raw_needed: Option<usize>,
    poll: &mut impl FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<T>, Error>,
) -> Poll<Result<T, Error>> {
    loop {
        match side.with_core(|core, input| poll(core, input)) {
            Ok(Some(found)) => {
                // Output queued meanwhile (a keepalive) goes out as far as
                // it can without waiting; the rest with the next call. What
                // was found is taken off the input already (a packet's
                // sequence number has moved on), so it is returned whatever
                // the write does: a write error is kept by the core, and
                // the next call answers `Failed` with it as the cause.
                let _ = side.poll_write_pending(cx);
                return Poll::Ready(Ok(found));
            }
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
        let at_boundary = side.with_core(|_, input| input.buffered() == 0);
        if let Err(e) = run_keepalive(side, state, at_boundary || raw_needed.is_some()) {
            return Poll::Ready(Err(e));
        }
        if side.with_core(|core, _| state.rekey_due(check_rekey, at_boundary, core)) {
            return Poll::Ready(Err(Error::NeedRekey));
        }
        // A write that must wait never holds up the read: its waker is
        // registered and the loop goes on.
        if let Poll::Ready(Err(e)) = side.poll_write_pending(cx) {
            return Poll::Ready(Err(e));
        }
        if poll_timer(side, cx).is_ready() {
            continue;
        }
        match side.poll_read_stream(cx) {
            Poll::Pending => {
                if side.holds_idle_memory() {
                    side.timer().resting(now());
                    // The release deadline may be the nearest now.
                    if poll_timer(side, cx).is_ready() {
                        continue;
                    }
                }
                return Poll::Pending;
            }
            Poll::Ready(Ok(Got::Data(0))) => {
                // No room and no whole packet: the core's bound says the
                // input is full (it never is, with a packet to finish).
                return Poll::Ready(Err(Error::InvalidCall {
                    reason: "the input buffer is full and holds no whole packet",
                }));
            }
            Poll::Ready(Ok(Got::Data(_))) => side.timer().moving(),
            Poll::Ready(Ok(Got::Eof)) => {
                return Poll::Ready(Err(
                    side.with_core(|core, input| core.recv_eof(input, raw_needed))
                ));
            }
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(side.with_core(|core, _| core.fail_io(e))))
            }
        }
    }
}

/// Polls the timer; when it fired, runs the core's timers and gives the
/// buffers back if the rest lasted long enough.
fn poll_timer<S: AsyncSide>(side: &mut S, cx: &mut Context<'_>) -> Poll<()> {
    let deadline = side.with_core(|core, _| core.poll_timeout());
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

/// Reads from `io` into `input` and reports the bytes to the core with
/// the time: through a stack buffer at a packet boundary with nothing
/// buffered and a small buffer (see [`SCRATCH`]), else straight into the
/// room the core offers.
pub(crate) fn poll_read_into<R: AsyncRead + Unpin>(
    io: &mut R,
    core: &mut Connection,
    input: &mut InputBuffer,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Got>> {
    // A buffer a stream of packets grew reads straight in; a connection
    // that rests or trades small packets copies them from the stack.
    if input.allocated() < SCRATCH && input.buffered() == 0 && !core.opener().is_mid_packet() {
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
        let taken = core.feed(input, got, now());
        if taken < got.len() {
            return Poll::Ready(Err(io::Error::other(
                "the input bound is smaller than one stack read",
            )));
        }
        return Poll::Ready(Ok(Got::Data(taken)));
    }
    let (n, offered) = {
        let room = core.recv_buf(input);
        let offered = room.len();
        let mut buf = ReadBuf::new(room);
        match Pin::new(io).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        (buf.filled().len(), offered)
    };
    core.recv_filled(input, n, now());
    // Nothing read into room that was there: the peer closed.
    Poll::Ready(Ok(match (n, offered) {
        (0, 1..) => Got::Eof,
        (n, _) => Got::Data(n),
    }))
}
