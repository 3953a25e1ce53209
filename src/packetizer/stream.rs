//! Blocking reads and writes, the only I/O the sync drivers do.
//!
//! Reads report a timeout of the stream (`WouldBlock` or `TimedOut`) as a
//! tick, on which the driver runs the core's timers. Writes keep track of
//! their own progress, so a stream with a write timeout can retry without
//! losing its place, and a write that makes no progress for the caller's
//! limit fails with [`Error::WriteStalled`]. A non-blocking stream, whose
//! reads and writes return `WouldBlock` at once, does not spin: the driver
//! sleeps a little ([`NONBLOCKING_BACKOFF`], or less if a deadline is
//! nearer) before it tries again.

use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use super::clock::Clock;
use crate::error::Error;

/// How long a driver sleeps when a stream returned `WouldBlock` without
/// waiting at all (a non-blocking stream).
pub const NONBLOCKING_BACKOFF: Duration = Duration::from_millis(5);

/// A `WouldBlock` quicker than this came from a stream that does not wait.
const INSTANT: Duration = Duration::from_millis(1);

/// What one read of the stream gave.
pub(crate) enum Read1 {
    /// Bytes arrived.
    Data(usize),
    /// The peer closed its side.
    Eof,
    /// The read timed out with nothing new: run the timers.
    Tick,
}

/// One read into `buf`; interruptions are retried. After a `WouldBlock`
/// that came back at once it waits `backoff`, or `until` (the time left to
/// the core's next deadline) if that is sooner.
pub(crate) fn read_once(
    io: &mut impl Read,
    buf: &mut [u8],
    until: Option<Duration>,
    backoff: Duration,
) -> io::Result<Read1> {
    let pause = until.map_or(backoff, |left| left.min(backoff));
    loop {
        let started = Instant::now();
        return match io.read(buf) {
            Ok(0) if !buf.is_empty() => Ok(Read1::Eof),
            Ok(n) => Ok(Read1::Data(n)),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                back_off(started, pause);
                Ok(Read1::Tick)
            }
            Err(e) => Err(e),
        };
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Sleeps `pause` after a `WouldBlock` that came back at once, so a
/// non-blocking stream is polled a few hundred times a second rather than
/// spun on (the driver's back-off, or less when the core's next deadline
/// is nearer; the core moves a deadline on once it fires).
fn back_off(started: Instant, pause: Duration) {
    if started.elapsed() >= INSTANT || pause.is_zero() {
        return;
    }
    std::thread::sleep(pause);
}

/// How a write waits on a stream that reports its waits.
pub(crate) struct Patience<'a> {
    /// The longest time without progress; `None` waits as long as the
    /// stream does.
    pub(crate) stall: Option<Duration>,
    /// The pause after a `WouldBlock` that came back at once.
    pub(crate) backoff: Duration,
    /// Asked on each wait: the connection closed meanwhile (another thread
    /// closed it, or it failed), so waiting on is pointless.
    pub(crate) cancelled: &'a dyn Fn() -> bool,
}

/// Writes all of `bytes` and flushes, waiting as `patience` says on a
/// stream with a write timeout (which reports each wait as `WouldBlock` or
/// `TimedOut`).
pub(crate) fn write_fully(
    io: &mut impl Write,
    bytes: &[u8],
    patience: &Patience<'_>,
    clock: &dyn Clock,
) -> Result<(), Error> {
    let mut written = 0;
    let mut last_progress = clock.now();
    // A wait on a write or on the flush (a buffered writer) counts against
    // the stall limit alike.
    let waited = |started: Instant, last_progress: Instant| {
        let waited = clock.now().saturating_duration_since(last_progress);
        if patience.stall.is_some_and(|limit| waited >= limit) {
            return Err(Error::WriteStalled { waited });
        }
        if (patience.cancelled)() {
            return Err(Error::Closed);
        }
        back_off(started, patience.backoff);
        Ok(())
    };
    while written < bytes.len() {
        let started = Instant::now();
        match io.write(&bytes[written..]) {
            Ok(0) => return Err(Error::Io(ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n;
                last_progress = clock.now();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => waited(started, last_progress)?,
            Err(e) => return Err(Error::Io(e)),
        }
    }
    loop {
        let started = Instant::now();
        match io.flush() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => waited(started, last_progress)?,
            Err(e) => return Err(Error::Io(e)),
        }
    }
}
