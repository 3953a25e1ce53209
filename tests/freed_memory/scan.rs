//! The scanning allocator: while armed, every block freed on the Rust heap
//! (and, where a C library lets us hook its allocator, on its heap) is
//! searched for the marks registered for the case that runs, before it
//! goes back to the system.
//!
//! A mark is 8 bytes of a key, an IV, a MAC key or of the plaintext marker.
//! The search reads every 8-byte window of a freed block as a `u64` and
//! compares it with the marks, so a large block costs one pass. Nothing in
//! here allocates: it runs inside `dealloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// At most this many marks per case.
const MAX_MARKS: usize = 96;
/// At most this many findings are kept per case (the count goes on).
const MAX_FOUND: usize = 8;

/// What a mark was taken from, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The cipher key of the key set numbered.
    Key(u8),
    /// The IV of the key set numbered.
    Iv(u8),
    /// The MAC key of the key set numbered.
    MacKey(u8),
    /// The marker every payload carries.
    Plaintext,
}

/// One freed block that held a mark.
#[derive(Clone, Copy, Debug)]
pub struct Finding {
    /// The mark found.
    pub kind: Kind,
    /// The freed block's size.
    pub block: usize,
    /// Which heap it was freed on.
    pub heap: Heap,
}

/// The heap a block was freed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heap {
    /// Rust's global allocator.
    Rust,
    /// A C library's allocator, through its hook (OpenSSL's, when built).
    #[cfg_attr(not(feature = "openssl"), allow(dead_code))]
    C(&'static str),
}

struct Marks {
    marks: [u64; MAX_MARKS],
    kinds: [Kind; MAX_MARKS],
    len: usize,
    found: [Option<Finding>; MAX_FOUND],
    count: usize,
    /// Blocks scanned while armed, on the Rust heap and on a C heap, so a
    /// case can tell it saw its frees.
    scanned: usize,
    scanned_c: usize,
}

static MARKS: Mutex<Marks> = Mutex::new(Marks {
    marks: [0; MAX_MARKS],
    kinds: [Kind::Plaintext; MAX_MARKS],
    len: 0,
    found: [None; MAX_FOUND],
    count: 0,
    scanned: 0,
    scanned_c: 0,
});

static ARMED: AtomicBool = AtomicBool::new(false);

fn marks() -> std::sync::MutexGuard<'static, Marks> {
    // A panic inside a case leaves the marks as they are: still usable.
    MARKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers every 8-byte window at 8-byte steps of `bytes` as a mark of
/// `kind` (a key's tail shorter than 8 bytes is covered by the window
/// ending at its last byte).
pub fn mark(kind: Kind, bytes: &[u8]) {
    if bytes.len() < 8 {
        return;
    }
    let tail = (!bytes.len().is_multiple_of(8)).then_some(bytes.len() - 8);
    // No allocation while the lock is held: a free would scan, and the
    // scan takes the lock.
    let mut m = marks();
    for start in (0..=bytes.len() - 8).step_by(8).chain(tail) {
        let window = u64::from_ne_bytes(bytes[start..start + 8].try_into().unwrap());
        if m.len == MAX_MARKS {
            // Out of the lock first: the panic's message allocates.
            drop(m);
            panic!("too many marks for one case");
        }
        let at = m.len;
        m.marks[at] = window;
        m.kinds[at] = kind;
        m.len += 1;
    }
}

/// Overwrites the stack below the caller with zeros: `mark` read the key
/// bytes through locals, and their copies must not be blamed on the crate
/// when a later move carries them into the heap.
#[inline(never)]
pub fn scrub_stack() {
    let mut area = [0u64; 4096];
    zeroize::Zeroize::zeroize(&mut area[..]);
    std::hint::black_box(&area);
}

/// Starts a case: no marks, no findings, scanning on.
pub fn arm() {
    let mut m = marks();
    m.len = 0;
    m.count = 0;
    m.scanned = 0;
    m.scanned_c = 0;
    m.found = [None; MAX_FOUND];
    ARMED.store(true, Ordering::SeqCst);
}

/// What a case's scan saw.
pub struct Report {
    /// The first findings.
    pub found: Vec<Finding>,
    /// How many blocks held a mark.
    pub count: usize,
    /// Blocks searched on the Rust heap.
    pub scanned: usize,
    /// Blocks searched on a C library's heap.
    pub scanned_c: usize,
}

/// Ends a case: scanning off, and what it saw.
pub fn disarm() -> Report {
    ARMED.store(false, Ordering::SeqCst);
    let m = marks();
    Report {
        found: m.found.iter().flatten().copied().collect(),
        count: m.count,
        scanned: m.scanned,
        scanned_c: m.scanned_c,
    }
}

/// Searches a block about to be freed.
///
/// # Safety
/// `ptr` must point to `len` readable bytes.
pub unsafe fn scan(ptr: *const u8, len: usize, heap: Heap) {
    if !ARMED.load(Ordering::Relaxed) || len < 8 {
        return;
    }
    let block = unsafe { std::slice::from_raw_parts(ptr, len) };
    let mut m = marks();
    if heap == Heap::Rust {
        m.scanned += 1;
    } else {
        m.scanned_c += 1;
    }
    let n = m.len;
    for at in 0..=len - 8 {
        let window = u64::from_ne_bytes(block[at..at + 8].try_into().unwrap());
        if let Some(i) = m.marks[..n].iter().position(|&mark| mark == window) {
            let slot = m.count;
            if slot < MAX_FOUND {
                m.found[slot] = Some(Finding {
                    kind: m.kinds[i],
                    block: len,
                    heap,
                });
            }
            m.count += 1;
            if std::env::var_os("SCAN_TRACE").is_some() && ARMED.swap(false, Ordering::SeqCst) {
                drop(m);
                eprintln!(
                    "== {len}-byte block at {at}: {:02x?}\n{}",
                    &block[at.saturating_sub(32)..(at + 40).min(len)],
                    std::backtrace::Backtrace::force_capture()
                );
                ARMED.store(true, Ordering::SeqCst);
            }
            // One finding per block is enough to name it.
            return;
        }
    }
}

/// The test binary's global allocator: the system's, with a scan of every
/// block freed while armed. `realloc` is an allocation, a copy and a free,
/// so the old block is scanned too.
pub struct Scanning;

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            scan(ptr, layout.size(), Heap::Rust);
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !ARMED.load(Ordering::Relaxed) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let fresh = unsafe { System.alloc(new_layout) };
        if !fresh.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        fresh
    }
}
