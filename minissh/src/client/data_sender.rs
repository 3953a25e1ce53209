//! Sends a channel's data (the client's stdin, scp's files): split to the peer's packet size,
//! waiting for window, several messages sealed per write.

use std::io::{self, Read};
use std::sync::Arc;

use super::link::Link;
use super::send_window::SendWindow;
use crate::error::Result;
use crate::flow::MAX_PACKET;
use crate::msg;

/// Bytes before the data: the message number, the recipient channel and
/// the data's length.
const HEADER: usize = 9;

/// Sends a channel's data, split to the peer's packet size
/// and waiting for window. A clone shares the window but has its own
/// message buffer, so each sending thread reuses its own.
#[derive(Clone, Debug)]
pub struct DataSender {
    window: Arc<SendWindow>,
    out: Arc<Link>,
    /// Data messages are built here: allocated and zeroed once, at one
    /// read's worth ([`READ_BATCH`]) plus a header; each message is a
    /// header written just before its part of the data.
    payload: Vec<u8>,
}

/// Most bytes [`DataSender::send_from`] reads at once. The messages cut
/// from one read are sealed together and written in one go: a pipe hands
/// over up to 64 KiB a read, so an upload writes to the socket about half
/// as often as with one read per 32 KiB packet, and a socket that is full
/// blocks the sender once per batch, not once per packet.
pub const READ_BATCH: usize = 4 * MAX_PACKET as usize;

/// Most data messages sealed before a write: four at OpenSSH's packet size
/// (one read's worth), and no more when the peer's packets are smaller.
const FLUSH_EVERY: usize = 4;

impl DataSender {
    /// A sender of CHANNEL_DATA over `window`.
    pub fn new(window: Arc<SendWindow>, out: Arc<Link>) -> DataSender {
        DataSender {
            window,
            out,
            payload: vec![0; HEADER + READ_BATCH],
        }
    }

    /// The connection it sends on.
    pub fn outbound(&self) -> &Arc<Link> {
        &self.out
    }

    /// Sends `data`, split to the peer's packet size, waiting for window;
    /// the messages are written together.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let header = HEADER;
        let mut queued = false;
        while !data.is_empty() {
            let (remote, n) = self.take_window(data.len(), &mut queued)?;
            self.payload[header..header + n].copy_from_slice(&data[..n]);
            self.queue_data(0, remote, n)?;
            queued = true;
            data = &data[n..];
        }
        if queued {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Window for up to `want` bytes: at once if the peer has granted
    /// some, else after writing what is `queued` (the peer must see it
    /// before it grants more) and waiting.
    fn take_window(&mut self, want: usize, queued: &mut bool) -> Result<(u32, usize)> {
        if let Some(taken) = self.window.try_reserve(want)? {
            return Ok(taken);
        }
        if std::mem::take(queued) {
            self.out.flush()?;
        }
        self.window.reserve(want)
    }

    /// Reads once from `src` straight into a data message and sends it,
    /// waiting for window for what was read (in parts if the peer's window
    /// or packet size is smaller): the bytes are copied by the read and by
    /// the Sealer, and nowhere else. Reading before reserving means a
    /// sender blocked in a read holds no window, so one idle stream never
    /// starves another (stdout and stderr share a window). Returns the
    /// number of bytes sent; 0 means `src` is at its end.
    pub fn send_from(&mut self, src: &mut impl Read) -> Result<usize> {
        let header = HEADER;
        let n = loop {
            match src.read(&mut self.payload[header..header + READ_BATCH]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        // Each message's header goes just before its data, over the tail
        // of the message before, which is sealed (copied) by then.
        let (mut at, end) = (header, header + n);
        let (mut queued, mut messages) = (false, 0);
        while at < end {
            let (remote, k) = self.take_window(end - at, &mut queued)?;
            self.queue_data(at - header, remote, k)?;
            queued = true;
            at += k;
            // A peer that asked for tiny packets gets them written a few at
            // a time, not a whole read's worth of them held at once.
            messages += 1;
            if messages % FLUSH_EVERY == 0 && at < end {
                self.out.flush()?;
                queued = false;
            }
        }
        if queued {
            self.out.flush()?;
        }
        Ok(n)
    }

    /// Seals the data message that starts at `start` in `payload` (its
    /// `len` data bytes after the header), without writing it.
    fn queue_data(&mut self, start: usize, remote: u32, len: usize) -> Result<()> {
        let header = HEADER;
        let message = &mut self.payload[start..start + header + len];
        message[1..5].copy_from_slice(&remote.to_be_bytes());
        message[0] = msg::CHANNEL_DATA;
        message[header - 4..header].copy_from_slice(&(len as u32).to_be_bytes());
        self.out.queue_on(Some(&self.window), message, false)
    }
}
