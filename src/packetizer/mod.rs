//! The synchronous Packetizer over any `Read + Write` stream: paramiko's
//! Packetizer, on the sans-IO codec.
//!
//! This module is the only part of the crate that touches `std::io` and the
//! clock. It owns the stream, reads in large chunks straight into the
//! Opener's buffer (many packets per read, nothing lost between calls), seals
//! into one write buffer (one `write_all` per flush), and runs the handshake
//! deadline and the keepalive timer on each read timeout of the stream.
//!
//! Over a stream whose reads block forever no timer fires; give the stream a
//! read timeout (see [`Packetizer::tcp`]) to get ticks.

mod clock;
mod read;
mod shared;
mod split;
mod write;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

pub use self::clock::{Clock, ManualClock, SystemClock};
pub use self::read::KeepaliveCallback;
pub use self::split::{Duplex, Halves, PacketReader, PacketWriter, SplitStream};

use self::read::{Endpoint, Keepalive, ReadSide};
use self::shared::Shared;
use self::write::WriteSide;
use crate::banner::Identification;
use crate::codec::Packet;
use crate::error::Error;
use crate::keys::Keys;
use crate::rekey::RekeyLimits;

/// How often a TCP Packetizer wakes to run its timers when nothing arrives
/// (paramiko's socket timeout).
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);

/// Something a message can be sent through: what the keepalive callback is
/// handed.
pub trait SendMessage {
    /// Seals `payload` (message type byte first) and writes it; returns the
    /// sequence number it went out under.
    fn send_message(&mut self, payload: &[u8]) -> Result<u32, Error>;
}

/// The SSH binary packet protocol over a byte stream.
///
/// Every fatal error (see [`Error::is_fatal`]) closes the Packetizer, and
/// every call after it returns [`Error::Closed`] at once.
pub struct Packetizer<S> {
    io: S,
    read: ReadSide,
    write: WriteSide,
    shared: Arc<Shared>,
}

/// The whole stream seen from the read side: reads from it, and sends
/// keepalives through the write side.
struct Whole<'a, S> {
    io: &'a mut S,
    write: &'a mut WriteSide,
    shared: &'a Shared,
}

impl<S: Read + Write> Endpoint for Whole<'_, S> {
    fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read(buf)
    }

    fn sink(&mut self) -> &mut dyn SendMessage {
        self
    }
}

impl<S: Write> SendMessage for Whole<'_, S> {
    fn send_message(&mut self, payload: &[u8]) -> Result<u32, Error> {
        self.write.send(self.io, self.shared, payload)
    }
}

impl Packetizer<TcpStream> {
    /// A Packetizer over a TCP stream, set up the way SSH wants it: a read
    /// timeout of [`DEFAULT_TICK`] so timers fire, and no Nagle delay (every
    /// write is a whole packet or batch already).
    pub fn tcp(stream: TcpStream) -> io::Result<Packetizer<TcpStream>> {
        stream.set_read_timeout(Some(DEFAULT_TICK))?;
        stream.set_nodelay(true)?;
        Ok(Packetizer::new(stream))
    }
}

impl<S: Read + Write> Packetizer<S> {
    /// A Packetizer in the clear mode, sequence numbers 0, over `stream`.
    pub fn new(stream: S) -> Packetizer<S> {
        Packetizer::with_clock(stream, Arc::new(SystemClock))
    }

