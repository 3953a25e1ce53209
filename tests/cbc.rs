//! CBC (feature `legacy`): OpenSSH's discard countermeasure. Under
//! encrypt-and-MAC a bad length and a bad MAC take the same bytes, do the
//! same work once the last of them is in, and tell the peer the same
//! thing; the local error keeps its cause. Under encrypt-then-MAC the MAC
//! is checked first, so a failure is reported at once.

mod common;

use common::{keys_for, payload, Driven, Found};
use ssh_packetizer::{
    msg, CipherAlgorithm as C, Config, Error, InputBuffer, MacAlgorithm as M, Opened, Opener,
    Sealer,
};

const MAX: usize = 35_000;

const CBC: [C; 4] = [C::Aes128Cbc, C::Aes192Cbc, C::Aes256Cbc, C::TripleDesCbc];

/// Two good packets then one that `spoil` damages, then junk.
fn stream(c: C, m: M, spoil: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut sealer = Sealer::new();
    sealer.set_keys(keys_for(c, m, 5)).unwrap();
    let mut wire = Vec::new();
    for i in 0..2 {
        sealer.seal(&payload(300, i), &mut wire).unwrap();
    }
    let start = wire.len();
    sealer.seal(&payload(500, 9), &mut wire).unwrap();
    spoil(&mut wire[start..]);
    wire.resize(wire.len() + 2 * MAX, 0x33);
    wire
}

/// Feeds `wire` a byte at a time; returns the packets, the bytes taken
/// after the last good packet when the error came, and the error.
fn feed_until_error(c: C, m: M, wire: &[u8]) -> (usize, usize, Error) {
    let (mut opener, mut input) = (Opener::new(), InputBuffer::new());
    opener.set_max_packet_len(MAX).unwrap();
    opener.set_keys(keys_for(c, m, 5)).unwrap();
    let (mut packets, mut fed, mut after_good) = (0, 0, 0);
    for &byte in wire {
        assert_eq!(opener.feed(&mut input, &[byte]), 1);
        fed += 1;
        loop {
            match opener.next_packet(&mut input) {
                Ok(Opened::Packet(_)) => {
                    packets += 1;
                    after_good = fed;
                }
                Ok(Opened::NeedMore(_)) => break,
                Ok(other) => panic!("{other:?}"),
                Err(e) => return (packets, fed - after_good, e),
            }
        }
    }
    panic!("{c}+{m}: no error after {fed} bytes");
}

#[test]
fn a_bad_length_and_a_bad_mac_take_the_same_bytes_and_say_the_same() {
    for c in CBC {
        for m in [M::HmacSha1, M::HmacSha256, M::HmacMd5, M::HmacSha1_96] {
            let bad_length = stream(c, m, |p| p[0] ^= 0x40);
            let bad_mac = stream(c, m, |p| *p.last_mut().unwrap() ^= 1);
            let bad_body = stream(c, m, |p| p[40] ^= 0x10);
            let mut seen = Vec::new();
            for (what, wire) in [("length", bad_length), ("MAC", bad_mac), ("body", bad_body)] {
                let (packets, taken, e) = feed_until_error(c, m, &wire);
                assert_eq!(packets, 2, "{c}+{m} {what}: the good packets came out");
                let Error::PacketCorrupt { cause, discarded } = &e else {
                    panic!("{c}+{m} {what}: {e:?}")
                };
                assert_eq!(*discarded, taken, "{c}+{m} {what}");
                // The local error keeps what really happened.
                match what {
                    "length" => assert!(
                        matches!(
                            **cause,
                            Error::BadPacketLength { .. } | Error::BadBlockAlignment { .. }
                        ),
                        "{c}+{m}: {cause:?}"
                    ),
                    _ => assert!(
                        matches!(**cause, Error::MacMismatch { .. }),
                        "{c}+{m}: {cause:?}"
                    ),
                }
                seen.push((taken, e.to_string(), e.disconnect_reason()));
            }
            // Whatever failed: one maximum packet with its length and MAC
            // taken, and the same words and reason for the peer.
            let expected = (
                4 + MAX + m.spec().mac_len(),
                "corrupted MAC on input".to_owned(),
                Some(msg::reason::MAC_ERROR),
            );
            for s in &seen {
                assert_eq!(*s, expected, "{c}+{m}");
            }
        }
    }
}

