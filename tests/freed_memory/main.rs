//! No secret left behind in freed memory: every suite, under every provider
//! of the build, through every driver (the Sealer and Opener, the sync
//! Packetizer and its halves, and with `tokio` the async Packetizer, its
//! halves and `PacketCodec` under `Framed`), with a rekey, compression on
//! and off, a refused send and a forged packet mid-stream. A global
//! allocator searches every block freed during a case for the case's key
//! bytes and for a marker every payload carries; OpenSSL's and AWS-LC's
//! heaps are searched through their allocation hooks when those providers
//! are built. Each case is a test of its own, so a failure names the suite,
//! the provider and the driver.
//!
//! What it cannot see (stack copies, registers, what the kernel keeps) is
//! listed in SECURITY.md.

mod c_heap;
mod cases;
mod scan;

use libtest_mimic::{Arguments, Failed, Trial};

#[global_allocator]
static ALLOCATOR: scan::Scanning = scan::Scanning;

fn main() -> std::process::ExitCode {
    // Before any provider allocates: a C library takes hooks only then.
    let c_heaps = c_heap::install();
    let mut args = Arguments::from_args();
    // One case at a time: the marks and findings are the running case's.
    args.test_threads = Some(1);
    let mut trials: Vec<Trial> = c_heaps
        .into_iter()
        .map(|(name, hooked)| {
            Trial::test(format!("c_heap_hooked/{name}"), move || {
                hooked.map_err(|e| Failed::from(format!("{name}: {e}")))
            })
        })
        .collect();
    trials.push(Trial::test("scan_catches_a_planted_leak", planted));
    for case in cases::all() {
        let name = case.name();
        trials.push(Trial::test(name, move || run(&case)));
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// The scan itself: a block freed with a mark in it is found, the same
/// block wiped first is not.
fn planted() -> Result<(), Failed> {
    let secret = *b"\x9a\x17plan\xee\x41";
    for (wipe, expected) in [(false, 1), (true, 0)] {
        scan::arm();
        scan::mark(scan::Kind::Plaintext, &secret);
        let mut block = vec![0u8; 100];
        block[37..45].copy_from_slice(&secret);
        if wipe {
            zeroize::Zeroize::zeroize(&mut block);
        }
        drop(block);
        let report = scan::disarm();
        if report.count != expected {
            return Err(format!("wiped: {wipe}: {} findings", report.count).into());
        }
    }
    Ok(())
}

/// Runs one case armed and reports what the scan found.
fn run(case: &cases::Case) -> Result<(), Failed> {
    scan::arm();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case.run()));
    let report = scan::disarm();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    // A case frees its buffers, engines and key schedules: a scan that saw
    // nothing would prove nothing. Under a C library's provider, its heap
    // must have been seen too (when it is hooked).
    if report.scanned == 0 {
        return Err("the scan saw no freed block".into());
    }
    if case.hooked_c_heap() && report.scanned_c == 0 {
        return Err("the scan saw no block freed on the provider's C heap".into());
    }
    if report.count == 0 {
        return Ok(());
    }
    let list: Vec<String> = report
        .found
        .iter()
        .map(|f| {
            format!(
                "{:?} in a freed {}-byte block ({:?} heap)",
                f.kind, f.block, f.heap
            )
        })
        .collect();
    Err(format!(
        "{} freed block(s) held secrets: {}",
        report.count,
        list.join("; ")
    )
    .into())
}
