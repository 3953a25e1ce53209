//! The tokio drivers: the Packetizer (whole or split) under random
//! cancellation of its sends and reads, and `PacketCodec` under random key
//! switches.
//!
//! Cancellation follows the documented contract: a send polled at least
//! once has sealed its packet, which goes out once whatever happens to the
//! future; a send dropped before its first poll did nothing; a read dropped
//! before it returned loses no byte. So every message committed arrives
//! exactly once, in order, and nothing else does.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use futures_util::{SinkExt, StreamExt};
use ssh_packetizer::tokio::{PacketCodec, PacketReader, PacketWriter, Packetizer};
use ssh_packetizer::{CipherAlgorithm as C, CompressionAlgorithm, Config, Keys, MacAlgorithm as M};
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio_util::codec::Framed;

const SUITES: [(C, M); 4] = [
    (C::Aes128Ctr, M::HmacSha256Etm),
    (C::Aes256Gcm, M::None),
    (C::ChaCha20Poly1305, M::None),
    (C::Aes192Ctr, M::HmacSha1),
];

/// The keys of switch number `epoch`, picked by `pick`; some compress.
fn keys(pick: u8, epoch: u8) -> Keys {
    let (c, m) = SUITES[usize::from(pick) % SUITES.len()];
    let keys = crate::patterned_keys(c, m, epoch);
    if pick & 0x10 != 0 {
        keys.with_compression(CompressionAlgorithm::Zlib)
    } else {
        keys
    }
}

/// Payload `n` of `len` bytes: a data message numbered in its bytes.
fn payload(n: usize, len: usize) -> Vec<u8> {
    let mut p = vec![(n % 251) as u8; len.max(3)];
    p[0] = 94;
    p[1..3].copy_from_slice(&(n as u16).to_be_bytes());
    p
}

/// Polls `future` up to `polls` times with a waker that does nothing;
/// dropped unfinished, which cancels it.
fn poll_up_to<F: Future>(future: F, polls: u8) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A sender and a receiver, whole or split. One per input, so the
/// variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Ends {
    Whole(Packetizer<DuplexStream>, Packetizer<DuplexStream>),
    Split {
        writer: PacketWriter<WriteHalf<DuplexStream>>,
        reader: PacketReader<ReadHalf<DuplexStream>>,
        /// The halves not used, kept so the streams stay open.
        _idle: (
            PacketReader<ReadHalf<DuplexStream>>,
            PacketWriter<WriteHalf<DuplexStream>>,
        ),
    },
}

impl Ends {
    fn send(&mut self, payload: &[u8], polls: u8) -> Option<()> {
        let sent = match self {
            Ends::Whole(a, _) => poll_up_to(a.send_message(payload), polls),
            Ends::Split { writer: w, .. } => poll_up_to(w.send_message(payload), polls),
        };
        sent.map(|r| {
            r.expect("an honest send");
        })
    }

    fn newkeys(&mut self, keys: Keys, polls: u8) {
        let sent = match self {
            Ends::Whole(a, _) => poll_up_to(a.send_newkeys(keys), polls),
            Ends::Split { writer: w, .. } => poll_up_to(w.send_newkeys(keys), polls),
        };
        if let Some(r) = sent {
            r.expect("an honest NEWKEYS");
        }
    }

    fn flush(&mut self, polls: u8) {
        let flushed = match self {
            Ends::Whole(a, _) => poll_up_to(a.flush(), polls),
            Ends::Split { writer: w, .. } => poll_up_to(w.flush(), polls),
        };
        if let Some(r) = flushed {
            r.expect("an honest flush");
        }
    }

    fn read(&mut self, polls: u8) -> Option<Vec<u8>> {
        let got = match self {
            Ends::Whole(_, b) => poll_up_to(b.read_message(), polls)
                .map(|r| r.expect("honest bytes").payload().to_vec()),
            Ends::Split { reader: r, .. } => poll_up_to(r.read_message(), polls)
                .map(|r| r.expect("honest bytes").payload().to_vec()),
        };
        got
    }

    fn set_inbound(&mut self, keys: Keys) {
        match self {
            Ends::Whole(_, b) => b.set_inbound_cipher(keys),
            Ends::Split { reader: r, .. } => r.set_inbound_cipher(keys),
        }
        .expect("keys after NEWKEYS");
    }
}

/// Checks one message read against what was committed, installing the
/// keys after a NEWKEYS.
fn delivered(ends: &mut Ends, got: Vec<u8>, expected: &mut VecDeque<(Vec<u8>, Option<Keys>)>) {
    let (want, keys) = expected.pop_front().expect("a message nobody sent");
    assert_eq!(got, want, "a message changed, doubled or lost");
    if let Some(keys) = keys {
        ends.set_inbound(keys);
    }
}

