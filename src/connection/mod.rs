//! The connection core: one sans-IO state machine for both directions
//! (see [`Connection`]), in one file per concern, as quinn-proto's
//! `connection/`:
//! - `config`: what is given at construction ([`Config`], [`Role`]);
//! - `recv`: the input, packets and the rules each passes, raw reads, lines
//!   and the identification exchange;
//! - `send`: sealing, the hold during our key exchange (`hold`), DISCONNECT
//!   and the output;
//! - `split`: the core shared by an inbound half (which owns the
//!   [`InputBuffer`](crate::InputBuffer)) and an outbound half
//!   (`outbound`: the output a writer took), for a reader and writers that
//!   run apart;
//! - `kex`: key switches, the initial and strict kex, the one rekey request
//!   and its grace counter (`rekey`);
//! - `timers`: the handshake deadline, the key age and the keepalive as a
//!   table of deadlines;
//! - `memory`: the buffers held, given back at rest; `hexdump`: the log the
//!   caller may turn on.

mod config;
mod hexdump;
mod hold;
mod kex;
mod memory;
mod outbound;
mod recv;
mod rekey;
mod send;
mod split;
mod timers;

use std::collections::VecDeque;
use std::time::Instant;

use crate::banner::PreBanner;
use crate::codec::{Opener, Sealer};
use crate::crypto::CryptoProvider;
use crate::error::{Error, Latch};
use crate::msg;
use crate::rekey::RekeyLimits;

use self::hold::Hold;
use self::kex::Kex;
use self::timers::Timers;

pub use self::config::{Config, Role};
use self::hold::HOLD_LIMIT;
pub use self::outbound::Outbound;
pub use self::split::{Inbound, SharedConnection, SplitDriver};

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
    /// How many times a rekey became wanted with no exchange under way,
    /// and how many times the keepalive fell due: what the events said, as
    /// counts a driver can follow without taking the caller's events.
    rekeys_wanted: u64,
    keepalives_due: u64,
    /// Lines before the peer's identification line, while reading it.
    pre_banner: PreBanner,
    /// The inbound sequence number of the peer's first KEXINIT: strict kex
    /// wants 0, and is often turned on only after that KEXINIT was read.
    first_kexinit: Option<u32>,
}

impl Policy {
    fn raise(&mut self, event: Event) {
        // At most one of each kind is queued, so the queue never grows past
        // its first allocation.
        if !self.events.contains(&event) {
            self.events.push_back(event);
        }
    }
}

/// The sans-IO SSH connection: both directions' packet codecs and every
/// policy that spans them.
///
/// It owns the outbound [`Sealer`] and the inbound [`Opener`]
/// and every rule that needs both, in the manner of quinn-proto: it never
/// touches a socket or a clock. The driver owns the [`InputBuffer`](crate::InputBuffer) the
/// wire bytes go into and lends it to each read: it hands the connection
/// the bytes it read ([`Connection::recv_buf`] / [`Connection::recv_filled`],
/// or [`Connection::feed`]) and the current time; the connection hands back
/// packets ([`Connection::poll_packet`]), bytes to write
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
/// - Timers: the handshake deadline (whatever the rekey state), the
///   keepalive (only after the initial kex and never during one) and the
///   key age (after the initial kex, while no rekey is wanted).
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
/// use ssh_packetizer::{Config, Connection, InputBuffer, Opened};
///
/// let now = Instant::now();
/// let mut client = Connection::new(Config::client(), now);
/// let (mut server, mut input) = (Connection::new(Config::server(), now), InputBuffer::new());
/// client.send_message(&[20, 1, 2, 3])?; // a KEXINIT, in the clear
///
/// // The driver's job: move bytes and tell the time.
/// let wire = client.pending_output().to_vec();
/// client.output_written(wire.len(), now);
/// assert_eq!(server.feed(&mut input, &wire, now), wire.len());
///
/// let Opened::Packet(packet) = server.poll_packet(&mut input)? else { panic!() };
/// assert_eq!((packet.msg_type(), packet.seqno()), (20, 0));
/// assert_eq!(server.poll_packet(&mut input)?, Opened::NeedMore(4));
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
                rekeys_wanted: 0,
                keepalives_due: 0,
                pre_banner: PreBanner::default(),
                first_kexinit: None,
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

    /// Records a fatal error found by a driver (a failed or stalled write,
    /// a read error: `Error::Io`), and returns the connection's first error.
    pub fn fail_with(&mut self, e: Error) -> Error {
        match self.check() {
            Err(first) => first,
            Ok(()) => self.fail(e),
        }
    }

    /// `Ok` while the connection is usable; else the error every call
    /// answers ([`Error::Failed`] with the first error as its cause, or
    /// [`Error::Closed`]).
    pub fn check(&self) -> Result<(), Error> {
        self.policy.latch.check()
    }

    // -------------------------------------------------------------- settings

    /// The largest `packet_length` sent and accepted.
    pub fn max_packet_len(&self) -> usize {
        self.opener.max_packet_len()
    }

    /// The provider the next keys (outbound) will run on.
    pub fn crypto_provider(&self) -> &'static CryptoProvider {
        self.sealer.crypto_provider()
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
}

#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;
