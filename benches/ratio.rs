//! Codec cost as a fraction of the raw cipher + MAC, measured interleaved.
//!
//! For every suite and payload size this alternates short timed runs of the
//! raw primitives (benches/raw) and of each codec form, many rounds over, and
//! keeps the best run of each: drift on a shared machine then hits both sides
//! alike. Prints one table; 1.000 means no overhead over the bare crypto.
//!
//! `cargo bench --bench ratio [-- FILTER] [--provider NAME|all]`;
//! `RATIO_ROUNDS` (default 15) sets the rounds. With `--provider` (and the
//! provider's feature), each provider's codec is measured against that
//! provider's own primitives (RustCrypto's where it runs RustCrypto's).

use std::hint::black_box;
use std::time::Instant;

use ssh_packetizer::{CipherAlgorithm, CryptoProvider, InputBuffer, MacAlgorithm, Opener, Sealer};

// Shared with the codec bench, which uses the RustCrypto-only constructors.
#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

use support::{keys, open_batch, seal_batch, suites, OpenForm, RawBatch, BATCH};

const SIZES: [usize; 3] = [64, 1024, 32 * 1024];

/// Best time, over `rounds`, of each of `runs`, run one after another in
/// every round. Each run times itself and returns seconds.
fn best_of(rounds: usize, runs: &mut [&mut dyn FnMut() -> f64]) -> Vec<f64> {
    let mut best = vec![f64::MAX; runs.len()];
    for _ in 0..rounds {
        for (run, best) in runs.iter_mut().zip(&mut best) {
            *best = best.min(run());
        }
    }
    best
}

fn timed(mut work: impl FnMut()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_secs_f64()
}

/// Ratios (raw time / codec time) for sealing: slice API, in place.
fn seal_ratios(
    provider: &'static CryptoProvider,
    c: CipherAlgorithm,
    m: MacAlgorithm,
    size: usize,
    packets: usize,
    rounds: usize,
) -> [f64; 2] {
    let mut sealer = Sealer::new();
    sealer.set_crypto_provider(provider);
    sealer.set_keys(keys(c, m)).unwrap();
    let wire_len = sealer.sealed_len(size);
    let mut raw = support::RawSuite::for_provider(provider.name(), c, m);
    let mut packet = vec![0x5e; wire_len - raw.tag_len()];
    let mut tag = vec![0; raw.tag_len()];
    let payload = vec![0x5e; size];
    let mut out = Vec::with_capacity(wire_len);
    let mut in_place = vec![0x5e; 5 + size];
    in_place.reserve(wire_len);
    let mut sealer2 = Sealer::new();
    sealer2.set_crypto_provider(provider);
    sealer2.set_keys(keys(c, m)).unwrap();
    let best = best_of(
        rounds,
        &mut [
            &mut || timed(|| (0..packets).for_each(|_| raw.seal(black_box(&mut packet), &mut tag))),
            &mut || {
                timed(|| {
                    for _ in 0..packets {
                        out.clear();
                        sealer.seal(black_box(&payload), &mut out).unwrap();
                        black_box(&out);
                    }
                })
            },
            &mut || {
                timed(|| {
                    for _ in 0..packets {
                        in_place.truncate(5 + size);
                        sealer2.finish_packet(&mut in_place, 0).unwrap();
                        black_box(&in_place);
                    }
                })
            },
        ],
    );
    [best[0] / best[1], best[0] / best[2]]
}

/// Ratios (raw time / codec time) for opening: bytes fed (the copy
/// counted), bytes read into the offered room (only the opening counted).
fn open_ratios(
    provider: &'static CryptoProvider,
    c: CipherAlgorithm,
    m: MacAlgorithm,
    size: usize,
    packets: usize,
    rounds: usize,
) -> [f64; 2] {
    let payload = vec![0x5e; size];
    let batches = packets.div_ceil(BATCH);
    let mut keyed = Sealer::new();
    keyed.set_keys(keys(c, m)).unwrap();
    let mut raw = RawBatch::for_provider(provider.name(), c, m, keyed.sealed_len(size));
    // Each form has its own Sealer and Opener so their keystreams stay in step.
    let payload = &payload;
    let form_run = |form: OpenForm| {
        let (mut sealer, mut opener) = (Sealer::new(), Opener::new());
        let mut input = InputBuffer::new();
        sealer.set_crypto_provider(provider);
        opener.set_crypto_provider(provider);
        sealer.set_keys(keys(c, m)).unwrap();
        opener.set_keys(keys(c, m)).unwrap();
        let mut wire = Vec::new();
        move || -> f64 {
            (0..batches)
                .map(|_| {
                    seal_batch(&mut sealer, payload, BATCH, &mut wire);
                    open_batch(&mut opener, &mut input, &wire, form)
                })
                .sum()
        }
    };
    let mut feed = form_run(OpenForm::Feed);
    let mut room = form_run(OpenForm::Room);
    let best = best_of(
        rounds,
        &mut [
            &mut || (0..batches).map(|_| raw.open_timed()).sum(),
            &mut feed,
            &mut room,
        ],
    );
    [best[0] / best[1], best[0] / best[2]]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = String::new();
    let mut providers = vec![CryptoProvider::get_default()];
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--provider" => {
                let name = args.get(i + 1).map(String::as_str).unwrap_or("");
                providers = if name == "all" {
                    CryptoProvider::available().to_vec()
                } else {
                    vec![CryptoProvider::by_name(name)
                        .unwrap_or_else(|| panic!("no provider {name:?} in this build"))]
                };
                i += 1;
            }
            a if a.starts_with('-') => {}
            a => filter = a.to_owned(),
        }
        i += 1;
    }
    let rounds = std::env::var("RATIO_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    println!(
        "{:44} {:10} {:>6}  {:>6} {:>8}  {:>6} {:>8}",
        "suite", "provider", "size", "seal", "in place", "open", "room"
    );
    for (c, m, name) in suites() {
        // UMAC has no implementation outside this crate to be a baseline.
        if !name.contains(&filter) || name.contains("umac") {
            continue;
        }
        for &provider in &providers {
            for size in SIZES {
                // About 2 MB per timed run, at least one open batch.
                let packets = (2_000_000 / (size + 64)).max(BATCH);
                let seal = seal_ratios(provider, c, m, size, packets, rounds);
                let open = open_ratios(provider, c, m, size, packets, rounds);
                println!(
                    "{name:44} {:10} {size:>6}  {:>6.3} {:>8.3}  {:>6.3} {:>8.3}",
                    provider.name(),
                    seal[0],
                    seal[1],
                    open[0],
                    open[1]
                );
            }
        }
    }
}
