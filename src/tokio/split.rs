//! The async Packetizer's two halves, for a reading task and writing
//! tasks, with the sync halves' guarantees, over the core's own split
//! ([`Connection::split`]): the core sits behind one short lock (never
//! held across an await), so a key switch is one step; the reader owns the
//! [`Inbound`] half and its input; the writer's stream and the
//! [`Outbound`] half sit behind an async lock that the reader only ever
//! tries, so a writer waiting on a full socket never holds up a read. What
//! is left here is the waiting: a `Notify` for senders and the reader's
//! waker.

use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::sync::Notify;

use super::driver::{
    poll_read_into, poll_wait, poll_write, reads_at_rest, AsyncSide, Output, ReadInto,
};
use super::timer::{now, Timer};
use crate::banner::Identification;
use crate::codec::InputBuffer;
use crate::codec::Packet;
use crate::connection::{Connection, Inbound, Outbound, Sent, SharedConnection, SplitDriver};
use crate::error::Error;
use crate::keys::Keys;
use crate::read_loop::{self, CoreSide, Got, KeepaliveCallback, ReadState, SendMessage, Wanted};

/// The async halves' wake-ups: senders waiting for room in the hold wait
/// on a `Notify`; the reader's pending read leaves its waker, woken when
/// the core changes in a way it waits for (a nearer deadline, a close, a
/// wanted rekey).
struct Waiters {
    changed: Notify,
    reader: Mutex<Option<Waker>>,
}

impl Waiters {
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
}

impl SplitDriver for Waiters {
    fn now(&self) -> Instant {
        now()
    }

    fn wake(&self) {
        self.wake_reader();
        self.changed.notify_waiters();
    }
}

/// The writing end of the stream and the outbound half it writes for.
struct WriterIo<W> {
    io: W,
    out: Outbound,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
}

impl<W: AsyncWrite + Unpin> WriterIo<W> {
    /// Writes the bytes in flight and then the core's output, as far as the
    /// stream takes them now, then flushes.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        poll_write(&mut self.io, &mut self.out, &mut self.unflushed, cx)
    }
}

/// A split writer's output: its outbound half.
impl Output for Outbound {
    fn pending(&mut self) -> Result<&[u8], Error> {
        self.to_write()
    }

    fn written(&mut self, n: usize) {
        self.wrote(n);
    }

    fn failed(&mut self, e: io::Error) -> Error {
        self.broke(Error::Io(e))
    }
}

/// The stream's writing end with the core it writes for.
struct Outlet<W> {
    /// The core, as the halves hand it out.
    connection: SharedConnection,
    waiters: Arc<Waiters>,
    /// Held by whoever writes. Writers wait for it; the reader only tries
    /// it, and never across a poll.
    io: ::tokio::sync::Mutex<WriterIo<W>>,
}

impl<W: AsyncWrite + Unpin> Outlet<W> {
    /// Writes everything pending, waiting for the stream and for the lock.
    async fn drain(&self) -> Result<(), Error> {
        loop {
            {
                let mut w = self.io.lock().await;
                // Cancelled while holding the lock, this leaves output for
                // the reader, which it wakes to write it.
                let _handover = Handover(&self.waiters);
                poll_fn(|cx| w.poll_write(cx)).await?;
            }
            // Output sealed while the lock was held, by a reader that found
            // it taken, is ours to write: look once more after letting go.
            match self.io.try_lock() {
                Ok(w) if w.out.in_flight() > 0 => {}
                Ok(_)
                    if !self
                        .connection
                        .with(|core| core.pending_output().is_empty()) => {}
                // Nothing left, or someone else holds the lock (and looks
                // again after letting go).
                _ => return Ok(()),
            }
        }
    }
}

/// Wakes the reader when a writer lets go of the stream: anything the
/// reader sealed meanwhile, or that a cancelled write left, is its to write.
struct Handover<'a>(&'a Waiters);

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
            Ok(mut w) => w.poll_write(cx),
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

/// Builds the halves from a Packetizer's parts (`unflushed`: it wrote
/// bytes it did not flush yet).
pub(super) fn halves<R, W>(
    reader: R,
    writer: W,
    core: Connection,
    input: InputBuffer,
    reading: ReadState,
    unflushed: bool,
) -> (PacketReader<R>, PacketWriter<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let waiters = Arc::new(Waiters {
        changed: Notify::new(),
        reader: Mutex::new(None),
    });
    let (inbound, outbound) = core.split(input, waiters.clone());
    let outlet = Arc::new(Outlet {
        connection: outbound.connection().clone(),
        waiters: waiters.clone(),
        io: ::tokio::sync::Mutex::new(WriterIo {
            io: writer,
            out: outbound,
            // Bytes the Packetizer wrote and did not flush yet: the writer
            // flushes them with its next write.
            unflushed,
        }),
    });
    let reader = PacketReader {
        io: reader,
        inbound,
        waiters,
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
        let sent = self.connection().with(|core| core.send_message(payload))?;
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
        let seal = || self.connection().with(|core| core.send_message(payload));
        loop {
            match seal() {
                Err(Error::KexHoldFull { .. }) => {}
                other => return other,
            }
            // Registered before the second look, so a wake between the two
            // is kept.
            let changed = self.outlet.waiters.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            match seal() {
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
        self.connection()
            .with(|core| core.send_identification(id))?;
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
        self.connection().with(|core| core.send_raw(bytes))?;
        self.outlet.drain().await
    }

    /// Writes every queued message. After a close it still writes what was
    /// sealed before it (the rest of a [`PacketWriter::disconnect`] given
    /// up half written), then answers [`Error::Closed`].
    ///
    /// Cancel safety: cancel-safe; what was not written yet stays queued
    /// for the next call that writes.
    pub async fn flush(&self) -> Result<(), Error> {
        let closed = match self.connection().with(|core| core.check()) {
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
            .connection()
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
        self.connection()
            .with(|core| core.send_disconnect(reason, description))?;
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
/// an example). It owns the core's [`Inbound`] half: packets it returns
/// borrow from its input, with no copy and no lock held. Its reads are
/// cancel-safe as the Packetizer's.
pub struct PacketReader<R> {
    io: R,
    inbound: Inbound,
    waiters: Arc<Waiters>,
    outlet: Arc<dyn Drain>,
    reading: ReadState,
    timer: Timer,
}

impl<R> std::fmt::Debug for PacketReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketReader")
            .field("inbound", &self.inbound)
            .finish_non_exhaustive()
    }
}

/// The reader seen by the read loop. Its keepalive seals under the lock;
/// the read loop writes it if no writer is busy (a busy one writes it
/// next).
struct ReaderSide<'a, R> {
    io: &'a mut R,
    inbound: &'a mut Inbound,
    waiters: &'a Waiters,
    outlet: &'a dyn Drain,
    timer: &'a mut Timer,
}

impl<R> SendMessage for ReaderSide<'_, R> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        self.inbound
            .connection()
            .with(|core| core.send_message(payload))
    }
}

