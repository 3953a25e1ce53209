//! The fuzz targets' logic, kept out of the target files so plain tests can
//! run it on the seed corpus, and the seeds themselves.
//!
//! Each harness asserts invariants, not just the absence of a panic:
//! - the Opener never asks for more than one maximum packet plus its MAC;
//! - under a MAC or AEAD tag it never accepts a packet that is not exactly
//!   what a Sealer with the same keys would have sent (zero padding, as the
//!   seeds are made): a forged or corrupted packet can never come out;
//! - the identification reader never returns a line over its bounds;
//! - sealing then opening any payloads in any chunking gives them back;
//! - the connection core, driven by any interleaving of bytes, time and
//!   calls, never fails between two honest ends, keeps its input bound and
//!   never hands a driver a deadline it has already passed.

use ssh_packetizer::KeyMaterial;
use std::io::{self, Read, Write};

use ssh_packetizer::{
    CipherAlgorithm as C, Error, InputBuffer, Keys, MacAlgorithm as M, Opened, Opener, Packetizer,
    Sealer, ZeroPadding,
};

mod connection;
mod hostile_split;
mod identification;
mod tokio_drivers;
pub use connection::connection;
pub use hostile_split::hostile_split;
pub use identification::identification_server;
pub use tokio_drivers::{codec_keys, tokio_cancel};

/// The modes the Opener targets fuzz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No cipher, no MAC.
    Clear,
    /// aes128-ctr + hmac-sha2-256: encrypt-and-MAC, the length encrypted.
    CtrHmac,
    /// aes256-ctr + hmac-sha2-256-etm@openssh.com: encrypt-then-MAC.
    CtrEtm,
    /// aes128-gcm@openssh.com.
    Gcm,
    /// chacha20-poly1305@openssh.com.
    ChaCha,
}

impl Mode {
    /// Every mode, in target order.
    pub const ALL: [Mode; 5] = [
        Mode::Clear,
        Mode::CtrHmac,
        Mode::CtrEtm,
        Mode::Gcm,
        Mode::ChaCha,
    ];

    /// The fuzz target's name.
    pub fn target(self) -> &'static str {
        match self {
            Mode::Clear => "opener_clear",
            Mode::CtrHmac => "opener_ctr_hmac",
            Mode::CtrEtm => "opener_ctr_etm",
            Mode::Gcm => "opener_gcm",
            Mode::ChaCha => "opener_chacha",
        }
    }

    fn suite(self) -> (C, M) {
        match self {
            Mode::Clear => (C::None, M::None),
            Mode::CtrHmac => (C::Aes128Ctr, M::HmacSha256),
            Mode::CtrEtm => (C::Aes256Ctr, M::HmacSha256Etm),
            Mode::Gcm => (C::Aes128Gcm, M::None),
            Mode::ChaCha => (C::ChaCha20Poly1305, M::None),
        }
    }

    /// The fixed keys of this mode.
    pub fn keys(self) -> Keys {
        let (c, m) = self.suite();
        patterned_keys(c, m, 0)
    }
}

/// Keys of the lengths `c` and `m` take, in a pattern `salt` varies.
pub(crate) fn patterned_keys(c: C, m: M, salt: u8) -> Keys {
    let bytes = |len: usize, k: u8| (0..len).map(|i| (i as u8) ^ k ^ salt).collect::<Vec<_>>();
    Keys::new(
        c,
        m,
        KeyMaterial {
            key: &bytes(c.spec().key_len(), 0x11),
            iv: &bytes(c.spec().iv_len(), 0x22),
            mac_key: &bytes(m.spec().key_len(), 0x33),
        },
    )
    .expect("lengths from the table")
}

/// The first input byte sets how many bytes each feed hands over (0: all).
fn chunking(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&0, rest)) => (usize::MAX, rest),
        Some((&n, rest)) => (usize::from(n), rest),
        None => (usize::MAX, &[]),
    }
}

