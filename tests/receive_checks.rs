//! One crafted packet per receive check, each with its exact error.

mod common;

use common::{keys_for, plain_packet, CraftAes128Sha256};
use ssh_packetizer::{
    CipherAlgorithm as C, Error, InputBuffer, MacAlgorithm as M, Opened, Opener, Sealer,
};

/// Feeds `wire` whole and returns the first error, asserting no payload came
/// out before it.
fn first_error(opener: &mut Opener, wire: &[u8]) -> Error {
    let mut input = InputBuffer::new();
    opener.feed(&mut input, wire);
    match opener.next_packet(&mut input) {
        Err(e) => e,
        Ok(Opened::Packet(p)) => panic!("a bad packet was accepted: {:?}", p.payload()),
        Ok(Opened::NeedMore(n)) => panic!("waited for {n} more bytes instead of refusing"),
        Ok(other) => panic!("{other:?}"),
    }
}

fn ctr_opener(etm: bool) -> Opener {
    let mut o = Opener::new();
    o.set_keys(CraftAes128Sha256::keys(5, etm)).unwrap();
    o
}

#[test]
fn clear_length_below_five() {
    let err = first_error(&mut Opener::new(), &[0, 0, 0, 4, 4, 0, 0, 0]);
    assert!(
        matches!(
            err,
            Error::BadPacketLength {
                len: 4,
                max: 262_144
            }
        ),
        "{err:?}"
    );
}

#[test]
fn clear_length_above_the_maximum_is_refused_on_the_four_length_bytes() {
    let mut o = Opener::new();
    // Only the length bytes: the Opener must refuse now, not wait for 2 GiB.
    let err = first_error(&mut o, &0x8000_0000u32.to_be_bytes());
    assert!(
        matches!(
            err,
            Error::BadPacketLength {
                len: 0x8000_0000,
                ..
            }
        ),
        "{err:?}"
    );
    let err = first_error(&mut Opener::new(), &(262_144u32 + 8).to_be_bytes());
    assert!(
        matches!(
            err,
            Error::BadPacketLength {
                len: 262_152,
                max: 262_144
            }
        ),
        "{err:?}"
    );
}

#[test]
fn encrypted_length_out_of_bounds_is_refused_after_one_block() {
    for etm in [false, true] {
        let mut craft = CraftAes128Sha256::new(5, etm);
        let wire = craft.craft(0, &plain_packet(300_000, 4, &[0; 12]));
        let head = if etm { 4 } else { 16 };
        let err = first_error(&mut ctr_opener(etm), &wire[..head]);
        assert!(
            matches!(err, Error::BadPacketLength { len: 300_000, .. }),
            "etm={etm}: {err:?}"
        );
    }
}

#[test]
fn a_lower_configured_maximum_is_enforced() {
    let mut o = Opener::new();
    o.set_max_packet_len(35_000).unwrap();
    let err = first_error(&mut o, &35_008u32.to_be_bytes());
    assert!(
        matches!(
            err,
            Error::BadPacketLength {
                len: 35_008,
                max: 35_000
            }
        ),
        "{err:?}"
    );
}

#[test]
fn clear_misaligned_length() {
    // 4 + 13 = 17 is not a multiple of 8.
    let err = first_error(&mut Opener::new(), &plain_packet(13, 4, &[1; 12]));
    assert!(
        matches!(err, Error::BadBlockAlignment { len: 13, block: 8 }),
        "{err:?}"
    );
}

#[test]
fn encrypted_misaligned_lengths() {
    // Encrypt-and-MAC aligns 4 + len to 16; encrypt-then-MAC aligns len.
    let mut craft = CraftAes128Sha256::new(5, false);
    let wire = craft.craft(0, &plain_packet(20, 4, &[1; 19]));
    let err = first_error(&mut ctr_opener(false), &wire);
    assert!(
        matches!(err, Error::BadBlockAlignment { len: 20, block: 16 }),
        "{err:?}"
    );
    let mut craft = CraftAes128Sha256::new(5, true);
    let wire = craft.craft(0, &plain_packet(28, 4, &[1; 27]));
    let err = first_error(&mut ctr_opener(true), &wire);
    assert!(
        matches!(err, Error::BadBlockAlignment { len: 28, block: 16 }),
        "{err:?}"
    );
}

#[test]
fn padding_below_four() {
    let err = first_error(&mut Opener::new(), &plain_packet(12, 3, &[1; 11]));
    assert!(
        matches!(
            err,
            Error::BadPadding {
                padding: 3,
                packet_len: 12
            }
        ),
        "{err:?}"
    );
    for etm in [false, true] {
        let len = if etm { 16 } else { 28 };
        let mut craft = CraftAes128Sha256::new(5, etm);
        let wire = craft.craft(0, &plain_packet(len, 3, &vec![1; len as usize - 1]));
        let err = first_error(&mut ctr_opener(etm), &wire);
        assert!(
            matches!(err, Error::BadPadding { padding: 3, .. }),
            "etm={etm}: {err:?}"
        );
    }
}

