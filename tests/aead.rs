//! The AEAD engines: tampering, wrong keys and crafted bad packets.

mod common;

use common::{aead_ciphers, craft_aead, keys_for, payload, plain_packet};
use ssh_packetizer::KeyMaterial;
use ssh_packetizer::{CipherAlgorithm, Error, InputBuffer, MacAlgorithm, Opened, Opener, Sealer};

const LENGTHS: [usize; 6] = [1, 14, 100, 300, 16, 57];

/// A stream of packets of `LENGTHS` under `cipher`, with each packet's range.
fn stream(cipher: CipherAlgorithm) -> (Vec<u8>, Vec<std::ops::Range<usize>>, Vec<Vec<u8>>) {
    let mut sealer = Sealer::new();
    sealer
        .set_keys(keys_for(cipher, MacAlgorithm::None, 1))
        .unwrap();
    let (mut wire, mut ranges, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &len) in LENGTHS.iter().enumerate() {
        let p = payload(len, i as u64);
        let start = wire.len();
        sealer.seal(&p, &mut wire).unwrap();
        ranges.push(start..wire.len());
        payloads.push(p);
    }
    (wire, ranges, payloads)
}

/// Feeds `wire` whole; returns the payloads that came out and how it ended.
fn drain(cipher: CipherAlgorithm, seed: u8, wire: &[u8]) -> (Vec<Vec<u8>>, Result<usize, Error>) {
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    opener
        .set_keys(keys_for(cipher, MacAlgorithm::None, seed))
        .unwrap();
    opener.feed(&mut opener_in, wire);
    let mut out = Vec::new();
    loop {
        match opener.next_packet(&mut opener_in) {
            Ok(Opened::Packet(p)) => out.push(p.payload().to_vec()),
            Ok(Opened::NeedMore(n)) => return (out, Ok(n)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[test]
fn every_single_byte_flip_is_caught_before_its_payload() {
    for cipher in aead_ciphers() {
        let (wire, ranges, payloads) = stream(cipher);
        let (clean, end) = drain(cipher, 1, &wire);
        assert_eq!(clean, payloads);
        assert!(matches!(end, Ok(4)));
        for offset in 0..wire.len() {
            let hit = ranges.iter().position(|r| r.contains(&offset)).unwrap();
            let in_length = offset - ranges[hit].start < 4;
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = wire.clone();
                bad[offset] ^= flip;
                let (out, end) = drain(cipher, 1, &bad);
                // Everything before the tampered packet, nothing from it on.
                assert_eq!(out, payloads[..hit], "{cipher} @{offset} ^{flip:#x}");
                match end {
                    Err(e) => assert!(e.is_peer_fault(), "{cipher} @{offset}: {e:?}"),
                    // A larger length may leave the Opener waiting for bytes
                    // that never come; that is the only way not to fail here.
                    Ok(_) => assert!(in_length, "{cipher} @{offset} ^{flip:#x}: no error"),
                }
            }
        }
    }
}

#[test]
fn a_wrong_key_is_a_mac_mismatch() {
    for cipher in aead_ciphers() {
        let (wire, _, _) = stream(cipher);
        let (out, end) = drain(cipher, 2, &wire);
        assert!(out.is_empty());
        match end {
            Err(Error::MacMismatch { seqno: 0 }) => {}
            // ChaCha20-Poly1305 decrypts the length with the (wrong) header
            // key first, so a bound may fail before the tag is checked.
            Err(Error::BadPacketLength { .. } | Error::BadBlockAlignment { .. })
                if cipher == CipherAlgorithm::ChaCha20Poly1305 => {}
            Ok(_) if cipher == CipherAlgorithm::ChaCha20Poly1305 => {}
            other => panic!("{cipher}: {other:?}"),
        }
    }
}

#[test]
fn a_wrong_mac_key_half_is_a_mac_mismatch_for_chacha() {
    // Same K_header (bytes 32..64), different K_main: the length decrypts
    // fine, so the tag is what must fail.
    let good = keys_for(CipherAlgorithm::ChaCha20Poly1305, MacAlgorithm::None, 1);
    let mut sealer = Sealer::new();
    sealer.set_keys(good).unwrap();
    let mut wire = Vec::new();
    sealer.seal(b"\x5ehello", &mut wire).unwrap();
    let m = common::material(CipherAlgorithm::ChaCha20Poly1305, MacAlgorithm::None, 1);
    let mut key = m.key.clone();
    key[0] ^= 1;
    let wrong = ssh_packetizer::Keys::new(
        CipherAlgorithm::ChaCha20Poly1305,
        MacAlgorithm::None,
        KeyMaterial {
            key: &key,
            iv: &[],
            mac_key: &[],
        },
    )
    .unwrap();
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    opener.set_keys(wrong).unwrap();
    opener.feed(&mut opener_in, &wire);
    assert!(matches!(
        opener.next_packet(&mut opener_in),
        Err(Error::MacMismatch { seqno: 0 })
    ));
}

#[test]
fn an_empty_payload_is_refused_on_open() {
    for cipher in aead_ciphers() {
        // packet_length 16, padding_length 15: no payload byte at all.
        let wire = craft_aead(cipher, 1, 0, 0, &plain_packet(16, 15, &[0; 15]));
        let (out, end) = drain(cipher, 1, &wire);
        assert!(out.is_empty());
        assert!(
            matches!(
                end,
                Err(Error::BadPadding {
                    padding: 15,
                    packet_len: 16
                })
            ),
            "{cipher}: {end:?}"
        );
    }
}

#[test]
fn padding_below_four_is_refused_on_open() {
    for cipher in aead_ciphers() {
        let wire = craft_aead(cipher, 1, 0, 0, &plain_packet(16, 3, &[7; 15]));
        let (_, end) = drain(cipher, 1, &wire);
        assert!(
            matches!(end, Err(Error::BadPadding { padding: 3, .. })),
            "{cipher}: {end:?}"
        );
    }
}

#[test]
fn crafted_packets_that_are_valid_open_as_the_reference_made_them() {
    // The reference construction and the engine agree on later packets too
    // (GCM counter and ChaCha20 nonce move on per packet).
    for cipher in aead_ciphers() {
        let mut wire = Vec::new();
        for i in 0..3u32 {
            // Payload [0x5e, i] and 13 bytes of padding: packet_length 16.
            let body: Vec<u8> = [&[0x5e, i as u8][..], &[0; 13]].concat();
            wire.extend(craft_aead(
                cipher,
                1,
                i,
                u64::from(i),
                &plain_packet(16, 13, &body),
            ));
        }
        let (out, end) = drain(cipher, 1, &wire);
        assert_eq!(out.len(), 3, "{cipher}: {end:?}");
        assert_eq!(out[2], [0x5e, 2]);
    }
}

#[test]
fn misaligned_and_oversized_lengths() {
    for cipher in aead_ciphers() {
        let block = cipher.spec().block_size();
        // Aligned for 8 but not 16 (GCM), or not aligned for 8 at all.
        let len = if block == 16 { 24 } else { 20 };
        let wire = craft_aead(
            cipher,
            1,
            0,
            0,
            &plain_packet(len, 4, &vec![1; len as usize - 1]),
        );
        let (_, end) = drain(cipher, 1, &wire);
        assert!(
            matches!(end, Err(Error::BadBlockAlignment { .. })),
            "{cipher}: {end:?}"
        );
        let wire = craft_aead(cipher, 1, 0, 0, &plain_packet(1 << 20, 4, &[1; 27]));
        let (_, end) = drain(cipher, 1, &wire[..4]);
        assert!(
            matches!(end, Err(Error::BadPacketLength { len: 0x10_0000, .. })),
            "{cipher}: {end:?}"
        );
    }
}

#[test]
fn a_rejected_packet_moves_no_state() {
    for cipher in aead_ciphers() {
        let (mut wire, ranges, _) = stream(cipher);
        // Corrupt the tag of the third packet.
        let last = ranges[2].end - 1;
        wire[last] ^= 0x40;
        let mut opener = Opener::new();
        let mut opener_in = InputBuffer::new();
        opener
            .set_keys(keys_for(cipher, MacAlgorithm::None, 1))
            .unwrap();
        opener.feed(&mut opener_in, &wire);
        for _ in 0..2 {
            assert!(matches!(
                opener.next_packet(&mut opener_in),
                Ok(Opened::Packet(_))
            ));
        }
        assert!(matches!(
            opener.next_packet(&mut opener_in),
            Err(Error::MacMismatch { seqno: 2 })
        ));
        assert_eq!(opener.seqno(), 2, "{cipher}: the sequence number moved");
        assert!(matches!(
            opener.next_packet(&mut opener_in),
            Err(Error::Failed(first)) if matches!(*first, Error::MacMismatch { seqno: 2 })
        ));
    }
}
