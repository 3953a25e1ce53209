//! The connection core: one sans-IO state machine for both directions
//! (see [`Connection`]).

mod config;
mod hold;
mod rekey;
mod timers;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::banner::{self, Identification, LineScan, PreBanner};
use crate::codec::input::InputBuffer;
use crate::codec::opener::OpenCore;
use crate::codec::{Frame, Opener, Packet, Sealer, Step};
use crate::crypto::CryptoProvider;
use crate::error::{Error, Latch};
use crate::keys::Keys;
use crate::msg;
use crate::padding::PaddingSource;
use crate::rekey::RekeyLimits;

use self::hold::Hold;
use self::timers::{earliest, Handshake, Timers};

pub use self::config::{Config, Role};
use self::hold::HOLD_LIMIT;

/// Index of the inbound direction in per-direction arrays.
const IN: usize = 0;
/// Index of the outbound direction.
const OUT: usize = 1;

/// Something that happened which the driver or the transport acts on; each
/// is reported once ([`Connection::poll_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A rekey became needed (budget, key age, the peer's KEXINIT or the
    /// caller's request): start a key exchange. Once per request;
    /// [`Connection::need_rekey`] stays true until both directions switched.
    RekeyWanted,
    /// The connection was idle for the keepalive interval: send something
    /// (an IGNORE, a `keepalive@openssh.com` request).
    KeepaliveDue,
    /// The handshake deadline passed; the connection failed with
    /// [`Error::HandshakeTimeout`].
    HandshakeTimedOut,
    /// Both directions switched keys for the first time.
    InitialKexDone,
}

/// What [`Connection::send_message`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// Sealed into the output under this sequence number.
    Sealed {
        /// The outbound sequence number it carries.
        seqno: u32,
    },
    /// Held until our key exchange is done (RFC 4253 §7.1); it goes out,
    /// in order, right after our NEWKEYS.
    Held,
}

impl Sent {
    /// The sequence number, if the message was sealed now.
    pub fn seqno(self) -> Option<u32> {
        match self {
            Sent::Sealed { seqno } => Some(seqno),
            Sent::Held => None,
        }
    }
}

/// Where a key exchange stands, from its first KEXINIT either way until both
/// directions switched.
#[derive(Clone, Copy, Debug, Default)]
struct Kex {
    switched: [bool; 2],
}

/// Every rule of the connection that is not framing.
struct Policy {
    role: Role,
    latch: Latch,
    timers: Timers,
    strict_kex: bool,
    hexdump: bool,
    disconnect_on_error: bool,
    limits: RekeyLimits,
    initial_kex_done: bool,
    /// Which directions have ever switched keys.
    switched_once: [bool; 2],
    /// A key exchange under way (either side's KEXINIT seen).
    kex: Option<Kex>,
    /// Our KEXINIT is out and our NEWKEYS is not: other messages are held.
    holding: bool,
    rekey: Option<rekey::Request>,
    events: VecDeque<Event>,
    /// Lines before the peer's identification line, while reading it.
    pre_banner: PreBanner,
}

impl Policy {
    fn raise(&mut self, event: Event) {
        // At most one of each kind is queued, so the queue never grows past
        // its first allocation.
        if !self.events.contains(&event) {
            self.events.push_back(event);
        }
    }

    fn want_rekey(&mut self, why: &str) {
        if !self.initial_kex_done || self.rekey.is_some() || self.latch.is_set() {
            return;
        }
        log::debug!("rekey needed: {why}");
        // An exchange under way satisfies the request: the directions it
        // already switched count, and nobody needs telling to start one.
        let mut request = rekey::Request::default();
        match self.kex {
            Some(kex) => {
                for (direction, &done) in kex.switched.iter().enumerate() {
                    if done {
                        request.switched(direction);
                    }
                }
            }
            None => self.raise(Event::RekeyWanted),
        }
        self.rekey = Some(request);
    }

    fn kex_started(&mut self) {
        self.kex.get_or_insert_with(Kex::default);
    }

    fn is_kex_in_progress(&self) -> bool {
        self.holding || self.kex.is_some()
    }
}

