//! The async Packetizer's two halves, for a reading task and writing
//! tasks, with the sync halves' guarantees: the core sits behind one short
//! lock (never held across an await), so a key switch is one step; the
//! reader keeps the inbound buffer itself; the writer's stream sits behind
//! an async lock that the reader only ever tries, so a writer waiting on a
//! full socket never holds up a read.

use std::future::poll_fn;
use std::io;
use std::ops::DerefMut;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::sync::Notify;

use super::driver::{poll_read_into, poll_wait, AsyncSide, Got};
use super::timer::{now, Timer};
use crate::banner::Identification;
use crate::codec::InputBuffer;
use crate::codec::Packet;
use crate::connection::{Connection, Outgoing, Sent};
use crate::error::Error;
use crate::keys::Keys;
use crate::read_loop::{self as common, CoreSide, KeepaliveCallback, ReadState, SendMessage};
use crate::shared::{SharedConnection, SharedCore};

/// What both halves share.
struct Shared {
    core: Mutex<Connection>,
    /// Wakes senders waiting for a key exchange's hold to empty, and every
    /// waiter once the connection failed or closed.
    changed: Notify,
    /// The waker of the reader's pending read, woken when the writer's side
    /// changes what the read waits for (see [`Watched`]).
    reader: Mutex<Option<Waker>>,
}

/// The core locked from the writer's side or the controls: a call that
/// moves the core's next deadline or ends the connection wakes a waiting
/// reader, which then re-arms its timer or sees the error. (Output left
/// pending is written by the next writer, or by the reader's next loop.)
struct Watched<'a> {
    core: MutexGuard<'a, Connection>,
    shared: &'a Shared,
    before: (Option<std::time::Instant>, bool),
}

impl std::ops::Deref for Watched<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.core
    }
}

impl std::ops::DerefMut for Watched<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.core
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        if (self.core.poll_timeout(), self.core.is_closed()) != self.before {
            self.shared.wake_reader();
        }
    }
}

impl Shared {
    /// The core, for the writer's side and the controls (see [`Watched`]).
    fn lock(&self) -> Watched<'_> {
        let core = self.lock_quiet();
        let before = (core.poll_timeout(), core.is_closed());
        Watched {
            core,
            shared: self,
            before,
        }
    }

    /// Registers the reader's pending read to be woken by the writer's side.
    fn park_reader(&self, cx: &Context<'_>) {
        let mut slot = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }

    fn wake_reader(&self) {
        let waker = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The time, from tokio's clock.
    fn now(&self) -> std::time::Instant {
        now()
    }

    /// The core, for the reader's own loop, which sees its own changes.
    fn lock_quiet(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic inside a core call, a bug: go on
        // with the state as the panic left it rather than panic too.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Controls lock the core as the writer's side does ([`Watched`]): a
/// change wakes the waiting reader, and the waiting senders.
impl SharedCore for Shared {
    fn lock(&self) -> Box<dyn DerefMut<Target = Connection> + '_> {
        Box::new(Shared::lock(self))
    }

    fn now(&self) -> std::time::Instant {
        Shared::now(self)
    }

    fn changed(&self) {
        self.changed.notify_waiters();
    }
}

/// The writing end of the stream and the bytes in flight on it.
struct WriterIo<W> {
    io: W,
    /// Bytes taken from the core and how far they were written.
    out: Outgoing,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
}

/// The stream's writing end with the core it writes for.
struct Outlet<W> {
    shared: Arc<Shared>,
    /// The same core, as the halves hand it out.
    connection: SharedConnection,
    /// Held by whoever writes. Writers wait for it; the reader only tries
    /// it, and never across a poll.
    io: ::tokio::sync::Mutex<WriterIo<W>>,
}

impl<W: AsyncWrite + Unpin> Outlet<W> {
    /// Writes the bytes in flight and then the core's output, as far as the
    /// stream takes them now, then flushes.
    fn poll_write_some(
        &self,
        w: &mut WriterIo<W>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        loop {
            let bytes = match w.out.next(&mut self.shared.lock(), now()) {
                Ok([]) => break,
                Ok(bytes) => bytes,
                Err(e) => return Poll::Ready(Err(e)),
            };
            match Pin::new(&mut w.io).poll_write(cx, bytes) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) if n > 0 => {
                    w.out.wrote(n);
                    w.unflushed = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(result) => {
                    let e = result
                        .err()
                        .unwrap_or_else(|| io::ErrorKind::WriteZero.into());
                    return Poll::Ready(Err(self.broke(w, e)));
                }
            }
        }
        if w.unflushed {
            match Pin::new(&mut w.io).poll_flush(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => w.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.broke(w, e))),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn broke(&self, w: &mut WriterIo<W>, e: io::Error) -> Error {
        let e = w.out.broke(&mut self.shared.lock(), Error::Io(e));
        self.shared.changed.notify_waiters();
        e
    }

    /// Writes everything pending, waiting for the stream and for the lock.
    async fn drain(&self) -> Result<(), Error> {
        loop {
            {
                let mut w = self.io.lock().await;
                // Cancelled while holding the lock, this leaves output for
                // the reader, which it wakes to write it.
                let _handover = Handover(&self.shared);
                poll_fn(|cx| self.poll_write_some(&mut w, cx)).await?;
            }
            // Output sealed while the lock was held, by a reader that found
            // it taken, is ours to write: look once more after letting go.
            match self.io.try_lock() {
                Ok(w) if w.out.in_flight() > 0 => {}
                Ok(_) if !self.shared.lock().pending_output().is_empty() => {}
                // Nothing left, or someone else holds the lock (and looks
                // again after letting go).
                _ => return Ok(()),
            }
        }
    }
}

/// Wakes the reader when a writer lets go of the stream: anything the
/// reader sealed meanwhile, or that a cancelled write left, is its to write.
struct Handover<'a>(&'a Shared);

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        self.0.wake_reader();
    }
}