/// The Opener target: `data` is a chunk size byte, then wire bytes.
pub fn opener(mode: Mode, data: &[u8]) {
    let (chunk, wire) = chunking(data);
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    opener.set_keys(mode.keys()).expect("fixed keys");
    let mut mirror = Sealer::new();
    mirror.set_keys(mode.keys()).expect("fixed keys");
    mirror.set_padding_source(Box::new(ZeroPadding));
    let authenticated = mode != Mode::Clear;

    let mut offered: usize = 0; // bytes fed so far
    let mut accepted = 0; // wire bytes of the packets returned
    let mut resealed = Vec::new();
    loop {
        let end = offered.saturating_add(chunk).min(wire.len());
        offered += opener.feed(&mut opener_in, &wire[offered..end]);
        loop {
            match opener.next_packet(&mut opener_in) {
                Ok(Opened::Packet(p)) => {
                    assert!(!p.payload().is_empty());
                    if authenticated {
                        resealed.clear();
                        let seqno = mirror.seal(p.payload(), &mut resealed).expect("reseal");
                        assert_eq!(seqno, p.seqno());
                        let original =
                            &wire[accepted..accepted + resealed.len().min(wire.len() - accepted)];
                        assert_eq!(original, &resealed[..], "accepted a packet no Sealer sent");
                        accepted += resealed.len();
                    }
                }
                Ok(Opened::NeedMore(n)) => {
                    assert!(n >= 1 && n <= opener.max_wire_len(), "asked for {n}");
                    break;
                }
                Ok(Opened::AwaitingKeys) => {
                    // NEWKEYS: both ends start the same keys afresh.
                    opener.set_keys(mode.keys()).expect("fixed keys");
                    mirror.set_keys(mode.keys()).expect("fixed keys");
                }
                Ok(other) => panic!("{other:?}"),
                Err(e) => {
                    assert!(
                        e.is_peer_fault() || matches!(e, Error::SequenceWrapped),
                        "{e:?}"
                    );
                    let later = opener.next_packet(&mut opener_in).map(|_| ()).unwrap_err();
                    assert!(matches!(later, Error::Failed(_)), "{later:?}");
                    return;
                }
            }
        }
        if offered == wire.len() {
            return;
        }
    }
}

/// A stream over fuzz input: reads hand out the input in pieces whose sizes
/// come from the input too, with read timeouts where it says so; writes go
/// nowhere.
struct FuzzStream<'a> {
    input: &'a [u8],
}

