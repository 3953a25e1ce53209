//! The synchronous drivers: [`Packetizer`] over any `Read + Write` stream,
//! in the manner of paramiko's, and its two halves for two threads.
//!
//! They hold no policy: every rule (NEWKEYS, rekeys, deadlines, keepalive,
//! holds during a kex, the first fatal error) is the [`Connection`]'s. A
//! driver reads into the core's buffer in large chunks, writes the core's
//! output, reads the clock, and on each read timeout of the stream runs the
//! core's timers. Over a stream whose reads block forever no timer fires
//! until bytes arrive; give the stream a read timeout (see
//! [`Packetizer::tcp`]) to get ticks.

mod clock;
pub(crate) mod reading;
mod split;
mod stream;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(any(test, feature = "test-util"))]
pub use self::clock::ManualClock;
pub use self::clock::{Clock, SystemClock};
pub use self::split::{Duplex, Halves, PacketReader, PacketWriter, SplitStream};
pub use self::stream::NONBLOCKING_BACKOFF;

use self::reading::{wait_for, Side};
use self::stream::{read_once, write_fully, Patience, Read1};
use crate::banner::Identification;
use crate::codec::{InputBuffer, Packet};
use crate::connection::{Config, Connection, Sent};
use crate::error::Error;
use crate::keys::Keys;
use crate::read_loop::{self, found_packet, CoreSide, KeepaliveCallback, ReadState, SendMessage};

/// How often a TCP Packetizer wakes to run its timers when nothing arrives
/// (paramiko's socket timeout).
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

/// The SSH binary packet protocol over a byte stream.
///
/// A thin driver over [`Connection`]: the first fatal error is kept, and
/// every later call answers [`Error::Failed`] with it as the cause.
///
/// ```
/// use ssh_packetizer::pipe::pipe;
/// use ssh_packetizer::Packetizer;
///
/// let (a, b) = pipe();
/// let (mut client, mut server) = (Packetizer::new(a), Packetizer::new(b));
/// client.send_identification("SSH-2.0-client")?;
/// assert_eq!(server.read_identification()?.software_version(), "client");
/// client.send_message(b"\x14 a KEXINIT")?;
/// let kexinit = server.read_message()?;
/// assert_eq!((kexinit.msg_type(), kexinit.seqno()), (20, 0));
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
pub struct Packetizer<S> {
    io: S,
    core: Connection,
    input: InputBuffer,
    clock: Arc<dyn Clock>,
    reading: ReadState,
    write_timeout: Option<Duration>,
    /// How long to wait after a read that returned `WouldBlock` at once.
    backoff: Duration,
}

/// The whole Packetizer seen by the read loop.
struct Whole<'a, S> {
    io: &'a mut S,
    core: &'a mut Connection,
    input: &'a mut InputBuffer,
    clock: &'a dyn Clock,
    write_timeout: Option<Duration>,
    backoff: Duration,
}

impl<S: Read + Write> CoreSide for Whole<'_, S> {
    fn with_core<T>(&mut self, f: impl FnOnce(&mut Connection, &mut InputBuffer) -> T) -> T {
        f(self.core, self.input)
    }
}

impl<S: Read + Write> Side for Whole<'_, S> {
    fn read_stream(&mut self, until: Option<Duration>) -> io::Result<Read1> {
        read_once(self.io, self.core.recv_buf(self.input), until, self.backoff)
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn flush_after_failure(&mut self) {
        let out = self.core.pending_output();
        if out.is_empty() {
            return;
        }
        // Best effort, briefly: the peer may have stopped reading. Whatever
        // the write did, the bytes are dropped (the connection has failed),
        // so no later call writes them, or part of them, again.
        let mut patience = self.patience();
        patience.stall = Some(patience.stall.map_or(DEFAULT_TICK, |t| t.min(DEFAULT_TICK)));
        let _ = write_fully(self.io, out, &patience, self.clock);
        let n = out.len();
        self.core.output_written(n, self.clock.now());
    }
}

impl<S: Write> Whole<'_, S> {
    fn flush(&mut self) -> Result<(), Error> {
        self.core.check()?;
        flush_core(self.io, self.core, self.clock, self.patience())
    }

    /// How writes wait: one thread owns the whole Packetizer, so nothing
    /// can close it during a write.
    fn patience(&self) -> Patience<'static> {
        Patience {
            stall: self.write_timeout,
            backoff: self.backoff,
            cancelled: &|| false,
        }
    }
}

impl<S: Read + Write> SendMessage for Whole<'_, S> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        let sent = self.core.send_message(payload)?;
        self.flush()?;
        Ok(sent)
    }
}

/// Writes everything the core has pending.
fn flush_core(
    io: &mut impl Write,
    core: &mut Connection,
    clock: &dyn Clock,
    patience: Patience<'_>,
) -> Result<(), Error> {
    let out = core.pending_output();
    if out.is_empty() {
        return Ok(());
    }
    let n = out.len();
    match write_fully(io, out, &patience, clock) {
        Ok(()) => {
            core.output_written(n, clock.now());
            Ok(())
        }
        Err(e) => Err(core.fail_with(e)),
    }
}

