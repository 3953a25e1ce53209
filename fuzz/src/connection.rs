//! The connection target: two honest cores, each split into its inbound
//! and outbound halves ([`Connection::split`]), driven by whatever
//! interleaving of sends, key switches, byte moves (in any pieces, the
//! whole drivers' way or the split halves'), clock jumps, polls and events
//! the input spells.
//!
//! Between two honest ends nothing may fail, whatever the order: every
//! message arrives once, each class in the order it was sent (the
//! transport's own may overtake messages held during a key exchange), the
//! input bound holds, and a deadline the core reported is never reported
//! again once handled (a driver sleeping until it would spin otherwise).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh_packetizer::{
    msg, CipherAlgorithm as C, Config, Connection, Error, Inbound, InputBuffer, Keys,
    MacAlgorithm as M, Opened, Outbound, RekeyLimits, Role, Sent, SharedConnection, SplitDriver,
};

/// The clock both ends run on, moved by the input; nobody waits, so a
/// wake-up goes nowhere.
struct Clock(Mutex<Instant>);

impl SplitDriver for Clock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }

    fn wake(&self) {}
}

/// Keys for one direction's `epoch`-th switch.
fn keys(suite: (C, M), toward_server: bool, epoch: u32) -> Keys {
    let salt = (epoch as u8) ^ if toward_server { 0x5a } else { 0xa5 };
    crate::patterned_keys(suite.0, suite.1, salt)
}

/// One end and what the other end expects from it.
struct End {
    /// The inbound half: the input, and the core it reads through.
    inbound: Inbound,
    /// The outbound half: output taken the split writer's way, not all
    /// handed to the peer yet; it goes before anything sealed since.
    out: Outbound,
    toward_server: bool,
    /// Strict kex is on: until its first NEWKEYS an honest end sends its
    /// KEXINIT first, then only the key exchange's messages.
    strict: bool,
    /// This end has sent a KEXINIT.
    kexinit_sent: bool,
    /// Keys switched outbound so far.
    out_epoch: u32,
    /// Keys installed inbound so far.
    in_epoch: u32,
    /// What this end sent and the peer has not read yet, per class:
    /// the transport's own, and the rest (which may be held in a kex).
    sent_transport: VecDeque<Vec<u8>>,
    sent_other: VecDeque<Vec<u8>>,
}

/// The oracle's own statement of RFC 4253 §7.1 as OpenSSH applies it: what
/// may go out between our KEXINIT and our NEWKEYS (the transport's messages,
/// 1 to 49, but the service request and accept and EXT_INFO); the rest is
/// held until after the switch.
fn goes_during_kex(msg_type: u8) -> bool {
    (1..=49).contains(&msg_type)
        && ![msg::SERVICE_REQUEST, msg::SERVICE_ACCEPT, msg::EXT_INFO].contains(&msg_type)
}

impl End {
    fn new(role: Role, clock: &Arc<Clock>, strict: bool) -> End {
        let now = clock.now();
        let config = Config::new(role).rekey_limits(RekeyLimits {
            max_bytes: Some(8192),
            max_time: Some(Duration::from_secs(30)),
            ..RekeyLimits::default()
        });
        let mut core = Connection::new(config, now);
        core.set_strict_kex(strict);
        core.set_keepalive(Some(Duration::from_secs(5)), now);
        let (inbound, out) = core.split(InputBuffer::new(), clock.clone());
        End {
            inbound,
            out,
            strict,
            kexinit_sent: false,
            toward_server: role == Role::Client,
            out_epoch: 0,
            in_epoch: 0,
            sent_transport: VecDeque::new(),
            sent_other: VecDeque::new(),
        }
    }

    /// The core, shared by both halves.
    fn core(&self) -> &SharedConnection {
        self.out.connection()
    }

    /// Whether an honest end sends `msg_type` now (strict kex's order).
    fn may_send(&self, msg_type: u8) -> bool {
        let kex_message = matches!(msg_type, msg::KEXINIT | 30..=49);
        !self.strict
            || self.out_epoch > 0
            || msg_type == msg::KEXINIT
            || (self.kexinit_sent && kex_message)
    }

    fn send(&mut self, payload: Vec<u8>) {
        if !self.may_send(payload[0]) {
            return;
        }
        self.kexinit_sent |= payload[0] == msg::KEXINIT;
        match self.core().with(|core| core.send_message(&payload)) {
            Ok(Sent::Sealed { .. } | Sent::Held) => {
                if goes_during_kex(payload[0]) {
                    self.sent_transport.push_back(payload);
                } else {
                    self.sent_other.push_back(payload);
                }
            }
            Ok(other) => panic!("{other:?}"),
            Err(Error::KexHoldFull { .. } | Error::PayloadTooLarge { .. }) => {}
            Err(e) => panic!("an honest send failed: {e}"),
        }
    }

    fn newkeys(&mut self, suite: (C, M)) {
        self.out_epoch += 1;
        let k = keys(suite, self.toward_server, self.out_epoch);
        self.core()
            .with_now(|core, now| core.send_newkeys(k, now))
            .expect("an honest key switch");
    }
}