/// The sans-IO SSH connection: both directions' packet codecs and every
/// policy that spans them.
///
/// It owns the outbound [`Sealer`] and the inbound [`Opener`]
/// and every rule that needs both, in the manner of quinn-proto: it never
/// touches a socket or a clock. A driver hands it the bytes it read
/// ([`Connection::recv_buf`] / [`Connection::recv_filled`], or
/// [`Connection::feed`]) and the current time; it hands back packets
/// ([`Connection::poll_packet`]), bytes to write
/// ([`Connection::pending_output`]), the next instant it wants to be woken
/// at ([`Connection::poll_timeout`]) and one-shot [`Event`]s.
///
/// What it decides, once, for every driver:
/// - NEWKEYS: after the peer's NEWKEYS nothing more is read until the
///   inbound keys are installed; [`Connection::send_newkeys`] seals NEWKEYS
///   and switches the outbound keys in one call. With strict kex on,
///   sequence numbers reset at each NEWKEYS by themselves. The initial kex
///   is done once both directions switched.
/// - Rekeys: one `need_rekey` (either budget, the peer's KEXINIT, key age,
///   or the caller), only once keys are on, cleared once both directions
///   switched in either order, raised once per request as
///   [`Event::RekeyWanted`]; the peer's grace allowance, then
///   [`Error::RekeyIgnored`].
/// - Timers: the handshake deadline, the keepalive (only after the initial
///   kex and never during one) and the key age, whatever the rekey state.
/// - During our key exchange, messages other than the transport's own are
///   held and sent after the switch, as OpenSSH does (bounded).
/// - DISCONNECT: a received one is [`Error::Disconnected`]; a fatal error
///   caused by the peer's bytes queues one with the matching reason.
/// - The first fatal error is kept; every later call reports it as the
///   cause ([`Error::Failed`]).
/// - Input is bounded: at most one maximum packet plus one 64 KiB read is
///   taken until packets are drained.
///
/// ```
/// use std::time::Instant;
/// use ssh_packetizer::{Config, Connection, Step};
///
/// let now = Instant::now();
/// let mut client = Connection::new(Config::client(), now);
/// let mut server = Connection::new(Config::server(), now);
/// client.send_message(&[20, 1, 2, 3])?; // a KEXINIT, in the clear
///
/// // The driver's job: move bytes and tell the time.
/// let wire = client.pending_output().to_vec();
/// client.output_written(wire.len(), now);
/// assert_eq!(server.feed(&wire, now), wire.len());
///
/// assert_eq!(server.poll_packet()?, Step::Ready);
/// let packet = server.packet().unwrap();
/// assert_eq!((packet.msg_type(), packet.seqno()), (20, 0));
/// assert_eq!(server.poll_packet()?, Step::NeedMore(4));
/// # Ok::<(), ssh_packetizer::Error>(())
/// ```
///
/// Errors follow one rule: a fatal error is kept, and every later call
/// answers [`Error::Failed`] with it (or [`Error::Closed`] after a clean
/// close). Non-fatal errors ([`Error::NeedRekey`], a payload too large,
/// [`Error::KexHoldFull`], ...) change nothing.
pub struct Connection {
    sealer: Sealer,
    opener: Opener,
    /// Sealed bytes (and our identification line) for the driver to write.
    out: Vec<u8>,
    hold: Hold,
    policy: Policy,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.policy.role)
            .field("outbound", &self.sealer)
            .field("inbound", &self.opener)
            .field("pending_output", &self.out.len())
            .field("held", &self.hold.len())
            .field("failed", &self.policy.latch.first())
            .finish_non_exhaustive()
    }
}

/// The Opener's core with whichever input buffer holds the bytes: its own,
/// or a driver's (a split reader keeps its buffer outside the core's lock).
fn inbound<'a>(
    opener: &'a mut Opener,
    external: Option<&'a mut InputBuffer>,
) -> (&'a mut OpenCore, &'a mut InputBuffer) {
    match external {
        Some(input) => (opener.core_mut(), input),
        None => opener.parts(),
    }
}

impl Connection {
    /// The most payload bytes held back during our key exchange (see
    /// [`Sent::Held`]); past it a send is [`Error::KexHoldFull`].
    pub const HOLD_LIMIT: usize = HOLD_LIMIT;

    /// A connection with `config`, in the clear mode, sequence numbers 0,
    /// its clocks starting at `now`.
    pub fn new(config: Config, now: Instant) -> Connection {
        let mut sealer = Sealer::new();
        let mut opener = Opener::new();
        // The config checked the length when it was set.
        for result in [
            sealer.set_max_packet_len(config.max_packet_len),
            opener.set_max_packet_len(config.max_packet_len),
        ] {
            debug_assert!(result.is_ok());
        }
        sealer.set_rekey_limits(config.rekey_limits);
        opener.set_rekey_limits(config.rekey_limits);
        sealer.set_crypto_provider(config.provider);
        opener.set_crypto_provider(config.provider);
        let mut timers = Timers::new(now);
        timers.max_key_age = config.rekey_limits.max_time.map(timers::at_least_a_tick);
        Connection {
            sealer,
            opener,
            out: Vec::new(),
            hold: Hold::default(),
            policy: Policy {
                role: config.role,
                latch: Latch::default(),
                timers,
                strict_kex: false,
                hexdump: config.hexdump,
                disconnect_on_error: config.disconnect_on_error,
                limits: config.rekey_limits,
                initial_kex_done: false,
                switched_once: [false; 2],
                kex: None,
                holding: false,
                rekey: None,
                events: VecDeque::with_capacity(4),
                pre_banner: PreBanner::default(),
            },
        }
    }

    // ---------------------------------------------------------------- errors

    /// Keeps `e` if it is the first fatal error; a fatal error caused by the
    /// peer's bytes also queues a DISCONNECT saying so (best effort).
    fn fail(&mut self, e: Error) -> Error {
        if e.is_fatal() && !self.policy.latch.is_set() {
            if let (true, Some(reason)) = (self.policy.disconnect_on_error, e.disconnect_reason()) {
                let payload = msg::disconnect_payload(reason, &e.to_string());
                if self.sealer.seal(&payload, &mut self.out).is_ok() {
                    log::debug!("queued DISCONNECT (reason {reason}) after: {e}");
                }
            }
        }
        self.policy.latch.record(e)
    }

    /// The first fatal error, if one happened (or [`Error::Closed`] after a
    /// close).
    pub fn error(&self) -> Option<&Error> {
        self.policy.latch.first()
    }

    /// Whether the connection is closed or failed.
    pub fn is_closed(&self) -> bool {
        self.policy.latch.is_set()
    }

    /// Closes the connection locally: every later call returns
    /// [`Error::Closed`]. Output already pending stays readable, so a
    /// driver can still write a DISCONNECT it sent before.
    pub fn close(&mut self) {
        self.policy.latch.record(Error::Closed);
    }

