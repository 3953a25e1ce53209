//! The async Packetizer: the sync one's surface over any
//! `AsyncRead + AsyncWrite + Unpin`, its timers on `tokio::time`.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite};
use bytes::BytesMut;
use tokio_util::codec::{Framed, FramedParts};

use super::codec::PacketCodec;
use super::driver::{poll_read_into, poll_wait, poll_write, AsyncSide, Lent};
use super::split::{self, PacketReader, PacketWriter};
use super::timer::{now, Timer};
use crate::banner::Identification;
use crate::codec::InputBuffer;
use crate::codec::Packet;
use crate::connection::{Config, Connection, Sent};
use crate::error::Error;
use crate::keys::Keys;
use crate::read_loop::{self, CoreSide, Got, KeepaliveCallback, ReadState, SendMessage, Wanted};

/// The SSH binary packet protocol over an async byte stream: the sync
/// [`crate::Packetizer`]'s surface, its timers (handshake deadline,
/// keepalive, key age) driven by `tokio::time` from the core's deadlines,
/// so the stream needs no read timeout.
///
/// A thin driver over [`Connection`]; the first fatal error is kept and
/// every later call answers [`Error::Failed`] with it as the cause.
///
/// # Cancel safety
/// Every byte read sits in the Packetizer's input buffer and every byte to
/// write in the core's output before a poll returns, so:
/// - [`read_message`](Packetizer::read_message),
///   [`read_line`](Packetizer::read_line),
///   [`read_identification`](Packetizer::read_identification) and
///   [`read_all`](Packetizer::read_all) are cancel-safe: dropped (a
///   `tokio::select!` branch that lost), they lose no byte and the next
///   call carries on where they stopped; `read_all` takes nothing until all
///   its bytes are in.
/// - [`flush`](Packetizer::flush) is cancel-safe: what was not written yet
///   stays queued.
/// - [`send_message`](Packetizer::send_message),
///   [`send_newkeys`](Packetizer::send_newkeys) and the other sends seal
///   their packet on the first poll; dropped after that, the packet stays
///   queued (sent once, by the next send or flush), never lost or doubled.
///   Dropped before the first poll, they did nothing.
///
/// # Timers and memory
/// The timers run, and a keepalive goes out, while a read is being polled
/// (as the sync Packetizer's run while a read waits): keep one pending, as a
/// task that loops on `read_message` does. A connection that rests for
/// [`IDLE_RELEASE`](super::IDLE_RELEASE) with nothing buffered gives its
/// read and write buffers back; reads at rest go through a stack buffer,
/// so an idle connection holds no read room.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ssh_packetizer::Error> {
/// use ssh_packetizer::tokio::Packetizer;
///
/// let (a, b) = tokio::io::duplex(64 * 1024);
/// let (mut client, mut server) = (Packetizer::new(a), Packetizer::new(b));
/// client.send_identification("SSH-2.0-client").await?;
/// assert_eq!(server.read_identification().await?.software_version(), "client");
/// client.send_message(b"\x14 a KEXINIT").await?;
/// let kexinit = server.read_message().await?;
/// assert_eq!((kexinit.msg_type(), kexinit.seqno()), (20, 0));
/// # Ok(())
/// # }
/// ```
pub struct Packetizer<S> {
    io: S,
    core: Connection,
    input: InputBuffer,
    reading: ReadState,
    timer: Timer,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
}

/// The whole Packetizer seen by the read loop.
struct Whole<'a, S> {
    io: &'a mut S,
    core: &'a mut Connection,
    input: &'a mut InputBuffer,
    timer: &'a mut Timer,
    unflushed: &'a mut bool,
}

/// The keepalive callback's handle: it seals into the core's output, which
/// the read loop writes without waiting.
impl<S> SendMessage for Whole<'_, S> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        self.core.send_message(payload)
    }
}

