//! The read loop both sync drivers share: ask the core, service its events,
//! read more, repeat. All decisions are the core's; this only moves bytes,
//! reads the clock and runs the caller's keepalive callback.

use std::io;
use std::time::{Duration, Instant};

use super::stream::Read1;
use super::SendMessage;
use crate::codec::input::InputBuffer;
use crate::connection::{Connection, Event};
use crate::error::Error;

/// The keepalive callback: given a handle to send with when the connection
/// has been idle for the interval.
pub type KeepaliveCallback = Box<dyn FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send>;

/// What a read loop keeps between calls.
#[derive(Default)]
pub(crate) struct ReadState {
    pub(crate) keepalive: Option<KeepaliveCallback>,
    /// A rekey request was raised and not yet reported as `NeedRekey`.
    rekey_pending: bool,
    /// A keepalive fell due while a packet was half read; it runs at the
    /// next packet boundary.
    keepalive_pending: bool,
}

impl ReadState {
    /// Whether a read that checks for rekeys must stop now with
    /// [`Error::NeedRekey`]: a request is pending, this is a packet boundary
    /// and no exchange is under way yet. Reported once per request.
    pub(crate) fn rekey_due(
        &mut self,
        check_rekey: bool,
        at_boundary: bool,
        core: &Connection,
    ) -> bool {
        if !(check_rekey && at_boundary && self.rekey_pending) {
            return false;
        }
        self.rekey_pending = false;
        core.should_start_kex()
    }
}

/// How a driver, sync or async, reaches its core and sends a keepalive.
pub(crate) trait CoreSide {
    /// Runs `f` on the core and on the input buffer the driver keeps, if it
    /// keeps its own (`None`: the core's).
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, Option<&mut InputBuffer>) -> T)
        -> T;

    /// Where the keepalive callback sends.
    fn sink(&mut self) -> &mut dyn SendMessage;
}

/// One sync driver's view of its connection: the core, and how it reads
/// the stream.
pub(crate) trait Side: CoreSide {
    /// One read of the stream into the input buffer, without holding the
    /// core. `until` is the time left to the core's next deadline, which
    /// bounds the driver's back-off on a non-blocking stream.
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
    mut poll: impl FnMut(&mut Connection, Option<&mut InputBuffer>) -> Result<Option<T>, Error>,
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
    poll: &mut impl FnMut(&mut Connection, Option<&mut InputBuffer>) -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    loop {
        if let Some(found) = side.with_core(|core, input| poll(core, input))? {
            return Ok(found);
        }
        let at_boundary = side.with_core(|core, input| match input {
            Some(input) => input.buffered() == 0,
            None => core.buffered() == 0,
        });
        // Raw bytes waiting for the rest of a raw read are no half-read
        // packet: the keepalive may run then.
        service_events(side, state, at_boundary || raw_needed.is_some())?;
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
            Ok(Read1::Data(n)) => side.with_core(|core, _| core.received(n, now)),
            Ok(Read1::Tick) => side.with_core(|core, _| core.handle_timeout(now)),
            Ok(Read1::Eof) => {
                return Err(side.with_core(|core, input| core.recv_eof_in(input, raw_needed)))
            }
            Err(e) => return Err(side.with_core(|core, _| core.fail_io(e))),
        }
    }
}

/// Takes the core's events: a rekey request is remembered for the next
/// packet boundary; a due keepalive runs the callback there (as paramiko,
/// never inside a packet). A callback error is returned as it is (nothing
/// buffered is lost).
pub(crate) fn service_events<S: CoreSide>(
    side: &mut S,
    state: &mut ReadState,
    at_boundary: bool,
) -> Result<(), Error> {
    while let Some(event) = side.with_core(|core, _| core.poll_event()) {
        match event {
            Event::RekeyWanted => state.rekey_pending = true,
            Event::KeepaliveDue => state.keepalive_pending = true,
            _ => {}
        }
    }
    if state.keepalive_pending && at_boundary {
        state.keepalive_pending = false;
        // The core says whether it may go now: a key exchange may have
        // begun since it fell due.
        let allowed = side.with_core(|core, _| core.keepalive_allowed());
        if let (true, Some(callback)) = (allowed, &mut state.keepalive) {
            log::debug!("idle: keepalive");
            callback(side.sink())?;
        }
    }
    // A deadline that passed is the connection's error now.
    side.with_core(|core, _| core.check())
}