/// Writes the core's output without knowing `W`: the reader's view of the
/// outlet.
trait Drain: Send + Sync {
    /// Writes what is pending as far as the stream takes it now, if no one
    /// else is writing (a busy writer writes it next); never waits.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;

    /// Gives the write buffer back if nothing is in flight.
    fn release_idle(&self);

    /// Bytes the write buffer holds (0 while a writer holds it).
    fn spare_bytes(&self) -> usize;
}

impl<W: AsyncWrite + Unpin + Send> Drain for Outlet<W> {
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.io.try_lock() {
            Ok(mut w) => self.poll_write_some(&mut w, cx),
            Err(_) => Poll::Ready(Ok(())),
        }
    }

    fn spare_bytes(&self) -> usize {
        self.io.try_lock().map_or(0, |w| w.out.allocated())
    }

    fn release_idle(&self) {
        if let Ok(mut w) = self.io.try_lock() {
            w.out.release_idle();
        }
    }
}

/// Builds the halves from a Packetizer's parts.
pub(super) fn halves<R, W>(
    reader: R,
    writer: W,
    core: Connection,
    input: InputBuffer,
    reading: ReadState,
) -> (PacketReader<R>, PacketWriter<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        changed: Notify::new(),
        reader: Mutex::new(None),
    });
    let connection = SharedConnection::new(shared.clone());
    let outlet = Arc::new(Outlet {
        shared: shared.clone(),
        connection: connection.clone(),
        io: ::tokio::sync::Mutex::new(WriterIo {
            io: writer,
            out: Outgoing::default(),
            unflushed: false,
        }),
    });
    let reader = PacketReader {
        io: reader,
        input,
        shared,
        connection,
        outlet: outlet.clone(),
        reading,
        timer: Timer::default(),
    };
    (reader, PacketWriter { outlet })
}

/// The writing half of a split async Packetizer; clones share it, each
/// packet sealed and switched under the core's lock, so a NEWKEYS and the
/// key switch are one step whichever clone sends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ssh_packetizer::Error> {
/// use ssh_packetizer::msg;
/// use ssh_packetizer::tokio::Packetizer;
///
/// let (ours, theirs) = tokio::io::duplex(64 * 1024);
/// let (mut reader, writer) = Packetizer::new(ours).into_split();
/// let mut peer = Packetizer::new(theirs);
/// // One task sends while another reads.
/// let sender = tokio::spawn(async move { writer.send_message(&[msg::CHANNEL_DATA, 1]).await });
/// assert_eq!(peer.read_message().await?.payload(), [94, 1]);
/// peer.send_message(&[msg::CHANNEL_DATA, 2]).await?;
/// assert_eq!(reader.read_message().await?.payload(), [94, 2]);
/// sender.await.unwrap()?;
/// # Ok(())
/// # }
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