impl<S> CoreSide for Whole<'_, S> {
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T {
        f(self.core, self.input)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncSide for Whole<'_, S> {
    fn poll_read_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Got>> {
        let mut to = Lent {
            core: self.core,
            input: self.input,
        };
        poll_read_into(self.io, &mut to, cx)
    }

    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        poll_write(self.io, self.core, self.unflushed, cx)
    }

    fn timer(&mut self) -> &mut Timer {
        self.timer
    }

    fn holds_idle_memory(&mut self) -> bool {
        self.core.idle_bytes(self.input) > 0
    }

    fn release_idle(&mut self) {
        self.core.release_idle_memory(self.input);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Packetizer<S> {
    /// A client-side Packetizer with the default [`Config`], in the clear
    /// mode, sequence numbers 0, over `stream`.
    pub fn new(stream: S) -> Packetizer<S> {
        Packetizer::with_config(stream, Config::client())
    }

    /// A Packetizer with `config` (role, maximum packet, rekey limits,
    /// provider, hexdump) over `stream`.
    pub fn with_config(stream: S, config: Config) -> Packetizer<S> {
        Packetizer {
            io: stream,
            core: Connection::new(config, now()),
            // Many connections, most trading small packets: reads start
            // small and grow while they fill.
            input: InputBuffer::with_growing_reads(),
            reading: ReadState::default(),
            timer: Timer::default(),
            unflushed: false,
        }
    }

    /// The connection core, for inspection (sequence numbers, the keys in
    /// use, the first error), as of the last call.
    pub fn connection(&self) -> &Connection {
        &self.core
    }

    /// As [`crate::Packetizer::connection_mut`]: the connection core, its
    /// timers brought up to tokio's clock first.
    pub fn connection_mut(&mut self) -> &mut Connection {
        self.core.handle_timeout(now());
        &mut self.core
    }

    /// As [`crate::Packetizer::need_rekey`].
    pub fn need_rekey(&mut self) -> bool {
        self.connection_mut().need_rekey()
    }

    /// As [`crate::Packetizer::start_handshake`], on tokio's clock.
    pub fn start_handshake(&mut self, timeout: Duration) {
        self.core.start_handshake(timeout, now());
    }

    /// As [`crate::Packetizer::handshake_timed_out`].
    pub fn handshake_timed_out(&mut self) -> bool {
        self.connection_mut().handshake_timed_out()
    }

    /// As [`crate::Packetizer::complete_handshake`].
    pub fn complete_handshake(&mut self) {
        self.core.complete_handshake();
    }

    /// Closes the Packetizer: every call after this returns
    /// [`Error::Closed`]. The stream closes when it is dropped.
    pub fn close(&mut self) {
        self.core.close();
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream, mutably (to set options; reading or writing it directly
    /// desynchronises the packet stream).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The stream back. Bytes already read but not yet returned are dropped.
    pub fn into_inner(self) -> S {
        self.io
    }

    fn whole(&mut self) -> (Whole<'_, S>, &mut ReadState) {
        (
            Whole {
                io: &mut self.io,
                core: &mut self.core,
                input: &mut self.input,
                timer: &mut self.timer,
                unflushed: &mut self.unflushed,
            },
            &mut self.reading,
        )
    }

    /// Polls the read loop until the core has what `wanted` waits for.
    async fn wait_for<T>(
        &mut self,
        mut wanted: Wanted<impl read_loop::CorePoll<T>>,
    ) -> Result<T, Error> {
        poll_fn(|cx| {
            let (mut side, state) = self.whole();
            poll_wait(&mut side, state, cx, &mut wanted)
        })
        .await
    }

    /// Sends our identification line (e.g. `SSH-2.0-myssh_1.0`); CR LF is
    /// added. The key exchange hashes `id` as given.
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn send_identification(&mut self, id: &str) -> Result<(), Error> {
        self.core.send_identification(id)?;
        self.flush().await
    }

    /// Writes raw bytes (an identification line built by hand), after
    /// anything queued; only before the first packet.
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.core.send_raw(bytes)?;
        self.flush().await
    }

    /// One line, CR LF (or bare LF) stripped, at most 8192 bytes; bytes
    /// after it stay buffered. Invalid UTF-8 is replaced with U+FFFD.
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_line(&mut self) -> Result<String, Error> {
        self.wait_for(read_loop::line()).await
    }

    /// The peer's identification line, read as OpenSSH reads it (see
    /// [`Connection::poll_identification`]). A client takes up to 1023
    /// lines before it, of which it keeps 64 KiB
    /// ([`Identification::pre_banner`], with
    /// [`Identification::pre_banner_truncated`] if some were dropped); a
    /// server takes none. Bytes after it stay buffered for the first packet.
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call, and lines before the
    /// identification already taken are kept to be returned with it.
    pub async fn read_identification(&mut self) -> Result<Identification, Error> {
        self.wait_for(read_loop::identification()).await
    }

    /// Sends one message (message type byte first), written together with
    /// anything queued before it; during our key exchange a message that
    /// must wait is held ([`Sent::Held`]).
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.core.send_message(payload)?;
        self.flush().await?;
        Ok(sent)
    }

    /// Seals a message into the output without writing it; a later
    /// [`Packetizer::flush`] (or send) writes the batch at once.
    pub fn queue_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        self.core.send_message(payload)
    }

    /// Writes every queued message. After a close it still writes what was
    /// sealed before it (the rest of a [`Packetizer::disconnect`] given up
    /// half written), then answers [`Error::Closed`].
    ///
    /// Cancel safety: cancel-safe; what was not written yet stays queued
    /// for the next call that writes.
    pub async fn flush(&mut self) -> Result<(), Error> {
        match self.core.check() {
            Ok(()) => {}
            Err(Error::Closed) => {
                poll_fn(|cx| poll_write(&mut self.io, &mut self.core, &mut self.unflushed, cx))
                    .await?;
                return Err(Error::Closed);
            }
            Err(e) => return Err(e),
        }
        poll_fn(|cx| poll_write(&mut self.io, &mut self.core, &mut self.unflushed, cx)).await
    }

    /// The next message, borrowed from the read buffer: no copy.
    ///
    /// As the sync [`crate::Packetizer::read_message`]: [`Error::NeedRekey`]
    /// once per rekey request at a packet boundary, [`Error::KeysPending`]
    /// after the peer's NEWKEYS until
    /// [`Packetizer::set_inbound_cipher`], [`Error::Closed`] for a clean
    /// EOF, [`Error::Eof`] inside a packet, [`Error::Disconnected`] for a
    /// DISCONNECT.
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        self.wait_for(read_loop::packet()).await?;
        read_loop::found_packet(&self.input)
    }

    /// Exactly `n` raw bytes through the same buffer as the packets
    /// (paramiko's `read_all`), at most [`Connection::input_limit`]; nothing
    /// is taken until all `n` are in. With `check_rekey`, a pending rekey
    /// with nothing of them read yet gives [`Error::NeedRekey`].
    ///
    /// Cancel safety: cancel-safe. Dropped before it returns (a losing
    /// `select!` branch), it has consumed nothing it did not return: every
    /// byte read stays buffered for the next call.
    pub async fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        self.wait_for(read_loop::raw(n, check_rekey)).await
    }

    /// Sends NEWKEYS and switches the outbound keys in one step; with
    /// strict kex the outbound sequence number resets, and messages held
    /// during the exchange follow under the new keys.
    ///
    /// Cancel safety: what it sends is committed once sealed, on the first
    /// poll; dropped after that, it is neither lost nor sent twice: the next
    /// call that writes (a send, `flush`, or a read's loop) writes it.
    /// Dropped before the first poll, it did nothing.
    pub async fn send_newkeys(&mut self, keys: Keys) -> Result<u32, Error> {
        let seqno = self.core.send_newkeys(keys, now())?;
        self.flush().await?;
        Ok(seqno)
    }

    /// Switches the keys of the packets read from now on; normally right
    /// after the peer's NEWKEYS (which holds further packets until then).
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.core.set_inbound_keys(keys, now())
    }

    /// Runs `callback` when `interval` passes with no traffic either way
    /// (after the initial kex, never during one) while a read is polled;
    /// the callback's sends are sealed at once and written by the read
    /// loop without holding up the read. `None` turns it off.
    pub fn set_keepalive<F>(&mut self, interval: Option<Duration>, callback: F)
    where
        F: FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send + 'static,
    {
        self.core.set_keepalive(interval, now());
        self.reading.keepalive = interval.map(|_| Box::new(callback) as KeepaliveCallback);
    }

    /// Sends a DISCONNECT (`reason` from [`crate::msg::reason`]) and closes.
    ///
    /// Cancel safety: the DISCONNECT is sealed and the connection closed on
    /// the first poll; dropped before the write finished, the rest goes out
    /// with [`Packetizer::flush`] (every other later call answers
    /// [`Error::Closed`] and writes nothing). Dropped before the first poll,
    /// it did nothing.
    pub async fn disconnect(&mut self, reason: u32, description: &str) -> Result<(), Error> {
        self.core.send_disconnect(reason, description)?;
        poll_fn(|cx| poll_write(&mut self.io, &mut self.core, &mut self.unflushed, cx)).await
    }

    /// Gives the read and write buffers back now if they hold nothing (the
    /// read loop does it by itself after [`super::IDLE_RELEASE`] at rest);
    /// returns the bytes freed.
    pub fn release_idle_memory(&mut self) -> usize {
        self.core.release_idle_memory(&mut self.input)
    }

    /// Heap bytes the buffers hold now (input, output, hold).
    pub fn buffer_bytes(&self) -> usize {
        self.input.allocated() + self.core.buffer_bytes()
    }
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> Packetizer<S> {
    /// Splits into a reader and a writer for two tasks, over
    /// `tokio::io::split`. Buffered inbound bytes, queued outbound packets,
    /// keys, sequence numbers, limits and the keepalive carry over. For a
    /// stream with halves of its own (`TcpStream::into_split`) see
    /// [`Packetizer::split_with`].
    pub fn into_split(
        self,
    ) -> (
        PacketReader<::tokio::io::ReadHalf<S>>,
        PacketWriter<::tokio::io::WriteHalf<S>>,
    ) {
        self.split_with(::tokio::io::split)
    }
}

