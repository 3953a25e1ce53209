//! Growing buffers that hold plaintext without leaving copies behind.
//!
//! `Vec` growth reallocates and frees the old block as it is: for a buffer
//! that held decrypted packets or payloads, that leaves plaintext in freed
//! memory. These helpers grow by hand and wipe the old block first.

use zeroize::Zeroize;

/// Makes room for `additional` more bytes in `buf`, wiping the old
/// allocation if it has to move. Grows at least by doubling, as `Vec` does,
/// so growth stays amortised.
pub(crate) fn reserve_wiped(buf: &mut Vec<u8>, additional: usize) {
    let at_least = buf.capacity() * 2;
    grow_wiped(buf, additional, at_least);
}

/// As [`reserve_wiped`] but to exactly the room asked for, for a buffer whose
/// size is a bound (the inflated payload's cap).
pub(crate) fn reserve_exact_wiped(buf: &mut Vec<u8>, additional: usize) {
    grow_wiped(buf, additional, 0);
}

fn grow_wiped(buf: &mut Vec<u8>, additional: usize, at_least: usize) {
    if buf.capacity() - buf.len() >= additional {
        return;
    }
    let mut grown = Vec::with_capacity((buf.len() + additional).max(at_least));
    grown.extend_from_slice(buf);
    buf.zeroize();
    *buf = grown;
}

/// `buf.resize(len, 0)`, wiping the old allocation if it has to move.
pub(crate) fn resize_wiped(buf: &mut Vec<u8>, len: usize) {
    if len > buf.len() {
        reserve_wiped(buf, len - buf.len());
    }
    buf.resize(len, 0);
}

/// How much of the stack below the caller [`scrub_stack`] overwrites after
/// a key expansion: more than the deepest one uses (a schedule, its copy on
/// the way into a box, and the library's own frames).
const EXPANSION_DEPTH: usize = 16 * 1024;

/// How much [`scrub_after_packet`] overwrites: more than the frames of a
/// cipher or AEAD call use. RustCrypto's AES code leaves round keys in its
/// frames (seen for AES-256-GCM and AES-192-CBC), within 2 KiB of the
/// caller; twice that for margin.
const PACKET_DEPTH: usize = 4 * 1024;

/// Overwrites `WORDS` words of the stack just below the caller's frame, where
/// the frames of the calls it made before lived. Key expansion builds each
/// schedule on the stack before moving it into the heap; the copy left
/// behind would otherwise be picked up by any later value built in the same
/// place and moved into a heap block with uninitialised room in it (an
/// enum's unused tail, an `Option`'s `None`), and freed unwiped with it.
#[inline(never)]
fn scrub<const WORDS: usize>() {
    let mut area = [0u64; WORDS];
    // Volatile writes: not optimised away although nothing reads them.
    area.zeroize();
    std::hint::black_box(&area);
}

/// [`scrub`] deep enough for a key expansion or a key derivation.
pub(crate) fn scrub_stack() {
    scrub::<{ EXPANSION_DEPTH / 8 }>();
}

/// Runs `build` (which expands a key) in frames of its own, then scrubs
/// them: what it left on the stack cannot ride along into whatever is built
/// next in the same place (the MAC's state after the cipher's, say).
pub(crate) fn scrubbed<T>(build: impl FnOnce() -> T) -> T {
    let value = below(build);
    scrub_stack();
    value
}

/// Overwrites the stack a cipher or AEAD call just used, once per packet.
/// A plain fill the compiler must keep (the array escapes to `black_box`)
/// rather than volatile writes: a few dozen nanoseconds, not a few hundred.
#[inline(never)]
pub(crate) fn scrub_after_packet() {
    let mut area = [0u64; PACKET_DEPTH / 8];
    std::hint::black_box(&mut area);
}

#[inline(never)]
fn below<T>(build: impl FnOnce() -> T) -> T {
    build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_keeps_the_bytes_and_amortises() {
        let mut buf = vec![1u8, 2, 3];
        reserve_wiped(&mut buf, 100);
        assert_eq!(buf, [1, 2, 3]);
        assert!(buf.capacity() >= 103);
        let cap = buf.capacity();
        reserve_wiped(&mut buf, 10);
        assert_eq!(buf.capacity(), cap, "room enough: no move");
        resize_wiped(&mut buf, 300);
        assert_eq!(buf.len(), 300);
        assert_eq!(&buf[..4], &[1, 2, 3, 0]);
    }
}
