//! Memory: the buffers a connection holds, and giving them back at rest.

use super::Connection;
use crate::codec::InputBuffer;

impl Connection {
    /// Gives back the buffers that hold nothing, wiped: `input` if no byte
    /// is buffered and no packet is half read, the output if none is
    /// pending, and the hold if it is empty. A driver calls this when the
    /// connection goes idle (a read found nothing to read), so a connection
    /// at rest keeps no read room or write buffer; they grow again on
    /// demand. Returns the bytes given back.
    pub fn release_idle_memory(&mut self, input: &mut InputBuffer) -> usize {
        let held = input.allocated();
        let mut freed = 0;
        if !self.opener.is_mid_packet() && input.release_idle() {
            freed += held;
        }
        if self.out.is_empty() && self.out.capacity() > 0 {
            // Sealed bytes are ciphertext (or cleartext before the keys):
            // nothing secret is left behind.
            freed += self.out.capacity();
            self.out = Vec::new();
        }
        freed + self.hold.release_idle()
    }

    /// The bytes [`Connection::release_idle_memory`] would give back now
    /// if the connection is at rest (nothing buffered either way, no packet
    /// half read); 0 while it is not. A driver that gives memory back after
    /// a rest starts counting when this is above 0.
    pub fn idle_bytes(&self, input: &InputBuffer) -> usize {
        let at_rest = input.buffered() == 0 && !self.opener.is_mid_packet() && self.out.is_empty();
        if !at_rest {
            return 0;
        }
        // Held messages wait for our NEWKEYS: their buffer stays.
        let hold = if self.hold.is_empty() {
            self.hold.allocated()
        } else {
            0
        };
        input.allocated() + self.out.capacity() + hold
    }

    /// Heap bytes the connection's own buffers hold now (output and hold;
    /// the input is the driver's: [`InputBuffer::allocated`]), for memory
    /// accounting.
    pub fn buffer_bytes(&self) -> usize {
        self.out.capacity() + self.hold.allocated()
    }
}
