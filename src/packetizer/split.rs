//! A Packetizer split into a reading half and a writing half for two threads.
//!
//! Both halves wrap the core's own split ([`Connection::split`]): one
//! [`Connection`] behind a lock that each holds only to change the core's
//! state, never across a blocking read or write:
//! - The reader owns the [`Inbound`] half, reads the stream into its input
//!   without the lock, and takes the lock to let the core open packets.
//! - Senders seal into the core's one output buffer under the lock; then
//!   whoever holds the stream's write lock (and with it the [`Outbound`]
//!   half) swaps that buffer out and writes it without the core's lock,
//!   again until nothing is left. So packets go out in the order they were
//!   sealed, a key switch is atomic (the core does it in one call), and a
//!   writer stuck on a full socket stalls nobody else: the reader's
//!   keepalive is sealed and left for that writer to write, since the
//!   reader only ever tries the write lock.
//!
//! What is left here is the blocking: senders waiting on a condition
//! variable for room in the hold, and the write lock.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::clock::Clock;
use super::reading::{wait_for, Side};
use super::stream::{read_once, write_fully, Patience, Read1};
use super::{Packetizer, DEFAULT_TICK};
use crate::banner::Identification;
use crate::codec::{InputBuffer, Packet};
use crate::connection::{Connection, Inbound, Outbound, Sent, SharedConnection, SplitDriver};
use crate::error::Error;
use crate::keys::Keys;
#[cfg(any(test, feature = "test-util"))]
use crate::pipe::{PipeEnd, PipeReader, PipeWriter};
use crate::read_loop::{self, found_packet, CoreSide, KeepaliveCallback, ReadState, SendMessage};

/// A stream that can be taken apart into a reading and a writing half.
pub trait SplitStream: Read + Write + Sized {
    /// The reading half.
    type Reader: Read + Send + 'static;
    /// The writing half.
    type Writer: Write + Send + 'static;

    /// The two halves.
    fn split_stream(self) -> io::Result<(Self::Reader, Self::Writer)>;
}

impl SplitStream for TcpStream {
    type Reader = TcpStream;
    type Writer = TcpStream;

    fn split_stream(self) -> io::Result<(TcpStream, TcpStream)> {
        Ok((self.try_clone()?, self))
    }
}

#[cfg(any(test, feature = "test-util"))]
impl SplitStream for PipeEnd {
    type Reader = PipeReader;
    type Writer = PipeWriter;

    fn split_stream(self) -> io::Result<(PipeReader, PipeWriter)> {
        Ok(self.split())
    }
}

/// Any reader and writer used as one stream (a child process's stdout and
/// stdin, two pipes), so a Packetizer can run over them and split them again.
#[derive(Debug)]
pub struct Duplex<R, W> {
    /// Where bytes are read from.
    pub reader: R,
    /// Where bytes are written to.
    pub writer: W,
}

impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl<R: Read + Send + 'static, W: Write + Send + 'static> SplitStream for Duplex<R, W> {
    type Reader = R;
    type Writer = W;

    fn split_stream(self) -> io::Result<(R, W)> {
        Ok((self.reader, self.writer))
    }
}

/// The two halves [`Packetizer::split`] returns.
pub type Halves<S> = (
    PacketReader<<S as SplitStream>::Reader>,
    PacketWriter<<S as SplitStream>::Writer>,
);

impl<S: SplitStream> Packetizer<S> {
    /// Splits into a reader and a writer for two threads. Buffered inbound
    /// bytes, queued outbound packets, keys, sequence numbers, limits, the
    /// keepalive and the write timeout carry over.
    pub fn split(self) -> Result<Halves<S>, Error> {
        let Packetizer {
            io,
            core,
            input,
            clock,
            reading,
            write_timeout,
            backoff,
        } = self;
        let (reader_io, writer_io) = io.split_stream().map_err(Error::Io)?;
        let waiters = Arc::new(Waiters {
            clock,
            changes: Mutex::new(0),
            changed: Condvar::new(),
        });
        let (inbound, outbound) = core.split(input, waiters.clone());
        let outlet = Arc::new(Outlet {
            connection: outbound.connection().clone(),
            waiters,
            io: Mutex::new(WriterIo {
                io: writer_io,
                out: outbound,
            }),
            timeout: Mutex::new(write_timeout),
        });
        let writer = PacketWriter {
            outlet: outlet.clone(),
        };
        let reader = PacketReader {
            io: reader_io,
            inbound,
            outlet,
            reading,
            backoff,
        };
        Ok((reader, writer))
    }
}