/// The cancellation target. The first byte: room in the stream (so writes
/// block) and whole or split ends; then (operation, argument) pairs.
pub fn tokio_cancel(data: &[u8]) {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let rt = runtime();
    let _entered = rt.enter();
    let (a, b) = tokio::io::duplex(64 + usize::from(setup & 0x7f) * 16);
    let (a, b) = (
        Packetizer::with_config(a, Config::client()),
        Packetizer::with_config(b, Config::server()),
    );
    let mut ends = if setup & 0x80 == 0 {
        Ends::Whole(a, b)
    } else {
        let (a_reader, a_writer) = a.into_split();
        let (b_reader, b_writer) = b.into_split();
        Ends::Split {
            writer: a_writer,
            reader: b_reader,
            _idle: (a_reader, b_writer),
        }
    };
    let mut expected: VecDeque<(Vec<u8>, Option<Keys>)> = VecDeque::new();
    let (mut sent, mut epoch) = (0usize, 0u8);
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        let polls = arg & 3;
        match op % 4 {
            0 | 1 => {
                let p = payload(sent, usize::from(*op) * 4 + 3);
                ends.send(&p, polls);
                // Polled once, the packet is sealed and will go out.
                if polls > 0 {
                    expected.push_back((p, None));
                    sent += 1;
                }
            }
            2 => {
                if let Some(got) = ends.read(polls + 1) {
                    delivered(&mut ends, got, &mut expected);
                }
            }
            _ if arg & 0x80 != 0 && polls > 0 => {
                epoch = epoch.wrapping_add(1);
                let k = keys(*arg >> 2, epoch);
                ends.newkeys(k.clone(), polls);
                expected.push_back((vec![21], Some(k)));
            }
            _ => ends.flush(polls),
        }
    }
    // Drain: everything committed arrives, in order (a packet larger than
    // the stream's room takes several rounds), and nothing more.
    let mut idle = 0;
    while !expected.is_empty() {
        ends.flush(4);
        match ends.read(8) {
            Some(got) => {
                delivered(&mut ends, got, &mut expected);
                idle = 0;
            }
            None => {
                idle += 1;
                assert!(idle < 10_000, "a committed message never arrived");
            }
        }
    }
    ends.flush(4);
    if let Some(extra) = ends.read(8) {
        panic!("a message nobody sent arrived: {extra:?}");
    }
    drop(ends);
}

/// `PacketCodec` in `Framed` under random key switches: pairs of
/// (operation, argument) send data, switch keys (`Encoder<Keys>`), or read;
/// every message arrives once and in order, and the codec never fails.
pub fn codec_keys(data: &[u8]) {
    let rt = runtime();
    rt.block_on(async {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut tx = Framed::new(a, PacketCodec::new(Config::client()));
        let mut rx = Framed::new(b, PacketCodec::new(Config::server()));
        let mut expected: VecDeque<(Vec<u8>, Option<Keys>)> = VecDeque::new();
        let (mut sent, mut epoch) = (0usize, 0u8);
        let mut rest = data;
        while let [op, arg, tail @ ..] = rest {
            rest = tail;
            // Nothing reads while the script sends: keep what is in flight
            // well under the stream's room, or the send would wait forever.
            let in_flight: usize = expected.iter().map(|(p, _)| p.len() + 64).sum();
            if in_flight > 1 << 19 {
                take_one(&mut rx, &mut expected).await;
            }
            match op % 3 {
                0 => {
                    let p = payload(sent, usize::from(*arg) * 37 + 3);
                    tx.send(&p[..]).await.expect("an honest send");
                    expected.push_back((p, None));
                    sent += 1;
                }
                1 => {
                    epoch = epoch.wrapping_add(1);
                    let k = keys(*arg, epoch);
                    tx.send(k.clone()).await.expect("an honest NEWKEYS");
                    expected.push_back((vec![21], Some(k)));
                }
                _ if expected.is_empty() => {}
                _ => take_one(&mut rx, &mut expected).await,
            }
        }
        while !expected.is_empty() {
            take_one(&mut rx, &mut expected).await;
        }
    });
}

/// Reads the next item, checks it against the oldest message sent, and
/// installs the keys after a NEWKEYS.
async fn take_one(
    rx: &mut Framed<DuplexStream, PacketCodec>,
    expected: &mut VecDeque<(Vec<u8>, Option<Keys>)>,
) {
    let (want, keys) = expected.pop_front().expect("a message was sent");
    let item = rx.next().await.expect("the stream ended early");
    let got = item.expect("honest bytes");
    assert_eq!(
        got.payload(),
        &want[..],
        "a message changed, doubled or lost"
    );
    if let Some(keys) = keys {
        rx.codec_mut()
            .set_inbound_keys(keys)
            .expect("keys after NEWKEYS");
    }
}
