//! Strict key exchange (kex-strict-*-v00@openssh.com, the Terrapin fix):
//! sequence numbers reset at NEWKEYS, checked against the known-answer
//! vectors, which start at sequence number 0.

mod common;

use common::{clear_stream, suites};
use ssh_packetizer::{CipherAlgorithm, InputBuffer, Opened, Opener, Sealer, ZeroPadding};

/// The initial key exchange in the clear: KEXINIT, ECDH init, NEWKEYS.
fn kex_payloads() -> [&'static [u8]; 3] {
    [&[20, 0, 1], &[30, 7, 7, 7], &[21]]
}

fn sealed_after_kex(suite: &common::Suite, reset: bool) -> Vec<u8> {
    let mut sealer = Sealer::new();
    let mut clear = Vec::new();
    for p in kex_payloads() {
        sealer.seal(p, &mut clear).unwrap();
    }
    sealer.set_keys(suite.keys()).unwrap();
    sealer.set_padding_source(Box::new(ZeroPadding));
    if reset {
        sealer.reset_seqno();
    }
    let mut wire = Vec::new();
    for p in &suite.packets {
        let seqno = sealer.seal(&p.payload, &mut wire).unwrap();
        assert_eq!(seqno, p.seqno + if reset { 0 } else { 3 });
    }
    wire
}

#[test]
fn after_a_reset_the_first_encrypted_packets_match_the_vectors() {
    for suite in suites()
        .iter()
        .filter(|s| s.cipher != CipherAlgorithm::None)
    {
        let vector: Vec<u8> = suite.packets.iter().flat_map(|p| p.wire.clone()).collect();
        assert_eq!(sealed_after_kex(suite, true), vector, "{}", suite.name());
        // Without the reset the sequence number (3, 4, 5) is in every MAC
        // and in ChaCha20's nonce; only GCM's wire does not depend on it.
        let unreset = sealed_after_kex(suite, false);
        if suite.cipher.spec().family() == ssh_packetizer::algorithm::CipherFamily::AesGcm {
            assert_eq!(unreset, vector, "{}", suite.name());
        } else {
            assert_ne!(unreset, vector, "{}", suite.name());
        }
    }
}

#[test]
fn the_opener_reads_the_vectors_after_its_reset() {
    for suite in suites()
        .iter()
        .filter(|s| s.cipher != CipherAlgorithm::None)
    {
        let mut stream = clear_stream(&kex_payloads());
        for p in &suite.packets {
            stream.extend_from_slice(&p.wire);
        }
        let mut opener = Opener::new();
        let mut opener_in = InputBuffer::new();
        opener.feed(&mut opener_in, &stream);
        for expected in 0..3 {
            assert!(
                matches!(opener.next_packet(&mut opener_in).unwrap(), Opened::Packet(p) if p.seqno() == expected)
            );
        }
        opener.set_keys(suite.keys()).unwrap();
        opener.reset_seqno();
        for p in &suite.packets {
            match opener.next_packet(&mut opener_in).unwrap() {
                Opened::Packet(got) => {
                    assert_eq!((got.payload(), got.seqno()), (&p.payload[..], p.seqno))
                }
                other => panic!("{}: {other:?}", suite.name()),
            }
        }
    }
}

#[test]
fn without_the_reset_a_strict_peers_packets_fail() {
    // The peer reset its numbers; a side that did not expects 3 and fails
    // the MAC (here ChaCha20-Poly1305, whose nonce is the sequence number).
    let suite = suites()
        .into_iter()
        .find(|s| s.cipher == CipherAlgorithm::ChaCha20Poly1305)
        .unwrap();
    let mut stream = clear_stream(&kex_payloads());
    stream.extend_from_slice(&suite.packets[0].wire);
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    opener.feed(&mut opener_in, &stream);
    for _ in 0..3 {
        opener.next_packet(&mut opener_in).unwrap();
    }
    opener.set_keys(suite.keys()).unwrap();
    assert!(opener
        .next_packet(&mut opener_in)
        .unwrap_err()
        .is_peer_fault());
}