#[test]
fn encrypt_then_mac_fails_at_once() {
    for c in CBC {
        let m = M::HmacSha256Etm;
        let wire = stream(c, m, |p| *p.last_mut().unwrap() ^= 1);
        let (packets, taken, e) = feed_until_error(c, m, &wire);
        assert_eq!(packets, 2);
        assert!(matches!(e, Error::MacMismatch { .. }), "{c}: {e:?}");
        // The bad packet itself (a 500-byte payload), nothing of a discard.
        assert!(taken < 1000, "{c}: {taken} bytes taken");
    }
}

#[test]
fn the_peer_gets_the_same_disconnect_for_every_cause() {
    let (c, m) = (C::Aes256Cbc, M::HmacSha256);
    let mut disconnects = Vec::new();
    for spoil in [0usize, 1] {
        let wire = stream(c, m, |p| {
            if spoil == 0 {
                p[0] ^= 0x40
            } else {
                *p.last_mut().unwrap() ^= 1
            }
        });
        let now = std::time::Instant::now();
        let mut core = Driven::new(Config::server().max_packet_len(MAX).unwrap(), now);
        core.send_newkeys(keys_for(c, m, 6), now).unwrap();
        core.set_inbound_keys(keys_for(c, m, 5), now).unwrap();
        let sent_before = core.pending_output().len();
        let mut rest = &wire[..];
        let err = loop {
            let n = core.feed(rest, now);
            rest = &rest[n..];
            match core.poll_packet() {
                Ok(Found::Packet) => continue,
                Ok(_) => assert!(!rest.is_empty(), "ran out of input"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::PacketCorrupt { .. }));
        // What the core queued after its NEWKEYS: the DISCONNECT, opened as
        // the peer would.
        let mut peer = Opener::new();
        let mut peer_in = InputBuffer::new();
        let out = core.pending_output().to_vec();
        let opened = common::open_all(&mut peer, &mut peer_in, &out[..sent_before]).unwrap();
        assert_eq!(opened.last().unwrap().0, [msg::NEWKEYS]);
        peer.set_keys(keys_for(c, m, 6)).unwrap();
        let rest = common::open_all(&mut peer, &mut peer_in, &out[sent_before..]).unwrap();
        disconnects.push(rest[0].0.clone());
    }
    assert_eq!(disconnects[0][0], msg::DISCONNECT);
    assert_eq!(
        disconnects[0], disconnects[1],
        "the same DISCONNECT for both causes"
    );
}

#[test]
fn three_des_packets_align_to_8_bytes() {
    let spec = C::TripleDesCbc.spec();
    assert_eq!(
        (spec.key_len(), spec.iv_len(), spec.block_size()),
        (24, 8, 8)
    );
    let mut sealer = Sealer::new();
    sealer
        .set_keys(keys_for(C::TripleDesCbc, M::HmacSha1, 1))
        .unwrap();
    for len in 1..40 {
        let mut wire = Vec::new();
        sealer.seal(&payload(len, len as u64), &mut wire).unwrap();
        // Length, padding length, payload and padding, then the 20-byte MAC.
        assert_eq!((wire.len() - 20) % 8, 0, "{len}");
    }
}

#[test]
fn the_discard_holds_for_bytes_read_into_the_offered_room() {
    // A socket reader's way: large reads straight into the input.
    let (c, m) = (C::Aes128Cbc, M::HmacSha256);
    for spoil in [0usize, 1] {
        let wire = stream(c, m, |p| {
            if spoil == 0 {
                p[0] ^= 0x40
            } else {
                *p.last_mut().unwrap() ^= 1
            }
        });
        let now = std::time::Instant::now();
        let mut core = Driven::new(Config::client().max_packet_len(MAX).unwrap(), now);
        core.set_inbound_keys(keys_for(c, m, 5), now).unwrap();
        let mut at = 0;
        let err = 'read: loop {
            let Driven { conn, input } = &mut core;
            let room = conn.recv_buf(input);
            let n = room.len().min(wire.len() - at);
            assert!(n > 0, "all bytes are in, yet no error");
            room[..n].copy_from_slice(&wire[at..at + n]);
            conn.recv_filled(input, n, now);
            at += n;
            loop {
                match core.poll_packet() {
                    Ok(Found::Packet) => {}
                    Ok(_) => break,
                    Err(e) => break 'read e,
                }
            }
        };
        match err {
            Error::PacketCorrupt { discarded, .. } => assert_eq!(discarded, 4 + MAX + 32),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn eof_during_the_discard_is_its_own_error_and_tells_the_peer_nothing() {
    let (c, m) = (C::Aes128Cbc, M::HmacSha256);
    for (what, spoil) in [("length", 0usize), ("MAC", 1)] {
        let mut wire = stream(c, m, |p| {
            if spoil == 0 {
                p[0] ^= 0x40
            } else {
                *p.last_mut().unwrap() ^= 1
            }
        });
        // The stream ends well inside the discard (one maximum packet).
        wire.truncate(wire.len() - 2 * MAX + 100);
        let now = std::time::Instant::now();
        let mut core = Driven::new(Config::server().max_packet_len(MAX).unwrap(), now);
        core.set_inbound_keys(keys_for(c, m, 5), now).unwrap();
        let mut fed = 0;
        let mut packets = 0;
        while fed < wire.len() {
            fed += core.feed(&wire[fed..], now);
            while core.poll_packet().unwrap() == Found::Packet {
                packets += 1;
            }
        }
        assert_eq!(packets, 2, "{what}");
        let e = core.recv_eof(None);
        let Error::EofWhileDiscarding { cause, got } = &e else {
            panic!("{what}: {e:?}")
        };
        assert!(*got > 0 && *got < 4 + MAX, "{what}: {got}");
        match what {
            "length" => assert!(
                matches!(
                    **cause,
                    Error::BadPacketLength { .. } | Error::BadBlockAlignment { .. }
                ),
                "{cause:?}"
            ),
            _ => assert!(matches!(**cause, Error::MacMismatch { .. }), "{cause:?}"),
        }
        // A plain close on the wire, as OpenSSH's: no DISCONNECT to say
        // which check failed.
        assert!(core.pending_output().is_empty(), "{what}");
        assert_eq!(e.disconnect_reason(), None);
        // Every later call says the same.
        let later = core.poll_packet().unwrap_err();
        assert!(
            matches!(later.cause(), Error::EofWhileDiscarding { .. }),
            "{later:?}"
        );
    }
}

#[test]
fn eof_during_the_discard_through_the_packetizer() {
    use common::{Scripted, Step as Script};
    let (c, m) = (C::Aes256Cbc, M::HmacSha1);
    let mut wire = stream(c, m, |p| p[0] ^= 0x40);
    wire.truncate(wire.len() - 2 * MAX + 1000);
    let config = Config::client().max_packet_len(MAX).unwrap();
    let mut p = Scripted::new(vec![Script::Data(wire)]).packetizer_with(config);
    p.set_inbound_cipher(keys_for(c, m, 5)).unwrap();
    for _ in 0..2 {
        p.read_message().unwrap();
    }
    let e = p.read_message().unwrap_err();
    assert!(matches!(e, Error::EofWhileDiscarding { .. }), "{e:?}");
    // An EOF inside a good packet stays a plain Eof.
    let mut sealer = Sealer::new();
    sealer.set_keys(keys_for(c, m, 5)).unwrap();
    let mut good = Vec::new();
    sealer.seal(&payload(500, 1), &mut good).unwrap();
    good.truncate(100);
    let mut p = Scripted::new(vec![Script::Data(good)]).packetizer();
    p.set_inbound_cipher(keys_for(c, m, 5)).unwrap();
    let e = p.read_message().unwrap_err();
    assert!(matches!(e, Error::Eof { got: 100, .. }), "{e:?}");
}