impl Read for FuzzStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((&control, rest)) = self.input.split_first() else {
            return Ok(0);
        };
        self.input = rest;
        if control == 0xFF {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = usize::from(control)
            .max(1)
            .min(self.input.len())
            .min(buf.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for FuzzStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The identification target: the bytes a peer sends before its first packet.
pub fn banner(data: &[u8]) {
    let mut p = Packetizer::new(FuzzStream { input: data });
    // The stream's timeouts are scripted: no real waiting for them.
    p.set_nonblocking_backoff(std::time::Duration::ZERO);
    match p.read_identification() {
        Ok(id) => {
            assert!(id.line.starts_with(b"SSH-"));
            // OpenSSH's bound: 8192 bytes besides the line ending (we
            // send at most 255, but take what OpenSSH takes).
            assert!(id.line.len() <= 8192, "{} bytes", id.line.len());
            assert!(id.pre_banner.len() <= 1024);
            assert!(id.pre_banner.iter().map(Vec::len).sum::<usize>() <= 64 * 1024);
            assert!(!id.line.contains(&0) && !id.line.contains(&b'\r'));
        }
        Err(e) => {
            assert!(p.connection().is_closed(), "{e:?} left the Packetizer open");
        }
    }
}

/// The round-trip target: a suite byte, then records of (length high, length
/// low, chunk) with payload bytes drawn from what follows.
pub fn roundtrip(data: &[u8]) {
    let Some((&suite, mut rest)) = data.split_first() else {
        return;
    };
    let mode = Mode::ALL[usize::from(suite) % Mode::ALL.len()];
    let mut payloads = Vec::new();
    let mut chunks = Vec::new();
    while let [hi, lo, chunk, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)) % 40_000 + 1;
        let take = len.min(tail.len());
        let mut payload = tail[..take].to_vec();
        payload.resize(len, 0x5e);
        payloads.push(payload);
        chunks.push(usize::from(*chunk).max(1));
        rest = &tail[take..];
    }
    let mut sealer = Sealer::new();
    let mut opener = Opener::new();
    let mut opener_in = InputBuffer::new();
    sealer.set_keys(mode.keys()).expect("fixed keys");
    opener.set_keys(mode.keys()).expect("fixed keys");
    let mut wire = Vec::new();
    for p in &payloads {
        if p[0] == 21 {
            // NEWKEYS: the Opener stops after it, so both ends re-key.
            sealer.seal_newkeys(mode.keys(), &mut wire).expect("fits");
        } else {
            sealer.seal(p, &mut wire).expect("payloads fit");
        }
    }
    let mut got = Vec::new();
    let mut at = 0;
    let mut sizes = chunks.iter().cycle();
    while at < wire.len() || opener_in.buffered() > 0 {
        let n = sizes
            .next()
            .copied()
            .unwrap_or(usize::MAX)
            .min(wire.len() - at);
        at += opener.feed(&mut opener_in, &wire[at..at + n]);
        loop {
            match opener
                .next_packet(&mut opener_in)
                .expect("our own packets open")
            {
                Opened::Packet(p) => got.push(p.payload().to_vec()),
                Opened::AwaitingKeys => opener.set_keys(mode.keys()).expect("fixed keys"),
                _ => break,
            }
        }
    }
    let expected: Vec<Vec<u8>> = payloads
        .iter()
        .map(|p| if p[0] == 21 { vec![21] } else { p.clone() })
        .collect();
    assert_eq!(got, expected);
}

/// The Packetizer target: identification, then packets under the mode the
/// first byte picks. With that byte's high bit clear, over a stream that
/// drips, stalls and ends as the input says; with it set, over the in-memory
/// pipe holding the input, then EOF.
pub fn packetizer(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mode = Mode::ALL[usize::from(pick & 0x7F) % Mode::ALL.len()];
    if pick & 0x80 == 0 {
        drive(Packetizer::new(FuzzStream { input: rest }), mode);
    } else {
        let (mut peer, ours) = ssh_packetizer::pipe::pipe();
        // The pipe holds 4 MiB: all of any fuzz input, written up front.
        peer.write_all(rest)
            .expect("the pipe takes the whole input");
        // EOF after the input; our own writes still have somewhere to go.
        peer.shutdown_write();
        drive(Packetizer::new(ours), mode);
        drop(peer);
    }
}

fn drive<S: Read + Write>(mut p: Packetizer<S>, mode: Mode) {
    // The stream's timeouts are scripted: no real waiting for them.
    p.set_nonblocking_backoff(std::time::Duration::ZERO);
    p.set_keepalive(Some(std::time::Duration::ZERO), |w| {
        w.send_message(&[2]).map(|_| ())
    });
    if p.read_identification().is_err() {
        assert!(p.connection().is_closed());
        return;
    }
    // Both directions keyed: the initial kex is done, the keepalive runs.
    // (Over the pipe the peer is gone already: the write fails.)
    if p.send_newkeys(mode.keys()).is_err() {
        assert!(p.connection().is_closed());
        return;
    }
    p.set_inbound_cipher(mode.keys()).expect("fixed keys");
    for _ in 0..10_000 {
        match p.read_message() {
            Ok(m) => assert!(!m.payload().is_empty()),
            // The peer's KEXINIT asks for one: reported once, not fatal.
            Err(Error::NeedRekey) => assert!(p.need_rekey() && !p.connection().is_closed()),
            Err(Error::KeysPending) => p.set_inbound_cipher(mode.keys()).expect("fixed keys"),
            Err(_) => {
                assert!(p.connection().is_closed());
                return;
            }
        }
    }
}

