//! The outbound half's own state: sealed bytes a writer took out of the
//! connection, so it can write them without holding the connection.

use std::time::Instant;

use super::Connection;
use crate::error::Error;

/// The bytes a writer has taken from a [`Connection`] and not yet written
/// all of: the outbound counterpart of the reader's
/// [`InputBuffer`](crate::InputBuffer).
///
/// A writer that shares its connection with a reader (the split halves)
/// takes the output under the connection's lock with
/// [`Outgoing::next`], lets go of the lock, writes, and reports with
/// [`Outgoing::wrote`]; the buffer is swapped with the connection's, so
/// neither allocates in the steady state. What was taken is written before
/// anything sealed since, so packets go out in the order they were sealed.
/// After a failed write ([`Outgoing::broke`]) part of a packet may be out:
/// nothing more goes, and every later call answers the connection's error.
///
/// ```
/// use std::time::Instant;
/// use ssh_packetizer::{Config, Connection, Outgoing};
///
/// let now = Instant::now();
/// let mut core = Connection::new(Config::client(), now);
/// let mut out = Outgoing::default();
/// core.send_message(&[20, 1, 2, 3])?;
/// let bytes = out.next(&mut core, now)?; // under the lock, in a driver
/// let n = bytes.len();
/// assert!(n > 0 && core.pending_output().is_empty());
/// out.wrote(n - 1); // a short write: the rest comes next
/// assert_eq!(out.next(&mut core, now)?.len(), 1);
/// out.wrote(1);
/// assert!(out.next(&mut core, now)?.is_empty());
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Bytes taken from the connection (swapped with its output).
    bytes: Vec<u8>,
    /// How many of them were written.
    written: usize,
    /// A write failed: part of a packet may be out, nothing may follow.
    broken: bool,
}

impl Outgoing {
    /// The bytes to write next: the rest of what was taken, or, once all of
    /// it went, the connection's pending output, taken now (the bytes count
    /// as written at `now`: the idle timer restarts). Empty when
    /// nothing is pending. After [`Outgoing::broke`], the connection's
    /// error.
    pub fn next<'a>(&'a mut self, core: &mut Connection, now: Instant) -> Result<&'a [u8], Error> {
        if self.broken {
            core.check()?;
            return Err(Error::Closed);
        }
        if self.written == self.bytes.len() {
            self.written = 0;
            core.take_output(&mut self.bytes, now);
        }
        Ok(&self.bytes[self.written..])
    }

    /// Records that `n` more of the bytes [`Outgoing::next`] gave were
    /// written (a stream that claims more is not believed past the end).
    pub fn wrote(&mut self, n: usize) {
        self.written = (self.written + n).min(self.bytes.len());
    }

    /// A write failed: nothing more goes out, the connection fails with
    /// `e` (unless it failed before), and the first error is returned.
    pub fn broke(&mut self, core: &mut Connection, e: Error) -> Error {
        self.broken = true;
        self.bytes.clear();
        self.written = 0;
        core.fail_with(e)
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
}
