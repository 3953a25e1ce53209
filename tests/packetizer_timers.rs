//! Timers and rekey signalling through the Packetizer, on a hand-driven clock.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{clear_stream, keys_for, Scripted, Step};
use ssh_packetizer::{
    CipherAlgorithm as C, Config, Error, Event, InputBuffer, Keys, MacAlgorithm as M, Opened,
    Opener, Packetizer, RekeyLimits, Sealer,
};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn handshake_deadline() {
    let ticks = (0..20).map(|_| Step::Tick(SEC)).collect();
    let mut p = Scripted::new(ticks).packetizer();
    assert!(!p.handshake_timed_out(), "false before start_handshake");
    p.start_handshake(Duration::from_secs(5));
    assert!(!p.handshake_timed_out());
    let err = p.read_message().unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
    assert!(p.handshake_timed_out());
    assert!(p.connection().is_closed());
}

#[test]
fn a_peer_dripping_bytes_cannot_outlive_the_handshake_deadline() {
    // One byte every 50 ms never lets a read time out, yet the deadline holds.
    let wire = clear_stream(&[&[20; 1000]]);
    let steps = wire
        .iter()
        .flat_map(|&b| [Step::Wait(Duration::from_millis(50)), Step::Data(vec![b])])
        .collect();
    let mut p = Scripted::new(steps).packetizer();
    p.start_handshake(SEC);
    let err = p.read_message().unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
}

#[test]
fn a_completed_handshake_never_times_out() {
    let mut steps: Vec<Step> = (0..10).map(|_| Step::Tick(SEC)).collect();
    steps.push(Step::Data(clear_stream(&[&[2]])));
    let mut p = Scripted::new(steps).packetizer();
    p.start_handshake(Duration::from_secs(3));
    p.complete_handshake();
    assert_eq!(p.read_message().unwrap().msg_type(), 2);
    assert!(!p.handshake_timed_out());
}

/// Both directions switched (to the clear mode, so the script stays
/// readable): the initial kex is done and the keepalive may run.
fn keyed_in_the_clear(p: &mut Packetizer<Scripted>) {
    p.send_newkeys(Keys::clear()).unwrap();
    p.set_inbound_cipher(Keys::clear()).unwrap();
}

/// A keepalive that sends an IGNORE and counts how often it ran.
fn counting_keepalive(p: &mut Packetizer<Scripted>, every: Duration) -> Arc<AtomicUsize> {
    let fired = Arc::new(AtomicUsize::new(0));
    let count = fired.clone();
    p.set_keepalive(Some(every), move |w| {
        count.fetch_add(1, Ordering::SeqCst);
        w.send_message(&[2, 0, 0, 0, 0]).map(|_| ())
    });
    fired
}

#[test]
fn keepalive_fires_after_the_idle_interval_and_restarts() {
    let mut steps: Vec<Step> = (0..25).map(|_| Step::Tick(SEC)).collect();
    steps.push(Step::Data(clear_stream(&[&[94]])));
    let s = Scripted::new(steps);
    let written = s.written.clone();
    let mut p = s.packetizer();
    keyed_in_the_clear(&mut p);
    let fired = counting_keepalive(&mut p, Duration::from_secs(10));
    assert_eq!(p.read_message().unwrap().msg_type(), 94);
    // 25 idle seconds at an interval of 10: at 10 and at 20.
    assert_eq!(fired.load(Ordering::SeqCst), 2);
    // What the callback sent went out as packets, after our NEWKEYS.
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    o.feed(&mut o_in, &written.lock().unwrap());
    assert!(matches!(o.next_packet(&mut o_in).unwrap(), Opened::Packet(p) if p.msg_type() == 21));
    o.set_keys(Keys::clear()).unwrap();
    for seqno in 1..3 {
        assert!(
            matches!(o.next_packet(&mut o_in).unwrap(), Opened::Packet(p) if p.msg_type() == 2 && p.seqno() == seqno)
        );
    }
}

#[test]
fn keepalive_does_not_fire_while_traffic_flows() {
    // A packet every 6 s, one tick between each: never 10 s idle.
    let mut steps = Vec::new();
    for _ in 0..10 {
        steps.push(Step::Tick(Duration::from_secs(6)));
        steps.push(Step::Data(clear_stream(&[&[94]])));
    }
    let mut p = Scripted::new(steps).packetizer();
    keyed_in_the_clear(&mut p);
    let fired = counting_keepalive(&mut p, Duration::from_secs(10));
    for _ in 0..10 {
        p.read_message().unwrap();
    }
    assert_eq!(fired.load(Ordering::SeqCst), 0);
}

