//! A Packetizer pair moving messages: over the in-memory pipe on one thread
//! (whole, and split into halves: the shared core's lock and the writer's
//! swap of output buffers on every send), and over 127.0.0.1 TCP with the
//! receiver on a second thread. Throughput is
//! payload bytes; the TCP figure includes delivery (each measurement ends
//! with a message the receiver acknowledges).

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssh_packetizer::pipe::{pipe, PipeReader, PipeWriter};
use ssh_packetizer::{
    CipherAlgorithm as C, MacAlgorithm as M, PacketReader, PacketWriter, Packetizer,
};

// Shared with the codec benches; this one needs only the keys.
#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

use support::keys;

const SIZES: [usize; 3] = [64, 1024, 32 * 1024];
const SUITES: [(C, M); 3] = [
    (C::Aes128Gcm, M::None),
    (C::ChaCha20Poly1305, M::None),
    (C::Aes128Ctr, M::HmacSha256Etm),
];
const DONE: u8 = 82;
/// Payload bytes per key set. Benchmarks push gigabytes through a pair,
/// past chacha20-poly1305's 1 GiB budget: they switch keys after this many,
/// untimed, as a real transport rekeys. (The pair has no initial kex, so
/// the core never asks for a rekey itself; the budget still ends a key set.)
const REKEY_EVERY: u64 = 256 << 20;

fn name(c: C, m: M) -> String {
    if m == M::None {
        c.to_string()
    } else {
        format!("{c}+{m}")
    }
}

/// Switches both directions' keys of a Packetizer pair (the same keys
/// again: the cipher's budget is what runs out, as a real transport would
/// rekey). `far` answers through its own handle, on this thread or another.
fn rekey_near<S: std::io::Read + std::io::Write>(p: &mut Packetizer<S>, c: C, m: M) {
    p.send_newkeys(keys(c, m)).unwrap();
    assert_eq!(p.read_message().unwrap().msg_type(), 21);
    p.set_inbound_cipher(keys(c, m)).unwrap();
}

/// The other end's half of [`rekey_near`], after it has read the NEWKEYS.
fn rekey_far<S: std::io::Read + std::io::Write>(p: &mut Packetizer<S>, c: C, m: M) {
    p.set_inbound_cipher(keys(c, m)).unwrap();
    p.send_newkeys(keys(c, m)).unwrap();
}

/// A sender and a receiver over the in-memory pipe, on one thread.
trait PipePair {
    /// Switches the keys of the sender's direction (untimed).
    fn rekey(&mut self, c: C, m: M);
    fn send(&mut self, payload: &[u8]);
    fn read(&mut self);
}

/// Two whole Packetizers.
impl<S: std::io::Read + std::io::Write> PipePair for (Packetizer<S>, Packetizer<S>) {
    fn rekey(&mut self, c: C, m: M) {
        let (tx, rx) = self;
        tx.send_newkeys(keys(c, m)).unwrap();
        assert_eq!(rx.read_message().unwrap().msg_type(), 21);
        rx.set_inbound_cipher(keys(c, m)).unwrap();
    }

    fn send(&mut self, payload: &[u8]) {
        self.0.send_message(payload).unwrap();
    }

    fn read(&mut self) {
        black_box(self.1.read_message().unwrap().payload());
    }
}

/// The sender's writer half and the receiver's reader half.
impl PipePair for (PacketWriter<PipeWriter>, PacketReader<PipeReader>) {
    fn rekey(&mut self, c: C, m: M) {
        let (tx, rx) = self;
        tx.send_newkeys(keys(c, m)).unwrap();
        assert_eq!(rx.read_message().unwrap().msg_type(), 21);
        rx.set_inbound_cipher(keys(c, m)).unwrap();
    }

    fn send(&mut self, payload: &[u8]) {
        self.0.send_message(payload).unwrap();
    }

    fn read(&mut self) {
        black_box(self.1.read_message().unwrap().payload());
    }
}

