//! Messages held back while our key exchange is under way.
//!
//! Between our KEXINIT and our NEWKEYS only the transport's own messages may
//! go out (RFC 4253 §7.1). As OpenSSH's packet layer does, the core keeps
//! the others and seals them, in order, right after the key switch. The
//! hold is bounded: past it the sender is told to wait
//! ([`Error::KexHoldFull`](crate::Error::KexHoldFull)), which is the
//! back-pressure a writer feels during a kex.

use zeroize::Zeroizing;

/// Payload bytes held at most (one message is always taken, whatever its
/// size, so the largest packet can wait too).
pub(crate) const HOLD_LIMIT: usize = 256 * 1024;

/// Held payloads, each behind a 4-byte length, in one buffer that keeps its
/// capacity from one kex to the next. Wiped when dropped: it holds plaintext.
#[derive(Default)]
pub(crate) struct Hold {
    bytes: Zeroizing<Vec<u8>>,
    payload_bytes: usize,
}

impl Hold {
    /// Payload bytes held.
    pub(crate) fn len(&self) -> usize {
        self.payload_bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.payload_bytes == 0
    }

    /// Whether `len` more bytes may be held.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.is_empty() || self.payload_bytes + len <= HOLD_LIMIT
    }

    pub(crate) fn push(&mut self, payload: &[u8]) {
        crate::wipe::reserve_wiped(&mut self.bytes, 4 + payload.len());
        // Payloads were checked to fit a packet, far below u32::MAX.
        self.bytes
            .extend_from_slice(&(payload.len() as u32).to_be_bytes());
        self.bytes.extend_from_slice(payload);
        self.payload_bytes += payload.len();
    }

    /// Takes everything held, for sealing in order; hand the buffer back
    /// with [`Hold::restore`] so its capacity is kept.
    pub(crate) fn take(&mut self) -> Zeroizing<Vec<u8>> {
        self.payload_bytes = 0;
        std::mem::take(&mut self.bytes)
    }

    /// Gives the buffer back while nothing is held (it was wiped when last
    /// emptied); returns the bytes freed.
    pub(crate) fn release_idle(&mut self) -> usize {
        if !self.is_empty() || self.bytes.capacity() == 0 {
            return 0;
        }
        let freed = self.bytes.capacity();
        self.bytes = Zeroizing::new(Vec::new());
        freed
    }

    /// Bytes allocated.
    pub(crate) fn allocated(&self) -> usize {
        self.bytes.capacity()
    }

    pub(crate) fn restore(&mut self, mut bytes: Zeroizing<Vec<u8>>) {
        zeroize::Zeroize::zeroize(&mut *bytes);
        if self.bytes.capacity() == 0 {
            self.bytes = bytes;
        }
    }
}

/// The payloads of a taken hold buffer, in order.
pub(crate) fn payloads(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let payload = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(payload)
    })
}