impl<R> CoreSide for ReaderSide<'_, R> {
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T {
        self.inbound.with(f)
    }
}

/// The reader's reads: the core's lock is taken to find the room and to
/// report the bytes, never while the stream is polled.
impl ReadInto for Inbound {
    fn at_rest(&mut self) -> bool {
        self.with(|core, input| reads_at_rest(core, input))
    }

    fn room(&mut self) -> &mut [u8] {
        self.recv_buf()
    }

    fn filled(&mut self, n: usize, now: Instant) {
        self.with(|core, input| core.recv_filled(input, n, now));
    }

    fn feed(&mut self, bytes: &[u8], now: Instant) -> usize {
        self.with(|core, input| core.feed(input, bytes, now))
    }
}

impl<R: AsyncRead + Unpin> AsyncSide for ReaderSide<'_, R> {
    fn poll_read_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Got>> {
        poll_read_into(self.io, self.inbound, cx)
    }

    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.outlet.poll_drain(cx)
    }

    fn timer(&mut self) -> &mut Timer {
        self.timer
    }

    fn park(&mut self, cx: &Context<'_>) {
        self.waiters.park_reader(cx);
    }

    fn holds_idle_memory(&mut self) -> bool {
        self.inbound.with(|core, input| core.idle_bytes(input) > 0)
    }

    fn release_idle(&mut self) {
        self.inbound
            .with(|core, input| core.release_idle_memory(input));
        self.outlet.release_idle();
    }
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    async fn wait_for<T>(
        &mut self,
        mut wanted: Wanted<impl read_loop::CorePoll<T>>,
    ) -> Result<T, Error> {
        poll_fn(|cx| {
            let mut side = ReaderSide {
                io: &mut self.io,
                inbound: &mut self.inbound,
                waiters: &self.waiters,
                outlet: &*self.outlet,
                timer: &mut self.timer,
            };
            poll_wait(&mut side, &mut self.reading, cx, &mut wanted)
        })
        .await
    }

    /// As [`super::Packetizer::read_message`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        self.wait_for(read_loop::packet()).await?;
        read_loop::found_packet(self.inbound.input())
    }

    /// As [`super::Packetizer::read_all`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        self.wait_for(read_loop::raw(n, check_rekey)).await
    }

    /// As [`super::Packetizer::read_line`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_line(&mut self) -> Result<String, Error> {
        self.wait_for(read_loop::line()).await
    }

    /// As [`super::Packetizer::read_identification`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call, and lines before the
    /// identification already taken are kept to be returned with it.
    pub async fn read_identification(&mut self) -> Result<Identification, Error> {
        self.wait_for(read_loop::identification()).await
    }

    /// As [`super::Packetizer::set_inbound_cipher`].
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.connection()
            .with_now(|core, now| core.set_inbound_keys(keys, now))
    }

    /// As [`super::Packetizer::set_keepalive`]; the callback's messages are
    /// sealed at once and written by the read loop when no writer is busy
    /// (a busy writer writes them next). Neither way does the read wait for
    /// the write: a peer that stopped reading does not stop us reading.
    pub fn set_keepalive<F>(&mut self, interval: Option<Duration>, callback: F)
    where
        F: FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send + 'static,
    {
        self.connection()
            .with_now(|core, now| core.set_keepalive(interval, now));
        self.reading.keepalive = interval.map(|_| Box::new(callback) as KeepaliveCallback);
    }

    /// Heap bytes the connection's buffers hold now: the reader's input,
    /// the core's output and hold, and the writer's buffer (unless a writer
    /// is using it).
    pub fn buffer_bytes(&self) -> usize {
        let core = self.connection().with(|core| core.buffer_bytes());
        self.inbound.input().allocated() + core + self.outlet.spare_bytes()
    }

    /// The connection core both halves share: paramiko's controls
    /// (`need_rekey`, the handshake deadline, `close`) and everything else
    /// the core offers.
    pub fn connection(&self) -> &SharedConnection {
        self.inbound.connection()
    }
}
