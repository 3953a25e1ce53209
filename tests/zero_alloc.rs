//! The steady state allocates nothing: after a warm-up, 10,000 packets of
//! mixed sizes through a Packetizer pair over the in-memory pipe perform zero
//! heap allocations, in every suite, and under every other provider of the
//! build in the suites it runs itself; and through split halves (the
//! core's shared lock, the writer's swap of output buffers). A count, not a timing. (It counts
//! the Rust allocator: what a C library allocates with its own malloc is
//! counted by `bench/alloc-per-packet.sh`, under valgrind.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{keys_for, supported_suites};
use ssh_packetizer::pipe::pipe;
use ssh_packetizer::{
    CipherAlgorithm, CompressionAlgorithm, Config, CryptoProvider, Keys, MacAlgorithm, Packetizer,
};

struct Counting;

thread_local! {
    /// Counting is on for this thread: the one that moves the packets. The
    /// harness's own threads (its "running for over 60 seconds" notice, for
    /// one) allocate too, and are not the Packetizers' doing.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn armed() -> bool {
    ARMED.try_with(Cell::get).unwrap_or(false)
}
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Heap bytes in use, all the time.
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if armed() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        if armed() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        LIVE.fetch_add(size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, layout, size) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PACKETS: usize = 10_000;
const BATCH: usize = 50;

fn size(i: usize) -> usize {
    match i % 10 {
        0 => 32 * 1024,
        1..=3 => 1024,
        _ => 64,
    }
}

/// Sends and reads `count` packets in batches, one thread, checking each.
fn traffic<A, B>(tx: &mut Packetizer<A>, rx: &mut Packetizer<B>, buf: &mut [u8], count: usize)
where
    A: std::io::Read + std::io::Write,
    B: std::io::Read + std::io::Write,
{
    for batch in 0..count / BATCH {
        for i in 0..BATCH {
            let n = size(batch * BATCH + i);
            buf[0] = 94;
            buf[1] = i as u8;
            tx.send_message(&buf[..n]).unwrap();
        }
        for i in 0..BATCH {
            let m = rx.read_message().unwrap();
            assert_eq!(
                (m.payload().len(), m.payload()[1]),
                (size(batch * BATCH + i), i as u8)
            );
        }
    }
}

fn pair(
    provider: &'static CryptoProvider,
    keys_out: Keys,
    keys_in: Keys,
) -> (
    Packetizer<impl std::io::Read + std::io::Write>,
    Packetizer<impl std::io::Read + std::io::Write>,
) {
    let (a, b) = pipe();
    let config = Config::client().crypto_provider(provider);
    let (mut tx, mut rx) = (
        Packetizer::with_config(a, config.clone()),
        Packetizer::with_config(b, config),
    );
    tx.send_newkeys(keys_out).unwrap();
    assert_eq!(rx.read_message().unwrap().msg_type(), 21);
    rx.set_inbound_cipher(keys_in).unwrap();
    (tx, rx)
}

fn measured(
    provider: &'static CryptoProvider,
    label: &str,
    bound: usize,
    keys: impl Fn() -> Keys,
) -> usize {
    let label = format!("{label} ({})", provider.name());
    let mut buf = vec![0x5e; 32 * 1024];
    let before = LIVE.load(Ordering::SeqCst);
    let (mut tx, mut rx) = pair(provider, keys(), keys());
    traffic(&mut tx, &mut rx, &mut buf, 500); // warm-up: buffers reach their size
                                              // What one connection holds: the sender's write side and the receiver's
                                              // read side (buffers, key schedules, MAC states), plus the in-memory pipe.
    let held = LIVE.load(Ordering::SeqCst) - before;
    assert!(held < 1024 * 1024, "{label}: {held} bytes held");
    ALLOCATIONS.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    traffic(&mut tx, &mut rx, &mut buf, PACKETS);
    ARMED.with(|a| a.set(false));
    let n = ALLOCATIONS.load(Ordering::SeqCst);
    // The pipe stands in for the kernel's socket buffers: take its share out.
    let ends = (tx.into_inner(), rx.into_inner());
    let pipe = LIVE.load(Ordering::SeqCst) - before;
    drop(ends);
    let ours = held - pipe;
    assert!(ours < bound, "{label}: the Packetizers hold {ours} bytes");
    eprintln!(
        "{label}: {n} allocations in {PACKETS} packets; a sender and a receiver hold {ours} bytes (+ {pipe} in the pipe)"
    );
    n
}

/// The split halves: a writer and a reader of two connections, on this
/// one thread so the counter sees both.
fn split_allocations(keys: Keys) -> usize {
    let (a, b) = pipe();
    let (mut tx, mut rx) = (Packetizer::new(a), Packetizer::new(b));
    tx.send_newkeys(keys.clone()).unwrap();
    assert_eq!(rx.read_message().unwrap().msg_type(), 21);
    rx.set_inbound_cipher(keys).unwrap();
    let (_, writer) = tx.split().unwrap();
    let (mut reader, _) = rx.split().unwrap();
    let mut buf = vec![0x5e; 32 * 1024];
    let mut run = |count: usize| {
        for batch in 0..count / BATCH {
            for i in 0..BATCH {
                let n = size(batch * BATCH + i);
                buf[1] = i as u8;
                writer.send_message(&buf[..n]).unwrap();
            }
            for i in 0..BATCH {
                let m = reader.read_message().unwrap();
                assert_eq!(m.payload()[1], i as u8);
            }
        }
    };
    run(500);
    ALLOCATIONS.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    run(PACKETS);
    ARMED.with(|a| a.set(false));
    let n = ALLOCATIONS.load(Ordering::SeqCst);
    eprintln!("split halves: {n} allocations in {PACKETS} packets");
    n
}

// One test, so no other test allocates while the counter is armed.
#[test]
fn no_allocation_per_packet_in_the_steady_state() {
    let mut failures = Vec::new();
    let rust_crypto = CryptoProvider::rust_crypto();
    for &provider in CryptoProvider::available() {
        for (c, m) in supported_suites() {
            // Other providers: the suites where they run the cipher or
            // the MAC themselves (the rest is RustCrypto's, measured as
            // such).
            let own = provider.cipher_supplier(c).is_ok_and(|p| p == provider)
                && c != CipherAlgorithm::None
                || provider.mac_supplier(m).is_ok_and(|p| p == provider) && m != MacAlgorithm::None;
            if provider != rust_crypto && !own {
                continue;
            }
            let n = measured(provider, &format!("{c}+{m}"), 256 * 1024, || {
                keys_for(c, m, 1)
            });
            if n != 0 {
                failures.push(format!("{c}+{m} ({}): {n}", provider.name()));
            }
        }
    }
    // Compression too: the deflate and inflate streams keep their buffers
    // (zlib's state adds about 360 KB per direction pair).
    let (c, m) = (CipherAlgorithm::Aes128Gcm, MacAlgorithm::None);
    let n = measured(rust_crypto, "aes128-gcm + zlib", 1024 * 1024, || {
        keys_for(c, m, 1).with_compression(CompressionAlgorithm::Zlib)
    });
    if n != 0 {
        failures.push(format!("zlib: {n}"));
    }
    let n = split_allocations(keys_for(c, m, 1));
    if n != 0 {
        failures.push(format!("split halves: {n}"));
    }
    assert!(
        failures.is_empty(),
        "allocations in the steady state: {failures:?}"
    );
}