impl<W> std::fmt::Debug for PacketWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketWriter").finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> PacketWriter<W> {
    fn shared(&self) -> &Shared {
        &self.outlet.shared
    }

    /// As [`super::Packetizer::send_message`]. During our key exchange a
    /// message that must wait is held; once the hold is full this waits
    /// until the exchange is done (the writer's back-pressure). The task
    /// that drives the key exchange must not wait for itself: it sends
    /// connection messages with [`PacketWriter::try_send_message`].
    ///
    /// Cancel safety: what it sends is committed once sealed; dropped after
    /// that, it is neither lost nor sent twice: the next call that writes
    /// (a send, `flush`, or the reader's loop) writes it. Dropped while it
    /// waits for room in a full hold, nothing was sealed.
    pub async fn send_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.queue_message(payload).await?;
        self.outlet.drain().await?;
        Ok(sent)
    }

    /// As [`PacketWriter::send_message`], but a full hold during a key
    /// exchange is [`Error::KexHoldFull`] at once (nothing sent, not fatal).
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn try_send_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.shared().lock().send_message(payload)?;
        self.outlet.drain().await?;
        Ok(sent)
    }

    /// Seals a message without writing it (waits like `send_message` while
    /// a key exchange's hold is full); [`PacketWriter::flush`] writes the
    /// batch.
    ///
    /// Cancel safety: what it sends is committed once sealed; dropped after
    /// that, it is neither lost nor sent twice: the next call that writes
    /// (a send, `flush`, or the reader's loop) writes it. Dropped while it
    /// waits for room in a full hold, nothing was sealed.
    pub async fn queue_message(&self, payload: &[u8]) -> Result<Sent, Error> {
        let shared = self.shared();
        loop {
            // Registered before the look, so a wake between the two is kept.
            let changed = shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let sealed = shared.lock().send_message(payload);
            match sealed {
                Err(Error::KexHoldFull { .. }) => changed.await,
                other => return other,
            }
        }
    }

    /// As [`super::Packetizer::send_identification`].
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn send_identification(&self, id: &str) -> Result<(), Error> {
        self.shared().lock().send_identification(id)?;
        self.outlet.drain().await
    }

    /// As [`super::Packetizer::write_all`]: raw bytes, before the first
    /// packet.
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn write_all(&self, bytes: &[u8]) -> Result<(), Error> {
        self.shared().lock().send_raw(bytes)?;
        self.outlet.drain().await
    }

    /// Writes every queued message. After a close it still writes what was
    /// sealed before it (the rest of a [`PacketWriter::disconnect`] given
    /// up half written), then answers [`Error::Closed`].
    ///
    /// Cancel safety: cancel-safe; what was not written yet stays queued
    /// for the next call that writes.
    pub async fn flush(&self) -> Result<(), Error> {
        let closed = match self.shared().lock().check() {
            Ok(()) => false,
            Err(Error::Closed) => true,
            Err(e) => return Err(e),
        };
        self.outlet.drain().await?;
        if closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// As [`super::Packetizer::send_newkeys`]: NEWKEYS and the outbound key
    /// switch in one step, so no other clone's packet lands between them.
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn send_newkeys(&self, keys: Keys) -> Result<u32, Error> {
        // The hold empties (or the connection fails): waiting senders wake.
        let seqno = self
            .outlet
            .connection
            .with_now(|core, now| core.send_newkeys(keys, now))?;
        self.outlet.drain().await?;
        Ok(seqno)
    }

    /// As [`super::Packetizer::disconnect`].
    ///
    /// Cancel safety: the DISCONNECT is sealed and the connection closed on
    /// the first poll; dropped before the write finished, the rest goes out
    /// with [`PacketWriter::flush`] (every other later call answers
    /// [`Error::Closed`] and writes nothing). Dropped before the first poll,
    /// it did nothing.
    pub async fn disconnect(&self, reason: u32, description: &str) -> Result<(), Error> {
        self.shared().lock().send_disconnect(reason, description)?;
        self.shared().changed.notify_waiters();
        self.outlet.drain().await
    }

    /// The connection core both halves share: paramiko's controls
    /// (`need_rekey`, the handshake deadline, `close`) and everything else
    /// the core offers.
    pub fn connection(&self) -> &SharedConnection {
        &self.outlet.connection
    }
}

/// The reading half of a split async Packetizer (see [`PacketWriter`] for
/// an example). It keeps the inbound buffer itself: packets it returns
/// borrow from it, with no copy and no lock held. Its reads are cancel-safe
/// as the Packetizer's.
pub struct PacketReader<R> {
    io: R,
    /// The inbound bytes, kept here so reads need no lock.
    input: InputBuffer,
    /// The core, as the halves hand it out.
    connection: SharedConnection,
    shared: Arc<Shared>,
    outlet: Arc<dyn Drain>,
    reading: ReadState,
    timer: Timer,
}

impl<R> std::fmt::Debug for PacketReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketReader")
            .field("buffered", &self.input.buffered())
            .finish_non_exhaustive()
    }
}

/// The reader seen by the read loop.
struct ReaderSide<'a, R> {
    io: &'a mut R,
    input: &'a mut InputBuffer,
    timer: &'a mut Timer,
    sink: ReaderSink<'a>,
}

