//! The read loop's decisions, sans-IO, for the sync and the async drivers
//! alike: what a loop keeps between calls, what each kind of read waits
//! for, when a wanted rekey is reported as [`Error::NeedRekey`], when the
//! keepalive callback runs, and what a read of the stream means. A driver's
//! loop is [`look`], then its own I/O (a blocking read, or a poll with its
//! timer), then [`took`]; neither driver imports the other.

use std::io;
use std::time::Instant;

use crate::banner::Identification;
use crate::codec::{InputBuffer, Opened, Packet};
use crate::connection::{Connection, Sent};
use crate::error::Error;

/// Something a message can be sent through: what the keepalive callback is
/// handed.
pub trait SendMessage {
    /// Seals `payload` (message type byte first) and writes it.
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error>;
}

/// The keepalive callback: given a handle to send with when the connection
/// has been idle for the interval.
pub(crate) type KeepaliveCallback =
    Box<dyn FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send>;

/// What a read loop keeps between calls.
#[derive(Default)]
pub(crate) struct ReadState {
    pub(crate) keepalive: Option<KeepaliveCallback>,
    /// The core's count of rekey requests when one was last reported (or
    /// passed over, an exchange being under way); a higher count is a
    /// request not yet reported as `NeedRekey`.
    rekeys_seen: u64,
    /// The core's count of due keepalives when the callback last ran (or
    /// was passed over); one that fell due inside a packet runs at the next
    /// packet boundary.
    keepalives_seen: u64,
}

/// How a driver, sync or async, reaches its core: the core with the input
/// buffer it lends, and itself as the keepalive callback's way to send.
pub(crate) trait CoreSide: SendMessage {
    /// Runs `f` on the core and the input buffer the driver lends it.
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T;
}

/// What a read waits for: how the core is asked, whether a pending rekey
/// stops it, and what an EOF means for it.
pub(crate) struct Wanted<P> {
    /// Report a pending rekey request as [`Error::NeedRekey`] once, at a
    /// packet boundary with nothing of the next read in.
    check_rekey: bool,
    /// The raw bytes the read needs in all, for the EOF report (0: a line);
    /// `None` for packets.
    raw_needed: Option<usize>,
    poll: P,
}

/// A poll of the core for one kind of read.
pub(crate) trait CorePoll<T>:
    FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<T>, Error>
{
}

impl<T, F: FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<T>, Error>> CorePoll<T> for F {}

/// The next packet; the loop then takes it from the input
/// ([`found_packet`]).
pub(crate) fn packet() -> Wanted<impl CorePoll<()>> {
    Wanted {
        check_rekey: true,
        raw_needed: None,
        poll: |core: &mut Connection, input: &mut InputBuffer| match core.poll_packet(input)? {
            Opened::Packet(_) => Ok(Some(())),
            Opened::AwaitingKeys => Err(Error::KeysPending),
            _ => Ok(None),
        },
    }
}

/// One line, its ending stripped; invalid UTF-8 replaced with U+FFFD.
pub(crate) fn line() -> Wanted<impl CorePoll<String>> {
    Wanted {
        check_rekey: false,
        raw_needed: Some(0),
        poll: |core: &mut Connection, input: &mut InputBuffer| {
            let line = core.poll_line(input)?;
            Ok(line.map(|line| String::from_utf8_lossy(&line).into_owned()))
        },
    }
}

/// The peer's identification line.
pub(crate) fn identification() -> Wanted<impl CorePoll<Identification>> {
    Wanted {
        check_rekey: false,
        raw_needed: Some(0),
        poll: Connection::poll_identification,
    }
}

/// Exactly `n` raw bytes, taken once all are in; more than the input can
/// ever hold is [`Error::ReadTooLarge`].
pub(crate) fn raw(n: usize, check_rekey: bool) -> Wanted<impl CorePoll<Vec<u8>>> {
    Wanted {
        check_rekey,
        raw_needed: Some(n),
        poll: move |core: &mut Connection, input: &mut InputBuffer| {
            // A failed connection says so first, whatever was asked.
            core.check()?;
            let max = core.input_limit();
            if n > max {
                return Err(Error::ReadTooLarge { requested: n, max });
            }
            core.poll_raw(input, n)
        },
    }
}