impl Packetizer<TcpStream> {
    /// A Packetizer over a TCP stream, set up the way SSH wants it: read and
    /// write timeouts of [`DEFAULT_TICK`] so timers fire and a stalled write
    /// can be noticed (writes go on after a timeout unless
    /// [`Packetizer::set_write_timeout`] says otherwise), and no Nagle delay
    /// (every write is a whole packet or batch already). The timeouts stay
    /// on the socket: one taken back with [`Packetizer::into_inner`] reports
    /// them as `WouldBlock` until reset.
    pub fn tcp(stream: TcpStream) -> io::Result<Packetizer<TcpStream>> {
        Packetizer::tcp_with_config(stream, Config::client())
    }

    /// As [`Packetizer::tcp`], with `config` (a server's accepted streams:
    /// [`Config::server`]).
    pub fn tcp_with_config(stream: TcpStream, config: Config) -> io::Result<Packetizer<TcpStream>> {
        stream.set_read_timeout(Some(DEFAULT_TICK))?;
        stream.set_write_timeout(Some(DEFAULT_TICK))?;
        stream.set_nodelay(true)?;
        Ok(Packetizer::with_clock(
            stream,
            config,
            Arc::new(SystemClock),
        ))
    }
}

impl<S: Read + Write> Packetizer<S> {
    /// A client-side Packetizer with the default [`Config`], in the clear
    /// mode, sequence numbers 0, over `stream`.
    pub fn new(stream: S) -> Packetizer<S> {
        Packetizer::with_config(stream, Config::client())
    }

    /// A Packetizer with `config` (role, maximum packet, rekey limits,
    /// provider, hexdump) over `stream`.
    pub fn with_config(stream: S, config: Config) -> Packetizer<S> {
        Packetizer::with_clock(stream, config, Arc::new(SystemClock))
    }

    /// As [`Packetizer::with_config`], with the timers reading `clock`.
    pub fn with_clock(stream: S, config: Config, clock: Arc<dyn Clock>) -> Packetizer<S> {
        let now = clock.now();
        Packetizer {
            io: stream,
            core: Connection::new(config, now),
            input: InputBuffer::new(),
            clock,
            reading: ReadState::default(),
            write_timeout: None,
            backoff: NONBLOCKING_BACKOFF,
        }
    }

    /// The connection core, for inspection (sequence numbers, the keys in
    /// use, the first error), as of the last call.
    pub fn connection(&self) -> &Connection {
        &self.core
    }

    /// The connection core, for what is negotiated or changes
    /// mid-connection (strict kex, delayed compression, a rekey request);
    /// its timers are brought up to the Packetizer's clock first.
    ///
    /// The read loop follows the core's counts
    /// ([`Connection::rekeys_wanted`], [`Connection::keepalives_due`]), not
    /// its events, so the events ([`Connection::poll_event`]) are the
    /// caller's to take. The input is the Packetizer's: packets are read
    /// through it, not through the core. A message sent through it is
    /// sealed and goes out with the Packetizer's next write.
    pub fn connection_mut(&mut self) -> &mut Connection {
        self.core.handle_timeout(self.clock.now());
        &mut self.core
    }

    /// Whether a key exchange should start (paramiko's `need_rekey`): true
    /// from the request (a spent budget, key age, the peer's KEXINIT) until
    /// both directions switched keys.
    pub fn need_rekey(&mut self) -> bool {
        self.connection_mut().need_rekey()
    }

    /// Starts the key exchange deadline: a read still waiting when it
    /// passes fails with [`Error::HandshakeTimeout`].
    pub fn start_handshake(&mut self, timeout: Duration) {
        let now = self.clock.now();
        self.core.start_handshake(timeout, now);
    }

    /// Whether the deadline passed; false before `start_handshake` and
    /// after `complete_handshake`.
    pub fn handshake_timed_out(&mut self) -> bool {
        self.connection_mut().handshake_timed_out()
    }

