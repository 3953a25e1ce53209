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
    for case in cases::all() {
        let name = case.name();
        trials.push(Trial::test(name, move || run(&case)));
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// Runs one case armed and reports what the scan found.
fn run(case: &cases::Case) -> Result<(), Failed> {
    scan::arm();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case.run()));
    let (found, count, scanned) = scan::disarm();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    // A case frees its buffers, engines and key schedules: a scan that saw
    // nothing would prove nothing.
    if scanned == 0 {
        return Err("the scan saw no freed block".into());
    }
    if count == 0 {
        return Ok(());
    }
    let list: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "{:?} in a freed {}-byte block ({:?} heap)",
                f.kind, f.block, f.heap
            )
        })
        .collect();
    Err(format!("{count} freed block(s) held secrets: {}", list.join("; ")).into())
}
