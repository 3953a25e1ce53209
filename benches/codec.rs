//! Seal and open per suite and payload size, each beside the raw cipher + MAC
//! over the same bytes in the same run, so the ratio shows what the framing
//! costs. Criterion measures one benchmark after another, so on a shared
//! machine drift between them can exceed the few percent being measured;
//! `cargo bench --bench ratio` interleaves the two for ratios you can quote.
//!
//! Groups are named `seal/<suite>` and `open/<suite>`, with `codec/<size>`
//! (the slice APIs: `seal`, `feed` + `next_packet`, which copy the payload or
//! the wire bytes once), `in_place/<size>` (`finish_packet` on a payload
//! already in the output buffer, `open_in_place` on the caller's buffer) and
//! `raw/<size>` inside; filter with e.g. `cargo bench --bench codec -- aes128-ctr`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssh_packetizer::{CipherAlgorithm, Frame, Keys, MacAlgorithm, Mode, Opened, Opener, Sealer};

#[path = "raw/mod.rs"]
mod raw;

const SIZES: [usize; 3] = [64, 1024, 32 * 1024];
/// Packets sealed ahead of each timed batch when benchmarking the Opener.
const OPEN_BATCH: u64 = 64;

fn suites() -> Vec<(CipherAlgorithm, MacAlgorithm)> {
    let mut out = Vec::new();
    for &c in CipherAlgorithm::ALL {
        for &m in MacAlgorithm::ALL {
            let runnable = Mode::of(c, m).is_ok_and(|mode| mode != Mode::Clear)
                && Sealer::new().set_keys(keys(c, m)).is_ok();
            if runnable {
                out.push((c, m));
            }
        }
    }
    out
}

fn keys(c: CipherAlgorithm, m: MacAlgorithm) -> Keys {
    let spec = c.spec();
    Keys::new(
        c,
        m,
        &vec![0x11; spec.key_len],
        &vec![0x22; spec.iv_len],
        &vec![0x33; m.spec().key_len],
    )
    .expect("lengths from the table")
}

fn suite_name(c: CipherAlgorithm, m: MacAlgorithm) -> String {
    if m == MacAlgorithm::None {
        c.name().to_owned()
    } else {
        format!("{c}+{m}")
    }
}

fn bench_seal(cr: &mut Criterion, c: CipherAlgorithm, m: MacAlgorithm) {
    let mut group = cr.benchmark_group(format!("seal/{}", suite_name(c, m)));
    for size in SIZES {
        let payload = vec![0x5e; size];
        group.throughput(Throughput::Bytes(size as u64));
        let mut sealer = Sealer::new();
        sealer.set_keys(keys(c, m)).unwrap();
        let wire_len = sealer.sealed_len(size);
        let mut out = Vec::with_capacity(wire_len);
        group.bench_function(BenchmarkId::new("codec", size), |b| {
            b.iter(|| {
                out.clear();
                sealer.seal(black_box(&payload), &mut out).unwrap();
                black_box(&out);
            })
        });
        // The payload already serialised into the output buffer: no copy.
        let mut in_place = Vec::with_capacity(wire_len);
        group.bench_function(BenchmarkId::new("in_place", size), |b| {
            in_place.clear();
            in_place.resize(5 + size, 0x5e);
            b.iter(|| {
                in_place.truncate(5 + size);
                sealer.finish_packet(&mut in_place, 0).unwrap();
                black_box(&in_place);
            })
        });
        let mut raw = raw::RawSuite::new(c, m);
        let tag_len = raw.tag_len();
        let mut packet = vec![0x5e; wire_len - tag_len];
        let mut tag = vec![0; tag_len];
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter(|| raw.seal(black_box(&mut packet), &mut tag))
        });
    }
    group.finish();
}

fn bench_open(cr: &mut Criterion, c: CipherAlgorithm, m: MacAlgorithm) {
    let mut group = cr.benchmark_group(format!("open/{}", suite_name(c, m)));
    for size in SIZES {
        let payload = vec![0x5e; size];
        group.throughput(Throughput::Bytes(size as u64));
        let mut sealer = Sealer::new();
        let mut opener = Opener::new();
        sealer.set_keys(keys(c, m)).unwrap();
        opener.set_keys(keys(c, m)).unwrap();
        let mut wire = Vec::new();
        group.bench_function(BenchmarkId::new("codec", size), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(OPEN_BATCH);
                    left -= batch;
                    wire.clear();
                    for _ in 0..batch {
                        sealer.seal(&payload, &mut wire).unwrap();
                    }
                    let start = Instant::now();
                    let mut rest = &wire[..];
                    let mut opened = 0;
                    while opened < batch {
                        let taken = opener.feed(rest);
                        rest = &rest[taken..];
                        while let Opened::Packet(p) = opener.next_packet().unwrap() {
                            black_box(p.payload());
                            opened += 1;
                        }
                    }
                    spent += start.elapsed();
                }
                spent
            })
        });
        group.bench_function(BenchmarkId::new("in_place", size), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(OPEN_BATCH);
                    left -= batch;
                    wire.clear();
                    for _ in 0..batch {
                        sealer.seal(&payload, &mut wire).unwrap();
                    }
                    let start = Instant::now();
                    let mut at = 0;
                    while at < wire.len() {
                        match opener.open_in_place(&mut wire[at..]).unwrap() {
                            Frame::Packet {
                                payload, wire_len, ..
                            } => {
                                black_box(payload);
                                at += wire_len;
                            }
                            Frame::NeedMore(n) => panic!("whole packets given, {n} more wanted"),
                        }
                    }
                    spent += start.elapsed();
                }
                spent
            })
        });
        let mut raw = raw::RawSuite::new(c, m);
        let tag_len = raw.tag_len();
        let wire_len = sealer.sealed_len(size);
        let mut packet = vec![0x5e; wire_len - tag_len];
        let mut tag = vec![0; tag_len];
        raw.seal(&mut packet, &mut tag);
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter(|| black_box(raw.open(black_box(&mut packet), &tag)))
        });
    }
    group.finish();
}

fn codec(cr: &mut Criterion) {
    for (c, m) in suites() {
        bench_seal(cr, c, m);
        bench_open(cr, c, m);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = codec
}
criterion_main!(benches);
