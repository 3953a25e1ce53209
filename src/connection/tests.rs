//! The connection core's rules, driven with plain `Instant`s: no sockets,
//! no sleeping.

use std::time::{Duration, Instant};

use super::*;
use crate::algorithm::{CipherAlgorithm, MacAlgorithm};
use crate::codec::{InputBuffer, Opened, Packet};
use crate::keys::KeyMaterial;
use crate::keys::Keys;

const SEC: Duration = Duration::from_secs(1);

fn keys(seed: u8) -> Keys {
    Keys::new(
        CipherAlgorithm::Aes128Gcm,
        MacAlgorithm::None,
        KeyMaterial {
            key: &[seed; 16],
            iv: &[seed ^ 0x55; 12],
            mac_key: &[],
        },
    )
    .unwrap()
}

/// What a read found, without the packet's borrow (the packet is then
/// [`Side::packet`]).
#[derive(Debug, PartialEq)]
enum Step {
    Ready,
    NeedMore(usize),
    AwaitingKeys,
}

/// One core and the input buffer its driver lends it.
struct Side {
    conn: Connection,
    input: InputBuffer,
}

impl std::ops::Deref for Side {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Side {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Side {
    fn new(config: Config, now: Instant) -> Side {
        Side {
            conn: Connection::new(config, now),
            input: InputBuffer::new(),
        }
    }

    fn poll_packet(&mut self) -> Result<Step, Error> {
        Ok(match self.conn.poll_packet(&mut self.input)? {
            Opened::Packet(_) => Step::Ready,
            Opened::NeedMore(n) => Step::NeedMore(n),
            Opened::AwaitingKeys => Step::AwaitingKeys,
        })
    }

    fn packet(&self) -> Option<Packet<'_>> {
        self.input.packet()
    }

    fn feed(&mut self, data: &[u8], now: Instant) -> usize {
        self.conn.feed(&mut self.input, data, now)
    }

    fn recv_eof(&mut self, raw_needed: Option<usize>) -> Error {
        self.conn.recv_eof(&self.input, raw_needed)
    }

    fn poll_identification(&mut self) -> Result<Option<crate::Identification>, Error> {
        self.conn.poll_identification(&mut self.input)
    }

    fn raw_buffered(&self) -> &[u8] {
        self.conn.raw_buffered(&self.input)
    }
}

/// Two connected cores and a clock.
struct Pair {
    client: Side,
    server: Side,
    now: Instant,
}

/// A limit that one large message spends and the small ones of a test do not.
const SPENDABLE: RekeyLimits = RekeyLimits {
    max_bytes: Some(64 * 1024),
    max_time: None,
    grace_packets: crate::rekey::DEFAULT_GRACE,
    grace_bytes: crate::rekey::DEFAULT_GRACE,
};

/// Only a limit's given fields, the rest the defaults.
fn limits(max_bytes: Option<u64>, max_time: Option<Duration>) -> RekeyLimits {
    RekeyLimits {
        max_bytes,
        max_time,
        ..RekeyLimits::default()
    }
}

impl Pair {
    fn new() -> Pair {
        Pair::with_limits(RekeyLimits::default(), RekeyLimits::default())
    }

    /// A pair whose sides were configured with these rekey limits.
    fn with_limits(client: RekeyLimits, server: RekeyLimits) -> Pair {
        let now = Instant::now();
        Pair {
            client: Side::new(Config::client().rekey_limits(client), now),
            server: Side::new(Config::server().rekey_limits(server), now),
            now,
        }
    }

    /// Both directions keyed, as after the initial kex.
    fn keyed() -> Pair {
        Pair::keyed_with_limits(RekeyLimits::default(), RekeyLimits::default())
    }

