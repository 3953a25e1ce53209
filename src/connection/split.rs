//! The connection split in two for a reader and writers that run apart
//! (threads, tasks): one core behind a lock, shared by an inbound half
//! that owns the input and an outbound half that owns the bytes in flight,
//! so neither holds the core while it waits on the stream. Sans-IO: the
//! driver moves the bytes, and says what time it is and how to wake its
//! waiters ([`SplitDriver`]); when to wake them is decided here, once.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::outbound::Outbound;
use super::Connection;
use crate::codec::InputBuffer;

/// What a split driver tells the shared core: the time on its clock, and
/// how to wake whoever waits for the core to change.
pub trait SplitDriver: Send + Sync {
    /// The time now, on the driver's clock.
    fn now(&self) -> Instant;

    /// The core changed in a way a waiter may care about: it closed or
    /// failed, its hold shrank, a rekey became wanted, or (in a call that
    /// took a time) its next deadline came nearer. Wake senders waiting for
    /// room in the hold and a reader waiting for its deadline. Called with
    /// the core's lock released.
    fn wake(&self);
}

/// What waiters watch in the core: a few counters, cheap to read on
/// every call. The next deadline is watched only around calls that take a
/// time ([`SharedConnection::with_now`]): only those bring one nearer.
struct Watched {
    closed: bool,
    held: usize,
    rekeys: u64,
}

impl Watched {
    fn of(core: &Connection) -> Watched {
        Watched {
            closed: core.is_closed(),
            held: core.held_bytes(),
            rekeys: core.rekeys_wanted(),
        }
    }

    /// Whether the change from `self` to `now` is worth a wake-up: the
    /// connection closed or failed, the hold shrank (a waiting sender may
    /// seal), or a rekey became wanted (the reader reports it).
    fn wakes(&self, now: &Watched) -> bool {
        now.closed != self.closed || now.held < self.held || now.rekeys != self.rekeys
    }
}

/// Whether the core's next deadline came nearer (the reader's timer must
/// be re-armed). One that moved away or went wakes nobody: the timer fires
/// early and re-arms.
fn nearer(now: Option<Instant>, before: Option<Instant>) -> bool {
    match (now, before) {
        (Some(now), Some(before)) => now < before,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

struct Shared {
    core: Mutex<Connection>,
    driver: Arc<dyn SplitDriver>,
}

/// The connection core both halves of a split share, as each half (and
/// each split driver's halves) hands it out: paramiko's controls, and
/// [`SharedConnection::with`] for everything else the core offers.
///
/// Every call takes the lock only for itself (never across an `.await`);
/// the calls that need the time ([`SharedConnection::with_now`] and the
/// controls built on it) bring the core's timers up to the driver's clock
/// first. A change a waiter cares about wakes it ([`SplitDriver::wake`]).
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use ssh_packetizer::{Config, Connection, InputBuffer, SplitDriver};
///
/// struct NoWaiters;
/// impl SplitDriver for NoWaiters {
///     fn now(&self) -> Instant { Instant::now() }
///     fn wake(&self) {}
/// }
///
/// let core = Connection::new(Config::client(), Instant::now());
/// let (inbound, outbound) = core.split(InputBuffer::new(), Arc::new(NoWaiters));
/// // Either half (and each split Packetizer's halves) hands out the same core.
/// outbound.connection().start_handshake(Duration::from_secs(15));
/// assert!(!inbound.connection().handshake_timed_out());
/// assert_eq!(inbound.connection().with(|core| core.seqno_out()), 0);
/// ```
#[derive(Clone)]
pub struct SharedConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the core: printing it would take the lock, which a caller
        // inside `with` already holds.
        f.debug_struct("SharedConnection").finish_non_exhaustive()
    }
}

impl Connection {
    /// Splits the connection into an inbound half, which owns `input`
    /// (the bytes read and not yet taken), and an outbound half, for a
    /// reader and writers that run apart. `driver` gives the halves its
    /// clock and its way of waking waiters.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Instant;
    /// use ssh_packetizer::{Config, Connection, InputBuffer, Opened, SplitDriver};
    ///
    /// struct NoWaiters;
    /// impl SplitDriver for NoWaiters {
    ///     fn now(&self) -> Instant { Instant::now() }
    ///     fn wake(&self) {}
    /// }
    ///
    /// let now = Instant::now();
    /// let (mut inbound, _) = Connection::new(Config::server(), now)
    ///     .split(InputBuffer::new(), Arc::new(NoWaiters));
    /// let (_, mut outbound) = Connection::new(Config::client(), now)
    ///     .split(InputBuffer::new(), Arc::new(NoWaiters));
    /// outbound.connection().with(|core| core.send_message(&[2, 1, 2, 3]))?;
    /// // The writer writes without the lock; the reader reads without it.
    /// let bytes = outbound.to_write()?.to_vec();
    /// outbound.wrote(bytes.len());
    /// let room = inbound.recv_buf();
    /// room[..bytes.len()].copy_from_slice(&bytes);
    /// let now = inbound.connection().now();
    /// inbound.with(|core, input| core.recv_filled(input, bytes.len(), now));
    /// let got = inbound.with(|core, input| matches!(core.poll_packet(input), Ok(Opened::Packet(_))));
    /// assert!(got);
    /// assert_eq!(inbound.input().packet().unwrap().payload(), [2, 1, 2, 3]);
    /// # Ok::<(), ssh_packetizer::Error>(())
    /// ```
    pub fn split(self, input: InputBuffer, driver: Arc<dyn SplitDriver>) -> (Inbound, Outbound) {
        let connection = SharedConnection {
            shared: Arc::new(Shared {
                core: Mutex::new(self),
                driver,
            }),
        };
        let outbound = Outbound::new(connection.clone());
        (Inbound { connection, input }, outbound)
    }
}

