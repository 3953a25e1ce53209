//! zlib and zlib@openssh.com through Sealer/Opener and two Packetizers.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::keys_for;
use ssh_packetizer::pipe::pipe;
use ssh_packetizer::{
    CipherAlgorithm as C, CompressionAlgorithm as Z, Error, InputBuffer, MacAlgorithm as M, Opened,
    Opener, Packetizer, Sealer,
};

fn keys(seed: u8, z: Z) -> ssh_packetizer::Keys {
    keys_for(C::Aes256Gcm, M::None, seed).with_compression(z)
}

/// A pipe end that also records what it writes.
struct Tapped {
    end: ssh_packetizer::pipe::PipeEnd,
    seen: Arc<Mutex<usize>>,
}

impl std::io::Read for Tapped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.end.read(buf)
    }
}

impl Write for Tapped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.end.write(buf)?;
        *self.seen.lock().unwrap() += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn text(i: usize) -> Vec<u8> {
    let mut m = vec![94];
    m.extend(
        format!("line {i}: the quick brown fox jumps over the lazy dog. ")
            .repeat(200)
            .bytes(),
    );
    m
}

#[test]
fn zlib_both_ways_and_the_wire_shrinks() {
    let (a, b) = pipe();
    let seen = Arc::new(Mutex::new(0));
    let mut client = Packetizer::new(Tapped {
        end: a,
        seen: seen.clone(),
    });
    let mut server = Packetizer::new(b);
    common::switch_keys(&mut client, &mut server, keys(1, Z::Zlib));
    common::switch_keys(&mut server, &mut client, keys(2, Z::Zlib));
    let mut plain = 0;
    for i in 0..50 {
        let m = text(i);
        plain += m.len();
        client.send_message(&m).unwrap();
        assert_eq!(server.read_message().unwrap().payload(), &m[..]);
        server.send_message(&m).unwrap();
        assert_eq!(client.read_message().unwrap().payload(), &m[..]);
    }
    let wire = *seen.lock().unwrap();
    assert!(
        wire * 10 < plain,
        "{wire} bytes on the wire for {plain} of text"
    );
}

#[test]
fn delayed_compression_waits_for_authentication_then_survives_rekeys() {
    let (mut s, mut o) = (Sealer::new(), Opener::new());
    let mut o_in = InputBuffer::new();
    s.set_keys(keys(1, Z::ZlibOpenSsh)).unwrap();
    o.set_keys(keys(1, Z::ZlibOpenSsh)).unwrap();
    let m = text(0);
    let mut wire = Vec::new();
    s.seal(&m, &mut wire).unwrap();
    assert!(!s.is_compressing());
    assert!(wire.len() > m.len(), "not compressed before authentication");
    o.feed(&mut o_in, &wire);
    assert!(matches!(o.next_packet(&mut o_in).unwrap(), Opened::Packet(p) if p.payload() == m));

    s.start_delayed_compression();
    o.start_delayed_compression();
    for round in 0..3 {
        if round > 0 {
            // A rekey after authentication compresses from its first packet.
            s.set_keys(keys(round + 1, Z::ZlibOpenSsh)).unwrap();
            o.set_keys(keys(round + 1, Z::ZlibOpenSsh)).unwrap();
        }
        assert!(s.is_compressing() && o.is_compressing());
        wire.clear();
        s.seal(&m, &mut wire).unwrap();
        assert!(wire.len() * 10 < m.len());
        o.feed(&mut o_in, &wire);
        assert!(matches!(o.next_packet(&mut o_in).unwrap(), Opened::Packet(p) if p.payload() == m));
    }
}

#[test]
fn a_zlib_bomb_stops_at_the_maximum_packet_length() {
    let mut s = Sealer::new();
    s.set_max_packet_len(4 * 1024 * 1024).unwrap();
    s.set_keys(keys(1, Z::Zlib)).unwrap();
    let mut wire = Vec::new();
    s.seal(&vec![94u8; 3 * 1024 * 1024], &mut wire).unwrap();
    assert!(wire.len() < 10_000, "{}", wire.len());
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    o.set_keys(keys(1, Z::Zlib)).unwrap();
    o.feed(&mut o_in, &wire);
    let err = o.next_packet(&mut o_in).unwrap_err();
    assert!(
        matches!(err, Error::Decompress { reason } if reason.contains("maximum")),
        "{err:?}"
    );
    assert!(matches!(
        o.next_packet(&mut o_in),
        Err(Error::Failed(first)) if matches!(*first, Error::Decompress { .. })
    ));
}

#[test]
fn a_payload_that_cannot_fit_once_compressed_is_refused_before_compressing() {
    let mut s = Sealer::new();
    s.set_keys(keys(1, Z::Zlib)).unwrap();
    let mut wire = Vec::new();
    let err = s.seal(&vec![1u8; 262_000], &mut wire).unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }));
    assert!(wire.is_empty());
    // The stream was not touched: the next packet still inflates.
    s.seal(&text(1), &mut wire).unwrap();
    let mut o = Opener::new();
    let mut o_in = InputBuffer::new();
    o.set_keys(keys(1, Z::Zlib)).unwrap();
    o.feed(&mut o_in, &wire);
    assert!(
        matches!(o.next_packet(&mut o_in).unwrap(), Opened::Packet(p) if p.payload() == text(1))
    );
}

#[test]
fn a_large_inflated_payload_then_a_small_one() {
    // The inflate buffer gives back the room a large payload took, once that
    // packet is done: the next payload must come out whole.
    let (a, b) = pipe();
    let (mut client, mut server) = (Packetizer::new(a), Packetizer::new(b));
    common::switch_keys(&mut client, &mut server, keys(1, Z::Zlib));
    let large = text(7).repeat(20);
    assert!(large.len() > 200_000);
    for m in [large.clone(), vec![94, 1], large, vec![94, 2, 3]] {
        client.send_message(&m).unwrap();
        assert_eq!(server.read_message().unwrap().payload(), &m[..]);
    }
}