    /// As [`Pair::keyed`], the sides configured with these rekey limits.
    fn keyed_with_limits(client: RekeyLimits, server: RekeyLimits) -> Pair {
        let mut p = Pair::with_limits(client, server);
        p.client.send_newkeys(keys(1), p.now).unwrap();
        p.server.send_newkeys(keys(2), p.now).unwrap();
        p.move_bytes();
        assert_eq!(p.server.poll_packet().unwrap(), Step::Ready);
        p.server.set_inbound_keys(keys(1), p.now).unwrap();
        assert_eq!(p.client.poll_packet().unwrap(), Step::Ready);
        p.client.set_inbound_keys(keys(2), p.now).unwrap();
        assert!(p.client.is_initial_kex_done() && p.server.is_initial_kex_done());
        drain_events(&mut p.client);
        drain_events(&mut p.server);
        p
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    /// Moves everything pending both ways (as much as the input bound takes).
    fn move_bytes(&mut self) {
        let now = self.now;
        transfer(&mut self.client, &mut self.server, now);
        transfer(&mut self.server, &mut self.client, now);
    }
}

fn transfer(from: &mut Side, to: &mut Side, now: Instant) {
    let out = from.pending_output().to_vec();
    let took = to.feed(&out, now);
    from.output_written(took, now);
}

fn drain_events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Every packet ready in `c`, as (type, seqno), until it needs more.
fn packets(c: &mut Side) -> Vec<(u8, u32)> {
    let mut got = Vec::new();
    while c.poll_packet().unwrap() == Step::Ready {
        let p = c.packet().unwrap();
        got.push((p.msg_type(), p.seqno()));
    }
    got
}

/// Spends the outbound budget of a connection configured with
/// [`SPENDABLE`].
fn spend_outbound_budget(c: &mut Connection) {
    assert_eq!(c.rekey_limits().max_bytes, SPENDABLE.max_bytes);
    c.send_message(&[msg::IGNORE; 70_000]).unwrap();
    assert!(c.need_rekey());
}

// Finding 1: a pending rekey must not mask the deadline or the keepalive.
#[test]
fn a_pending_rekey_masks_neither_the_deadline_nor_the_keepalive() {
    let mut p = Pair::keyed_with_limits(SPENDABLE, RekeyLimits::default());
    p.client.set_keepalive(Some(30 * SEC), p.now);
    spend_outbound_budget(&mut p.client);
    assert_eq!(drain_events(&mut p.client), [Event::RekeyWanted]);
    p.advance(31 * SEC);
    assert_eq!(drain_events(&mut p.client), [Event::KeepaliveDue]);

    p.client.start_handshake(5 * SEC, p.now);
    p.client.send_message(&[msg::KEXINIT, 1]).unwrap();
    p.advance(3600 * SEC);
    assert!(p.client.handshake_timed_out());
    assert_eq!(drain_events(&mut p.client), [Event::HandshakeTimedOut]);
    assert!(matches!(
        p.client.poll_packet(),
        Err(Error::HandshakeTimeout)
    ));
    assert!(matches!(
        p.client.send_message(&[94, 1]),
        Err(Error::Failed(ref first)) if matches!(**first, Error::HandshakeTimeout)
    ));
    assert_eq!(
        p.client.poll_timeout(),
        None,
        "a dead connection wants no wake-up"
    );
}

// Finding 2: need_rekey must not come back after a finished rekey when the
// inbound keys switch first.
#[test]
fn need_rekey_clears_once_both_directions_switch_in_either_order() {
    for inbound_first in [true, false] {
        let mut p = Pair::keyed_with_limits(SPENDABLE, RekeyLimits::default());
        spend_outbound_budget(&mut p.client);
        assert_eq!(drain_events(&mut p.client), [Event::RekeyWanted]);
        if inbound_first {
            p.server.send_newkeys(keys(4), p.now).unwrap();
            p.server.send_message(&[94, 1]).unwrap();
            p.move_bytes();
            assert_eq!(packets(&mut p.client), [(msg::NEWKEYS, 1)]);
            p.client.set_inbound_keys(keys(4), p.now).unwrap();
            assert_eq!(packets(&mut p.client), [(94, 2)]);
            assert!(p.client.need_rekey(), "only inbound switched");
            p.client.send_newkeys(keys(3), p.now).unwrap();
        } else {
            p.client.send_newkeys(keys(3), p.now).unwrap();
            assert!(p.client.need_rekey(), "only outbound switched");
            p.server.send_newkeys(keys(4), p.now).unwrap();
            p.move_bytes();
            assert_eq!(packets(&mut p.client), [(msg::NEWKEYS, 1)]);
            p.client.set_inbound_keys(keys(4), p.now).unwrap();
        }
        assert!(!p.client.need_rekey(), "inbound first: {inbound_first}");
        p.move_bytes();
        packets(&mut p.server);
        p.server.set_inbound_keys(keys(3), p.now).unwrap();
        for i in 0..5 {
            p.server.send_message(&[94, i]).unwrap();
            p.move_bytes();
            assert_eq!(packets(&mut p.client).len(), 1);
            assert!(!p.client.need_rekey(), "came back after packet {i}");
        }
        assert_eq!(drain_events(&mut p.client), []);
    }
}

// Found by minissh's server test of a client frozen mid-download: with a
// 32 KiB limit, the first data packet under the new outbound keys spent
// their budget before the client's NEWKEYS came, and once it came the
// request was cleared with that budget still spent, so no rekey was ever
// asked for again (the server then waited for window for ever).
#[test]
fn a_budget_spent_before_the_exchange_finished_asks_again() {
    for spent in ["outbound", "inbound"] {
        let mut p = Pair::keyed_with_limits(RekeyLimits::default(), limits(Some(1000), None));
        p.server.send_message(&[94; 2000]).unwrap();
        assert_eq!(drain_events(&mut p.server), [Event::RekeyWanted]);
        if spent == "outbound" {
            // The outbound keys switch first, and data under them spends
            // their budget while the request waits for the inbound switch.
            p.server.send_newkeys(keys(5), p.now).unwrap();
            p.server.send_message(&[94; 2000]).unwrap();
            assert!(p.server.need_rekey(), "the inbound keys are still old");
            p.move_bytes();
            packets(&mut p.client);
            p.client.set_inbound_keys(keys(5), p.now).unwrap();
            packets(&mut p.client);
            p.client.send_newkeys(keys(6), p.now).unwrap();
            p.move_bytes();
            assert_eq!(p.server.poll_packet().unwrap(), Step::Ready);
            assert_eq!(p.server.packet().unwrap().msg_type(), msg::NEWKEYS);
            // The request is cleared here.
            p.server.set_inbound_keys(keys(6), p.now).unwrap();
        } else {
            // The inbound keys switch first, and the peer's data under
            // them spends their budget while the request waits for the
            // outbound switch.
            p.client.send_newkeys(keys(6), p.now).unwrap();
            p.client.send_message(&[94; 2000]).unwrap();
            p.move_bytes();
            assert_eq!(p.server.poll_packet().unwrap(), Step::Ready);
            assert_eq!(p.server.packet().unwrap().msg_type(), msg::NEWKEYS);
            p.server.set_inbound_keys(keys(6), p.now).unwrap();
            assert_eq!(packets(&mut p.server).len(), 1);
            assert!(p.server.need_rekey(), "the outbound keys are still old");
            // The request is cleared here.
            p.server.send_newkeys(keys(5), p.now).unwrap();
        }
        assert!(
            p.server.need_rekey(),
            "{spent}: the new keys' budget is spent already"
        );
        assert!(p.server.should_start_kex(), "{spent}");
        assert_eq!(drain_events(&mut p.server), [Event::RekeyWanted], "{spent}");
    }
}

#[test]
fn every_order_of_the_two_switches_and_the_request() {
    // The request comes before, between or after the two switches, which
    // come in either order; need_rekey is true exactly from the request to
    // the second switch after it.
    for request_at in 0..3 {
        for inbound_first in [true, false] {
            let mut p = Pair::keyed();
            let mut steps: Vec<&str> = if inbound_first {
                vec!["in", "out"]
            } else {
                vec!["out", "in"]
            };
            steps.insert(request_at, "request");
            let mut requested = false;
            let mut switched_since = 0;
            p.server.send_newkeys(keys(9), p.now).unwrap();
            p.move_bytes();
            for step in steps {
                match step {
                    "request" => {
                        p.client.request_rekey();
                        requested = true;
                    }
                    "in" => {
                        packets(&mut p.client);
                        p.client.set_inbound_keys(keys(9), p.now).unwrap();
                        switched_since += usize::from(requested);
                    }
                    _ => {
                        p.client.send_newkeys(keys(8), p.now).unwrap();
                        switched_since += usize::from(requested);
                    }
                }
                let expect = requested && switched_since < 2;
                assert_eq!(
                    p.client.need_rekey(),
                    expect,
                    "{request_at} {inbound_first} {step}"
                );
            }
        }
    }
}

// Finding 7: no timer before keys are on.
#[test]
fn timers_and_rekeys_wait_for_the_first_keys() {
    let mut p = Pair::with_limits(limits(Some(1), Some(10 * SEC)), RekeyLimits::default());
    p.client.set_keepalive(Some(SEC), p.now);
    assert_eq!(p.client.poll_timeout(), None);
    p.client.send_message(&[msg::KEXINIT, 0]).unwrap();
    p.advance(3600 * SEC);
    assert!(!p.client.need_rekey());
    assert_eq!(drain_events(&mut p.client), []);

    // Outbound keyed only: still the initial kex.
    p.client.send_newkeys(keys(1), p.now).unwrap();
    p.advance(5 * SEC);
    assert!(!p.client.need_rekey());
    assert_eq!(drain_events(&mut p.client), []);
    p.server.send_newkeys(keys(2), p.now).unwrap();
    p.move_bytes();
    packets(&mut p.client);
    p.client.set_inbound_keys(keys(2), p.now).unwrap();
    assert_eq!(drain_events(&mut p.client), [Event::InitialKexDone]);

    // Now the keepalive and the key age run.
    let next = p.client.poll_timeout().unwrap();
    assert_eq!(next, p.now + SEC);
    p.advance(SEC);
    assert_eq!(drain_events(&mut p.client), [Event::KeepaliveDue]);
    // The outbound key is 5 s older than the inbound one: it ages first.
    assert_eq!(p.client.poll_timeout().unwrap(), p.now + SEC);
    p.advance(3 * SEC);
    assert!(!p.client.need_rekey());
    p.advance(SEC);
    assert!(p.client.need_rekey());
    assert!(drain_events(&mut p.client).contains(&Event::RekeyWanted));
}

#[test]
fn no_keepalive_during_a_key_exchange() {
    let mut p = Pair::keyed();
    p.client.set_keepalive(Some(SEC), p.now);
    p.server.send_message(&[msg::KEXINIT, 0]).unwrap();
    p.move_bytes();
    assert_eq!(packets(&mut p.client), [(msg::KEXINIT, 1)]);
    assert!(p.client.is_kex_in_progress());
    assert_eq!(p.client.poll_timeout(), None);
    p.advance(100 * SEC);
    assert_eq!(drain_events(&mut p.client), [Event::RekeyWanted]);
    // The exchange finishes; the keepalive resumes.
    p.client.send_newkeys(keys(5), p.now).unwrap();
    p.server.send_newkeys(keys(6), p.now).unwrap();
    p.move_bytes();
    packets(&mut p.client);
    p.client.set_inbound_keys(keys(6), p.now).unwrap();
    assert!(!p.client.is_kex_in_progress());
    p.advance(SEC);
    assert_eq!(drain_events(&mut p.client), [Event::KeepaliveDue]);
}

#[test]
fn a_reported_deadline_is_consumed_once_reached() {
    // A driver that sleeps until poll_timeout and calls handle_timeout must
    // never be handed the same past instant again (it would spin).
    let mut p = Pair::keyed_with_limits(limits(None, Some(3 * SEC)), RekeyLimits::default());
    p.client.set_keepalive(Some(SEC), p.now);
    p.client.start_handshake(10 * SEC, p.now);
    for _ in 0..20 {
        let Some(next) = p.client.poll_timeout() else {
            break;
        };
        p.now = next;
        p.client.handle_timeout(next);
        if let Some(after) = p.client.poll_timeout() {
            assert!(after > next, "{after:?} <= {next:?}");
        }
    }
    assert!(p.client.handshake_timed_out());
}

// Finding 8: the initial kex counts as done once both directions switched.
#[test]
fn the_initial_kex_is_done_by_itself_and_sequence_numbers_may_wrap() {
    let mut p = Pair::new();
    p.client.set_seqnos(u32::MAX - 1, u32::MAX - 1);
    p.server.set_seqnos(u32::MAX - 1, u32::MAX - 1);
    p.client.send_newkeys(keys(1), p.now).unwrap();
    p.server.send_newkeys(keys(2), p.now).unwrap();
    p.move_bytes();
    packets(&mut p.server);
    p.server.set_inbound_keys(keys(1), p.now).unwrap();
    packets(&mut p.client);
    p.client.set_inbound_keys(keys(2), p.now).unwrap();
    p.client.send_message(&[94, 1]).unwrap();
    p.client.send_message(&[94, 2]).unwrap();
    p.move_bytes();
    assert_eq!(packets(&mut p.server), [(94, u32::MAX), (94, 0)]);

    // Before the switch, a wrap is refused (Terrapin).
    let mut q = Pair::new();
    q.client.set_seqnos(0, u32::MAX - 1);
    q.client.send_message(&[msg::KEXINIT]).unwrap();
    assert!(matches!(
        q.client.send_message(&[msg::IGNORE]),
        Err(Error::SequenceWrapped)
    ));
}

// Finding 6: after NEWKEYS nothing more is read until the keys are in.
#[test]
fn newkeys_holds_the_packets_after_it_until_the_keys_are_in() {
    let mut p = Pair::new();
    p.client.send_newkeys(keys(1), p.now).unwrap();
    p.client
        .send_message(&[msg::SERVICE_REQUEST, 1, 2])
        .unwrap();
    p.move_bytes();
    assert_eq!(p.server.poll_packet().unwrap(), Step::Ready);
    assert_eq!(p.server.packet().unwrap().msg_type(), msg::NEWKEYS);
    for _ in 0..3 {
        assert_eq!(p.server.poll_packet().unwrap(), Step::AwaitingKeys);
    }
    assert!(p.server.is_awaiting_keys());
    p.server.set_inbound_keys(keys(1), p.now).unwrap();
    assert_eq!(packets(&mut p.server), [(msg::SERVICE_REQUEST, 1)]);
}

#[test]
fn strict_kex_resets_sequence_numbers_at_each_newkeys_by_itself() {
    let mut p = Pair::new();
    p.client.set_strict_kex(true);
    p.server.set_strict_kex(true);
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    p.client.send_message(&[30]).unwrap();
    assert_eq!(p.client.send_newkeys(keys(1), p.now).unwrap(), 2);
    assert_eq!(p.client.seqno_out(), 0);
    p.client.send_message(&[msg::SERVICE_REQUEST]).unwrap();
    p.move_bytes();
    assert_eq!(packets(&mut p.server), [(20, 0), (30, 1), (21, 2)]);
    assert_eq!(p.server.seqno_in(), 0);
    p.server.set_inbound_keys(keys(1), p.now).unwrap();
    assert_eq!(packets(&mut p.server), [(msg::SERVICE_REQUEST, 0)]);
}

/// The server's DISCONNECT reason in its pending output, if it sent one.
fn disconnect_reason_sent(side: &mut Side, to: &mut Side, now: Instant) -> Option<u32> {
    transfer(side, to, now);
    match to.poll_packet() {
        Err(Error::Disconnected { reason, .. }) => Some(reason),
        _ => None,
    }
}

#[test]
fn strict_kex_refuses_anything_but_kex_messages_before_the_peers_newkeys() {
    // An IGNORE (as the Terrapin attack injects), a service request, a
    // channel message: each is fatal under strict kex, and the peer is told.
    for intruder in [msg::IGNORE, msg::DEBUG, msg::SERVICE_REQUEST, 94] {
        let mut p = Pair::new();
        p.server.set_strict_kex(true);
        // Sealed by hand: an honest core would hold the last two until its
        // NEWKEYS; an attacker does not.
        let mut wire = Vec::new();
        let mut sealer = crate::codec::Sealer::new();
        for payload in [&[msg::KEXINIT][..], &[30], &[intruder]] {
            sealer.seal(payload, &mut wire).unwrap();
        }
        let now = p.now;
        assert_eq!(p.server.feed(&wire, now), wire.len());
        assert_eq!(packets_until_error(&mut p.server), [(20, 0), (30, 1)]);
        let e = p.server.check().unwrap_err();
        assert!(
            matches!(
                e.cause(),
                Error::StrictKexViolation { msg_type, seqno: 2 } if *msg_type == intruder
            ),
            "{e:?}"
        );
        let now = p.now;
        let reason = disconnect_reason_sent(&mut p.server, &mut p.client, now);
        assert_eq!(reason, Some(msg::reason::PROTOCOL_ERROR));
    }
}

#[test]
fn without_strict_kex_or_after_the_peers_newkeys_other_messages_pass() {
    // Without strict kex an IGNORE during the initial exchange is fine.
    let mut p = Pair::new();
    for m in [msg::IGNORE, msg::KEXINIT, msg::IGNORE, 30] {
        p.client.send_message(&[m]).unwrap();
    }
    p.move_bytes();
    assert_eq!(packets(&mut p.server).len(), 4);
    // With it, anything may follow the peer's NEWKEYS.
    let mut p = Pair::new();
    p.server.set_strict_kex(true);
    p.client.set_strict_kex(true);
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    p.client.send_newkeys(keys(1), p.now).unwrap();
    p.client.send_message(&[msg::IGNORE]).unwrap();
    p.client.send_message(&[msg::SERVICE_REQUEST]).unwrap();
    p.move_bytes();
    assert_eq!(packets(&mut p.server), [(20, 0), (21, 1)]);
    p.server.set_inbound_keys(keys(1), p.now).unwrap();
    assert_eq!(packets(&mut p.server), [(2, 0), (5, 1)]);
}

#[test]
fn strict_kex_turned_on_after_a_late_kexinit_fails_the_next_call() {
    // The peer's KEXINIT came second: strict kex is known only once it is
    // read, and then the connection fails as OpenSSH's does.
    let mut p = Pair::new();
    p.client.send_message(&[msg::IGNORE]).unwrap();
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    p.move_bytes();
    assert_eq!(packets(&mut p.server), [(2, 0), (20, 1)]);
    p.server.set_strict_kex(true);
    let e = p.server.send_message(&[31]).unwrap_err();
    assert!(
        matches!(
            e.cause(),
            Error::StrictKexViolation {
                msg_type: msg::KEXINIT,
                seqno: 1
            }
        ),
        "{e:?}"
    );
    // KEXINIT first: turning it on changes nothing.
    let mut p = Pair::new();
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    p.move_bytes();
    assert_eq!(packets(&mut p.server), [(20, 0)]);
    p.server.set_strict_kex(true);
    p.server.check().unwrap();
}

/// As [`packets`], stopping at the first error.
fn packets_until_error(c: &mut Side) -> Vec<(u8, u32)> {
    let mut got = Vec::new();
    while let Ok(Step::Ready) = c.poll_packet() {
        let p = c.packet().unwrap();
        got.push((p.msg_type(), p.seqno()));
    }
    got
}

#[test]
fn messages_during_our_kex_are_held_and_follow_newkeys_in_order() {
    let mut p = Pair::keyed();
    assert_eq!(
        p.client.send_message(&[94, 0]).unwrap(),
        Sent::Sealed { seqno: 1 }
    );
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    assert_eq!(p.client.send_message(&[94, 1]).unwrap(), Sent::Held);
    assert_eq!(
        p.client.send_message(&[msg::SERVICE_REQUEST]).unwrap(),
        Sent::Held
    );
    assert!(matches!(
        p.client.send_message(&[31]).unwrap(),
        Sent::Sealed { .. }
    ));
    assert!(matches!(
        p.client.send_message(&[msg::IGNORE]).unwrap(),
        Sent::Sealed { .. }
    ));
    assert!(matches!(
        p.client.send_message(&[msg::NEWKEYS]),
        Err(Error::InvalidCall { .. })
    ));
    // The hold is bounded, and a refusal changes nothing.
    let big = vec![94u8; 100_000];
    while p.client.held_bytes() + big.len() <= HOLD_LIMIT {
        assert_eq!(p.client.send_message(&big).unwrap(), Sent::Held);
    }
    let held = p.client.held_bytes();
    assert!(matches!(
        p.client.send_message(&big),
        Err(Error::KexHoldFull { .. })
    ));
    assert_eq!(p.client.held_bytes(), held);

    p.client.send_newkeys(keys(7), p.now).unwrap();
    assert_eq!(p.client.held_bytes(), 0);
    p.move_bytes();
    let got = packets(&mut p.server);
    let types: Vec<u8> = got.iter().map(|&(t, _)| t).collect();
    assert_eq!(&types[..], &[94, 20, 31, 2, 21]);
    p.server.set_inbound_keys(keys(7), p.now).unwrap();
    let mut after = Vec::new();
    loop {
        p.move_bytes();
        let more = packets(&mut p.server);
        if more.is_empty() {
            break;
        }
        after.extend(more);
    }
    assert_eq!(after[0], (94, 6));
    assert_eq!(after[1], (msg::SERVICE_REQUEST, 7));
    assert_eq!(after.len(), 2 + held / big.len(), "{after:?}");
}

#[test]
fn a_kex_that_starts_behind_a_large_blocked_write_keeps_the_order() {
    // 4 MiB sealed but not written (the socket is full), then a KEXINIT, then
    // more data: the data is held, everything arrives in sealing order.
    let mut p = Pair::keyed();
    let chunk = vec![94u8; 32 * 1024];
    for _ in 0..128 {
        p.client.send_message(&chunk).unwrap();
    }
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    assert_eq!(p.client.send_message(&[94, 7]).unwrap(), Sent::Held);
    p.client.send_newkeys(keys(3), p.now).unwrap();
    let mut seen = Vec::new();
    loop {
        p.move_bytes();
        let got = packets(&mut p.server);
        if got.is_empty() {
            if p.server.is_awaiting_keys() {
                p.server.set_inbound_keys(keys(3), p.now).unwrap();
                continue;
            }
            break;
        }
        seen.extend(got.into_iter().map(|(t, _)| t));
    }
    assert_eq!(seen.len(), 131);
    assert!(seen[..128].iter().all(|&t| t == 94));
    assert_eq!(&seen[128..], &[20, 21, 94]);
}

#[test]
fn a_disconnect_is_a_typed_error_for_every_later_call() {
    let mut p = Pair::keyed();
    p.server
        .send_disconnect(msg::reason::BY_APPLICATION, "bye now")
        .unwrap();
    assert!(matches!(p.server.send_message(&[94]), Err(Error::Closed)));
    p.move_bytes();
    match p.client.poll_packet() {
        Err(Error::Disconnected {
            reason,
            description,
        }) => {
            assert_eq!((reason, description.as_str()), (11, "bye now"));
        }
        other => panic!("{other:?}"),
    }
    match p.client.send_message(&[94]) {
        Err(Error::Failed(first)) => {
            assert!(matches!(*first, Error::Disconnected { reason: 11, .. }))
        }
        other => panic!("{other:?}"),
    }
}

// Finding 12: after a fatal error every call reports it as the cause, and
// the peer is told (as OpenSSH's "Corrupted MAC on input").
#[test]
fn a_mac_failure_is_the_cause_of_every_later_error_and_the_peer_is_told() {
    let mut p = Pair::keyed();
    p.client.send_message(&[94, 1, 2, 3]).unwrap();
    let mut wire = p.client.pending_output().to_vec();
    p.client.output_written(wire.len(), p.now);
    let last = wire.len() - 1;
    wire[last] ^= 1;
    p.server.feed(&wire, p.now);
    assert!(matches!(
        p.server.poll_packet(),
        Err(Error::MacMismatch { seqno: 1 })
    ));
    for e in [
        p.server.send_message(&[94]).unwrap_err(),
        p.server.poll_packet().unwrap_err(),
        p.server.send_newkeys(keys(1), p.now).unwrap_err(),
    ] {
        assert!(matches!(e.cause(), Error::MacMismatch { seqno: 1 }), "{e}");
        assert!(e.to_string().contains("MAC"), "{e}");
    }
    transfer(&mut p.server, &mut p.client, p.now);
    match p.client.poll_packet() {
        Err(Error::Disconnected { reason, .. }) => assert_eq!(reason, msg::reason::MAC_ERROR),
        other => panic!("{other:?}"),
    }
}

// Finding 11: input is bounded.
#[test]
fn input_beyond_one_maximum_packet_and_one_read_is_refused_until_drained() {
    let mut p = Pair::new();
    let payload = vec![94u8; 30_000];
    for _ in 0..40 {
        p.client.send_message(&payload).unwrap();
    }
    let wire = p.client.pending_output().to_vec();
    let mut taken = 0;
    loop {
        let n = p.server.feed(&wire[taken..], p.now);
        if n == 0 {
            break;
        }
        taken += n;
    }
    assert!(taken <= p.server.input_limit(), "{taken}");
    assert!(taken < wire.len());
    let mut count = 0;
    while count < 40 {
        match p.server.poll_packet().unwrap() {
            Step::Ready => count += 1,
            Step::NeedMore(_) => taken += p.server.feed(&wire[taken..], p.now),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(taken, wire.len());
}

#[test]
fn the_rekey_event_comes_once_per_request() {
    let mut p = Pair::keyed_with_limits(SPENDABLE, RekeyLimits::default());
    spend_outbound_budget(&mut p.client);
    for _ in 0..10 {
        p.client.send_message(&[msg::IGNORE]).unwrap();
    }
    p.advance(SEC);
    assert_eq!(drain_events(&mut p.client), [Event::RekeyWanted]);
}

#[test]
fn a_peer_that_ignores_the_request_is_cut_off_one_that_switched_is_not() {
    for peer_switches in [false, true] {
        let grace = RekeyLimits {
            grace_packets: 3,
            ..RekeyLimits::default()
        };
        let mut p = Pair::keyed_with_limits(grace, RekeyLimits::default());
        p.client.request_rekey();
        if peer_switches {
            p.server.send_newkeys(keys(5), p.now).unwrap();
            p.move_bytes();
            packets(&mut p.client);
            p.client.set_inbound_keys(keys(5), p.now).unwrap();
        }
        for i in 0..3 {
            p.server.send_message(&[94, i]).unwrap();
        }
        p.move_bytes();
        assert_eq!(packets(&mut p.client).len(), 3);
        p.server.send_message(&[94, 3]).unwrap();
        p.move_bytes();
        let next = p.client.poll_packet();
        if peer_switches {
            assert_eq!(next.unwrap(), Step::Ready);
        } else {
            assert!(matches!(next, Err(Error::RekeyIgnored)), "{next:?}");
        }
    }
}

#[test]
fn the_peers_kexinit_after_the_initial_kex_is_a_rekey_request() {
    let mut p = Pair::new();
    p.server.send_message(&[msg::KEXINIT]).unwrap();
    p.move_bytes();
    packets(&mut p.client);
    assert!(!p.client.need_rekey(), "the initial KEXINIT is no rekey");
    let mut p = Pair::keyed();
    p.server.send_message(&[msg::KEXINIT]).unwrap();
    p.move_bytes();
    packets(&mut p.client);
    assert!(p.client.need_rekey());
    assert_eq!(drain_events(&mut p.client), [Event::RekeyWanted]);
}

#[test]
fn a_clean_eof_and_one_inside_a_packet_say_so() {
    let mut p = Pair::new();
    assert!(matches!(p.server.recv_eof(None), Error::Closed));
    assert!(matches!(p.server.poll_packet(), Err(Error::Closed)));
    let mut p = Pair::new();
    p.client.send_message(&[94; 100]).unwrap();
    let wire = p.client.pending_output().to_vec();
    p.server.feed(&wire[..50], p.now);
    assert_eq!(
        p.server.poll_packet().unwrap(),
        Step::NeedMore(wire.len() - 50)
    );
    assert!(
        matches!(p.server.recv_eof(None), Error::Eof { needed, got: 50 } if needed == wire.len())
    );
    assert!(matches!(p.server.poll_packet(), Err(Error::Failed(_))));
}

#[test]
fn eof_in_a_raw_read_after_half_a_packet_is_no_clean_close() {
    // A read given up inside a packet (a cancelled async read_message),
    // then a raw read (read_line) meets the EOF: the packet was cut short,
    // which is what it says, not a clean close.
    let mut p = Pair::new();
    p.client.send_message(&[94; 100]).unwrap();
    let wire = p.client.pending_output().to_vec();
    p.server.feed(&wire[..50], p.now);
    assert!(matches!(p.server.poll_packet().unwrap(), Step::NeedMore(_)));
    let e = p.server.recv_eof(Some(0));
    assert!(
        matches!(e, Error::Eof { needed, got: 50 } if needed == wire.len()),
        "{e:?}"
    );
}

#[test]
fn the_server_refuses_lines_before_the_identification_the_client_takes_them() {
    let now = Instant::now();
    let mut server = Side::new(Config::server(), now);
    server.feed(b"hello\r\nSSH-2.0-x\r\n", now);
    assert!(matches!(
        server.poll_identification(),
        Err(Error::BadIdentification { .. })
    ));
    let mut client = Side::new(Config::client(), now);
    client.feed(b"hello\r\nSSH-2.0-x\r\n\x00\x00", now);
    let id = client.poll_identification().unwrap().unwrap();
    assert_eq!((id.as_str(), id.pre_banner.len()), ("SSH-2.0-x", 1));
    assert_eq!(client.raw_buffered(), b"\x00\x00");
}

#[test]
fn zero_and_endless_intervals_neither_spin_nor_panic() {
    let mut p = Pair::keyed_with_limits(limits(None, Some(Duration::ZERO)), RekeyLimits::default());
    p.client.set_keepalive(Some(Duration::ZERO), p.now);
    for _ in 0..5 {
        let next = p.client.poll_timeout().unwrap();
        p.now = next;
        p.client.handle_timeout(next);
        assert!(p.client.poll_timeout().is_none_or(|after| after > next));
    }
    let mut q = Pair::keyed_with_limits(limits(None, Some(Duration::MAX)), RekeyLimits::default());
    q.client.set_keepalive(Some(Duration::MAX), q.now);
    q.client.start_handshake(Duration::MAX, q.now);
    assert_eq!(
        q.client.poll_timeout(),
        None,
        "deadlines past the end of time"
    );
    q.advance(3600 * SEC);
    assert!(!q.client.is_closed() && !q.client.need_rekey());
}

#[test]
fn a_request_during_an_exchange_under_way_is_no_call_to_start_another() {
    // We began an exchange on our own; the peer's answering KEXINIT is a
    // request the exchange already satisfies.
    let mut p = Pair::keyed();
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    p.server.send_message(&[msg::KEXINIT]).unwrap();
    p.move_bytes();
    packets(&mut p.client);
    assert_eq!(drain_events(&mut p.client), []);
    p.client.send_newkeys(keys(5), p.now).unwrap();
    p.server.send_newkeys(keys(6), p.now).unwrap();
    p.move_bytes();
    packets(&mut p.client);
    p.client.set_inbound_keys(keys(6), p.now).unwrap();
    assert!(!p.client.need_rekey(), "the exchange satisfied it");

    // A budget spent after our NEWKEYS, before the peer's: the switch still
    // to come is the only one missing.
    let mut p = Pair::keyed();
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    p.client.send_newkeys(keys(7), p.now).unwrap();
    p.client.request_rekey();
    assert!(p.client.need_rekey());
    p.server.send_newkeys(keys(8), p.now).unwrap();
    p.move_bytes();
    packets(&mut p.client);
    p.client.set_inbound_keys(keys(8), p.now).unwrap();
    assert!(!p.client.need_rekey());
    assert_eq!(drain_events(&mut p.client), []);
}

#[test]
fn raw_bytes_are_refused_once_packets_flow() {
    let mut p = Pair::new();
    p.client.send_raw(b"SSH-2.0-raw\r\n").unwrap();
    p.client.send_message(&[msg::KEXINIT]).unwrap();
    assert!(matches!(
        p.client.send_raw(b"x"),
        Err(Error::InvalidCall { .. })
    ));
}