impl<S: AsyncRead + AsyncWrite> Packetizer<S> {
    /// Hands the connection to a `tokio_util` [`Framed`] with a
    /// [`PacketCodec`]: bytes read but not yet returned become `Framed`'s
    /// read buffer (a packet half read by a cancelled read stays in the
    /// codec's input, with what is known of it), queued output its write
    /// buffer. For the identification exchange through the Packetizer, then
    /// packets through `Framed`. The keepalive callback stays behind, and
    /// the timers become the `Framed` user's (see [`PacketCodec`]).
    pub fn into_framed(self) -> Framed<S, PacketCodec> {
        let Packetizer {
            io,
            mut core,
            mut input,
            ..
        } = self;
        // Whole bytes go to `Framed`'s read buffer, which makes it decode
        // before it reads the socket (it would not look at the codec's
        // input first). A failed core takes none: its error comes first.
        let read_buf = BytesMut::from(core.raw_buffered(&input));
        let taken = core.consume_raw(&mut input, read_buf.len()).is_ok();
        let write_buf = BytesMut::from(core.pending_output());
        core.output_written(write_buf.len(), now());
        let mut parts = FramedParts::new::<&[u8]>(io, PacketCodec::from_parts(core, input));
        if taken {
            parts.read_buf = read_buf;
        }
        parts.write_buf = write_buf;
        Framed::from_parts(parts)
    }
}

impl<S> Packetizer<S> {
    /// As [`Packetizer::into_split`], with the stream's own split: `split`
    /// turns the stream into its read and write halves.
    pub fn split_with<R, W>(
        self,
        split: impl FnOnce(S) -> (R, W),
    ) -> (PacketReader<R>, PacketWriter<W>)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let Packetizer {
            io,
            core,
            input,
            reading,
            unflushed,
            ..
        } = self;
        let (reader, writer) = split(io);
        split::halves(reader, writer, core, input, reading, unflushed)
    }
}

impl<S> std::fmt::Debug for Packetizer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packetizer")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}