/// The seed corpus: (target, seed) pairs, made the same way every time.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    // The connection target: a kex each way with data around it, bytes
    // moved in pieces, the clock jumping (op >> 1 picks the operation, the
    // low bit the end).
    let data = |end: u8| end;
    let kexinit = |end: u8| 2 | end;
    let newkeys = |end: u8| 4 | end;
    let carry = |end: u8| 8 | end;
    let read = |end: u8| 10 | end;
    let time = 12u8;
    for pick in [0u8, 0x81, 2, 0x83, 4] {
        let mut seed = vec![pick];
        for end in [0u8, 1] {
            seed.extend_from_slice(&[data(end), 40, kexinit(end), 0, data(end), 7]);
            seed.extend_from_slice(&[carry(end), 3, read(end ^ 1), 0, newkeys(end), 0]);
            seed.extend_from_slice(&[carry(end), 255, read(end ^ 1), 0, time, 100]);
        }
        seed.extend_from_slice(&[
            carry(0),
            255,
            carry(1),
            255,
            read(0),
            0,
            read(1),
            0,
            time,
            80,
        ]);
        out.push(("connection", seed));
    }
    let payloads: [&[u8]; 4] = [&[20; 30], &[94, 1, 2, 3], &[21], &[94; 700]];
    for mode in Mode::ALL {
        let mut sealer = Sealer::new();
        sealer.set_keys(mode.keys()).expect("fixed keys");
        sealer.set_padding_source(Box::new(ZeroPadding));
        let mut wire = Vec::new();
        for p in payloads {
            if p == [21] {
                sealer.seal_newkeys(mode.keys(), &mut wire).expect("fits");
            } else {
                sealer.seal(p, &mut wire).expect("seed payloads fit");
            }
        }
        for chunk in [0u8, 1, 17] {
            out.push((mode.target(), [&[chunk][..], &wire].concat()));
        }
        out.push((mode.target(), [&[0][..], &wire[..wire.len() / 2]].concat()));
        out.push((
            "roundtrip",
            [
                &[mode as u8, 0, 10, 3][..],
                b"0123456789",
                &[1, 0, 200],
                &[7; 100],
            ]
            .concat(),
        ));
    }
    let clear = {
        let mut sealer = Sealer::new();
        let mut wire = Vec::new();
        for p in payloads {
            sealer.seal(p, &mut wire).expect("seed payloads fit");
        }
        wire
    };
    let banners: [&[u8]; 3] = [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"hello\r\nplease wait\nSSH-2.0-x y\r\n",
        b"SSH-2.0-old\n",
    ];
    for b in banners {
        out.push(("banner", [b, &clear[..]].concat()));
        // As the Packetizer target's stream sees it: a size byte per read.
        let mut framed = vec![0u8];
        for piece in [b, &clear[..]] {
            for chunk in piece.chunks(50) {
                framed.push(chunk.len() as u8);
                framed.extend_from_slice(chunk);
                framed.push(0xFF); // a read timeout
            }
        }
        out.push(("packetizer", framed));
        out.push(("packetizer", [&[0x80][..], b, &clear[..]].concat()));
    }
    // The server's identification: one whole, one in pieces, one with a
    // line before it (refused), one cut short.
    for (piece, stream) in [
        (0u8, &b"SSH-2.0-OpenSSH_9.6\r\n"[..]),
        (7, b"SSH-2.0-x y\n"),
        (0, b"hello\r\nSSH-2.0-x\r\n"),
        (3, b"SSH-2.0-cut"),
    ] {
        out.push((
            "identification_server",
            [&[piece][..], stream, &clear[..]].concat(),
        ));
    }
    // The split halves: a clear stream in pieces, reads, sends, a key
    // switch, partial writes, time, a broken write.
    let mut split = Vec::new();
    for chunk in clear.chunks(40) {
        split.extend_from_slice(&[0, chunk.len() as u8]);
        split.extend_from_slice(chunk);
        split.extend_from_slice(&[2, 0]);
    }
    split.extend_from_slice(&[3, 10, 5, 255, 4, 1, 3, 5, 5, 7, 5, 255, 7, 30, 6, 0, 3, 1]);
    out.push(("hostile_split", split));
    // Cancellation: sends polled not at all, once and more, reads cut
    // short, a key switch, over whole and split ends.
    for setup in [0x10u8, 0x90, 0x00] {
        out.push((
            "tokio_cancel",
            vec![
                setup, 0, 1, 1, 2, 2, 0, 3, 0x81, 0, 3, 2, 1, 0, 0, 3, 1, 1, 3, 2, 3, 3, 0xd2, 0, 2,
            ],
        ));
    }
    out.push((
        "codec_keys",
        vec![
            0, 5, 2, 0, 1, 0, 0, 7, 1, 0x13, 0, 200, 2, 0, 2, 0, 1, 2, 0, 1,
        ],
    ));
    out
}

