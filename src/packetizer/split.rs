//! A Packetizer split into a reading half and a writing half for two threads.
//!
//! Both halves drive one [`Connection`] behind a mutex, which each holds
//! only to change the core's state, never across a blocking read or write:
//! - The reader keeps the inbound byte buffer itself, reads into it without
//!   the lock, and takes the lock to let the core open packets in it.
//! - Senders seal into the core's one output buffer under the lock; then
//!   whoever holds the stream's write lock swaps that buffer out and writes
//!   it without the core's lock, again until nothing is left. So packets go
//!   out in the order they were sealed, a key switch is atomic (the core
//!   does it in one call), and a writer stuck on a full socket stalls
//!   nobody else: the reader's keepalive is sealed and left for that writer
//!   to write, since the reader only ever tries the write lock.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::DerefMut;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::clock::Clock;
use super::reading::{wait_for, Side};
use super::stream::{read_once, write_fully, Patience, Read1};
use super::{read_all_with, read_identification_with, read_line_with, Packetizer, DEFAULT_TICK};
use crate::banner::Identification;
use crate::codec::{InputBuffer, Packet};
use crate::connection::{Connection, Outgoing, Sent};
use crate::error::Error;
use crate::keys::Keys;
#[cfg(any(test, feature = "test-util"))]
use crate::pipe::{PipeEnd, PipeReader, PipeWriter};
use crate::read_loop::{
    found_packet, poll_packet, CoreSide, KeepaliveCallback, ReadState, SendMessage,
};
use crate::shared::{SharedConnection, SharedCore};

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
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            clock,
            changed: Condvar::new(),
        });
        let connection = SharedConnection::new(shared.clone());
        let outlet = Arc::new(Outlet {
            shared: shared.clone(),
            connection: connection.clone(),
            io: Mutex::new(WriterIo {
                io: writer_io,
                out: Outgoing::default(),
            }),
            timeout: Mutex::new(write_timeout),
        });
        let writer = PacketWriter {
            outlet: outlet.clone(),
        };
        let reader = PacketReader {
            io: reader_io,
            input,
            shared,
            connection,
            outlet,
            reading,
            backoff,
        };
        Ok((reader, writer))
    }
}

/// What both halves share: the core and the clock.
struct Shared {
    core: Mutex<Connection>,
    clock: Arc<dyn Clock>,
    /// Wakes senders waiting for a key exchange's hold to empty.
    changed: Condvar,
}

impl Shared {
    /// The time, from the driver's clock.
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic inside a core call, a bug: the other
        // half goes on with the state as the panic left it rather than
        // panicking too.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SharedCore for Shared {
    fn lock(&self) -> Box<dyn DerefMut<Target = Connection> + '_> {
        Box::new(Shared::lock(self))
    }

    fn now(&self) -> Instant {
        Shared::now(self)
    }

    fn changed(&self) {
        self.changed.notify_all();
    }
}

/// The writing end of the stream and the bytes it took from the core.
struct WriterIo<W> {
    io: W,
    out: Outgoing,
}

/// The stream's writing end with the core it writes for.
struct Outlet<W> {
    shared: Arc<Shared>,
    /// The same core, as the halves hand it out.
    connection: SharedConnection,
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
            if self.shared.lock().pending_output().is_empty() {
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
        let clock = &*self.shared.clock;
        let closed = || self.shared.lock().is_closed();
        loop {
            let WriterIo { io: stream, out } = &mut *io;
            let bytes = out.next(&mut self.shared.lock(), clock.now())?;
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
            match write_fully(stream, bytes, &patience, clock) {
                Ok(()) => out.wrote(n),
                Err(e) => {
                    let e = out.broke(&mut self.shared.lock(), e);
                    self.shared.changed.notify_all();
                    return Err(e);
                }
            }
        }
    }
}