/// The sync halves' clock, and the condition variable senders wait on for
/// room in the hold.
struct Waiters {
    clock: Arc<dyn Clock>,
    /// How many wake-ups there were: a sender that looked before one does
    /// not sleep through it.
    changes: Mutex<u64>,
    changed: Condvar,
}

impl Waiters {
    fn changes(&self) -> MutexGuard<'_, u64> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until there was a wake-up after the `seen`-th, at most `limit`.
    fn wait_after(&self, seen: u64, limit: Duration) {
        let changes = self.changes();
        if *changes == seen {
            let _ = self.changed.wait_timeout(changes, limit);
        }
    }
}

impl SplitDriver for Waiters {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn wake(&self) {
        *self.changes() += 1;
        self.changed.notify_all();
    }
}

/// The writing end of the stream and the outbound half it writes for.
struct WriterIo<W> {
    io: W,
    out: Outbound,
}

/// The stream's writing end with the core it writes for.
struct Outlet<W> {
    /// The core, as the halves hand it out.
    connection: SharedConnection,
    waiters: Arc<Waiters>,
    /// Held only by whoever writes, and only while writing: everyone who
    /// takes it drains the core's output before letting go.
    io: Mutex<WriterIo<W>>,
    /// The write timeout, apart from `io` so that setting it never holds the
    /// write lock (a reader finding it taken leaves its output to the holder).
    timeout: Mutex<Option<Duration>>,
}

/// Writes the core's output; object-safe so the reader need not know `W`.
trait Drain: Send + Sync {
    /// Writes everything pending. `wait`: block for the write lock (a
    /// sender); otherwise leave the output to whoever holds it (the
    /// reader, whose keepalive must never wait behind a stuck write).
    fn drain(&self, wait: bool) -> Result<(), Error>;

    /// After a fatal error: writes what is pending (the DISCONNECT) if no
    /// one is writing, waiting at most one tick without progress.
    fn drain_after_failure(&self);
}

impl<W: Write + Send> Drain for Outlet<W> {
    fn drain_after_failure(&self) {
        let guard = match self.io.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            // A writer is busy: it writes the DISCONNECT after its bytes.
            Err(TryLockError::WouldBlock) => return,
        };
        let _ = self.write_pending(guard, Some(DEFAULT_TICK));
    }

    fn drain(&self, wait: bool) -> Result<(), Error> {
        let mut first = true;
        loop {
            let guard = if wait && first {
                self.io.lock().unwrap_or_else(|e| e.into_inner())
            } else {
                match self.io.try_lock() {
                    Ok(guard) => guard,
                    Err(TryLockError::Poisoned(e)) => e.into_inner(),
                    Err(TryLockError::WouldBlock) => return Ok(()),
                }
            };
            first = false;
            self.write_pending(guard, None)?;
            // Output sealed after the last look but before the lock was
            // released found it taken: look once more.
            if self
                .connection
                .with(|core| core.pending_output().is_empty())
            {
                return Ok(());
            }
        }
    }
}

impl<W: Write> Outlet<W> {
    /// Writes the core's output until none is left; `cap` shortens the stall
    /// limit (a best-effort write).
    fn write_pending(
        &self,
        mut io: MutexGuard<'_, WriterIo<W>>,
        cap: Option<Duration>,
    ) -> Result<(), Error> {
        let closed = || self.connection.with(|core| core.is_closed());
        loop {
            let WriterIo { io: stream, out } = &mut *io;
            let bytes = out.to_write()?;
            if bytes.is_empty() {
                return Ok(());
            }
            let timeout = *self.timeout.lock().unwrap_or_else(|e| e.into_inner());
            let stall = match (timeout, cap) {
                (Some(t), Some(c)) => Some(t.min(c)),
                (t, c) => t.or(c),
            };
            // A write stuck on a full socket gives up once the connection
            // closed (or failed) meanwhile, so it holds the write lock no
            // longer than that; a best-effort write after a failure only
            // minds its stall limit.
            let cancelled: &dyn Fn() -> bool = if cap.is_some() { &|| false } else { &closed };
            let patience = Patience {
                stall,
                backoff: super::NONBLOCKING_BACKOFF,
                cancelled,
            };
            let n = bytes.len();
            match write_fully(stream, bytes, &patience, &*self.waiters.clock) {
                Ok(()) => out.wrote(n),
                Err(e) => return Err(out.broke(e)),
            }
        }
    }
}

