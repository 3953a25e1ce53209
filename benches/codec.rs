//! Seal and open per suite and payload size, each beside the raw cipher + MAC
//! over the same bytes in the same run, so the ratio shows what the framing
//! costs. Criterion measures one benchmark after another, so on a shared
//! machine drift between them can exceed the few percent being measured;
//! `cargo bench --bench ratio` interleaves the two for ratios you can quote.
//!
//! Groups are named `seal/<suite>` and `open/<suite>`, with `codec/<size>`
//! (the slice APIs: `seal`, `feed` + `next_packet`, which copy the payload or
//! the wire bytes once), `in_place/<size>` (`finish_packet` on a payload
//! already in the output buffer), `room/<size>` (bytes written straight into
//! the room the Opener offers, as a socket read) and `raw/<size>` inside; filter with e.g. `cargo bench --bench codec -- aes128-ctr`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ssh_packetizer::{CipherAlgorithm, InputBuffer, MacAlgorithm, Opener, Sealer};

#[path = "support/mod.rs"]
mod support;

use support::{keys, open_batch, seal_batch, suites, OpenForm, RawBatch, BATCH};

const SIZES: [usize; 3] = [64, 1024, 32 * 1024];

fn bench_seal(cr: &mut Criterion, c: CipherAlgorithm, m: MacAlgorithm, name: &str) {
    let mut group = cr.benchmark_group(format!("seal/{name}"));
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
        let mut raw = support::RawSuite::new(c, m);
        let tag_len = raw.tag_len();
        let mut packet = vec![0x5e; wire_len - tag_len];
        let mut tag = vec![0; tag_len];
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter(|| raw.seal(black_box(&mut packet), &mut tag))
        });
    }
    group.finish();
}

fn bench_open(cr: &mut Criterion, c: CipherAlgorithm, m: MacAlgorithm, name: &str) {
    let mut group = cr.benchmark_group(format!("open/{name}"));
    for size in SIZES {
        let payload = vec![0x5e; size];
        group.throughput(Throughput::Bytes(size as u64));
        let mut sealer = Sealer::new();
        let mut opener = Opener::new();
        let mut input = InputBuffer::new();
        sealer.set_keys(keys(c, m)).unwrap();
        opener.set_keys(keys(c, m)).unwrap();
        let mut wire = Vec::new();
        for (form, id) in [(OpenForm::Feed, "codec"), (OpenForm::Room, "room")] {
            group.bench_function(BenchmarkId::new(id, size), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    let mut left = iters as usize;
                    while left > 0 {
                        let n = left.min(BATCH);
                        left -= n;
                        seal_batch(&mut sealer, &payload, n, &mut wire);
                        let opened = open_batch(&mut opener, &mut input, &wire, form);
                        spent += Duration::from_secs_f64(opened);
                    }
                    spent
                })
            });
        }
        let mut raw = RawBatch::new(c, m, sealer.sealed_len(size));
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            // Whole batches: criterion divides by the packets counted here.
            b.iter_custom(|iters| {
                let batches = (iters as usize).div_ceil(BATCH);
                let spent: f64 = (0..batches).map(|_| raw.open_timed()).sum();
                Duration::from_secs_f64(spent * iters as f64 / (batches * BATCH) as f64)
            })
        });
    }
    group.finish();
}

fn codec(cr: &mut Criterion) {
    for (c, m, name) in suites() {
        bench_seal(cr, c, m, &name);
        bench_open(cr, c, m, &name);
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