    /// As [`Packetizer::new`], with the timers reading `clock`.
    pub fn with_clock(stream: S, clock: Arc<dyn Clock>) -> Packetizer<S> {
        Packetizer {
            io: stream,
            read: ReadSide::new(),
            write: WriteSide::new(),
            shared: Shared::new(clock),
        }
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

    fn whole(&mut self) -> (&mut ReadSide, Whole<'_, S>) {
        (
            &mut self.read,
            Whole {
                io: &mut self.io,
                write: &mut self.write,
                shared: &self.shared,
            },
        )
    }

    /// Writes raw bytes (the identification line) straight to the stream.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.shared.is_closed() {
            return Err(Error::Closed);
        }
        let result = self.write.flush(&mut self.io, &self.shared).and_then(|()| {
            self.io
                .write_all(bytes)
                .and_then(|()| self.io.flush())
                .map_err(Error::Io)
        });
        if result.is_ok() {
            self.shared.touch();
        }
        self.shared.settle(result)
    }

    /// One line from the stream, CR LF (or bare LF) stripped, at most 8192
    /// bytes; bytes after it stay buffered. Invalid UTF-8 is replaced with
    /// U+FFFD. For the identification exchange use
    /// [`Packetizer::read_identification`], which keeps the exact bytes.
    pub fn read_line(&mut self) -> Result<String, Error> {
        let (read, mut ep) = self.whole();
        let shared = ep.shared;
        let result = read.read_line(&mut ep, shared);
        shared.settle(result)
    }

    /// The peer's identification line, after up to 1024 other lines (each at
    /// most 8192 bytes), which are returned too. The line itself must fit 255
    /// bytes with its CR LF, hold no NUL and announce protocol 2.0 (or 1.99).
    /// Bytes after it stay buffered for the first packet.
    pub fn read_identification(&mut self) -> Result<Identification, Error> {
        let (read, mut ep) = self.whole();
        let shared = ep.shared;
        let result = read.read_identification(&mut ep, shared);
        shared.settle(result)
    }

    /// Sends one message (message type byte first) as one packet, written
    /// whole together with anything queued before it. Returns its sequence
    /// number.
    pub fn send_message(&mut self, payload: &[u8]) -> Result<u32, Error> {
        let result = self.write.send(&mut self.io, &self.shared, payload);
        self.shared.settle(result)
    }

    /// Seals a message into the write buffer without writing it; a later
    /// [`Packetizer::flush`] (or send) writes the whole batch at once.
    pub fn queue_message(&mut self, payload: &[u8]) -> Result<u32, Error> {
        let result = self.write.queue(&self.shared, payload);
        self.shared.settle(result)
    }

    /// Writes every queued message.
    pub fn flush(&mut self) -> Result<(), Error> {
        let result = self.write.flush(&mut self.io, &self.shared);
        self.shared.settle(result)
    }

    /// Bytes queued but not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.write.queued()
    }

    /// The next message, borrowed from the read buffer: no copy. At a packet
    /// boundary, a read timeout with a rekey wanted is [`Error::NeedRekey`]
    /// (nothing lost, not fatal); a clean EOF there is [`Error::Closed`], one
    /// inside a packet [`Error::Eof`].
    pub fn read_message(&mut self) -> Result<Packet<'_>, Error> {
        let shared = &*self.shared;
        let mut ep = Whole {
            io: &mut self.io,
            write: &mut self.write,
            shared,
        };
        let result = self.read.read_message(&mut ep, shared);
        shared.settle(result)
    }

    /// Exactly `n` raw bytes, through the same buffer as the packets
    /// (paramiko's `read_all`). On a read timeout with nothing of them read
    /// yet, `check_rekey` and a wanted rekey give [`Error::NeedRekey`].
    pub fn read_all(&mut self, n: usize, check_rekey: bool) -> Result<Vec<u8>, Error> {
        let (read, mut ep) = self.whole();
        let shared = ep.shared;
        let result = read.read_all(&mut ep, shared, n, check_rekey);
        shared.settle(result)
    }

    /// Switches the keys of the packets sent from now on. Queued packets keep
    /// the keys they were sealed with.
    pub fn set_outbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.write.switch_keys(&self.shared, keys)
    }

    /// Switches the keys of the packets read from now on; only between
    /// packets (right after NEWKEYS was read).
    pub fn set_inbound_cipher(&mut self, keys: Keys) -> Result<(), Error> {
        self.read.switch_keys(&self.shared, keys)
    }

    /// Starts `zlib@openssh.com` compression both ways: user authentication
    /// succeeded (the server after sending USERAUTH_SUCCESS, the client after
    /// reading it). Plain `zlib` starts with the keys and needs no call.
    pub fn start_delayed_compression(&mut self) {
        self.write.sealer.start_delayed_compression();
        self.read.opener.start_delayed_compression();
    }

    /// Outbound sequence number to 0 (strict kex, right after sending NEWKEYS).
    pub fn reset_seqno_out(&mut self) {
        self.write.sealer.reset_seqno();
    }

    /// Inbound sequence number to 0 (strict kex, right after reading NEWKEYS).
    pub fn reset_seqno_in(&mut self) {
        self.read.opener.reset_seqno();
    }

    /// From now on sequence numbers may wrap; before, a wrap is
    /// [`Error::SequenceWrapped`] (Terrapin).
    pub fn mark_initial_kex_done(&mut self) {
        self.write.sealer.mark_initial_kex_done();
        self.read.opener.mark_initial_kex_done();
    }

    /// The next outbound sequence number.
    pub fn seqno_out(&self) -> u32 {
        self.write.sealer.seqno()
    }

    /// The next inbound sequence number.
    pub fn seqno_in(&self) -> u32 {
        self.read.opener.seqno()
    }

    /// Whether a key exchange should start: either direction spent its
    /// budget, or a key outlived the time limit. Cleared once both
    /// directions have switched keys.
    pub fn need_rekey(&self) -> bool {
        self.shared.rekey_wanted()
    }

    /// Sets byte and time limits on each key and the grace allowance.
    pub fn set_rekey_limits(&mut self, limits: RekeyLimits) {
        self.write.sealer.set_rekey_limits(limits);
        self.read.opener.set_rekey_limits(limits);
        self.shared.set_max_key_age(limits.max_time);
    }

    /// Sets the largest `packet_length` sent and accepted (default 256 KiB).
    pub fn set_max_packet_len(&mut self, len: usize) -> Result<(), Error> {
        self.write.sealer.set_max_packet_len(len)?;
        self.read.opener.set_max_packet_len(len)
    }

    /// Starts the key exchange deadline.
    pub fn start_handshake(&mut self, timeout: Duration) {
        self.shared.start_handshake(timeout);
    }

    /// Whether the deadline passed; false before `start_handshake` and after
    /// `complete_handshake`.
    pub fn handshake_timed_out(&self) -> bool {
        self.shared.handshake_timed_out()
    }

    /// Ends the key exchange deadline.
    pub fn complete_handshake(&mut self) {
        self.shared.complete_handshake();
    }

    /// Runs `callback` when `interval` passes with no traffic either way, at
    /// a packet boundary, on a read timeout of the stream; the timer then
    /// restarts. The callback gets a handle to send through (an IGNORE, a
    /// `keepalive@openssh.com` request). `None` turns it off.
    pub fn set_keepalive<F>(&mut self, interval: Option<Duration>, callback: F)
    where
        F: FnMut(&mut dyn SendMessage) -> Result<(), Error> + Send + 'static,
    {
        self.read.keepalive = interval.map(|interval| Keepalive {
            interval,
            callback: Box::new(callback),
        });
        // Idle time before the keepalive was installed does not count.
        self.shared.touch();
    }

    /// Logs every message's plaintext (target `ssh_packetizer::hexdump`, at
    /// debug level) while on. Off by default: plaintext is never logged
    /// otherwise.
    pub fn set_hexdump(&mut self, on: bool) {
        self.shared.set_hexdump(on);
    }

    /// Closes the Packetizer: every call after this returns
    /// [`Error::Closed`]. The stream itself closes when the Packetizer (or
    /// what [`Packetizer::into_inner`] returned) is dropped.
    pub fn close(&mut self) {
        self.shared.close();
    }

    /// Whether the Packetizer is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl<S> std::fmt::Debug for Packetizer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packetizer")
            .field("outbound", &self.write.sealer)
            .field("inbound", &self.read.opener)
            .field("closed", &self.shared.is_closed())
            .finish_non_exhaustive()
    }
}

impl<S: Write> SendMessage for Packetizer<S> {
    fn send_message(&mut self, payload: &[u8]) -> Result<u32, Error> {
        let result = self.write.send(&mut self.io, &self.shared, payload);
        self.shared.settle(result)
    }
}