/// Runs the harness of `target` on `data`: the tests replay the whole
/// committed corpus through it.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "banner" => banner(data),
        "roundtrip" => roundtrip(data),
        "packetizer" => packetizer(data),
        "connection" => connection(data),
        "identification_server" => identification_server(data),
        "hostile_split" => hostile_split(data),
        "tokio_cancel" => tokio_cancel(data),
        "codec_keys" => codec_keys(data),
        _ => {
            let mode = Mode::ALL
                .into_iter()
                .find(|m| m.target() == target)
                .unwrap_or_else(|| panic!("no target {target}"));
            opener(mode, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
    }

    /// The committed seeds are what `seeds()` makes; `UPDATE_SEEDS=1 cargo
    /// test` writes them.
    #[test]
    fn committed_seeds_are_current() {
        let update = std::env::var_os("UPDATE_SEEDS").is_some();
        let mut counts = std::collections::HashMap::new();
        for (target, seed) in seeds() {
            let n = counts.entry(target).or_insert(0);
            let path = corpus(target).join(format!("seed-{n:02}"));
            *n += 1;
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &seed).unwrap();
            } else {
                let committed = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e}; run UPDATE_SEEDS=1 cargo test", path.display())
                });
                assert_eq!(
                    committed,
                    seed,
                    "{} is stale; run UPDATE_SEEDS=1 cargo test",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn every_target_accepts_its_seeds_and_the_opener_reads_them_whole() {
        for (target, seed) in seeds() {
            run(target, &seed);
        }
        // A whole seed stream really opens: all four packets come out.
        let (_, seed) = seeds()
            .into_iter()
            .find(|(t, _)| *t == "opener_gcm")
            .unwrap();
        let mut o = Opener::new();
        let mut o_in = InputBuffer::new();
        o.set_keys(Mode::Gcm.keys()).unwrap();
        o.feed(&mut o_in, &seed[1..]);
        let mut n = 0;
        loop {
            match o.next_packet(&mut o_in) {
                Ok(Opened::Packet(_)) => n += 1,
                Ok(Opened::AwaitingKeys) => o.set_keys(Mode::Gcm.keys()).unwrap(),
                _ => break,
            }
        }
        assert_eq!(n, 4);
    }

    /// Every input committed under corpus/ (the seeds and what the
    /// campaigns found) still runs clean: the corpus replayed.
    #[test]
    fn the_committed_corpus_replays() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut replayed = 0;
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            let target = dir.file_name().unwrap().to_str().unwrap().to_owned();
            for file in std::fs::read_dir(&dir).unwrap() {
                run(&target, &std::fs::read(file.unwrap().path()).unwrap());
                replayed += 1;
            }
        }
        assert!(replayed >= seeds().len(), "{replayed} inputs replayed");
    }

    #[test]
    fn a_forged_packet_trips_the_invariant_check() {
        // The invariant is real: a packet that verifies but differs from the
        // zero-padded re-seal (random padding) is reported.
        let mut s = Sealer::new();
        s.set_keys(Mode::ChaCha.keys()).unwrap();
        let mut wire = vec![0u8];
        s.seal(&[94, 1], &mut wire).unwrap();
        let caught = std::panic::catch_unwind(|| opener(Mode::ChaCha, &wire));
        assert!(caught.is_err());
    }
}
