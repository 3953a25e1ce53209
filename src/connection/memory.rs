//! Memory: the buffers a connection holds, and giving them back at rest.

use super::Connection;

impl Connection {
    /// Gives back the buffers that hold nothing, wiped: the input buffer if
    /// no byte is buffered, the output if none is pending, and the hold if it
    /// is empty. A driver calls this when the connection goes idle (a read
    /// found nothing to read), so a connection at rest keeps no read room or
    /// write buffer; they grow again on demand. Returns the bytes given
    /// back.
    pub fn release_idle_memory(&mut self) -> usize {
        let input = self.opener.input_allocated();
        let mut freed = 0;
        if self.opener.release_idle() {
            freed += input;
        }
        freed + self.release_idle_output()
    }

    /// [`Connection::release_idle_memory`] for a driver that keeps the input
    /// buffer itself.
    #[cfg(feature = "tokio")]
    pub(crate) fn release_idle_memory_in(
        &mut self,
        input: &mut crate::codec::input::InputBuffer,
    ) -> usize {
        let held = input.allocated();
        let mut freed = 0;
        if !self.opener_core().mid_packet() && input.release_idle() {
            freed += held;
        }
        freed + self.release_idle_output()
    }

    fn release_idle_output(&mut self) -> usize {
        let mut freed = 0;
        if self.out.is_empty() && self.out.capacity() > 0 {
            // Sealed bytes are ciphertext (or cleartext before the keys):
            // nothing secret is left behind.
            freed += self.out.capacity();
            self.out = Vec::new();
        }
        freed + self.hold.release_idle()
    }

    /// Nothing buffered either way and no packet half read: the connection
    /// is at rest.
    #[cfg(feature = "tokio")]
    pub(crate) fn is_at_rest(&self) -> bool {
        self.opener.buffered() == 0 && !self.opener.core().mid_packet() && self.out.is_empty()
    }

    /// The bytes [`Connection::release_idle_memory`] would give back now
    /// (with `input` in place of the core's own input buffer, for a driver
    /// that keeps it).
    #[cfg(feature = "tokio")]
    pub(crate) fn releasable_bytes(
        &self,
        input: Option<&crate::codec::input::InputBuffer>,
    ) -> usize {
        let (held, buffered) = match input {
            Some(input) => (input.allocated(), input.buffered()),
            None => (self.opener.input_allocated(), self.opener.buffered()),
        };
        let input = if buffered == 0 && !self.opener.core().mid_packet() {
            held
        } else {
            0
        };
        let out = if self.out.is_empty() {
            self.out.capacity()
        } else {
            0
        };
        let hold = if self.hold.is_empty() {
            self.hold.allocated()
        } else {
            0
        };
        input + out + hold
    }

    /// Heap bytes the connection's buffers hold now (input, output, hold),
    /// for memory accounting.
    pub fn buffer_bytes(&self) -> usize {
        self.opener.input_allocated() + self.out.capacity() + self.hold.allocated()
    }
}
