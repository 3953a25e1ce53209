//! Round trips through Sealer and Opener for every supported suite, with the
//! wire handed over in arbitrary chunks and a key switch mid-stream.

mod common;

use common::{keys_for, payload, supported_suites};
use proptest::prelude::*;
use ssh_packetizer::{CipherAlgorithm, InputBuffer, MacAlgorithm, Opened, Opener, Sealer};

type Suite = (CipherAlgorithm, MacAlgorithm);

/// How the receiving side is driven.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// `Opener::feed` and `next_packet`: the bytes are copied in.
    Buffered,
    /// `Opener::unfilled` and `filled`: the bytes are read straight into
    /// the room the Opener offers, as a socket reader does.
    Room,
}

/// Seals `lens` payloads under `first`, switching both sides to `second`
/// before packet `switch_at`, and hands the stream over in `chunks` (cycled).
/// Checks every payload and sequence number on the way out.
fn run(first: Suite, second: Suite, lens: &[usize], switch_at: usize, chunks: &[usize], salt: u64) {
    run_with(
        Reader::Buffered,
        first,
        second,
        lens,
        switch_at,
        chunks,
        salt,
    );
    run_with(Reader::Room, first, second, lens, switch_at, chunks, salt);
}

fn run_with(
    reader: Reader,
    first: Suite,
    second: Suite,
    lens: &[usize],
    switch_at: usize,
    chunks: &[usize],
    salt: u64,
) {
    let label = format!(
        "{reader:?} {}+{} -> {}+{}",
        first.0, first.1, second.0, second.1
    );
    let mut sealer = Sealer::new();
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    sealer.set_keys(keys_for(first.0, first.1, 1)).unwrap();
    opener.set_keys(keys_for(first.0, first.1, 1)).unwrap();

    let payloads: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(n, salt + i as u64))
        .collect();
    let mut wire = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        if i == switch_at {
            sealer.set_keys(keys_for(second.0, second.1, 2)).unwrap();
        }
        assert_eq!(sealer.seal(p, &mut wire).unwrap(), i as u32);
    }

    if switch_at == 0 {
        opener.set_keys(keys_for(second.0, second.1, 2)).unwrap();
    }
    let mut received = 0;
    let mut offset = 0;
    let mut chunk_sizes = chunks.iter().cycle();
    while received < payloads.len() {
        assert!(
            offset < wire.len(),
            "{label}: stream ended with {received} packets out"
        );
        let n = (*chunk_sizes.next().unwrap()).min(wire.len() - offset);
        let chunk = &wire[offset..offset + n];
        // Packets out of this chunk, checked below; keys switch as soon as
        // the packet before the switch is out, as a transport would after
        // NEWKEYS.
        let mut packets = Vec::new();
        let switch_keys = |opener: &mut Opener, out_so_far: usize| {
            if out_so_far == switch_at {
                opener.set_keys(keys_for(second.0, second.1, 2)).unwrap();
            }
        };
        let mut rest = chunk;
        loop {
            let n = match reader {
                Reader::Buffered => opener.feed(&mut opener_in, rest),
                Reader::Room => {
                    let room = opener.unfilled(&mut opener_in);
                    let n = room.len().min(rest.len());
                    room[..n].copy_from_slice(&rest[..n]);
                    opener.filled(&mut opener_in, n);
                    n
                }
            };
            offset += n;
            rest = &rest[n..];
            loop {
                match opener
                    .next_packet(&mut opener_in)
                    .unwrap_or_else(|e| panic!("{label}: {e}"))
                {
                    Opened::Packet(p) => {
                        packets.push((p.payload().to_vec(), p.seqno()));
                        switch_keys(&mut opener, received + packets.len());
                    }
                    Opened::NeedMore(more) => {
                        assert!(more <= opener.max_wire_len(), "{label}: asked for {more}");
                        break;
                    }
                    other => panic!("{label}: {other:?}"),
                }
            }
            if rest.is_empty() {
                break;
            }
        }
        for (payload, seqno) in packets {
            assert_eq!(seqno, received as u32, "{label}");
            assert!(
                payload == payloads[received],
                "{label}: payload {received} differs"
            );
            received += 1;
        }
    }
    assert_eq!(offset, wire.len(), "{label}: bytes left over");
    assert_eq!(opener_in.buffered(), 0, "{label}: bytes left in the input");
}

#[test]
fn every_suite_at_edge_lengths_in_every_chunking() {
    let lens = [1, 2, 3, 7, 8, 15, 16, 17, 31, 255, 256, 4095, 35_000];
    for suite in supported_suites() {
        for chunks in [&[1usize][..], &[7], &[3, 1000, 17], &[1 << 20]] {
            run(suite, suite, &lens, usize::MAX, chunks, 9);
        }
    }
}

#[test]
fn every_suite_switches_to_every_other() {
    let suites = supported_suites();
    for &a in &suites {
        for &b in &suites {
            run(a, b, &[100, 1, 5000, 33], 2, &[4096], 3);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_streams_round_trip(
        first in any::<prop::sample::Index>(),
        second in any::<prop::sample::Index>(),
        lens in prop::collection::vec(1usize..=35_000, 1..6),
        switch_at in 0usize..7,
        chunks in prop_oneof![
            Just(vec![1usize]),
            prop::collection::vec(1usize..=9000, 1..6),
        ],
        salt in any::<u64>(),
    ) {
        let suites = supported_suites();
        // 34 suites (3 CTR ciphers times 10 MACs, 3 AEAD ciphers, the clear
        // mode); with the legacy feature, 7 CTR and CBC ciphers times 16
        // MACs, plus the 4 others.
        prop_assert_eq!(suites.len(), if cfg!(feature = "legacy") { 116 } else { 34 });
        run(*first.get(&suites), *second.get(&suites), &lens, switch_at, &chunks, salt);
    }
}
