//! The tamper campaign, after OpenSSH's integrity test: every byte of a
//! 20-packet stream flipped in turn, under every suite with a cipher. The
//! Opener must fail before it hands out anything from the tampered packet,
//! fail with a peer-fault error, and never ask for more than one maximum
//! packet. Under CBC encrypt-and-MAC (feature `legacy`) a failure is
//! reported only after OpenSSH's discard has taken one maximum packet, so
//! those suites run with the smallest maximum (35,000 bytes) and junk after
//! the stream for the discard to take, and flip each byte one way rather
//! than three.

mod common;

use common::{keys_for, payload, supported_suites};
use ssh_packetizer::algorithm::CipherFamily;
use ssh_packetizer::{CipherAlgorithm, Error, InputBuffer, MacAlgorithm, Opened, Opener, Sealer};

/// The smallest maximum packet length, for the suites whose failures take a
/// whole maximum packet (CBC encrypt-and-MAC).
const SMALL_MAX: usize = 35_000;

/// Whether a failure in this suite runs the discard first.
fn discards(c: CipherAlgorithm, m: MacAlgorithm) -> bool {
    c.spec().family() == CipherFamily::Cbc && !m.spec().etm()
}

const SIZES: [usize; 20] = [
    1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 100, 127, 128, 200, 255, 256, 300, 500, 1000, 5,
];
const FLIPS: [u8; 3] = [0x01, 0x80, 0xFF];

struct Stream {
    wire: Vec<u8>,
    starts: Vec<usize>,
    payloads: Vec<Vec<u8>>,
}

fn stream(c: CipherAlgorithm, m: MacAlgorithm) -> Stream {
    let mut sealer = Sealer::new();
    sealer.set_keys(keys_for(c, m, 3)).unwrap();
    let mut s = Stream {
        wire: Vec::new(),
        starts: Vec::new(),
        payloads: Vec::new(),
    };
    for (i, &n) in SIZES.iter().enumerate() {
        let p = payload(n, i as u64);
        s.starts.push(s.wire.len());
        sealer.seal(&p, &mut s.wire).unwrap();
        s.payloads.push(p);
    }
    s
}

/// Everything the Opener hands out of `wire`, and how it stopped.
fn run(c: CipherAlgorithm, m: MacAlgorithm, wire: &[u8]) -> (Vec<Vec<u8>>, Result<usize, Error>) {
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    opener.set_keys(keys_for(c, m, 3)).unwrap();
    if discards(c, m) {
        opener.set_max_packet_len(SMALL_MAX).unwrap();
    }
    let mut out = Vec::new();
    let mut rest = wire;
    loop {
        rest = &rest[opener.feed(&mut opener_in, rest)..];
        loop {
            match opener.next_packet(&mut opener_in) {
                Ok(Opened::Packet(p)) => out.push(p.payload().to_vec()),
                Ok(Opened::NeedMore(n)) => {
                    assert!(n <= opener.max_wire_len(), "asked for {n} bytes");
                    if rest.is_empty() {
                        return (out, Ok(n));
                    }
                    break;
                }
                Ok(other) => panic!("{other:?}"),
                Err(e) => return (out, Err(e)),
            }
        }
    }
}

#[test]
fn every_flipped_byte_is_caught_before_its_payload_in_every_suite() {
    let mut runs = 0;
    for (c, m) in supported_suites() {
        if c == CipherAlgorithm::None {
            continue; // nothing to catch tampering with in the clear
        }
        let s = stream(c, m);
        let (clean, end) = run(c, m, &s.wire);
        assert_eq!(clean, s.payloads, "{c}+{m}");
        assert!(end.is_ok());
        for offset in 0..s.wire.len() {
            let hit = s.starts.partition_point(|&start| start <= offset) - 1;
            let in_length = offset - s.starts[hit] < 4;
            // A discard decrypts and MACs one maximum packet per failure:
            // those suites flip each byte one way, the others three.
            let flips = if discards(c, m) {
                &FLIPS[1..2]
            } else {
                &FLIPS[..]
            };
            for &flip in flips {
                let mut bad = s.wire.clone();
                bad[offset] ^= flip;
                if discards(c, m) {
                    // Junk after the stream, for the discard to take.
                    bad.resize(bad.len() + SMALL_MAX + 100, 0);
                }
                let (out, end) = run(c, m, &bad);
                runs += 1;
                assert_eq!(
                    out,
                    s.payloads[..hit],
                    "{c}+{m} @{offset} ^{flip:#x}: tampered data came out"
                );
                match end {
                    Err(e) if discards(c, m) => assert!(
                        matches!(e, Error::PacketCorrupt { .. }),
                        "{c}+{m} @{offset} ^{flip:#x}: {e:?}"
                    ),
                    Err(e) => assert!(e.is_peer_fault(), "{c}+{m} @{offset} ^{flip:#x}: {e:?}"),
                    // A length made larger can leave the Opener waiting for
                    // bytes that never come; nothing else may end quietly.
                    // (With junk after the stream, a discard always ends.)
                    Ok(_) => assert!(
                        in_length && !discards(c, m),
                        "{c}+{m} @{offset} ^{flip:#x}: accepted"
                    ),
                }
            }
        }
    }
    assert!(runs > 21 * 3 * 3000, "{runs}");
}
