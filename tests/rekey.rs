//! Rekey thresholds, the grace allowance and RekeyIgnored.

mod common;

use common::keys_for;
use ssh_packetizer::{
    CipherAlgorithm as C, Error, MacAlgorithm as M, Opened, Opener, RekeyLimits, Sealer,
};

fn pair(limits: RekeyLimits) -> (Sealer, Opener) {
    let keys = keys_for(C::Aes128Ctr, M::HmacSha256Etm, 4);
    let (mut s, mut o) = (Sealer::new(), Opener::new());
    s.set_keys(keys.clone()).unwrap();
    o.set_keys(keys).unwrap();
    s.set_rekey_limits(limits);
    o.set_rekey_limits(limits);
    (s, o)
}

fn small(max_bytes: u64, grace_packets: u64) -> RekeyLimits {
    RekeyLimits {
        max_bytes: Some(max_bytes),
        grace_packets,
        ..RekeyLimits::default()
    }
}

#[test]
fn byte_limit_raises_needs_rekey_exactly_when_crossed() {
    let (mut s, _) = pair(small(1000, 10));
    let mut wire = Vec::new();
    // A 1-byte payload is 4 + 16 + 32 = 52 wire bytes with sha2-256-etm.
    for i in 1..=20 {
        wire.clear();
        s.seal(b"\x02", &mut wire).unwrap();
        assert_eq!(wire.len(), 52);
        assert_eq!(s.needs_rekey(), i * 52 >= 1000, "after packet {i}");
    }
    s.set_keys(keys_for(C::Aes256Ctr, M::HmacSha1, 7)).unwrap();
    assert!(!s.needs_rekey(), "new keys start a fresh budget");
}

#[test]
fn inbound_grace_then_rekey_ignored() {
    let (mut s, mut o) = pair(small(52 * 3, 2));
    let mut wire = Vec::new();
    for _ in 0..6 {
        s.seal(b"\x5e", &mut wire).unwrap();
    }
    o.feed(&wire);
    let mut seen = Vec::new();
    let err = loop {
        match o.next_packet() {
            Ok(Opened::Packet(p)) => seen.push(p.seqno()),
            Ok(Opened::NeedMore(n)) => panic!("wanted {n} more"),
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    // Packets 0..2 spend the budget (the third crosses it), two more are the
    // grace, and the sixth is refused.
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert!(matches!(err, Error::RekeyIgnored), "{err:?}");
    assert!(matches!(
        o.next_packet(),
        Err(Error::Failed(first)) if matches!(*first, Error::RekeyIgnored)
    ));
}

#[test]
fn opener_needs_rekey_after_its_budget_and_new_keys_clear_it() {
    let (mut s, mut o) = pair(small(52 * 2, 100));
    let mut wire = Vec::new();
    s.seal(b"\x5e", &mut wire).unwrap();
    s.seal(b"\x5e", &mut wire).unwrap();
    o.feed(&wire);
    assert!(matches!(o.next_packet(), Ok(Opened::Packet(_))));
    assert!(!o.needs_rekey());
    assert!(matches!(o.next_packet(), Ok(Opened::Packet(_))));
    assert!(o.needs_rekey());
    o.set_keys(keys_for(C::Aes128Ctr, M::HmacSha1, 1)).unwrap();
    assert!(!o.needs_rekey());
}

#[test]
fn a_request_from_the_outbound_side_starts_the_inbound_grace() {
    let (mut s, mut o) = pair(RekeyLimits {
        grace_packets: 3,
        ..RekeyLimits::default()
    });
    let mut wire = Vec::new();
    for _ in 0..5 {
        s.seal(b"\x5e", &mut wire).unwrap();
    }
    o.feed(&wire);
    assert!(matches!(o.next_packet(), Ok(Opened::Packet(_))));
    assert!(!o.needs_rekey());
    o.request_rekey();
    assert!(o.needs_rekey());
    for _ in 0..3 {
        assert!(matches!(o.next_packet(), Ok(Opened::Packet(_))));
    }
    assert!(matches!(o.next_packet(), Err(Error::RekeyIgnored)));
}

#[test]
fn grace_in_bytes() {
    let (mut s, mut o) = pair(RekeyLimits {
        max_bytes: Some(1),
        grace_packets: u64::MAX,
        grace_bytes: 100,
        ..RekeyLimits::default()
    });
    let mut wire = Vec::new();
    for _ in 0..4 {
        s.seal(b"\x5e", &mut wire).unwrap();
    }
    o.feed(&wire);
    // Packet 0 crosses the 1-byte limit; 52 + 52 bytes of grace reach 100.
    for _ in 0..3 {
        assert!(matches!(o.next_packet(), Ok(Opened::Packet(_))));
    }
    assert!(matches!(o.next_packet(), Err(Error::RekeyIgnored)));
}

#[test]
fn the_clear_mode_never_asks_for_a_rekey() {
    let (mut s, mut o) = (Sealer::new(), Opener::new());
    s.set_rekey_limits(small(1, 0));
    o.set_rekey_limits(small(1, 0));
    let mut wire = Vec::new();
    for _ in 0..10 {
        s.seal(b"\x14", &mut wire).unwrap();
    }
    assert!(!s.needs_rekey());
    assert_eq!(common::open_all(&mut o, &wire).unwrap().len(), 10);
    assert!(!o.needs_rekey());
}
