//! Rekey thresholds (the codec's budget), and the grace allowance and
//! RekeyIgnored (the connection core's, counted once for both directions).

mod common;

use std::time::Instant;

use common::{keys_for, Driven, Found};
use ssh_packetizer::{
    CipherAlgorithm as C, Config, Error, InputBuffer, MacAlgorithm as M, Opened, Opener,
    RekeyLimits, Sealer,
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

/// A client core and a server core configured with `limits`, keyed both
/// ways with aes128-ctr + hmac-sha2-256-etm (the initial kex done).
fn keyed_cores(limits: RekeyLimits) -> (Driven, Driven, Instant) {
    let now = Instant::now();
    let mut client = Driven::new(Config::client(), now);
    let mut server = Driven::new(Config::server().rekey_limits(limits), now);
    let keys = keys_for(C::Aes128Ctr, M::HmacSha256Etm, 4);
    let switch = |from: &mut Driven, to: &mut Driven| {
        from.send_newkeys(keys.clone(), now).unwrap();
        let wire = from.pending_output().to_vec();
        from.output_written(wire.len(), now);
        assert_eq!(to.feed(&wire, now), wire.len());
        assert_eq!(to.poll_packet().unwrap(), Found::Packet);
        to.set_inbound_keys(keys.clone(), now).unwrap();
    };
    switch(&mut client, &mut server);
    switch(&mut server, &mut client);
    assert!(client.is_initial_kex_done() && server.is_initial_kex_done());
    (client, server, now)
}

/// `count` one-byte messages (52 wire bytes each) from `from` into `to`'s
/// input.
fn send_small(from: &mut Driven, to: &mut Driven, count: usize, now: Instant) {
    for _ in 0..count {
        from.send_message(b"\x5e").unwrap();
    }
    let wire = from.pending_output().to_vec();
    assert_eq!(wire.len(), 52 * count);
    from.output_written(wire.len(), now);
    assert_eq!(to.feed(&wire, now), wire.len());
}

/// Reads packets until an error; returns how many came first and the error.
fn read_until_error(c: &mut Driven) -> (usize, Error) {
    let mut read = 0;
    loop {
        match c.poll_packet() {
            Ok(Found::Packet) => read += 1,
            Ok(other) => panic!("all packets are buffered: {other:?}"),
            Err(e) => return (read, e),
        }
    }
}

#[test]
fn byte_limit_spends_the_budget_exactly_when_crossed() {
    let (mut s, _) = pair(small(1000, 10));
    let mut wire = Vec::new();
    // A 1-byte payload is 4 + 16 + 32 = 52 wire bytes with sha2-256-etm.
    for i in 1..=20 {
        wire.clear();
        s.seal(b"\x02", &mut wire).unwrap();
        assert_eq!(wire.len(), 52);
        assert_eq!(s.budget_spent(), i * 52 >= 1000, "after packet {i}");
    }
    s.set_keys(keys_for(C::Aes256Ctr, M::HmacSha1, 7)).unwrap();
    assert!(!s.budget_spent(), "new keys start a fresh budget");
}

#[test]
fn inbound_grace_then_rekey_ignored() {
    let (mut client, mut server, now) = keyed_cores(small(52 * 3, 2));
    send_small(&mut client, &mut server, 6, now);
    // Packets 0..2 spend the budget (the third crosses it), two more are the
    // grace, and the sixth is refused.
    let (read, err) = read_until_error(&mut server);
    assert_eq!(read, 5);
    assert!(matches!(err, Error::RekeyIgnored), "{err:?}");
    assert!(matches!(
        server.poll_packet(),
        Err(Error::Failed(first)) if matches!(*first, Error::RekeyIgnored)
    ));
}

#[test]
fn the_opener_budget_is_spent_by_its_limit_and_new_keys_renew_it() {
    let (mut s, mut o) = pair(small(52 * 2, 100));
    let mut o_in = InputBuffer::new();
    let mut wire = Vec::new();
    s.seal(b"\x5e", &mut wire).unwrap();
    s.seal(b"\x5e", &mut wire).unwrap();
    o.feed(&mut o_in, &wire);
    assert!(matches!(o.next_packet(&mut o_in), Ok(Opened::Packet(_))));
    assert!(!o.budget_spent());
    assert!(matches!(o.next_packet(&mut o_in), Ok(Opened::Packet(_))));
    assert!(o.budget_spent());
    o.set_keys(keys_for(C::Aes128Ctr, M::HmacSha1, 1)).unwrap();
    assert!(!o.budget_spent());
}

#[test]
fn a_request_of_ours_starts_the_inbound_grace() {
    let (mut client, mut server, now) = keyed_cores(RekeyLimits {
        grace_packets: 3,
        ..RekeyLimits::default()
    });
    send_small(&mut client, &mut server, 5, now);
    assert_eq!(server.poll_packet().unwrap(), Found::Packet);
    assert!(!server.need_rekey());
    server.request_rekey();
    assert!(server.need_rekey());
    let (read, err) = read_until_error(&mut server);
    assert_eq!(read, 3);
    assert!(matches!(err, Error::RekeyIgnored), "{err:?}");
}

#[test]
fn grace_in_bytes() {
    let (mut client, mut server, now) = keyed_cores(RekeyLimits {
        max_bytes: Some(1),
        grace_packets: u64::MAX,
        grace_bytes: 100,
        ..RekeyLimits::default()
    });
    send_small(&mut client, &mut server, 4, now);
    // Packet 0 crosses the 1-byte limit; 52 + 52 bytes of grace reach 100.
    let (read, err) = read_until_error(&mut server);
    assert_eq!(read, 3);
    assert!(matches!(err, Error::RekeyIgnored), "{err:?}");
}

#[test]
fn the_codec_alone_counts_no_grace() {
    // The grace allowance is the core's: an Opener driven alone reports its
    // spent budget and goes on opening.
    let (mut s, mut o) = pair(small(1, 0));
    let mut o_in = InputBuffer::new();
    let mut wire = Vec::new();
    for _ in 0..10 {
        s.seal(b"\x5e", &mut wire).unwrap();
    }
    assert_eq!(
        common::open_all(&mut o, &mut o_in, &wire).unwrap().len(),
        10
    );
    assert!(o.budget_spent());
}

#[test]
fn the_clear_mode_never_asks_for_a_rekey() {
    let (mut s, mut o) = (Sealer::new(), Opener::new());
    let mut o_in = InputBuffer::new();
    s.set_rekey_limits(small(1, 0));
    o.set_rekey_limits(small(1, 0));
    let mut wire = Vec::new();
    for _ in 0..10 {
        s.seal(b"\x14", &mut wire).unwrap();
    }
    assert!(!s.budget_spent());
    assert_eq!(
        common::open_all(&mut o, &mut o_in, &wire).unwrap().len(),
        10
    );
    assert!(!o.budget_spent());
}

#[test]
fn the_grace_holds_for_the_split_reader() {
    use ssh_packetizer::pipe::pipe;
    use ssh_packetizer::Packetizer;

    let (ours, theirs) = pipe();
    let mut ours = Packetizer::with_config(ours, Config::server().rekey_limits(small(52 * 3, 2)));
    let mut theirs = Packetizer::new(theirs);
    let keys = keys_for(C::Aes128Ctr, M::HmacSha256Etm, 4);
    theirs.send_newkeys(keys.clone()).unwrap();
    assert_eq!(ours.read_message().unwrap().msg_type(), 21);
    ours.set_inbound_cipher(keys.clone()).unwrap();
    ours.send_newkeys(keys.clone()).unwrap();
    assert_eq!(theirs.read_message().unwrap().msg_type(), 21);
    theirs.set_inbound_cipher(keys).unwrap();
    let (mut reader, _writer) = ours.split().unwrap();
    for _ in 0..6 {
        theirs.send_message(b"\x5e").unwrap();
    }
    let mut read = 0;
    let err = loop {
        match reader.read_message() {
            Ok(_) => read += 1,
            // Reported once, at the boundary after the budget was spent.
            Err(Error::NeedRekey) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(read, 5);
    assert!(matches!(err, Error::RekeyIgnored), "{err:?}");
}