/// Benchmarks `pair` (made keyed by the first batch) for every size.
fn pipe_group<P: PipePair>(cr: &mut Criterion, label: &str, (c, m): (C, M), pair: impl Fn() -> P) {
    let mut group = cr.benchmark_group(format!("{label}/{}", name(c, m)));
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut pair = pair();
        let payload = vec![94u8; size];
        // Keyed before the first batch.
        let mut since_rekey = REKEY_EVERY;
        group.bench_function(BenchmarkId::from_parameter(size), |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                let mut rekeying = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    since_rekey += 64 * size as u64;
                    if since_rekey >= REKEY_EVERY {
                        since_rekey = 0;
                        // Gigabytes go through here: switch keys when the
                        // cipher's budget runs out, untimed.
                        let pause = Instant::now();
                        pair.rekey(c, m);
                        rekeying += pause.elapsed();
                    }
                    // Batches small enough for the pipe to hold.
                    let n = left.min(64);
                    left -= n;
                    for _ in 0..n {
                        pair.send(&payload);
                    }
                    for _ in 0..n {
                        pair.read();
                    }
                }
                start.elapsed() - rekeying
            })
        });
    }
    group.finish();
}

fn over_pipe(cr: &mut Criterion) {
    for suite in SUITES {
        pipe_group(cr, "pipe", suite, || {
            let (a, b) = pipe();
            (Packetizer::new(a), Packetizer::new(b))
        });
    }
}

/// As [`over_pipe`], through the split halves: the shared core's lock and
/// the writer's swap of output buffers on every send.
fn split_over_pipe(cr: &mut Criterion) {
    for suite in SUITES {
        pipe_group(cr, "split-pipe", suite, || {
            let (a, b) = pipe();
            let (_, writer) = Packetizer::new(a).split().unwrap();
            let (reader, _) = Packetizer::new(b).split().unwrap();
            (writer, reader)
        });
    }
}

fn over_tcp(cr: &mut Criterion) {
    for (c, m) in SUITES {
        let mut group = cr.benchmark_group(format!("tcp/{}", name(c, m)));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = thread::spawn(move || {
                let mut p = Packetizer::tcp(listener.accept().unwrap().0).unwrap();
                p.send_newkeys(keys(c, m)).unwrap();
                assert_eq!(p.read_message().unwrap().msg_type(), 21);
                p.set_inbound_cipher(keys(c, m)).unwrap();
                loop {
                    match p.read_message() {
                        Ok(msg) if msg.msg_type() == DONE => {
                            p.send_message(&[DONE]).unwrap();
                        }
                        Ok(msg) if msg.msg_type() == 21 => rekey_far(&mut p, c, m),
                        Ok(msg) => {
                            black_box(msg.payload());
                        }
                        Err(_) => return,
                    }
                }
            });
            let mut p = Packetizer::tcp(TcpStream::connect(addr).unwrap()).unwrap();
            p.send_newkeys(keys(c, m)).unwrap();
            assert_eq!(p.read_message().unwrap().msg_type(), 21);
            p.set_inbound_cipher(keys(c, m)).unwrap();
            let payload = vec![94u8; size];
            let mut since_rekey = 0u64;
            group.bench_function(BenchmarkId::from_parameter(size), |bench| {
                bench.iter_custom(|iters| {
                    let mut rekeying = Duration::ZERO;
                    let start = Instant::now();
                    for _ in 0..iters {
                        since_rekey += size as u64;
                        if since_rekey >= REKEY_EVERY {
                            since_rekey = 0;
                            let pause = Instant::now();
                            rekey_near(&mut p, c, m);
                            rekeying += pause.elapsed();
                        }
                        p.send_message(&payload).unwrap();
                    }
                    p.send_message(&[DONE]).unwrap();
                    assert_eq!(p.read_message().unwrap().msg_type(), DONE);
                    start.elapsed() - rekeying
                })
            });
            drop(p);
            server.join().unwrap();
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = over_pipe, split_over_pipe, over_tcp
}
criterion_main!(benches);