/// Moves up to `limit` pending bytes from `from` to `to`: either as the
/// whole drivers do (`pending_output` + `output_written`, then `feed`) or
/// as the split halves do (the [`Outbound`] half takes it, a read into the
/// room the [`Inbound`] half offers), as `lent` says. What was taken the
/// halves' way goes first.
fn carry(from: &mut End, to: &mut End, limit: usize, lent: bool) {
    let now = to.core().now();
    if lent || from.out.in_flight() > 0 {
        let bytes = from.out.to_write().expect("an honest write");
        let room = to.inbound.recv_buf();
        let k = room.len().min(bytes.len()).min(limit);
        room[..k].copy_from_slice(&bytes[..k]);
        to.inbound
            .with(|core, input| core.recv_filled(input, k, now));
        from.out.wrote(k);
    } else {
        // One core's lock at a time, as a driver holds them.
        let out = from.core().with(|core| {
            let out = core.pending_output();
            out[..out.len().min(limit)].to_vec()
        });
        let taken = to.inbound.with(|core, input| core.feed(input, &out, now));
        from.core().with(|core| core.output_written(taken, now));
    }
    let limit = to.inbound.with(|core, _| core.input_limit());
    assert!(to.inbound.input().buffered() <= limit);
}

/// What one poll of the inbound half found.
enum Found {
    Packet,
    AwaitingKeys,
    Nothing,
}

/// Reads what `to` has from `from`, checking each message against what was
/// sent.
fn read(from: &mut End, to: &mut End, suite: (C, M)) {
    loop {
        let found = to.inbound.with(|core, input| {
            match core.poll_packet(input).expect("honest bytes open") {
                Opened::Packet(_) => Found::Packet,
                Opened::AwaitingKeys => Found::AwaitingKeys,
                _ => Found::Nothing,
            }
        });
        match found {
            Found::Packet => {
                let packet = to.inbound.input().packet().expect("the packet just found");
                let payload = packet.payload();
                if payload == [msg::NEWKEYS] {
                    continue;
                }
                let queue = if goes_during_kex(payload[0]) {
                    &mut from.sent_transport
                } else {
                    &mut from.sent_other
                };
                let expected = queue.pop_front().expect("nothing more was sent");
                assert_eq!(payload, &expected[..], "out of order or corrupted");
            }
            Found::AwaitingKeys => {
                to.in_epoch += 1;
                assert!(to.in_epoch <= from.out_epoch);
                let k = keys(suite, from.toward_server, to.in_epoch);
                to.core()
                    .with_now(|core, now| core.set_inbound_keys(k, now))
                    .expect("at a packet boundary");
            }
            Found::Nothing => return,
        }
    }
}

/// The target: a suite byte (and strict kex in its high bit), then
/// (operation, argument) pairs.
pub fn connection(data: &[u8]) {
    let Some((&pick, mut ops)) = data.split_first() else {
        return;
    };
    let suites = [
        (C::Aes128Gcm, M::None),
        (C::ChaCha20Poly1305, M::None),
        (C::Aes128Ctr, M::HmacSha256Etm),
        (C::Aes256Ctr, M::HmacSha1),
        (C::None, M::None),
    ];
    let suite = suites[usize::from(pick & 0x7f) % suites.len()];
    let strict = pick & 0x80 != 0;
    let clock = Arc::new(Clock(Mutex::new(Instant::now())));
    let mut ends = [
        End::new(Role::Client, &clock, strict),
        End::new(Role::Server, &clock, strict),
    ];
    while let [op, arg, rest @ ..] = ops {
        ops = rest;
        let who = usize::from(op & 1);
        let (this, other) = if who == 0 {
            let (a, b) = ends.split_at_mut(1);
            (&mut a[0], &mut b[0])
        } else {
            let (a, b) = ends.split_at_mut(1);
            (&mut b[0], &mut a[0])
        };
        let arg = usize::from(*arg);
        match (op >> 1) % 9 {
            0 => {
                let len = arg * 37 % 3000 + 2;
                let mut payload = vec![msg::CHANNEL_DATA; len];
                payload[1] = arg as u8;
                this.send(payload);
            }
            1 => this.send(vec![msg::KEXINIT, arg as u8]),
            2 => this.newkeys(suite),
            3 => this.send(vec![if arg % 2 == 0 { msg::IGNORE } else { 31 }, arg as u8]),
            4 => carry(this, other, arg * 97 + 1, arg % 2 == 1),
            5 => read(other, this, suite),
            6 => {
                let now = clock.now() + Duration::from_millis(arg as u64 * 250);
                *clock.0.lock().unwrap() = now;
                for end in [&mut *this, &mut *other] {
                    // `with_now` runs the timers up to the clock first.
                    if let Some(next) = end.core().with_now(|core, _| core.poll_timeout()) {
                        assert!(next > now, "a handled deadline came back");
                    }
                }
            }
            7 => this
                .core()
                .with(|core| while core.poll_event().is_some() {}),
            _ => this.core().with(|core| core.request_rekey()),
        }
        for end in &ends {
            let error = end
                .core()
                .with(|core| core.error().map(ToString::to_string));
            assert!(error.is_none(), "{error:?}");
        }
    }
}
