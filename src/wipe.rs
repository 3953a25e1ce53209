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
