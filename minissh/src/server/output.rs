//! How the connection's task seals messages: at once, never waiting.
//!
//! Between our KEXINIT and our NEWKEYS the packet layer holds connection
//! messages (up to its hold's limit) and seals them behind NEWKEYS. The
//! task that reads is the one that sends NEWKEYS, so it may never wait for
//! room in that hold: command output waits instead (it is read only while
//! the hold and the output have room), and a reply that finds the hold
//! full is the client's fault (it asked for too much during one exchange).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use ssh_packetizer::tokio::PacketWriter;
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;

use crate::error::{Error, Result};

/// Sealed output waiting to be written past which command output waits:
/// the client is slower than the commands.
const OUTPUT_LIMIT: usize = 256 * 1024;

/// Held payload past which command output waits during a key exchange,
/// which leaves the rest of the hold for replies.
const HOLD_BUDGET: usize = 64 * 1024;

/// Whether a message was sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sealed {
    /// Sealed (or held for after our NEWKEYS).
    Yes,
    /// The hold had no room: nothing was sealed.
    HoldFull,
}

/// The write half of the socket, counting what was written, so a writer
/// that makes no progress can be told from one that is slow.
#[derive(Debug)]
pub(super) struct Watched {
    inner: OwnedWriteHalf,
    written: Arc<AtomicU64>,
}

impl Watched {
    /// `inner`, counting into `written`.
    pub(super) fn new(inner: OwnedWriteHalf, written: Arc<AtomicU64>) -> Watched {
        Watched { inner, written }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection's writer, for sealing.
pub(super) type Writer = PacketWriter<Watched>;

/// Seals into the connection's writer without waiting.
#[derive(Debug)]
pub(super) struct Output {
    writer: Writer,
    /// Payload bytes sealed (for the log).
    sealed: AtomicU64,
}

impl Output {
    pub(super) fn new(writer: Writer) -> Output {
        Output {
            writer,
            sealed: AtomicU64::new(0),
        }
    }

    /// Payload bytes sealed so far, every message counted.
    pub(super) fn payload_bytes(&self) -> u64 {
        self.sealed.load(Ordering::Relaxed)
    }

    /// Counts a transport message sealed past this type (KEXINIT and the
    /// kex method's, NEWKEYS).
    pub(super) fn count(&self, payload_len: usize) {
        self.sealed.fetch_add(payload_len as u64, Ordering::Relaxed);
    }

    /// The writer (for the key exchange's messages and the core).
    pub(super) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Seals `payload`, or says the hold is full.
    pub(super) fn seal(&self, payload: &[u8]) -> Result<Sealed> {
        match self
            .writer
            .connection()
            .with(|core| core.send_message(payload))
        {
            Ok(_) => {
                self.count(payload.len());
                Ok(Sealed::Yes)
            }
            Err(ssh_packetizer::Error::KexHoldFull { .. }) => Ok(Sealed::HoldFull),
            Err(e) => Err(e.into()),
        }
    }

    /// Seals a reply, which cannot wait.
    pub(super) fn reply(&self, payload: &[u8]) -> Result<()> {
        match self.seal(payload)? {
            Sealed::Yes => Ok(()),
            Sealed::HoldFull => Err(Error::Protocol(
                "the client asked for more replies than fit in one key exchange's hold".into(),
            )),
        }
    }

    /// Whether command output may be read now: the output waiting to be
    /// written is short, and during a key exchange the hold has room.
    pub(super) fn has_room_for_output(&self) -> bool {
        self.writer.connection().with(|core| {
            core.pending_output().len() < OUTPUT_LIMIT
                && (!core.is_kex_in_progress() || core.held_bytes() < HOLD_BUDGET)
        })
    }

    /// Whether sealed bytes wait to be written.
    pub(super) fn has_pending_output(&self) -> bool {
        self.writer
            .connection()
            .with(|core| !core.pending_output().is_empty())
    }
}