/// The writing half of a split Packetizer. Clones share one stream and one
/// core, so several threads may send; each message goes out whole, in the
/// order sealed.
///
/// A send that spends a key's byte budget raises the rekey request, but the
/// reader reports [`Error::NeedRekey`] only when it next runs, which may be
/// never while the peer is silent (a download to a client that has stopped
/// reading). A sending thread that can start the key exchange should check
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
    fn shared(&self) -> &Shared {
        &self.outlet.shared
    }

    /// As [`Packetizer::send_message`]. During our key exchange a message
    /// that must wait is held; once the hold is full this waits until the
    /// exchange is done (the writer's back-pressure). The thread that drives
    /// the key exchange must not wait for itself: it sends connection
    /// messages with [`PacketWriter::try_send_message`].
    pub fn send_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.seal(payload)?;
        self.outlet.drain(true)?;
        Ok(sent)
    }

    /// As [`PacketWriter::send_message`], but a full hold during a key
    /// exchange is [`Error::KexHoldFull`] at once (nothing sent, not fatal).
    pub fn try_send_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.shared().lock().send_message(payload)?;
        self.outlet.drain(true)?;
        Ok(sent)
    }

    /// As [`Packetizer::queue_message`] (waits like `send_message` while a
    /// key exchange's hold is full).
    pub fn queue_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        self.seal(payload)
    }

    fn seal(&self, payload: &[u8]) -> Result<Sent, Error> {
        let shared = self.shared();
        let mut core = shared.lock();
        loop {
            match core.send_message(payload) {
                Err(Error::KexHoldFull { .. }) => {
                    core = shared
                        .changed
                        .wait_timeout(core, DEFAULT_TICK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    core.handle_timeout(shared.clock.now());
                }
                other => return other,
            }
        }
    }

    /// As [`Packetizer::send_identification`].
    pub fn send_identification(&self, id: &str) -> Result<(), Error> {
        self.shared().lock().send_identification(id)?;
        self.outlet.drain(true)
    }

    /// As [`Packetizer::write_all`]: raw bytes, before the first packet.
    pub fn write_all(&self, bytes: &[u8]) -> Result<(), Error> {
        self.shared().lock().send_raw(bytes)?;
        self.outlet.drain(true)
    }

    /// As [`Packetizer::flush`].
    pub fn flush(&self) -> Result<(), Error> {
        self.shared().lock().check()?;
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
        self.outlet
            .connection
            .with_now(|core, now| core.send_newkeys(keys, now))
    }

    /// Writes what is sealed unless another clone is writing, in which case
    /// that writer writes it too before it lets go (so nothing is left
    /// behind). For the thread that reads: it must not wait behind a sender
    /// stuck on a full socket while the peer waits for it to read.
    pub fn try_flush(&self) -> Result<(), Error> {
        self.shared().lock().check()?;
        self.outlet.drain(false)
    }

    /// As [`Packetizer::disconnect`].
    pub fn disconnect(&self, reason: u32, description: &str) -> Result<(), Error> {
        self.shared().lock().send_disconnect(reason, description)?;
        self.shared().changed.notify_all();
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
/// example). It keeps the inbound buffer itself: packets it returns borrow
/// from it, with no copy and no lock held.
pub struct PacketReader<R> {
    io: R,
    /// The inbound bytes, kept here so reads need no lock.
    input: InputBuffer,
    shared: Arc<Shared>,
    /// The same core, as the halves hand it out.
    connection: SharedConnection,
    outlet: Arc<dyn Drain>,
    reading: ReadState,
    /// How long a read that came back with `WouldBlock` at once waits.
    backoff: Duration,
}

/// The reader seen by the read loop.
struct ReaderSide<'a, R> {
    io: &'a mut R,
    input: &'a mut InputBuffer,
    sink: ReaderSink<'a>,
    backoff: Duration,
}

/// How the reader's keepalive sends: seal under the lock, then write only
/// if no writer is busy (a busy one writes it next).
struct ReaderSink<'a> {
    shared: &'a Shared,
    outlet: &'a dyn Drain,
}

impl SendMessage for ReaderSink<'_> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.shared.lock().send_message(payload)?;
        self.outlet.drain(false)?;
        Ok(sent)
    }
}

impl<R: Read> CoreSide for ReaderSide<'_, R> {
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T {
        let mut core = self.sink.shared.lock();
        f(&mut core, self.input)
    }

    fn sink(&mut self) -> &mut dyn SendMessage {
        &mut self.sink
    }
}

impl<R: Read> Side for ReaderSide<'_, R> {
    fn read_stream(&mut self, until: Option<Duration>) -> io::Result<Read1> {
        // The room is found under the lock; the read waits without it.
        let room = self.sink.shared.lock().recv_buf(self.input);
        let pause = Some(until.map_or(self.backoff, |left| left.min(self.backoff)));
        read_once(self.io, room, pause)
    }

    fn now(&self) -> Instant {
        self.sink.shared.clock.now()
    }

    fn flush_after_failure(&mut self) {
        self.sink.outlet.drain_after_failure();
    }
}

impl<R: Read> PacketReader<R> {
    fn side(&mut self) -> (ReaderSide<'_, R>, &mut ReadState) {
        (
            ReaderSide {
                io: &mut self.io,
                input: &mut self.input,
                sink: ReaderSink {
                    shared: &self.shared,
                    outlet: &*self.outlet,
                },
                backoff: self.backoff,
            },
            &mut self.reading,
        )
    }

    /// Wakes waiting senders after a fatal error, so none waits forever.
    fn settle<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if result.as_ref().is_err_and(Error::is_fatal) {
            self.shared.changed.notify_all();
        }
        result
    }

    /// As [`Packetizer::read_message`].
    pub fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        let (mut side, state) = self.side();
        let result = wait_for(&mut side, state, true, None, poll_packet);
        self.settle(result)?;
        found_packet(&self.input)
    }

    /// As [`Packetizer::read_all`].
    pub fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        let (mut side, state) = self.side();
        let result = read_all_with(&mut side, state, n, check_rekey);
        self.settle(result)
    }

    /// As [`Packetizer::read_line`].
    pub fn read_line(&mut self) -> Result<String, Error> {
        let (mut side, state) = self.side();
        let result = read_line_with(&mut side, state);
        self.settle(result)
            .map(|line| String::from_utf8_lossy(&line).into_owned())
    }

    /// As [`Packetizer::read_identification`].
    pub fn read_identification(&mut self) -> Result<Identification, Error> {
        let (mut side, state) = self.side();
        let result = read_identification_with(&mut side, state);
        self.settle(result)
    }

    /// As [`Packetizer::set_inbound_cipher`].
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.connection
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
        let now = self.shared.clock.now();
        self.shared.lock().set_keepalive(interval, now);
        self.reading.keepalive = interval.map(|_| Box::new(callback) as KeepaliveCallback);
    }

    /// The connection core both halves share: paramiko's controls
    /// (`need_rekey`, the handshake deadline, `close`) and everything else
    /// the core offers.
    pub fn connection(&self) -> &SharedConnection {
        &self.connection
    }
}