    /// Ends the key exchange deadline.
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
                clock: &*self.clock,
                write_timeout: self.write_timeout,
                backoff: self.backoff,
            },
            &mut self.reading,
        )
    }

    /// Sends our identification line (e.g. `SSH-2.0-myssh_1.0`); CR LF is
    /// added. The key exchange hashes `id` as given.
    pub fn send_identification(&mut self, id: &str) -> Result<(), Error> {
        self.core.send_identification(id)?;
        self.flush()
    }

    /// Writes raw bytes (an identification line built by hand) to the
    /// stream, after anything queued.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.core.send_raw(bytes)?;
        self.flush()
    }

    /// One line from the stream, CR LF (or bare LF) stripped, at most 8192
    /// bytes; bytes after it stay buffered. Invalid UTF-8 is replaced with
    /// U+FFFD. For the identification exchange use
    /// [`Packetizer::read_identification`], which keeps the exact bytes.
    pub fn read_line(&mut self) -> Result<String, Error> {
        let (mut side, state) = self.whole();
        wait_for(&mut side, state, read_loop::line())
    }

    /// The peer's identification line, read as OpenSSH reads it (see
    /// [`Connection::poll_identification`]). A client takes up to 1023
    /// lines before it, of which it keeps 64 KiB
    /// ([`Identification::pre_banner`], with
    /// [`Identification::pre_banner_truncated`] if some were dropped); a
    /// server takes none. Bytes after it stay buffered for the first packet.
    pub fn read_identification(&mut self) -> Result<Identification, Error> {
        let (mut side, state) = self.whole();
        wait_for(&mut side, state, read_loop::identification())
    }

    /// Sends one message (message type byte first), written whole together
    /// with anything queued before it; during our key exchange a message
    /// that must wait is held ([`Sent::Held`]) and goes out after our
    /// NEWKEYS.
    pub fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        let (mut side, _) = self.whole();
        SendMessage::send_message(&mut side, payload)
    }

    /// Seals a message into the output without writing it; a later
    /// [`Packetizer::flush`] (or send) writes the whole batch at once.
    pub fn queue_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        self.core.send_message(payload)
    }

    /// Writes every queued message.
    pub fn flush(&mut self) -> Result<(), Error> {
        let (mut side, _) = self.whole();
        side.flush()
    }

    /// The next message, borrowed from the read buffer: no copy.
    ///
    /// [`Error::NeedRekey`] once per rekey request, at a packet boundary
    /// with nothing of the next packet in (nothing lost, not fatal).
    /// [`Error::KeysPending`] after the peer's NEWKEYS until
    /// [`Packetizer::set_inbound_cipher`]. A clean EOF at a packet boundary
    /// is [`Error::Closed`], one inside a packet [`Error::Eof`]; a
    /// DISCONNECT is [`Error::Disconnected`].
    pub fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        let (mut side, state) = self.whole();
        wait_for(&mut side, state, read_loop::packet())?;
        found_packet(&self.input)
    }

    /// Exactly `n` raw bytes, through the same buffer as the packets
    /// (paramiko's `read_all`); at most [`Connection::input_limit`]. Nothing
    /// is taken until all `n` are in, so an error (a failing keepalive
    /// callback, `NeedRekey`) loses no byte. With `check_rekey`, a pending
    /// rekey request with nothing of them read yet gives
    /// [`Error::NeedRekey`].
    pub fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        let (mut side, state) = self.whole();
        wait_for(&mut side, state, read_loop::raw(n, check_rekey))
    }

    /// Sends NEWKEYS and switches the outbound keys in one step; with strict
    /// kex the outbound sequence number resets, and messages held during
    /// the exchange follow under the new keys.
    pub fn send_newkeys(&mut self, keys: Keys) -> Result<u32, Error> {
        let seqno = self.core.send_newkeys(keys, self.clock.now())?;
        self.flush()?;
        Ok(seqno)
    }

    /// Switches the keys of the packets read from now on; only between
    /// packets, normally right after the peer's NEWKEYS was read (which
    /// holds further packets until this call).
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.core.set_inbound_keys(keys, self.clock.now())
    }

    /// Runs `callback` when `interval` passes with no traffic either way
    /// (after the initial kex, never during one), while a read waits; the
    /// timer then restarts. The callback gets a handle to send through (an
    /// IGNORE, a `keepalive@openssh.com` request). `None` turns it off.
    pub fn set_keepalive<F>(&mut self, interval: Option<Duration>, callback: F)
    where
        F: FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send + 'static,
    {
        let now = self.clock.now();
        self.core.set_keepalive(interval, now);
        self.reading.keepalive = interval.map(|_| Box::new(callback) as KeepaliveCallback);
    }

    /// Fails a write that makes no progress for `timeout` with
    /// [`Error::WriteStalled`] (off by default). The stream must report
    /// its waits: [`Packetizer::tcp`] gives the socket a write timeout;
    /// other streams need one of their own.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// How long a read that came back with `WouldBlock` at once (a
    /// non-blocking stream) waits before the next try, at most: by default
    /// [`NONBLOCKING_BACKOFF`]. A harness whose stream answers `WouldBlock`
    /// from a script (a fuzzer) sets zero.
    pub fn set_nonblocking_backoff(&mut self, backoff: Duration) {
        self.backoff = backoff;
    }

    /// Sends a DISCONNECT (`reason` from [`crate::msg::reason`]) and closes.
    pub fn disconnect(&mut self, reason: u32, description: &str) -> Result<(), Error> {
        self.core.send_disconnect(reason, description)?;
        let (side, _) = self.whole();
        let patience = side.patience();
        flush_core(side.io, side.core, side.clock, patience)
    }
}

impl<S> std::fmt::Debug for Packetizer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packetizer")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write> SendMessage for Packetizer<S> {
    fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        Packetizer::send_message(self, payload)
    }
}
