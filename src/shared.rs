//! The connection core the two halves of a split driver share: one home
//! for what either half, sync or async, may ask of it outside its own
//! reads and writes. Each driver says how its lock, clock and wake-ups
//! work ([`SharedCore`]); the controls are written once, here.

use std::ops::DerefMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// How a split driver keeps its core: behind a lock, on a clock, with
/// waiters to wake when it changes.
pub(crate) trait SharedCore: Send + Sync {
    /// The core, locked until the guard is dropped.
    fn lock(&self) -> Box<dyn DerefMut<Target = Connection> + '_>;

    /// The time, on the driver's clock.
    fn now(&self) -> Instant;

    /// Wakes whoever waits for the core to change: senders waiting for a
    /// key exchange's hold to empty, a reader waiting for its deadline.
    fn changed(&self);
}

/// The connection core both halves of a split Packetizer share (sync or
/// tokio), as [`PacketReader::connection`](crate::PacketReader::connection)
/// and [`PacketWriter::connection`](crate::PacketWriter::connection) give
/// it: paramiko's controls, and [`SharedConnection::with`] for everything
/// else the core offers.
///
/// Every call takes the lock only for itself (never across an `.await`)
/// and brings the core's timers up to the driver's clock first; a change
/// wakes whoever waits for one (a sender waiting for the hold, a reader
/// waiting for its next deadline).
///
/// ```
/// use std::time::Duration;
/// use ssh_packetizer::pipe::pipe;
/// use ssh_packetizer::Packetizer;
///
/// let (ours, _theirs) = pipe();
/// let (reader, writer) = Packetizer::new(ours).split()?;
/// writer.connection().start_handshake(Duration::from_secs(15));
/// assert!(!reader.connection().handshake_timed_out());
/// assert_eq!(reader.connection().with(|core| core.seqno_out()), 0);
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedConnection {
    inner: Arc<dyn SharedCore>,
}

impl std::fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the core: printing it would take the lock, which a caller
        // inside `with` already holds.
        f.debug_struct("SharedConnection").finish_non_exhaustive()
    }
}

impl SharedConnection {
    pub(crate) fn new(inner: Arc<dyn SharedCore>) -> SharedConnection {
        SharedConnection { inner }
    }

    /// Runs `f` on the core: for what is negotiated or changes
    /// mid-connection (strict kex, delayed compression, a rekey request)
    /// and for inspection.
    ///
    /// The reader follows the core's counts
    /// ([`Connection::rekeys_wanted`], [`Connection::keepalives_due`]), not
    /// its events, so the events ([`Connection::poll_event`]) are the
    /// caller's to take. The input is the reader's: packets are read
    /// through it, not through the core. A message sent through it is
    /// sealed and goes out with the next write of either half. `f` must not
    /// call this connection's halves: the lock is not re-entrant.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        self.with_now(|core, _| f(core))
    }

    /// Whether a key exchange is wanted or under way (paramiko's
    /// `need_rekey`): see [`Connection::need_rekey`].
    pub fn need_rekey(&self) -> bool {
        self.with(|core| core.need_rekey())
    }

    /// Starts the handshake deadline: `timeout` from now on the driver's
    /// clock (paramiko's `start_handshake`).
    pub fn start_handshake(&self, timeout: Duration) {
        self.with_now(|core, now| core.start_handshake(timeout, now));
    }

    /// Whether the handshake deadline has passed (paramiko's
    /// `handshake_timed_out`).
    pub fn handshake_timed_out(&self) -> bool {
        self.with(|core| core.handshake_timed_out())
    }

    /// Ends the handshake deadline (paramiko's `complete_handshake`).
    pub fn complete_handshake(&self) {
        self.with(|core| core.complete_handshake());
    }

    /// Closes both halves: every later call answers [`Error::Closed`](crate::Error::Closed),
    /// and waiting senders wake. A sync reader blocked in `read` notices at
    /// its next read timeout; give the stream one.
    pub fn close(&self) {
        self.with(|core| core.close());
    }

    /// As [`SharedConnection::with`], with the time it ran at.
    pub(crate) fn with_now<T>(&self, f: impl FnOnce(&mut Connection, Instant) -> T) -> T {
        let now = self.inner.now();
        let result = {
            let mut core = self.inner.lock();
            core.handle_timeout(now);
            f(&mut core, now)
        };
        self.inner.changed();
        result
    }
}