#[test]
fn padding_that_leaves_no_payload() {
    // padding_length = packet_length - 1: an empty payload.
    let err = first_error(&mut Opener::new(), &plain_packet(12, 11, &[0; 11]));
    assert!(
        matches!(
            err,
            Error::BadPadding {
                padding: 11,
                packet_len: 12
            }
        ),
        "{err:?}"
    );
    // padding_length larger than the packet.
    let err = first_error(&mut Opener::new(), &plain_packet(12, 200, &[0; 11]));
    assert!(
        matches!(err, Error::BadPadding { padding: 200, .. }),
        "{err:?}"
    );
    let mut craft = CraftAes128Sha256::new(5, true);
    let wire = craft.craft(0, &plain_packet(16, 15, &[0; 15]));
    let err = first_error(&mut ctr_opener(true), &wire);
    assert!(
        matches!(
            err,
            Error::BadPadding {
                padding: 15,
                packet_len: 16
            }
        ),
        "{err:?}"
    );
}

#[test]
fn mac_mismatch_in_mac_ciphertext_and_length() {
    for mac in [M::HmacSha1, M::HmacSha256Etm, M::HmacSha512] {
        let keys = keys_for(C::Aes256Ctr, mac, 9);
        let mut sealer = Sealer::new();
        sealer.set_keys(keys.clone()).unwrap();
        let mut wire = Vec::new();
        sealer.seal(b"\x5efirst", &mut wire).unwrap();
        let first_len = wire.len();
        sealer.seal(b"\x5esecond packet", &mut wire).unwrap();
        let total = wire.len();
        // Last byte of the MAC, a ciphertext byte, in the second packet.
        for offset in [total - 1, first_len + 8] {
            let mut bad = wire.clone();
            bad[offset] ^= 0x01;
            let mut opener = Opener::new();
            let mut opener_in = InputBuffer::new();
            opener.set_keys(keys.clone()).unwrap();
            opener.feed(&mut opener_in, &bad);
            assert!(
                matches!(opener.next_packet(&mut opener_in), Ok(Opened::Packet(p)) if p.seqno() == 0)
            );
            let err = opener.next_packet(&mut opener_in).unwrap_err();
            assert!(
                matches!(err, Error::MacMismatch { seqno: 1 }),
                "{mac} @{offset}: {err:?}"
            );
        }
    }
}

#[test]
fn mismatched_keys_give_mac_mismatch() {
    let mut sealer = Sealer::new();
    sealer
        .set_keys(keys_for(C::Aes128Ctr, M::HmacSha256Etm, 1))
        .unwrap();
    let mut wire = Vec::new();
    sealer.seal(b"\x15", &mut wire).unwrap();
    let mut opener = Opener::new();
    opener
        .set_keys(keys_for(C::Aes128Ctr, M::HmacSha256Etm, 2))
        .unwrap();
    assert!(matches!(
        first_error(&mut opener, &wire),
        Error::MacMismatch { seqno: 0 }
    ));
}

#[test]
fn every_call_after_a_failure_reports_it() {
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    let _ = first_error(&mut o, &[0, 0, 0, 1]);
    assert!(o.is_failed());
    let bad_length = |e: &Error| matches!(e.cause(), Error::BadPacketLength { len: 1, .. });
    assert!(matches!(o.next_packet(&mut o_in), Err(ref e @ Error::Failed(_)) if bad_length(e)));
    assert!(matches!(
        o.set_keys(keys_for(C::None, M::None, 0)),
        Err(ref e @ Error::Failed(_)) if bad_length(e)
    ));
}

#[test]
fn need_more_never_exceeds_one_maximum_packet() {
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    // The largest aligned clear length: 4 + 262140 is a multiple of 8.
    o.feed(&mut o_in, &262_140u32.to_be_bytes());
    match o.next_packet(&mut o_in).unwrap() {
        Opened::NeedMore(n) => assert_eq!(n, 262_140),
        other => panic!("{other:?}"),
    }
    let (mut o, mut o_in) = (ctr_opener(false), InputBuffer::new());
    let mut craft = CraftAes128Sha256::new(5, false);
    let wire = craft.craft(0, &plain_packet(262_140, 4, &[0; 12]));
    o.feed(&mut o_in, &wire[..16]);
    match o.next_packet(&mut o_in).unwrap() {
        // The rest of the packet and the 32-byte MAC.
        Opened::NeedMore(n) => assert_eq!(n, 4 + 262_140 + 32 - 16),
        other => panic!("{other:?}"),
    }
    assert!(o.max_wire_len() >= 4 + 262_144 + 32);
}