/// The writing half of a split Packetizer. Clones share one stream and one
/// core, so several threads may send; each message goes out whole, in the
/// order sealed.
///
/// A send that spends a key's byte budget raises the rekey request, but the
/// reader reports [`Error::NeedRekey`] only when it next runs (at its next
/// read timeout, or never over a stream without one while the peer is
/// silent: a download to a client that has stopped reading). A sending
/// thread that can start the key exchange should check
/// [`SharedConnection::need_rekey`] (through [`PacketWriter::connection`])
/// after its sends.
///
/// ```
/// use std::thread;
/// use ssh_packetizer::pipe::pipe;
/// use ssh_packetizer::{msg, Packetizer};
///
/// let (ours, theirs) = pipe();
/// let (mut reader, writer) = Packetizer::new(ours).split()?;
/// let mut peer = Packetizer::new(theirs);
/// // One thread sends while another reads.
/// let sender = thread::spawn(move || writer.send_message(&[msg::CHANNEL_DATA, 1]));
/// assert_eq!(peer.read_message()?.payload(), [94, 1]);
/// peer.send_message(&[msg::CHANNEL_DATA, 2])?;
/// assert_eq!(reader.read_message()?.payload(), [94, 2]);
/// sender.join().unwrap()?;
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
pub struct PacketWriter<W> {
    outlet: Arc<Outlet<W>>,
}

impl<W> Clone for PacketWriter<W> {
    fn clone(&self) -> Self {
        PacketWriter {
            outlet: self.outlet.clone(),
        }
    }
}

impl<W: Write + Send> PacketWriter<W> {
    /// As [`Packetizer::send_message`]. During our key exchange a message
    /// that must wait is held; once the hold is full this waits until the
    /// exchange is done (the writer's back-pressure). The thread that drives
    /// the key exchange must not wait for itself: it sends connection
    /// messages with [`PacketWriter::try_send_message`].
    pub fn send_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.queue_message(payload)?;
        self.outlet.drain(true)?;
        Ok(sent)
    }

    /// As [`PacketWriter::send_message`], but a full hold during a key
    /// exchange is [`Error::KexHoldFull`] at once (nothing sent, not fatal).
    pub fn try_send_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.connection().with(|core| core.send_message(payload))?;
        self.outlet.drain(true)?;
        Ok(sent)
    }

    /// As [`Packetizer::queue_message`] (waits like `send_message` while a
    /// key exchange's hold is full).
    pub fn queue_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let seal = || self.connection().with(|core| core.send_message(payload));
        let waiters = &self.outlet.waiters;
        loop {
            match seal() {
                Err(Error::KexHoldFull { .. }) => {}
                other => return other,
            }
            // Counted before the second look, so a wake-up between the two
            // is kept.
            let seen = *waiters.changes();
            match seal() {
                Err(Error::KexHoldFull { .. }) => waiters.wait_after(seen, DEFAULT_TICK),
                other => return other,
            }
        }
    }

    /// As [`Packetizer::send_identification`].
    pub fn send_identification(&self, id: &str) -> Result<(), Error> {
        self.connection()
            .with(|core| core.send_identification(id))?;
        self.outlet.drain(true)
    }

    /// As [`Packetizer::write_all`]: raw bytes, before the first packet.
    pub fn write_all(&self, bytes: &[u8]) -> Result<(), Error> {
        self.connection().with(|core| core.send_raw(bytes))?;
        self.outlet.drain(true)
    }

    /// As [`Packetizer::flush`].
    pub fn flush(&self) -> Result<(), Error> {
        self.connection().with(|core| core.check())?;
        self.outlet.drain(true)
    }

    /// As [`Packetizer::send_newkeys`]: NEWKEYS and the outbound key switch
    /// in one step, so no other clone's packet can land between them.
    pub fn send_newkeys(&self, keys: Keys) -> Result<u32, Error> {
        let seqno = self.queue_newkeys(keys)?;
        self.outlet.drain(true)?;
        Ok(seqno)
    }

    /// As [`PacketWriter::send_newkeys`], but only sealed, like
    /// [`PacketWriter::queue_message`]: NEWKEYS and the key switch happen
    /// now, in one step; the bytes go out with the next flush.
    pub fn queue_newkeys(&self, keys: Keys) -> Result<u32, Error> {
        self.connection()
            .with_now(|core, now| core.send_newkeys(keys, now))
    }

    /// Writes what is sealed unless another clone is writing, in which case
    /// that writer writes it too before it lets go (so nothing is left
    /// behind). For the thread that reads: it must not wait behind a sender
    /// stuck on a full socket while the peer waits for it to read.
    pub fn try_flush(&self) -> Result<(), Error> {
        self.connection().with(|core| core.check())?;
        self.outlet.drain(false)
    }

    /// As [`Packetizer::disconnect`].
    pub fn disconnect(&self, reason: u32, description: &str) -> Result<(), Error> {
        self.connection()
            .with(|core| core.send_disconnect(reason, description))?;
        self.outlet.drain(true)
    }

    /// As [`Packetizer::set_write_timeout`].
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        *self
            .outlet
            .timeout
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = timeout;
    }

    /// The connection core both halves share: paramiko's controls
    /// (`need_rekey`, the handshake deadline, `close`) and everything else
    /// the core offers.
    pub fn connection(&self) -> &SharedConnection {
        &self.outlet.connection
    }
}

