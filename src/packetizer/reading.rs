//! The read loop of both sync drivers: ask the core, service its events
//! (the decisions shared with the async drivers are in
//! [`crate::read_loop`]), read more, repeat. It only moves bytes, reads the
//! clock and runs the caller's keepalive callback.

use std::io;
use std::time::{Duration, Instant};

use super::stream::Read1;
use crate::codec::InputBuffer;
use crate::connection::Connection;
use crate::error::Error;
use crate::read_loop::{run_keepalive, CoreSide, ReadState};

/// One sync driver's view of its connection: the core, and how it reads
/// the stream.
pub(crate) trait Side: CoreSide {
    /// One read of the stream into the room the core offers in the input
    /// buffer, without holding the core while it waits (the loop records
    /// the bytes with `Connection::recv_filled`). `until` is the time left
    /// to the core's next deadline, which bounds the driver's back-off on
    /// a non-blocking stream.
    fn read_stream(&mut self, until: Option<Duration>) -> io::Result<Read1>;

    /// The time, from the driver's clock.
    fn now(&self) -> Instant;

    /// Writes what the core queued after a fatal error (its DISCONNECT),
    /// best effort.
    fn flush_after_failure(&mut self);
}

/// Waits until `poll` finds what it wants in the buffered input.
///
/// `check_rekey`: report a pending rekey request as [`Error::NeedRekey`]
/// once, when nothing is buffered (a packet boundary with nothing of the
/// next read in). `raw_needed`: the bytes a raw read needs in all, for the
/// EOF report; `None` for packets.
pub(crate) fn wait_for<S: Side, T>(
    side: &mut S,
    state: &mut ReadState,
    check_rekey: bool,
    raw_needed: Option<usize>,
    mut poll: impl FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let result = wait_inner(side, state, check_rekey, raw_needed, &mut poll);
    if let Err(e) = &result {
        // Exactly the errors for which the core queued a DISCONNECT.
        if e.disconnect_reason().is_some() {
            side.flush_after_failure();
        }
    }
    result
}

fn wait_inner<S: Side, T>(
    side: &mut S,
    state: &mut ReadState,
    check_rekey: bool,
    raw_needed: Option<usize>,
    poll: &mut impl FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    loop {
        if let Some(found) = side.with_core(|core, input| poll(core, input))? {
            return Ok(found);
        }
        let at_boundary = side.with_core(|_, input| input.buffered() == 0);
        // Raw bytes waiting for the rest of a raw read are no half-read
        // packet: the keepalive may run then.
        run_keepalive(side, state, at_boundary || raw_needed.is_some())?;
        if side.with_core(|core, _| state.rekey_due(check_rekey, at_boundary, core)) {
            return Err(Error::NeedRekey);
        }
        // How long a non-blocking stream may be left alone: until the
        // core's next deadline, on the driver's clock.
        let next = side.with_core(|core, _| core.poll_timeout());
        let until = next.map(|deadline| deadline.saturating_duration_since(side.now()));
        let read = side.read_stream(until);
        let now = side.now();
        match read {
            Ok(Read1::Data(0)) => {
                // No room and no whole packet: the core's bound says the
                // input is full (it never is, with a packet to finish).
                return Err(Error::InvalidCall {
                    reason: "the input buffer is full and holds no whole packet",
                });
            }
            Ok(Read1::Data(n)) => side.with_core(|core, input| core.recv_filled(input, n, now)),
            Ok(Read1::Tick) => side.with_core(|core, _| core.handle_timeout(now)),
            Ok(Read1::Eof) => {
                return Err(side.with_core(|core, input| core.recv_eof(input, raw_needed)))
            }
            Err(e) => return Err(side.with_core(|core, _| core.fail_io(e))),
        }
    }
}
