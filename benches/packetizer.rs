//! A Packetizer pair moving messages: over the in-memory pipe on one thread,
//! and over 127.0.0.1 TCP with the receiver on a second thread. Throughput is
//! payload bytes; the TCP figure includes delivery (each measurement ends
//! with a message the receiver acknowledges).

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssh_packetizer::pipe::pipe;
use ssh_packetizer::{CipherAlgorithm as C, MacAlgorithm as M, Packetizer};

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

fn name(c: C, m: M) -> String {
    if m == M::None {
        c.to_string()
    } else {
        format!("{c}+{m}")
    }
}

fn over_pipe(cr: &mut Criterion) {
    for (c, m) in SUITES {
        let mut group = cr.benchmark_group(format!("pipe/{}", name(c, m)));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let (a, b) = pipe();
            let (mut tx, mut rx) = (Packetizer::new(a), Packetizer::new(b));
            tx.send_newkeys(keys(c, m)).unwrap();
            assert_eq!(rx.read_message().unwrap().msg_type(), 21);
            rx.set_inbound_cipher(keys(c, m)).unwrap();
            let payload = vec![94u8; size];
            group.bench_function(BenchmarkId::from_parameter(size), |bench| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        // Batches small enough for the pipe to hold.
                        let n = left.min(64);
                        left -= n;
                        for _ in 0..n {
                            tx.send_message(&payload).unwrap();
                        }
                        for _ in 0..n {
                            black_box(rx.read_message().unwrap().payload());
                        }
                    }
                    start.elapsed()
                })
            });
        }
        group.finish();
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
            group.bench_function(BenchmarkId::from_parameter(size), |bench| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        p.send_message(&payload).unwrap();
                    }
                    p.send_message(&[DONE]).unwrap();
                    assert_eq!(p.read_message().unwrap().msg_type(), DONE);
                    start.elapsed()
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
    targets = over_pipe, over_tcp
}
criterion_main!(benches);