impl<W: Write + Send> SendMessage for PacketWriter<W> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        PacketWriter::send_message(self, payload)
    }
}

/// The reading half of a split Packetizer (see [`PacketWriter`] for an
/// example). It owns the core's [`Inbound`] half: packets it returns borrow
/// from its input, with no copy and no lock held.
pub struct PacketReader<R> {
    io: R,
    inbound: Inbound,
    outlet: Arc<dyn Drain>,
    reading: ReadState,
    /// How long a read that came back with `WouldBlock` at once waits.
    backoff: Duration,
}

/// The reader seen by the read loop. Its keepalive seals under the lock,
/// then writes only if no writer is busy (a busy one writes it next).
struct ReaderSide<'a, R> {
    io: &'a mut R,
    inbound: &'a mut Inbound,
    outlet: &'a dyn Drain,
    backoff: Duration,
}

impl<R> SendMessage for ReaderSide<'_, R> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self
            .inbound
            .connection()
            .with(|core| core.send_message(payload))?;
        self.outlet.drain(false)?;
        Ok(sent)
    }
}

impl<R: Read> CoreSide for ReaderSide<'_, R> {
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T {
        self.inbound.with(f)
    }
}

impl<R: Read> Side for ReaderSide<'_, R> {
    fn read_stream(&mut self, until: Option<Duration>) -> io::Result<Read1> {
        read_once(self.io, self.inbound.recv_buf(), until, self.backoff)
    }

    fn now(&self) -> Instant {
        self.inbound.connection().now()
    }

    fn flush_after_failure(&mut self) {
        self.outlet.drain_after_failure();
    }
}

impl<R: Read> PacketReader<R> {
    fn side(&mut self) -> (ReaderSide<'_, R>, &mut ReadState) {
        (
            ReaderSide {
                io: &mut self.io,
                inbound: &mut self.inbound,
                outlet: &*self.outlet,
                backoff: self.backoff,
            },
            &mut self.reading,
        )
    }

    /// As [`Packetizer::read_message`].
    pub fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        let (mut side, state) = self.side();
        wait_for(&mut side, state, read_loop::packet())?;
        found_packet(self.inbound.input())
    }

    /// As [`Packetizer::read_all`].
    pub fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        let (mut side, state) = self.side();
        wait_for(&mut side, state, read_loop::raw(n, check_rekey))
    }

    /// As [`Packetizer::read_line`].
    pub fn read_line(&mut self) -> Result<String, Error> {
        let (mut side, state) = self.side();
        wait_for(&mut side, state, read_loop::line())
    }

    /// As [`Packetizer::read_identification`].
    pub fn read_identification(&mut self) -> Result<Identification, Error> {
        let (mut side, state) = self.side();
        wait_for(&mut side, state, read_loop::identification())
    }

    /// As [`Packetizer::set_inbound_cipher`].
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.connection()
            .with_now(|core, now| core.set_inbound_keys(keys, now))
    }

    /// As [`Packetizer::set_nonblocking_backoff`].
    pub fn set_nonblocking_backoff(&mut self, backoff: Duration) {
        self.backoff = backoff;
    }

    /// As [`Packetizer::set_keepalive`]; the callback sends through the
    /// writer half and never waits for a writer: while one is writing, the
    /// keepalive is sealed and left for it. With no writer busy the reader
    /// writes it itself, and on a socket the peer has stopped reading that
    /// write waits like any other (bounded by
    /// [`PacketWriter::set_write_timeout`] on a stream with a write timeout).
    pub fn set_keepalive<F>(&mut self, interval: Option<Duration>, callback: F)
    where
        F: FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send + 'static,
    {
        self.connection()
            .with_now(|core, now| core.set_keepalive(interval, now));
        self.reading.keepalive = interval.map(|_| Box::new(callback) as KeepaliveCallback);
    }

    /// The connection core both halves share: paramiko's controls
    /// (`need_rekey`, the handshake deadline, `close`) and everything else
    /// the core offers.
    pub fn connection(&self) -> &SharedConnection {
        self.inbound.connection()
    }
}
