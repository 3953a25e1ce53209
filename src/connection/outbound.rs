//! The outbound half of a split connection: the sealed bytes a writer took
//! out of the shared core, so it writes them without holding the core.

use super::split::SharedConnection;
use crate::error::Error;

/// The outbound half of a split [`Connection`](super::Connection): the
/// bytes a writer has taken from the shared core and not yet written all
/// of, the counterpart of the [`Inbound`](super::Inbound) half's input.
///
/// A writer takes the output under the lock with [`Outbound::to_write`], which
/// lets go of the lock before it returns; it writes, and reports with
/// [`Outbound::wrote`]. The buffer is swapped with the core's, so neither
/// allocates in the steady state. What was taken is written before
/// anything sealed since, so packets go out in the order they were sealed.
/// After a failed write ([`Outbound::broke`]) part of a packet may be out:
/// nothing more goes, and every later call answers the connection's error.
///
/// Messages are sealed through the shared core
/// ([`Outbound::connection`]), from any thread; one writer at a time
/// holds the `Outbound` (behind the driver's write lock, with the stream).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Instant;
/// use ssh_packetizer::{Config, Connection, InputBuffer, SplitDriver};
///
/// struct NoWaiters;
/// impl SplitDriver for NoWaiters {
///     fn now(&self) -> Instant { Instant::now() }
///     fn wake(&self) {}
/// }
///
/// let core = Connection::new(Config::client(), Instant::now());
/// let (_, mut out) = core.split(InputBuffer::new(), Arc::new(NoWaiters));
/// out.connection().with(|core| core.send_message(&[20, 1, 2, 3]))?;
/// let n = out.to_write()?.len();
/// assert!(n > 0 && out.connection().with(|core| core.pending_output().is_empty()));
/// out.wrote(n - 1); // a short write: the rest comes next
/// assert_eq!(out.to_write()?.len(), 1);
/// out.wrote(1);
/// assert!(out.to_write()?.is_empty());
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
pub struct Outbound {
    connection: SharedConnection,
    /// Bytes taken from the core (swapped with its output).
    bytes: Vec<u8>,
    /// How many of them were written.
    written: usize,
    /// A write failed: part of a packet may be out, nothing may follow.
    broken: bool,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub(super) fn new(connection: SharedConnection) -> Outbound {
        Outbound {
            connection,
            bytes: Vec::new(),
            written: 0,
            broken: false,
        }
    }

    /// The bytes to write next: the rest of what was taken, or, once all of
    /// it went, the core's pending output, taken now. Empty when nothing is
    /// pending. After [`Outbound::broke`], the connection's error.
    ///
    /// Output taken counts as written at the driver's time: the idle timer
    /// restarts, and the core's timers run, so a deadline that passed ends
    /// the connection here (waking its waiters, as every call that ends it
    /// does).
    pub fn to_write(&mut self) -> Result<&[u8], Error> {
        if self.broken {
            self.connection.with(|core| core.check())?;
            return Err(Error::Closed);
        }
        if self.written == self.bytes.len() {
            self.written = 0;
            let (connection, bytes) = (&self.connection, &mut self.bytes);
            bytes.clear();
            connection.with(|core| {
                // Nothing to take (every drain ends here): no clock read.
                if !core.pending_output().is_empty() {
                    core.take_output(bytes, connection.now());
                }
            });
        }
        Ok(&self.bytes[self.written..])
    }

    /// Records that `n` more of the bytes [`Outbound::to_write`] gave were
    /// written (a stream that claims more is not believed past the end).
    pub fn wrote(&mut self, n: usize) {
        self.written = (self.written + n).min(self.bytes.len());
    }

    /// A write failed: nothing more goes out, the connection fails with
    /// `e` (unless it failed before) and its waiters wake, and the first
    /// error is returned.
    pub fn broke(&mut self, e: Error) -> Error {
        self.broken = true;
        self.bytes.clear();
        self.written = 0;
        self.connection.watched(|core| core.fail_with(e))
    }

    /// Bytes taken and not yet written.
    pub fn in_flight(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// Heap bytes the buffer holds.
    pub fn allocated(&self) -> usize {
        self.bytes.capacity()
    }

    /// Gives the buffer back if nothing is in flight; returns the bytes
    /// given back. (Sealed bytes are ciphertext, or cleartext before the
    /// keys: nothing secret is left behind.)
    pub fn release_idle(&mut self) -> usize {
        if self.in_flight() > 0 {
            return 0;
        }
        let freed = self.bytes.capacity();
        self.bytes = Vec::new();
        self.written = 0;
        freed
    }

    /// The shared core: where messages are sealed.
    pub fn connection(&self) -> &SharedConnection {
        &self.connection
    }
}