    /// Records a failure of the driver's stream (a failed write, a read
    /// error) as the connection's fatal error, and returns it.
    pub fn fail_io(&mut self, e: std::io::Error) -> Error {
        if self.policy.latch.is_set() {
            return self.check().err().unwrap_or(Error::Io(e));
        }
        self.fail(Error::Io(e))
    }

    /// Records a fatal error found by a driver (a stalled write).
    pub fn fail_with(&mut self, e: Error) -> Error {
        match self.check() {
            Err(first) => first,
            Ok(()) => self.fail(e),
        }
    }

    /// `Ok` while the connection is usable; else the error every call
    /// answers.
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.policy.latch.check()
    }

    // ----------------------------------------------------------------- input

    /// Free room to read wire bytes into; report how many were written with
    /// [`Connection::recv_filled`]. Empty once one maximum packet plus 64 KiB
    /// is buffered: take packets out first.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        let (core, input) = self.opener.parts();
        core.room(input)
    }

    /// Records that `n` bytes were written at the start of
    /// [`Connection::recv_buf`], at `now`; runs the timers.
    pub fn recv_filled(&mut self, n: usize, now: Instant) {
        self.opener.filled(n);
        self.received(n, now);
    }

    /// Copies as much of `data` as the input bound allows, at `now`, and
    /// returns how many bytes were taken; offer the rest once packets were
    /// taken out.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> usize {
        let n = self.opener.feed(data);
        self.received(n, now);
        n
    }

    pub(crate) fn received(&mut self, n: usize, now: Instant) {
        self.policy.timers.advance(now);
        if n > 0 {
            self.policy.timers.touch();
        }
        self.handle_timeout(now);
    }

    /// The peer closed its side of the stream. Returns (and keeps) the
    /// error that says what that means here: [`Error::Closed`] at a packet
    /// boundary with nothing buffered, [`Error::EofWhileDiscarding`] while a
    /// corrupt CBC packet is being discarded (nothing is sent to the peer),
    /// [`Error::Eof`] inside any other packet or a raw read. `raw_needed` is the bytes a raw read (`read_all`,
    /// `read_line`) needs in all; `None` while reading packets.
    pub fn recv_eof(&mut self, raw_needed: Option<usize>) -> Error {
        self.recv_eof_in(None, raw_needed)
    }

    pub(crate) fn recv_eof_in(
        &mut self,
        external: Option<&mut InputBuffer>,
        raw_needed: Option<usize>,
    ) -> Error {
        if let Err(e) = self.check() {
            return e;
        }
        let (core, input) = inbound(&mut self.opener, external);
        let e = match raw_needed {
            Some(needed) => {
                // A line (needed 0) has no known length: at least one more.
                let got = core.raw_buffered(input).len();
                if needed == 0 && got == 0 {
                    Error::Closed
                } else {
                    Error::Eof {
                        needed: needed.max(got + 1),
                        got,
                    }
                }
            }
            None => core.eof(input.buffered()),
        };
        self.fail(e)
    }

    /// Copies bytes a driver read elsewhere into the input, without the time
    /// (the driver reports it with `received` right after).
    #[cfg(feature = "tokio")]
    pub(crate) fn feed_bytes(&mut self, data: &[u8]) -> usize {
        self.opener.feed(data)
    }

    /// As `feed_bytes`, into a driver's own input buffer.
    #[cfg(feature = "tokio")]
    pub(crate) fn feed_in(&mut self, input: &mut InputBuffer, data: &[u8]) -> usize {
        let room = self.opener.core_mut().feed_room(input, data.len());
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        input.filled(n);
        n
    }

    /// As [`Connection::recv_eof`] for a driver that reads packets in place
    /// from its own buffer, which holds `got` bytes.
    #[cfg(feature = "tokio")]
    pub(crate) fn recv_eof_in_place(&mut self, got: usize) -> Error {
        if let Err(e) = self.check() {
            return e;
        }
        let e = self.opener.core().eof(got);
        self.fail(e)
    }

    /// Reads start at 16 KiB and grow while they fill their room, up to
    /// 64 KiB (the async drivers, which keep many connections).
    #[cfg(feature = "tokio")]
    pub(crate) fn set_adaptive_reads(&mut self) {
        self.opener.set_adaptive_reads();
    }

    /// Bytes the connection's own input buffer has allocated.
    #[cfg(feature = "tokio")]
    pub(crate) fn input_allocated(&self) -> usize {
        self.opener.input_allocated()
    }

    /// Records bytes read into [`Connection::recv_buf`] without the time
    /// (the driver reports it with `received` right after).
    pub(crate) fn recv_filled_bytes(&mut self, n: usize) {
        self.opener.filled(n);
    }

    /// The room a driver's own input buffer offers for the next read, under
    /// this connection's bounds.
    pub(crate) fn recv_room_in<'a>(&mut self, input: &'a mut InputBuffer) -> &'a mut [u8] {
        self.opener.core_mut().room(input)
    }

    /// `n` raw bytes once all are buffered; nothing is taken before.
    pub(crate) fn take_raw_in(
        &mut self,
        external: Option<&mut InputBuffer>,
        n: usize,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.check()?;
        let (core, input) = inbound(&mut self.opener, external);
        let raw = core.raw_buffered(input);
        if raw.len() < n {
            return Ok(None);
        }
        let bytes = raw[..n].to_vec();
        core.consume_raw(input, n)?;
        Ok(Some(bytes))
    }

    /// Bytes buffered that no returned packet has claimed.
    pub fn buffered(&self) -> usize {
        self.opener.buffered()
    }

    /// The most input bytes held at once: one maximum packet plus 64 KiB.
    pub fn input_limit(&self) -> usize {
        self.opener.input_limit()
    }

    /// Takes the next packet off the input if it is whole; borrow it with
    /// [`Connection::packet`]. [`Step::AwaitingKeys`] after the peer's
    /// NEWKEYS until [`Connection::set_inbound_keys`]. A DISCONNECT is
    /// returned as [`Error::Disconnected`].
    pub fn poll_packet(&mut self) -> Result<Step, Error> {
        self.poll_packet_in(None)
    }

    pub(crate) fn poll_packet_in(
        &mut self,
        external: Option<&mut InputBuffer>,
    ) -> Result<Step, Error> {
        self.check()?;
        let (core, input) = inbound(&mut self.opener, external);
        let step = match core.advance(input) {
            Ok(step) => step,
            Err(e) => return Err(self.fail(e)),
        };
        if step != Step::Ready {
            return Ok(step);
        }
        let Some(packet) = core.packet(input) else {
            return Ok(Step::NeedMore(0));
        };
        let (msg_type, seqno) = (packet.msg_type(), packet.seqno());
        let disconnect = inspect_inbound(self.policy.hexdump, packet.payload(), seqno);
        let wire_len = core.last_wire_len();
        let budget_spent = core.budget_spent();
        if msg_type == msg::NEWKEYS && self.policy.strict_kex {
            core.reset_seqno();
        }
        self.after_inbound(msg_type, wire_len, budget_spent, disconnect)?;
        Ok(Step::Ready)
    }

    /// The rules every packet read passes, whichever buffer it was read
    /// from: a DISCONNECT ends the connection, the grace allowance is
    /// counted, a KEXINIT or a spent budget asks for a rekey.
    fn after_inbound(
        &mut self,
        msg_type: u8,
        wire_len: usize,
        budget_spent: bool,
        disconnect: Option<Error>,
    ) -> Result<(), Error> {
        if let Some(e) = disconnect {
            return Err(self.fail(e));
        }
        if let Some(request) = &mut self.policy.rekey {
            // A packet beyond the grace allowance is refused, whole as it is.
            if request.grace_exceeded(&self.policy.limits) {
                return Err(self.fail(Error::RekeyIgnored));
            }
            request.count_inbound(wire_len);
        }
        let policy = &mut self.policy;
        if msg_type == msg::KEXINIT {
            // The request first: if no exchange of ours is under way, the
            // transport must be told to answer this one.
            policy.want_rekey("the peer sent KEXINIT");
            policy.kex_started();
        }
        if budget_spent {
            policy.want_rekey("the inbound budget is spent");
        }
        Ok(())
    }

    /// Reads the next packet straight from a caller's buffer, decrypting it
    /// in place (see [`Opener::open_in_place`]), under every rule
    /// [`Connection::poll_packet`] applies: for a driver that owns its
    /// buffer (the tokio codec's `BytesMut`). Do not mix with the
    /// connection's own input ([`Connection::feed`], `recv_buf`).
    /// [`Frame::AwaitingKeys`] after the peer's NEWKEYS until
    /// [`Connection::set_inbound_keys`]. Not while compression is on.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<Frame, Error> {
        self.check()?;
        let core = self.opener.core_mut();
        let frame = match core.open_in_place(buf) {
            Ok(frame) => frame,
            Err(e) => return Err(self.fail(e)),
        };
        let Frame::Packet {
            payload,
            wire_len,
            seqno,
        } = &frame
        else {
            return Ok(frame);
        };
        let budget_spent = core.budget_spent();
        let msg_type = buf[payload.start];
        if msg_type == msg::NEWKEYS && self.policy.strict_kex {
            self.opener.core_mut().reset_seqno();
        }
        let disconnect = inspect_inbound(self.policy.hexdump, &buf[payload.clone()], *seqno);
        self.after_inbound(msg_type, *wire_len, budget_spent, disconnect)?;
        Ok(frame)
    }

    /// The packet the last [`Connection::poll_packet`] made ready, until the
    /// next call that takes `&mut self`.
    pub fn packet(&self) -> Option<Packet<'_>> {
        self.opener.packet()
    }

    pub(crate) fn opener_core(&self) -> &OpenCore {
        self.opener.core()
    }

    /// The buffered bytes no packet has claimed, for raw reads (the
    /// identification line, paramiko's `read_all`). Empty while a packet is
    /// half read.
    pub fn raw_buffered(&self) -> &[u8] {
        self.opener.raw_buffered()
    }

    /// Takes `n` raw bytes off the front of the input. Only between packets.
    pub fn consume_raw(&mut self, n: usize) -> Result<(), Error> {
        self.check()?;
        self.opener.consume_raw(n)
    }

    /// One line of at most 8192 bytes from the raw input, without its CR LF
    /// (or bare LF), if a whole one is buffered; the bytes after it stay.
    pub fn poll_line(&mut self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .poll_raw_line_in(None, banner::MAX_PEER_LINE_LEN)?
            .map(|(line, _)| line))
    }

    pub(crate) fn poll_raw_line_in(
        &mut self,
        external: Option<&mut InputBuffer>,
        max: usize,
    ) -> Result<Option<(Vec<u8>, usize)>, Error> {
        self.check()?;
        let (core, input) = inbound(&mut self.opener, external);
        match banner::scan_line(core.raw_buffered(input), max) {
            LineScan::Line { content, consumed } => {
                let line = core.raw_buffered(input)[..content].to_vec();
                core.consume_raw(input, consumed)?;
                Ok(Some((line, consumed)))
            }
            LineScan::TooLong => Err(self.fail(Error::LineTooLong { max })),
            LineScan::Partial => Ok(None),
        }
    }

    /// The peer's identification line once it is buffered (RFC 4253 §4.2),
    /// with the lines before it, read as OpenSSH reads them: every line ends
    /// at LF, a CR only right before it, no NUL, at most 8192 bytes besides
    /// the ending. A client accepts up to 1024 lines before the
    /// identification and keeps up to [`Identification::MAX_PRE_BANNER_KEPT`] bytes
    /// of them; a server accepts none. The line must announce protocol 2.0
    /// (or 1.99). Bytes after it stay buffered for the first packet.
    /// `None`: not all of it arrived yet.
    pub fn poll_identification(&mut self) -> Result<Option<Identification>, Error> {
        self.poll_identification_in(None)
    }

    pub(crate) fn poll_identification_in(
        &mut self,
        mut external: Option<&mut InputBuffer>,
    ) -> Result<Option<Identification>, Error> {
        self.check()?;
        loop {
            let (core, input) = inbound(&mut self.opener, external.as_deref_mut());
            let scanned = banner::scan_peer_line(core.raw_buffered(input));
            let (content, consumed) = match scanned {
                Ok(LineScan::Line { content, consumed }) => (content, consumed),
                Ok(LineScan::Partial) => return Ok(None),
                Ok(LineScan::TooLong) => {
                    return Err(self.fail(Error::LineTooLong {
                        max: banner::MAX_PEER_LINE_LEN,
                    }))
                }
                Err(e) => return Err(self.fail(e)),
            };
            let raw = core.raw_buffered(input);
            if banner::is_identification(&raw[..content]) {
                if let Err(reason) = banner::check_identification(&raw[..content]) {
                    return Err(self.fail(Error::BadIdentification { reason }));
                }
                let line = raw[..content].to_vec();
                core.consume_raw(input, consumed)?;
                return Ok(Some(self.policy.pre_banner.finish(line)));
            }
            if self.policy.role == Role::Server {
                return Err(self.fail(Error::BadIdentification {
                    reason: "a client must send its identification line first",
                }));
            }
            if let Err(e) = self.policy.pre_banner.push(&raw[..content]) {
                return Err(self.fail(e));
            }
            core.consume_raw(input, consumed)?;
        }
    }

    // ---------------------------------------------------------------- output

    /// Queues our identification line (e.g. `SSH-2.0-myssh_1.0`, without
    /// line ending: CR LF is added). The key exchange hashes `id` as given.
    pub fn send_identification(&mut self, id: &str) -> Result<(), Error> {
        self.check()?;
        self.raw_allowed()?;
        let line = banner::identification_line(id)?;
        self.out.extend_from_slice(&line);
        Ok(())
    }

    /// Queues raw bytes for the wire as they are (an identification line a
    /// caller built itself); refused once a packet was sealed.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.raw_allowed()?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Raw bytes go only before the first packet.
    fn raw_allowed(&self) -> Result<(), Error> {
        if self.sealer.seqno() != 0 || self.policy.switched_once[OUT] {
            return Err(Error::InvalidCall {
                reason: "raw bytes after the first packet would break the packet stream",
            });
        }
        Ok(())
    }

    /// Seals one message (message type byte first) into the output, or holds
    /// it while our key exchange is under way (see [`Sent::Held`]).
    ///
    /// NEWKEYS goes through [`Connection::send_newkeys`] only. Non-fatal
    /// errors (nothing changes): an empty payload, one too large for the
    /// maximum packet length, [`Error::KexHoldFull`].
    pub fn send_message(&mut self, payload: &[u8]) -> Result<Sent, Error> {
        self.check()?;
        let msg_type = *payload.first().ok_or(Error::EmptyPayload)?;
        if msg_type == msg::NEWKEYS {
            return Err(Error::InvalidCall {
                reason: "NEWKEYS is sent with send_newkeys, which also switches the keys",
            });
        }
        if self.policy.holding && !msg::allowed_during_kex(msg_type) {
            if !self.sealer.fits_after_any_switch(payload.len()) {
                return Err(Error::PayloadTooLarge {
                    len: payload.len(),
                    max: self.sealer.max_packet_len(),
                });
            }
            if !self.hold.has_room(payload.len()) {
                return Err(Error::KexHoldFull {
                    held: self.hold.len(),
                    max: HOLD_LIMIT,
                });
            }
            self.hold.push(payload);
            return Ok(Sent::Held);
        }
        if msg_type != msg::KEXINIT {
            return self.seal(payload).map(|seqno| Sent::Sealed { seqno });
        }
        // Our KEXINIT: the exchange is under way from this packet on, so a
        // budget it spends asks for nothing more, and a request already
        // queued is answered.
        let before = (self.policy.holding, self.policy.kex);
        self.policy.holding = true;
        self.policy.kex_started();
        match self.seal(payload) {
            Ok(seqno) => {
                self.policy.events.retain(|&e| e != Event::RekeyWanted);
                Ok(Sent::Sealed { seqno })
            }
            Err(e) => {
                (self.policy.holding, self.policy.kex) = before;
                Err(e)
            }
        }
    }

    fn seal(&mut self, payload: &[u8]) -> Result<u32, Error> {
        let seqno = match self.sealer.seal(payload, &mut self.out) {
            Ok(seqno) => seqno,
            Err(e) => return Err(self.fail(e)),
        };
        if self.policy.hexdump {
            hexdump("out", seqno, payload);
        }
        if self.sealer.budget_spent() {
            self.policy.want_rekey("the outbound budget is spent");
        }
        Ok(seqno)
    }

    /// Sends NEWKEYS under the current keys and switches the outbound keys
    /// to `keys`, in one step: no other packet is sealed between them. With
    /// strict kex the outbound sequence number then resets to 0. Messages
    /// held during the exchange follow at once, under the new keys. If
    /// `keys` cannot be installed nothing is sent. Returns NEWKEYS's
    /// sequence number. The switch is stamped with `now` (for the key age
    /// limit), after the timers due by then ran.
    pub fn send_newkeys(&mut self, keys: Keys, now: Instant) -> Result<u32, Error> {
        self.handle_timeout(now);
        self.check()?;
        log::debug!("outbound keys: {} + {}", keys.cipher(), keys.mac());
        let cipher_on = keys.cipher() != crate::CipherAlgorithm::None;
        let seqno = match self.sealer.seal_newkeys(keys, &mut self.out) {
            Ok(seqno) => seqno,
            Err(e) => return Err(self.fail(e)),
        };
        if self.policy.hexdump {
            hexdump("out", seqno, &[msg::NEWKEYS]);
        }
        if self.policy.strict_kex {
            self.sealer.reset_seqno();
        }
        self.policy.holding = false;
        self.switched(OUT, cipher_on);
        let held = self.hold.take();
        let mut result = Ok(seqno);
        for payload in hold::payloads(&held) {
            if let Err(e) = self.seal(payload) {
                // The keys switched and the message was promised: the
                // connection cannot go on without it, whatever the error.
                result = Err(self.policy.latch.record_fatal(e));
                break;
            }
        }
        self.hold.restore(held);
        result
    }

    /// Installs the inbound keys, at a packet boundary: normally right after
    /// the peer's NEWKEYS, which holds further packets until this call.
    /// Like [`Connection::send_newkeys`], the switch is stamped with `now`
    /// (for the key age limit), after the timers due by then ran.
    pub fn set_inbound_keys(&mut self, keys: Keys, now: Instant) -> Result<(), Error> {
        self.handle_timeout(now);
        self.check()?;
        log::debug!("inbound keys: {} + {}", keys.cipher(), keys.mac());
        let cipher_on = keys.cipher() != crate::CipherAlgorithm::None;
        self.opener.core_mut().set_keys(keys)?;
        self.switched(IN, cipher_on);
        Ok(())
    }

    fn switched(&mut self, direction: usize, cipher_on: bool) {
        let policy = &mut self.policy;
        policy.switched_once[direction] = true;
        policy.timers.keys_since[direction] = cipher_on.then_some(policy.timers.now);
        if let Some(request) = &mut policy.rekey {
            if request.switched(direction) {
                policy.rekey = None;
                policy.events.retain(|&e| e != Event::RekeyWanted);
            }
        }
        if let Some(kex) = &mut policy.kex {
            kex.switched[direction] = true;
            if kex.switched == [true; 2] {
                policy.kex = None;
            }
        }
        if !policy.initial_kex_done && policy.switched_once == [true; 2] {
            policy.initial_kex_done = true;
            self.sealer.mark_initial_kex_done();
            self.opener.mark_initial_kex_done();
            policy.raise(Event::InitialKexDone);
            // Keepalive idle time counts from here.
            policy.timers.touch();
        }
        // A direction that switched first can spend its new budget before
        // the other switches (a small limit, a peer slow to send NEWKEYS).
        // That spending asked for a rekey while the request just cleared
        // was pending, and was absorbed by it; ask again, or nobody would
        // until the next packet, which may never come (a sender waiting
        // for window from a peer that has stopped).
        if self.policy.rekey.is_none()
            && (self.sealer.budget_spent() || self.opener.core().budget_spent())
        {
            self.policy
                .want_rekey("a budget was spent again before the exchange finished");
        }
    }

    /// Queues a DISCONNECT with `reason` ([`msg::reason`]) and
    /// `description`, then closes the connection: write out
    /// [`Connection::pending_output`] and hang up.
    pub fn send_disconnect(&mut self, reason: u32, description: &str) -> Result<(), Error> {
        self.check()?;
        self.seal(&msg::disconnect_payload(reason, description))?;
        self.close();
        Ok(())
    }

    /// Sealed bytes waiting to be written, oldest first.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Records that the first `n` bytes of [`Connection::pending_output`]
    /// were written, at `now`.
    pub fn output_written(&mut self, n: usize, now: Instant) {
        let n = n.min(self.out.len());
        if n == self.out.len() {
            self.out.clear();
        } else {
            self.out.drain(..n);
        }
        self.output_sent(n, now);
    }

    /// Swaps the pending output into `into` (which must be empty; its
    /// capacity is kept for the next swap), for a driver that writes it
    /// without holding the connection; report with
    /// [`Connection::output_sent`].
    pub(crate) fn take_output(&mut self, into: &mut Vec<u8>) {
        into.clear();
        std::mem::swap(&mut self.out, into);
    }

    /// Records `n` bytes taken with `take_output` as written, at `now`.
    pub(crate) fn output_sent(&mut self, n: usize, now: Instant) {
        self.policy.timers.advance(now);
        if n > 0 {
            self.policy.timers.touch();
        }
        self.handle_timeout(now);
    }

    /// Gives back the buffers that hold nothing, wiped: the input buffer if
    /// no byte is buffered, the output if none is pending, and the hold if it
    /// is empty. A driver calls this when the connection goes idle (a read
    /// found nothing to read), so a connection at rest keeps no read room or
    /// write buffer; they grow again on demand. Returns the bytes given
    /// back.
    pub fn release_idle_memory(&mut self) -> usize {
        let input = self.opener.input_allocated();
        let mut freed = 0;
        if self.opener.release_idle() {
            freed += input;
        }
        freed + self.release_idle_output()
    }

    /// [`Connection::release_idle_memory`] for a driver that keeps the input
    /// buffer itself.
    #[cfg(feature = "tokio")]
    pub(crate) fn release_idle_memory_in(&mut self, input: &mut InputBuffer) -> usize {
        let held = input.allocated();
        let mut freed = 0;
        if !self.opener_core().mid_packet() && input.release_idle() {
            freed += held;
        }
        freed + self.release_idle_output()
    }

    fn release_idle_output(&mut self) -> usize {
        let mut freed = 0;
        if self.out.is_empty() && self.out.capacity() > 0 {
            // Sealed bytes are ciphertext (or cleartext before the keys):
            // nothing secret is left behind.
            freed += self.out.capacity();
            self.out = Vec::new();
        }
        freed + self.hold.release_idle()
    }

    /// Nothing buffered either way and no packet half read: the connection
    /// is at rest.
    #[cfg(feature = "tokio")]
    pub(crate) fn is_at_rest(&self) -> bool {
        self.opener.buffered() == 0 && !self.opener.core().mid_packet() && self.out.is_empty()
    }

    /// The bytes [`Connection::release_idle_memory`] would give back now
    /// (with `input` in place of the core's own input buffer, for a driver
    /// that keeps it).
    #[cfg(feature = "tokio")]
    pub(crate) fn releasable_bytes(&self, input: Option<&InputBuffer>) -> usize {
        let (held, buffered) = match input {
            Some(input) => (input.allocated(), input.buffered()),
            None => (self.opener.input_allocated(), self.opener.buffered()),
        };
        let input = if buffered == 0 && !self.opener.core().mid_packet() {
            held
        } else {
            0
        };
        let out = if self.out.is_empty() {
            self.out.capacity()
        } else {
            0
        };
        let hold = if self.hold.is_empty() {
            self.hold.allocated()
        } else {
            0
        };
        input + out + hold
    }

    /// Heap bytes the connection's buffers hold now (input, output, hold),
    /// for memory accounting.
    pub fn buffer_bytes(&self) -> usize {
        self.opener.input_allocated() + self.out.capacity() + self.hold.allocated()
    }

    /// Payload bytes held for after our key exchange.
    pub fn held_bytes(&self) -> usize {
        self.hold.len()
    }

    // ---------------------------------------------------------------- timers

    /// The next instant at which [`Connection::handle_timeout`] has
    /// something to do: the handshake deadline, the keepalive, the key age.
    /// `None`: nothing until bytes move.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let policy = &self.policy;
        if policy.latch.is_set() {
            return None;
        }
        let mut next = policy.timers.handshake_deadline();
        if policy.initial_kex_done && policy.rekey.is_none() {
            next = earliest(next, policy.timers.key_age_deadline());
        }
        if policy.initial_kex_done && !policy.is_kex_in_progress() {
            next = earliest(next, policy.timers.keepalive_deadline());
        }
        next
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.policy.timers.advance(now);
        if self.policy.latch.is_set() {
            return;
        }
        let now = self.policy.timers.now;
        if self
            .policy
            .timers
            .handshake_deadline()
            .is_some_and(|d| now >= d)
        {
            self.policy.timers.handshake = Handshake::TimedOut;
            self.policy.raise(Event::HandshakeTimedOut);
            self.policy.latch.record_unreported(Error::HandshakeTimeout);
            return;
        }
        let keepalive_allowed = self.keepalive_allowed();
        let policy = &mut self.policy;
        if policy.initial_kex_done
            && policy.rekey.is_none()
            && policy.timers.key_age_deadline().is_some_and(|d| now >= d)
        {
            policy.want_rekey("the keys reached their age limit");
        }
        if keepalive_allowed && policy.timers.keepalive_deadline().is_some_and(|d| now >= d) {
            // The interval starts again whether or not anything is sent.
            policy.timers.touch();
            policy.raise(Event::KeepaliveDue);
        }
    }

    /// The next event, once each.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.policy.events.pop_front()
    }

    /// Starts the key exchange deadline: `timeout` from `now`.
    pub fn start_handshake(&mut self, timeout: Duration, now: Instant) {
        self.policy.timers.advance(now);
        // A deadline past the end of time is no deadline.
        self.policy.timers.handshake = match now.checked_add(timeout) {
            Some(deadline) => Handshake::Until(deadline),
            None => Handshake::Off,
        };
    }

    /// Ends the key exchange deadline.
    pub fn complete_handshake(&mut self) {
        if self.policy.timers.handshake != Handshake::TimedOut {
            self.policy.timers.handshake = Handshake::Off;
        }
    }

    /// Whether the handshake deadline passed; false before
    /// `start_handshake` and after `complete_handshake`.
    pub fn handshake_timed_out(&self) -> bool {
        self.policy.timers.handshake == Handshake::TimedOut
    }

    /// Raises [`Event::KeepaliveDue`] after `interval` without traffic
    /// either way (only after the initial kex, never during one); `None`
    /// turns it off. Idle time before this call does not count. Intervals
    /// (and key age limits) under a millisecond count as one, so a deadline
    /// always lies ahead of the instant that fired the last one.
    pub fn set_keepalive(&mut self, interval: Option<Duration>, now: Instant) {
        self.policy.timers.advance(now);
        self.policy.timers.keepalive = interval.map(timers::at_least_a_tick);
        self.policy.timers.touch();
    }

    // ----------------------------------------------------------------- rekey

    /// Whether a key exchange should start (see [`Event::RekeyWanted`]);
    /// true from the request until both directions switched keys. As of
    /// the last `now` the core was given ([`Connection::handle_timeout`]
    /// runs the key age).
    pub fn need_rekey(&self) -> bool {
        self.policy.rekey.is_some()
    }

    /// Asks for a rekey now, as if a budget were spent (no-op before the
    /// initial kex is done or while one is wanted already).
    pub fn request_rekey(&mut self) {
        self.policy.want_rekey("the caller asked");
    }

    /// Whether a key exchange should be started now: a rekey is wanted and
    /// none is under way (during one, [`Connection::need_rekey`] stays true
    /// until both directions switched).
    pub fn should_start_kex(&self) -> bool {
        self.need_rekey() && !self.is_kex_in_progress()
    }

    /// Whether a key exchange is under way (a KEXINIT went either way and
    /// not both directions switched since).
    pub fn is_kex_in_progress(&self) -> bool {
        self.policy.is_kex_in_progress()
    }

    /// Whether a keepalive may go out now: after the initial kex and not
    /// during a key exchange. A driver that runs a keepalive callback some
    /// time after [`Event::KeepaliveDue`] asks this first.
    pub fn keepalive_allowed(&self) -> bool {
        self.policy.initial_kex_done && !self.policy.is_kex_in_progress()
    }

    /// Whether both directions have switched keys at least once.
    pub fn is_initial_kex_done(&self) -> bool {
        self.policy.initial_kex_done
    }

    /// Whether the peer's NEWKEYS was read and the inbound keys are not
    /// installed yet.
    pub fn is_awaiting_keys(&self) -> bool {
        self.opener.is_awaiting_keys()
    }

    // -------------------------------------------------------------- settings

    /// Strict key exchange (`kex-strict-*-v00@openssh.com`, both sides
    /// offered it): sequence numbers reset to 0 right after each NEWKEYS,
    /// each direction by itself.
    pub fn set_strict_kex(&mut self, on: bool) {
        self.policy.strict_kex = on;
    }

    /// Whether strict key exchange is on.
    pub fn is_strict_kex(&self) -> bool {
        self.policy.strict_kex
    }

    /// The largest `packet_length` sent and accepted.
    pub fn max_packet_len(&self) -> usize {
        self.opener.max_packet_len()
    }

    /// The provider the next keys (outbound) will run on.
    pub fn crypto_provider(&self) -> &'static CryptoProvider {
        self.sealer.crypto_provider()
    }

    /// Starts `zlib@openssh.com` compression both ways: user authentication
    /// succeeded (the server after sending USERAUTH_SUCCESS, the client after
    /// reading it). Plain `zlib` starts with the keys and needs no call.
    pub fn start_delayed_compression(&mut self) {
        self.sealer.start_delayed_compression();
        self.opener.start_delayed_compression();
    }

    /// Replaces the source of outbound padding bytes (reproducible vectors).
    pub fn set_padding_source(&mut self, source: Box<dyn PaddingSource>) {
        self.sealer.set_padding_source(source);
    }

    /// The role given at creation.
    pub fn role(&self) -> Role {
        self.policy.role
    }

    /// The rekey limits given at creation.
    pub fn rekey_limits(&self) -> RekeyLimits {
        self.policy.limits
    }

    /// The outbound codec, for inspection (cipher, sequence number).
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The inbound codec, for inspection.
    pub fn opener(&self) -> &Opener {
        &self.opener
    }

    /// The next outbound sequence number.
    pub fn seqno_out(&self) -> u32 {
        self.sealer.seqno()
    }

    /// The next inbound sequence number.
    pub fn seqno_in(&self) -> u32 {
        self.opener.seqno()
    }

    /// Sets both sequence numbers, for tests that start near a wrap.
    #[cfg(any(test, feature = "test-util"))]
    pub fn set_seqnos(&mut self, inbound: u32, outbound: u32) {
        self.opener.set_seqno(inbound);
        self.sealer.set_seqno(outbound);
    }

    /// The Opener's input buffer, for a split reader that keeps it.
    pub(crate) fn take_input(&mut self) -> InputBuffer {
        self.opener.take_input()
    }
}

/// Logs a packet just read (if the hexdump is on) and parses it if it is a
/// DISCONNECT.
fn inspect_inbound(hexdump_on: bool, payload: &[u8], seqno: u32) -> Option<Error> {
    if hexdump_on {
        hexdump("in", seqno, payload);
    }
    (payload[0] == msg::DISCONNECT).then(|| msg::parse_disconnect(payload))
}

/// Logs a message for the hexdump the caller turned on; never the body of
/// an authentication message.
fn hexdump(way: &str, seqno: u32, payload: &[u8]) {
    let msg_type = payload[0];
    if msg::is_secret(msg_type) {
        log::debug!(
            target: "ssh_packetizer::hexdump",
            "{way} #{seqno}: message {msg_type}, {} bytes (authentication: body not shown)",
            payload.len()
        );
    } else {
        log::debug!(target: "ssh_packetizer::hexdump", "{way} #{seqno}: {}", hex(payload));
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests;