impl SharedConnection {
    /// Runs `f` on the core: for sends, for what is negotiated or changes
    /// mid-connection (strict kex, delayed compression, a rekey request),
    /// and for inspection. Cheap: the lock, and a look at what waiters
    /// watch. The core's timers are not run (the reader runs them, and
    /// [`SharedConnection::with_now`] does): a call that takes a time goes
    /// through `with_now`.
    ///
    /// A split driver's reader follows the core's counts
    /// ([`Connection::rekeys_wanted`], [`Connection::keepalives_due`]), not
    /// its events, so the events ([`Connection::poll_event`]) are the
    /// caller's to take. The input is the inbound half's: packets are read
    /// through it, not through the core. A message sent through it is
    /// sealed and goes out with the next write of either half. `f` must not
    /// call this connection again, through this handle or either half (a
    /// clone, [`Inbound::with`], [`Outbound::to_write`]): the lock is not
    /// re-entrant.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        self.watched(f)
    }

    /// As [`SharedConnection::with`], for the core's calls that take a
    /// time ([`Connection::send_newkeys`], [`Connection::set_inbound_keys`],
    /// [`Connection::start_handshake`], [`Connection::set_keepalive`]) and
    /// for questions whose answer depends on it
    /// ([`Connection::need_rekey`], the handshake deadline): the core's
    /// timers are first brought up to the driver's clock, `f` gets the
    /// time, and a deadline that came nearer wakes the reader.
    pub fn with_now<T>(&self, f: impl FnOnce(&mut Connection, Instant) -> T) -> T {
        let now = self.now();
        let ((result, nearer), changed) = self.locked(|core| {
            core.handle_timeout(now);
            let before = core.poll_timeout();
            let result = f(core, now);
            (result, nearer(core.poll_timeout(), before))
        });
        if changed || nearer {
            self.shared.driver.wake();
        }
        result
    }

    /// The time now, on the driver's clock.
    pub fn now(&self) -> Instant {
        self.shared.driver.now()
    }

    /// Whether a key exchange is wanted or under way (paramiko's
    /// `need_rekey`): see [`Connection::need_rekey`].
    pub fn need_rekey(&self) -> bool {
        self.with_now(|core, _| core.need_rekey())
    }

    /// Starts the handshake deadline: `timeout` from now on the driver's
    /// clock (paramiko's `start_handshake`).
    pub fn start_handshake(&self, timeout: Duration) {
        self.with_now(|core, now| core.start_handshake(timeout, now));
    }

    /// Whether the handshake deadline has passed (paramiko's
    /// `handshake_timed_out`).
    pub fn handshake_timed_out(&self) -> bool {
        self.with_now(|core, _| core.handshake_timed_out())
    }

    /// Ends the handshake deadline (paramiko's `complete_handshake`).
    pub fn complete_handshake(&self) {
        self.with(|core| core.complete_handshake());
    }

    /// Closes both halves: every later call answers
    /// [`Error::Closed`](crate::Error::Closed), and waiters wake. A sync
    /// reader blocked in `read` notices at its next read timeout; give the
    /// stream one.
    pub fn close(&self) {
        self.with(|core| core.close());
    }

    /// Runs `f` under the lock, then wakes the waiters if what they watch
    /// changed.
    pub(super) fn watched<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let (result, changed) = self.locked(f);
        if changed {
            self.shared.driver.wake();
        }
        result
    }

    /// Runs `f` under the lock; says whether what waiters watch changed.
    fn locked<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> (T, bool) {
        let mut core = self.lock();
        let before = Watched::of(&core);
        let result = f(&mut core);
        let changed = before.wakes(&Watched::of(&core));
        (result, changed)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic inside a core call, a bug: the
        // other half goes on with the state as the panic left it rather
        // than panicking too.
        self.shared.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The inbound half of a split [`Connection`]: the input, owned here so a
/// reader fills it from the stream without holding the core, and the
/// shared core it reads through.
///
/// Packets are opened in place in the input and borrowed from it
/// ([`Inbound::input`], [`InputBuffer::packet`]), with no lock held.
/// Waiters wake when a read ends the connection (a fatal error), so no
/// sender waits on a hold that will never empty. The holder is the one
/// that runs the core's timers and waits for its deadlines.
pub struct Inbound {
    connection: SharedConnection,
    input: InputBuffer,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("buffered", &self.input.buffered())
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// Runs `f` on the core and the input under the lock (a read:
    /// [`Connection::poll_packet`], [`Connection::feed`],
    /// [`Connection::recv_eof`]...), waking waiters as
    /// [`SharedConnection::with`] does. The core's timers, and its next
    /// deadline, are the reader's: this runs no timer, and a deadline a
    /// call here brings nearer wakes nobody (the reader re-arms its timer
    /// after each call).
    pub fn with<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T {
        let input = &mut self.input;
        self.connection.watched(|core| f(core, input))
    }

    /// The room to read the stream into ([`Connection::recv_buf`]), found
    /// under the lock and handed out without it, so the read waits with no
    /// lock held; report the bytes with [`Connection::recv_filled`].
    pub fn recv_buf(&mut self) -> &mut [u8] {
        let core = self.connection.lock();
        core.recv_buf(&mut self.input)
    }

    /// The input: what is buffered, and the packet last taken.
    pub fn input(&self) -> &InputBuffer {
        &self.input
    }

    /// The shared core.
    pub fn connection(&self) -> &SharedConnection {
        &self.connection
    }
}