#[test]
fn sealer_refuses_empty_and_oversized_payloads_without_writing() {
    let mut s = Sealer::new();
    let mut out = b"kept".to_vec();
    assert!(matches!(s.seal(b"", &mut out), Err(Error::EmptyPayload)));
    let big = vec![1u8; 262_144];
    assert!(matches!(
        s.seal(&big, &mut out),
        Err(Error::PayloadTooLarge {
            len: 262_144,
            max: 262_144
        })
    ));
    assert_eq!(out, b"kept");
    assert_eq!(s.seqno(), 0);
    // The largest payload that fits still goes out: packet_length 262140
    // (the largest aligned to 8 with the length field) with 4 bytes of padding.
    let fits = vec![1u8; 262_140 - 1 - 4];
    s.seal(&fits, &mut out).unwrap();
    assert_eq!(out.len(), 4 + 4 + 262_140);
    assert!(s
        .seal(&[1u8; 262_140 - 1 - 4 + 1], &mut Vec::new())
        .is_err());
}

#[test]
fn maximum_packet_length_bounds() {
    for bad in [0, 34_999, 16 * 1024 * 1024 + 1] {
        let err = Opener::new().set_max_packet_len(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidMaxPacketLength { requested, min: 35_000, .. } if requested == bad)
        );
        assert!(Sealer::new().set_max_packet_len(bad).is_err());
    }
    assert!(Opener::new().set_max_packet_len(35_000).is_ok());
}

#[test]
fn keys_cannot_switch_in_the_middle_of_a_packet() {
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    o.feed(&mut o_in, &[0, 0, 0, 12, 4]);
    assert!(matches!(o.next_packet(&mut o_in), Ok(Opened::NeedMore(_))));
    let err = o
        .set_keys(keys_for(C::Aes128Ctr, M::HmacSha1, 0))
        .unwrap_err();
    assert!(matches!(err, Error::NotAtPacketBoundary));
    // The packet still completes under the old (clear) keys.
    o.feed(&mut o_in, &[0x15, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0]);
    assert!(
        matches!(o.next_packet(&mut o_in), Ok(Opened::Packet(p)) if p.payload() == [0x15, 1, 2, 3, 4, 5, 6])
    );
}

#[test]
fn sequence_number_wrap_during_initial_kex_is_refused() {
    let mut s = Sealer::new();
    s.set_seqno(u32::MAX - 1);
    let mut wire = Vec::new();
    assert_eq!(s.seal(b"\x02a", &mut wire).unwrap(), u32::MAX - 1);
    let before = wire.len();
    assert!(matches!(
        s.seal(b"\x02b", &mut wire),
        Err(Error::SequenceWrapped)
    ));
    assert_eq!(wire.len(), before, "nothing half-written");

    let mut o = Opener::new();

    let mut o_in = InputBuffer::new();
    o.set_seqno(u32::MAX - 1);
    o.feed(&mut o_in, &wire);
    assert!(matches!(o.next_packet(&mut o_in), Ok(Opened::Packet(p)) if p.seqno() == u32::MAX - 1));
    let mut next = Sealer::new();
    next.set_seqno(u32::MAX);
    next.mark_initial_kex_done();
    let mut more = Vec::new();
    next.seal(b"\x02b", &mut more).unwrap();
    o.feed(&mut o_in, &more);
    assert!(matches!(
        o.next_packet(&mut o_in),
        Err(Error::SequenceWrapped)
    ));
}

#[test]
fn sequence_number_wraps_after_the_initial_kex() {
    let keys = keys_for(C::Aes128Ctr, M::HmacSha256, 3);
    let (mut s, mut o) = (Sealer::new(), Opener::new());
    let mut o_in = InputBuffer::new();
    s.set_keys(keys.clone()).unwrap();
    o.set_keys(keys).unwrap();
    for side in [&mut s as &mut dyn WrapSide, &mut o] {
        side.prepare();
    }
    let mut wire = Vec::new();
    assert_eq!(s.seal(b"\x02x", &mut wire).unwrap(), u32::MAX);
    assert_eq!(s.seal(b"\x02y", &mut wire).unwrap(), 0);
    let opened = common::open_all(&mut o, &mut o_in, &wire).unwrap();
    assert_eq!(
        opened,
        vec![(b"\x02x".to_vec(), u32::MAX), (b"\x02y".to_vec(), 0)]
    );
}

trait WrapSide {
    fn prepare(&mut self);
}
impl WrapSide for Sealer {
    fn prepare(&mut self) {
        self.set_seqno(u32::MAX);
        self.mark_initial_kex_done();
    }
}
impl WrapSide for Opener {
    fn prepare(&mut self) {
        self.set_seqno(u32::MAX);
        self.mark_initial_kex_done();
    }
}

#[test]
fn reset_seqno_makes_the_next_packet_zero() {
    let mut s = Sealer::new();
    let mut wire = Vec::new();
    for _ in 0..3 {
        s.seal(b"\x14", &mut wire).unwrap();
    }
    s.reset_seqno();
    assert_eq!(s.seal(b"\x15", &mut wire).unwrap(), 0);
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    o.feed(&mut o_in, &wire);
    for expected in 0..3 {
        assert!(matches!(o.next_packet(&mut o_in), Ok(Opened::Packet(p)) if p.seqno() == expected));
    }
    o.reset_seqno();
    assert!(
        matches!(o.next_packet(&mut o_in), Ok(Opened::Packet(p)) if p.seqno() == 0 && p.msg_type() == 0x15)
    );
}
