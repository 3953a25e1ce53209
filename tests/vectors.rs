//! Known-answer vectors: streams made by paramiko and asyncssh
//! (tests/data/suites.json, a copy of the shared vectors), under every
//! crypto provider of the build.

mod common;

use common::{open_all, suites};
use ssh_packetizer::{
    CipherAlgorithm, CryptoProvider, Error, InputBuffer, Opened, Opener, Sealer, ZeroPadding,
};

/// Whether `provider` runs `suite` (a FIPS provider refuses the clear mode,
/// ChaCha20-Poly1305 and UMAC).
fn runs(provider: &'static CryptoProvider, suite: &common::Suite) -> bool {
    !provider.is_fips() || (provider.allows_cipher(suite.cipher) && provider.allows_mac(suite.mac))
}

#[test]
fn seal_matches_every_vector_byte_for_byte() {
    for provider in CryptoProvider::available() {
        seal_matches_every_vector_under(provider);
    }
}

fn seal_matches_every_vector_under(provider: &'static CryptoProvider) {
    let mut checked = 0;
    for suite in suites().iter().filter(|s| runs(provider, s)) {
        let mut sealer = Sealer::new();
        sealer.set_crypto_provider(provider);
        sealer.set_keys(suite.keys()).unwrap();
        sealer.set_padding_source(Box::new(ZeroPadding));
        sealer.set_seqno(suite.first_seqno);
        for p in &suite.packets {
            let mut wire = Vec::new();
            let seqno = sealer.seal(&p.payload, &mut wire).unwrap();
            assert_eq!(seqno, p.seqno, "{}", suite.name());
            assert_eq!(
                wire,
                p.wire,
                "{} packet {} ({})",
                suite.name(),
                p.seqno,
                provider.name()
            );
            checked += 1;
        }
    }
    // none, 3 AES key sizes x 6 MACs, 2 GCM and ChaCha20-Poly1305; three
    // packets each (a FIPS provider refuses the clear mode and ChaCha20).
    let expected = if provider.is_fips() { 20 } else { 22 };
    assert_eq!(checked, expected * 3, "{}", provider.name());
}

#[test]
fn open_recovers_every_vector() {
    for provider in CryptoProvider::available() {
        open_recovers_every_vector_under(provider);
    }
}

fn open_recovers_every_vector_under(provider: &'static CryptoProvider) {
    for suite in suites().iter().filter(|s| runs(provider, s)) {
        let mut opener = Opener::new();
        let mut opener_in = InputBuffer::new();
        opener.set_crypto_provider(provider);
        opener.set_keys(suite.keys()).unwrap();
        opener.set_seqno(suite.first_seqno);
        let stream: Vec<u8> = suite.packets.iter().flat_map(|p| p.wire.clone()).collect();
        let opened = open_all(&mut opener, &mut opener_in, &stream).unwrap();
        let expected: Vec<_> = suite
            .packets
            .iter()
            .map(|p| (p.payload.clone(), p.seqno))
            .collect();
        assert_eq!(opened, expected, "{} ({})", suite.name(), provider.name());
        assert_eq!(opener_in.buffered(), 0);
    }
}

#[test]
fn in_place_forms_match_the_vectors() {
    for provider in CryptoProvider::available() {
        in_place_forms_match_the_vectors_under(provider);
    }
}

fn in_place_forms_match_the_vectors_under(provider: &'static CryptoProvider) {
    for suite in suites().iter().filter(|s| runs(provider, s)) {
        let mut sealer = Sealer::new();
        sealer.set_crypto_provider(provider);
        sealer.set_keys(suite.keys()).unwrap();
        sealer.set_padding_source(Box::new(ZeroPadding));
        let mut opener = Opener::new();
        let mut opener_in = InputBuffer::new();
        opener.set_crypto_provider(provider);
        opener.set_keys(suite.keys()).unwrap();
        for p in &suite.packets {
            // Serialise the payload straight into the output buffer.
            let mut out = b"before".to_vec();
            let start = sealer.start_packet(&mut out);
            out.extend_from_slice(&p.payload);
            assert_eq!(sealer.finish_packet(&mut out, start).unwrap(), p.seqno);
            assert_eq!(&out[..6], b"before");
            assert_eq!(out[6..], p.wire[..], "{}", suite.name());

            // Read straight into the room the Opener offers.
            let room = opener.unfilled(&mut opener_in);
            room[..p.wire.len()].copy_from_slice(&p.wire);
            opener.filled(&mut opener_in, p.wire.len());
            match opener.next_packet(&mut opener_in).unwrap() {
                Opened::Packet(packet) => {
                    assert_eq!(packet.payload(), &p.payload[..]);
                    assert_eq!(packet.seqno(), p.seqno);
                }
                other => panic!("{}: {other:?}", suite.name()),
            }
            assert_eq!(opener_in.buffered(), 0);
        }
    }
}

#[test]
fn finish_packet_errors_leave_the_buffer_as_before_the_packet() {
    let mut sealer = Sealer::new();
    let mut out = b"kept".to_vec();
    let start = sealer.start_packet(&mut out);
    assert!(matches!(
        sealer.finish_packet(&mut out, start),
        Err(Error::EmptyPayload)
    ));
    assert_eq!(out, b"kept");
    let start = sealer.start_packet(&mut out);
    out.resize(start + 5 + 300_000, 7);
    assert!(matches!(
        sealer.finish_packet(&mut out, start),
        Err(Error::PayloadTooLarge { len: 300_000, .. })
    ));
    assert_eq!(out, b"kept");
    assert_eq!(sealer.seqno(), 0);
}

#[test]
fn random_padding_still_opens_and_differs_from_zero_padding() {
    let default = CryptoProvider::get_default();
    for suite in suites()
        .iter()
        .filter(|s| s.cipher != CipherAlgorithm::None && runs(default, s))
    {
        let mut sealer = Sealer::new();
        sealer.set_keys(suite.keys()).unwrap();
        let mut opener = Opener::new();
        let mut opener_in = InputBuffer::new();
        opener.set_keys(suite.keys()).unwrap();
        let mut wire = Vec::new();
        for p in &suite.packets {
            sealer.seal(&p.payload, &mut wire).unwrap();
        }
        let zero_padded: Vec<u8> = suite.packets.iter().flat_map(|p| p.wire.clone()).collect();
        assert_eq!(wire.len(), zero_padded.len());
        assert_ne!(
            wire,
            zero_padded,
            "{}: padding was not random",
            suite.name()
        );
        let opened = open_all(&mut opener, &mut opener_in, &wire).unwrap();
        assert_eq!(opened.len(), suite.packets.len());
    }
}