#[test]
fn our_own_sends_count_as_traffic_too() {
    let mut steps = Vec::new();
    for _ in 0..10 {
        steps.push(Step::Tick(Duration::from_secs(6)));
    }
    steps.push(Step::Data(clear_stream(&[&[94]])));
    let s = Scripted::new(steps);
    let clock = s.clock.clone();
    let mut p = s.packetizer();
    keyed_in_the_clear(&mut p);
    let fired = counting_keepalive(&mut p, Duration::from_secs(10));
    // Sends every 6 s on the clock, with no reads: the timer never expires.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(6));
        p.send_message(&[94]).unwrap();
    }
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    // Then 60 s of silence in 6 s ticks: idle reaches 10 s at 12, 24, 36,
    // 48 and 60 s (each firing restarts the interval).
    p.read_message().unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 5);
}

#[test]
fn keepalive_never_fires_inside_a_packet() {
    let wire = clear_stream(&[&[94; 100]]);
    let steps = vec![
        Step::Data(wire[..50].to_vec()),
        Step::Tick(Duration::from_secs(100)),
        Step::Tick(Duration::from_secs(100)),
        Step::Data(wire[50..].to_vec()),
    ];
    let mut p = Scripted::new(steps).packetizer();
    keyed_in_the_clear(&mut p);
    let fired = counting_keepalive(&mut p, Duration::from_secs(10));
    assert_eq!(p.read_message().unwrap().payload().len(), 100);
    assert_eq!(fired.load(Ordering::SeqCst), 0);
}

#[test]
fn keepalive_counts_only_idle_time_after_it_was_installed_and_can_be_turned_off() {
    let s = Scripted::new(vec![
        Step::Tick(SEC),
        Step::Data(clear_stream(&[&[94], &[94]])),
    ]);
    let clock = s.clock.clone();
    let mut p = s.packetizer();
    keyed_in_the_clear(&mut p);
    clock.advance(Duration::from_secs(3600));
    let fired = counting_keepalive(&mut p, Duration::from_secs(10));
    p.read_message().unwrap();
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "an hour idle before installing"
    );

    let s = Scripted::new(vec![
        Step::Tick(Duration::from_secs(100)),
        Step::Data(clear_stream(&[&[94]])),
    ]);
    let mut p = s.packetizer();
    keyed_in_the_clear(&mut p);
    let fired = counting_keepalive(&mut p, Duration::from_secs(10));
    p.set_keepalive(None, |_| Ok(()));
    p.read_message().unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 0, "turned off");
}

fn ctr_packetizer(steps: Vec<Step>, limits: RekeyLimits) -> Packetizer<Scripted> {
    let mut p = Scripted::new(steps).packetizer_with(Config::client().rekey_limits(limits));
    p.set_inbound_cipher(keys_for(C::Aes128Ctr, M::HmacSha256Etm, 1))
        .unwrap();
    p.send_newkeys(keys_for(C::Aes128Ctr, M::HmacSha256Etm, 2))
        .unwrap();
    p
}

fn ctr_wire(n: usize) -> Vec<u8> {
    let mut s = Sealer::new();
    s.set_keys(keys_for(C::Aes128Ctr, M::HmacSha256Etm, 1))
        .unwrap();
    let mut wire = Vec::new();
    for _ in 0..n {
        s.seal(&[94, 1, 2, 3], &mut wire).unwrap();
    }
    wire
}

#[test]
fn need_rekey_is_raised_only_at_a_packet_boundary_and_loses_nothing() {
    // 52 wire bytes a packet; the budget is spent by the second packet.
    let limits = RekeyLimits {
        max_bytes: Some(100),
        ..RekeyLimits::default()
    };
    let wire = ctr_wire(3);
    let steps = vec![
        Step::Data(wire[..52 + 52 + 10].to_vec()),
        Step::Tick(SEC), // inside the third packet: no NeedRekey
        Step::Data(wire[52 + 52 + 10..].to_vec()),
        Step::Tick(SEC),                   // between packets: NeedRekey
        Step::Data(clear_stream(&[&[1]])), // unreachable under these keys
    ];
    let mut p = ctr_packetizer(steps, limits);
    p.read_message().unwrap();
    assert!(!p.need_rekey());
    p.read_message().unwrap();
    assert!(p.need_rekey());
    assert_eq!(
        p.read_message().unwrap().seqno(),
        2,
        "the half-read packet finished"
    );
    assert!(matches!(p.read_message(), Err(Error::NeedRekey)));
    assert!(!p.connection().is_closed(), "NeedRekey is not fatal");
}

#[test]
fn read_all_raises_need_rekey_only_before_its_first_byte() {
    let limits = RekeyLimits {
        max_bytes: Some(1),
        ..RekeyLimits::default()
    };
    let mut p = ctr_packetizer(
        vec![
            Step::Tick(SEC),
            Step::Data(b"ab".to_vec()),
            Step::Tick(SEC),
            Step::Data(b"cd".to_vec()),
        ],
        limits,
    );
    p.send_message(&[94]).unwrap(); // spends the outbound budget
    assert!(p.need_rekey());
    assert!(matches!(p.read_all(4, true), Err(Error::NeedRekey)));
    assert_eq!(
        p.read_all(4, true).unwrap(),
        b"abcd",
        "the tick after 'ab' is past the first byte"
    );
    assert!(matches!(p.read_all(1, false), Err(Error::Eof { .. })));
}

