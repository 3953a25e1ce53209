//! The read loop of both sync drivers: look at the core (the decisions are
//! [`crate::read_loop`]'s, shared with the async drivers), read the stream
//! when nothing is in, take in what the read gave, repeat. It only moves
//! bytes, reads the clock and runs the caller's keepalive callback.

use std::io;
use std::time::{Duration, Instant};

use super::stream::Read1;
use crate::error::Error;
use crate::read_loop::{look, took, CorePoll, CoreSide, Got, Next, ReadState, Wanted};

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

/// Waits until the core has what `wanted` waits for.
pub(crate) fn wait_for<S: Side, T>(
    side: &mut S,
    state: &mut ReadState,
    mut wanted: Wanted<impl CorePoll<T>>,
) -> Result<T, Error> {
    let result = wait_inner(side, state, &mut wanted);
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
    wanted: &mut Wanted<impl CorePoll<T>>,
) -> Result<T, Error> {
    loop {
        let deadline = match look(side, state, wanted)? {
            Next::Found(found) => return Ok(found),
            Next::Read { deadline } => deadline,
        };
        // How long a non-blocking stream may be left alone: until the
        // core's next deadline, on the driver's clock.
        let until = deadline.map(|deadline| deadline.saturating_duration_since(side.now()));
        let read = side.read_stream(until);
        let now = side.now();
        let got = read.map(|read| match read {
            Read1::Data(n) => {
                if n > 0 {
                    side.with_core(|core, input| core.recv_filled(input, n, now));
                }
                Got::Data(n)
            }
            Read1::Tick => Got::Tick,
            Read1::Eof => Got::Eof,
        });
        took(side, wanted, got, now)?;
    }
}