/// How the reader's keepalive sends: seal under the lock; the read loop
/// writes it if no writer is busy (a busy one writes it next).
struct ReaderSink<'a> {
    shared: &'a Shared,
    outlet: &'a dyn Drain,
}

impl SendMessage for ReaderSink<'_> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        self.shared.lock_quiet().send_message(payload)
    }
}

impl<R> CoreSide for ReaderSide<'_, R> {
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T {
        let mut core = self.sink.shared.lock_quiet();
        f(&mut core, self.input)
    }

    fn sink(&mut self) -> &mut dyn SendMessage {
        &mut self.sink
    }
}

impl<R: AsyncRead + Unpin> AsyncSide for ReaderSide<'_, R> {
    fn poll_read_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Got>> {
        // The lock is held only while the room is found and the stream
        // polled once: a poll never waits.
        let mut core = self.sink.shared.lock_quiet();
        poll_read_into(self.io, &mut core, self.input, cx)
    }

    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.sink.outlet.poll_drain(cx)
    }

    fn timer(&mut self) -> &mut Timer {
        self.timer
    }

    fn park(&mut self, cx: &Context<'_>) {
        self.sink.shared.park_reader(cx);
    }

    fn holds_idle_memory(&mut self) -> bool {
        let core = self.sink.shared.lock_quiet();
        core.idle_bytes(self.input) > 0
    }

    fn release_idle(&mut self) {
        self.sink.shared.lock().release_idle_memory(self.input);
        self.sink.outlet.release_idle();
    }
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    fn side(&mut self) -> (ReaderSide<'_, R>, &mut ReadState) {
        (
            ReaderSide {
                io: &mut self.io,
                input: &mut self.input,
                timer: &mut self.timer,
                sink: ReaderSink {
                    shared: &self.shared,
                    outlet: &*self.outlet,
                },
            },
            &mut self.reading,
        )
    }

    /// Wakes waiting senders after a fatal error, so none waits forever.
    fn settle<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if result.as_ref().is_err_and(Error::is_fatal) {
            self.shared.changed.notify_waiters();
        }
        result
    }

    async fn wait_for<T>(
        &mut self,
        check_rekey: bool,
        raw_needed: Option<usize>,
        mut poll: impl FnMut(&mut Connection, &mut InputBuffer) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        let result = poll_fn(|cx| {
            let (mut side, state) = self.side();
            poll_wait(&mut side, state, cx, check_rekey, raw_needed, &mut poll)
        })
        .await;
        self.settle(result)
    }

    /// As [`super::Packetizer::read_message`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        self.wait_for(true, None, common::poll_packet).await?;
        common::found_packet(&self.input)
    }

    /// As [`super::Packetizer::read_all`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        common::check_raw_len(&self.shared.lock_quiet(), n)?;
        self.wait_for(check_rekey, Some(n), common::poll_raw(n))
            .await
    }

    /// As [`super::Packetizer::read_line`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_line(&mut self) -> Result<String, Error> {
        let line = self.wait_for(false, Some(0), Connection::poll_line).await?;
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// As [`super::Packetizer::read_identification`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call, and lines before the
    /// identification already taken are kept to be returned with it.
    pub async fn read_identification(&mut self) -> Result<Identification, Error> {
        self.wait_for(false, Some(0), Connection::poll_identification)
            .await
    }

    /// As [`super::Packetizer::set_inbound_cipher`].
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        let mut core = self.shared.lock_quiet();
        core.set_inbound_keys(keys, now())
    }

    /// As [`super::Packetizer::set_keepalive`]; the callback's messages are
    /// sealed at once and written by the read loop when no writer is busy
    /// (a busy writer writes them next). Neither way does the read wait for
    /// the write: a peer that stopped reading does not stop us reading.
    pub fn set_keepalive<F>(&mut self, interval: Option<Duration>, callback: F)
    where
        F: FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send + 'static,
    {
        self.shared.lock_quiet().set_keepalive(interval, now());
        self.reading.keepalive = interval.map(|_| Box::new(callback) as KeepaliveCallback);
    }

    /// Heap bytes the connection's buffers hold now: the reader's input,
    /// the core's output and hold, and the writer's buffer (unless a writer
    /// is using it).
    pub fn buffer_bytes(&self) -> usize {
        self.input.allocated() + self.shared.lock_quiet().buffer_bytes() + self.outlet.spare_bytes()
    }

    /// The connection core both halves share: paramiko's controls
    /// (`need_rekey`, the handshake deadline, `close`) and everything else
    /// the core offers.
    pub fn connection(&self) -> &SharedConnection {
        &self.connection
    }
}
