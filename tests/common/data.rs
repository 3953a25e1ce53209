//! Test data shared by the crate's tests and the `interop` package (which
//! includes this file by path): varied payloads and a writer to look at.

/// A payload of `len` bytes that differs from packet to packet. It never
/// starts with NEWKEYS (21), after which an Opener stops for new keys.
pub fn payload(len: usize, salt: u64) -> Vec<u8> {
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    if bytes.first() == Some(&21) {
        bytes[0] = 94;
    }
    bytes
}

/// A writer whose bytes a test can look at, from any thread.
#[derive(Clone, Default)]
pub struct Recorded(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Recorded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Recorded {
    /// Everything written so far, leaving it empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}