#[test]
fn both_directions_must_switch_before_need_rekey_clears() {
    let limits = RekeyLimits {
        max_bytes: Some(1),
        ..RekeyLimits::default()
    };
    let mut p = ctr_packetizer(vec![], limits);
    p.send_message(&[94]).unwrap();
    assert!(p.need_rekey());
    p.send_newkeys(keys_for(C::Aes256Ctr, M::HmacSha1, 3))
        .unwrap();
    assert!(p.need_rekey(), "only one direction switched");
    p.set_inbound_cipher(keys_for(C::Aes256Ctr, M::HmacSha1, 4))
        .unwrap();
    assert!(!p.need_rekey());
}

#[test]
fn the_key_age_limit_asks_for_a_rekey() {
    let s = Scripted::new(vec![]);
    let clock = s.clock.clone();
    let mut p = s.packetizer_with(Config::client().rekey_limits(RekeyLimits {
        max_time: Some(Duration::from_secs(3600)),
        ..RekeyLimits::default()
    }));
    p.set_inbound_cipher(keys_for(C::Aes128Ctr, M::HmacSha1, 1))
        .unwrap();
    p.send_newkeys(keys_for(C::Aes128Ctr, M::HmacSha1, 2))
        .unwrap();
    clock.advance(Duration::from_secs(3599));
    assert!(!p.need_rekey());
    clock.advance(SEC);
    assert!(p.need_rekey());
    p.set_inbound_cipher(keys_for(C::Aes128Ctr, M::HmacSha1, 3))
        .unwrap();
    p.send_newkeys(keys_for(C::Aes128Ctr, M::HmacSha1, 4))
        .unwrap();
    assert!(!p.need_rekey());
}

#[test]
fn a_peer_that_ignores_the_rekey_request_is_cut_off_after_the_grace() {
    let limits = RekeyLimits {
        max_bytes: Some(1),
        grace_packets: 5,
        ..RekeyLimits::default()
    };
    let mut p = ctr_packetizer(vec![Step::Data(ctr_wire(20))], limits);
    p.send_message(&[94]).unwrap(); // our side wants a rekey now
    let mut read = 0;
    let err = loop {
        match p.read_message() {
            Ok(_) => read += 1,
            // Once, for the request: not fatal.
            Err(Error::NeedRekey) => {}
            Err(e) => break e,
        }
    };
    // The request came before the first packet: five are tolerated.
    assert_eq!(read, 5);
    assert!(matches!(err, Error::RekeyIgnored), "{err:?}");
    assert!(p.connection().is_closed());
}

#[test]
fn a_caller_taking_the_events_takes_no_need_rekey_from_the_read_loop() {
    // The budget is spent by the second packet; the caller then drains the
    // core's events itself. The read loop still reports the request, once.
    let limits = RekeyLimits {
        max_bytes: Some(100),
        ..RekeyLimits::default()
    };
    let wire = ctr_wire(3);
    let steps = vec![
        Step::Data(wire[..2 * 52].to_vec()),
        Step::Tick(SEC),
        Step::Data(wire[2 * 52..].to_vec()),
    ];
    let mut p = ctr_packetizer(steps, limits);
    p.read_message().unwrap();
    p.read_message().unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| p.connection_mut().poll_event()).collect();
    assert!(events.contains(&Event::RekeyWanted), "{events:?}");
    assert!(matches!(p.read_message(), Err(Error::NeedRekey)));
    assert_eq!(p.read_message().unwrap().seqno(), 2, "once per request");
}

#[test]
fn a_caller_taking_the_events_takes_no_keepalive_from_the_read_loop() {
    // The keepalive falls due between reads (the caller's clock moved and
    // it looked at the core), and the caller takes the event: the next read
    // still runs the callback, once.
    let s = Scripted::new(vec![Step::Data(clear_stream(&[&[94]]))]);
    let clock = s.clock.clone();
    let mut p = s.packetizer();
    keyed_in_the_clear(&mut p);
    let fired = counting_keepalive(&mut p, Duration::from_secs(10));
    clock.advance(Duration::from_secs(11));
    let events: Vec<Event> = std::iter::from_fn(|| p.connection_mut().poll_event()).collect();
    assert!(events.contains(&Event::KeepaliveDue), "{events:?}");
    assert_eq!(p.read_message().unwrap().msg_type(), 94);
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(p.connection().keepalives_due(), 1);
}