/// What a look at the core found.
pub(crate) enum Next<T> {
    /// What the read waits for.
    Found(T),
    /// Read the stream, waking for the core's next deadline.
    Read {
        /// When the core's timers next have something to do.
        deadline: Option<Instant>,
    },
}

/// One look before the driver reads, under one lock in the common case:
/// what the read waits for if it is in; else the keepalive callback, run
/// at a packet boundary (as paramiko, never inside a packet) when the
/// keepalive fell due since it last ran; else a deadline that passed, as
/// the connection's error; else [`Error::NeedRekey`] if a rekey request
/// came since the last report, this is a packet boundary and no exchange
/// is under way yet; else read. The counts are the core's, not its
/// events, so a caller taking the events loses the drivers nothing. A
/// callback error is returned as it is (nothing buffered is lost).
pub(crate) fn look<S: CoreSide, T>(
    side: &mut S,
    state: &mut ReadState,
    wanted: &mut Wanted<impl CorePoll<T>>,
) -> Result<Next<T>, Error> {
    loop {
        let keepalive = side.with_core(|core, input| -> Result<_, Error> {
            if let Some(found) = (wanted.poll)(core, input)? {
                return Ok(Err(Next::Found(found)));
            }
            let at_boundary = input.buffered() == 0;
            // Raw bytes waiting for the rest of a raw read are no
            // half-read packet: the keepalive may run then.
            let due = core.keepalives_due();
            if (at_boundary || wanted.raw_needed.is_some()) && due != state.keepalives_seen {
                state.keepalives_seen = due;
                // The core says whether it may go now: a key exchange may
                // have begun since it fell due.
                if core.keepalive_allowed() && state.keepalive.is_some() {
                    return Ok(Ok(()));
                }
            }
            // A deadline that passed is the connection's error now.
            core.check()?;
            let wanted_rekeys = core.rekeys_wanted();
            if wanted.check_rekey && at_boundary && wanted_rekeys != state.rekeys_seen {
                state.rekeys_seen = wanted_rekeys;
                if core.should_start_kex() {
                    return Err(Error::NeedRekey);
                }
            }
            Ok(Err(Next::Read {
                deadline: core.poll_timeout(),
            }))
        })?;
        match keepalive {
            Err(next) => return Ok(next),
            Ok(()) => {
                if let Some(callback) = &mut state.keepalive {
                    log::debug!("idle: keepalive");
                    callback(side)?;
                }
            }
        }
    }
}

/// What one read of the stream gave.
pub(crate) enum Got {
    /// Bytes arrived, already handed to the core with the time (0: there
    /// was no room, the input is full).
    Data(usize),
    /// The peer closed its side.
    Eof,
    /// A blocking read timed out with nothing new: run the timers.
    Tick,
}

/// Takes in what a read of the stream gave, at `now`: a tick runs the
/// timers; an EOF or an error of the stream is the connection's error now,
/// as the core words it for what the read waited for.
pub(crate) fn took<S: CoreSide, P>(
    side: &mut S,
    wanted: &Wanted<P>,
    got: io::Result<Got>,
    now: Instant,
) -> Result<(), Error> {
    match got {
        // No room and no whole packet: the core's bound says the input is
        // full (it never is, with a packet to finish).
        Ok(Got::Data(0)) => Err(Error::InvalidCall {
            reason: "the input buffer is full and holds no whole packet",
        }),
        Ok(Got::Data(_)) => Ok(()),
        Ok(Got::Tick) => {
            side.with_core(|core, _| core.handle_timeout(now));
            Ok(())
        }
        Ok(Got::Eof) => Err(side.with_core(|core, input| core.recv_eof(input, wanted.raw_needed))),
        Err(e) => Err(side.with_core(|core, _| core.fail_with(Error::Io(e)))),
    }
}

/// The packet the read loop just found, from the driver's input buffer.
pub(crate) fn found_packet(input: &InputBuffer) -> Result<Packet<'_>, Error> {
    input.packet().ok_or(Error::InvalidCall {
        reason: "the read loop saw a packet ready",
    })
}
