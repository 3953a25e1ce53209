//! The window the server granted on one of the client's channels, shared
//! by the thread that reads (which grants more and closes it) and the
//! threads that send (which wait for it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::flow::MAX_PACKET;

#[derive(Debug, Default)]
struct State {
    /// The peer's number for the channel, once open.
    remote_id: Option<u32>,
    /// Bytes the peer still accepts.
    available: u64,
    /// The peer's largest data packet.
    max_packet: u32,
    /// The peer closed the channel (or we did): nothing more may be sent.
    closed: bool,
    /// Why the connection is gone, once it is.
    dead: Option<String>,
    /// Senders asleep on the condvar, so a window adjust with nobody
    /// waiting costs no futex call.
    waiters: u32,
}

/// The window the peer granted us on one channel, and whether we have
/// closed it.
#[derive(Debug, Default)]
pub struct SendWindow {
    state: Mutex<State>,
    changed: Condvar,
    /// Our CLOSE is sealed: nothing more may be (set by the outbound side
    /// under its gate's lock, in the step that seals the CLOSE).
    closed_by_us: AtomicBool,
}

impl SendWindow {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere never leaves the state half-updated: recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The numbers of CHANNEL_OPEN_CONFIRMATION (or of the peer's
    /// CHANNEL_OPEN, on the server).
    pub fn open(&self, remote_id: u32, window: u32, max_packet: u32) {
        let mut s = self.lock();
        s.remote_id = Some(remote_id);
        s.available = u64::from(window);
        s.max_packet = max_packet;
    }

    /// The peer's number for the channel, once open.
    pub fn remote_id(&self) -> Option<u32> {
        self.lock().remote_id
    }

    /// CHANNEL_WINDOW_ADJUST: `bytes` more may be sent.
    pub fn grant(&self, bytes: u32) {
        let mut s = self.lock();
        s.available = s.available.saturating_add(u64::from(bytes));
        let wake = s.waiters > 0;
        drop(s);
        if wake {
            self.changed.notify_all();
        }
    }

    /// The channel closed: senders stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The connection died: senders stop with `why`.
    pub fn fail(&self, why: &str) {
        let mut s = self.lock();
        if s.dead.is_none() {
            s.dead = Some(why.to_owned());
        }
        drop(s);
        self.changed.notify_all();
    }

    /// Waits until the peer grants window, then takes up to `want` bytes of
    /// it (at most one packet's worth). Returns the peer's channel id and
    /// the bytes taken.
    pub(super) fn reserve(&self, want: usize) -> Result<(u32, usize)> {
        self.take(want, true)
            .map(|taken| taken.expect("a waiting take returns window"))
    }

    /// As [`SendWindow::reserve`], but `None` at once when the peer has
    /// granted no window.
    pub(super) fn try_reserve(&self, want: usize) -> Result<Option<(u32, usize)>> {
        self.take(want, false)
    }

    fn take(&self, want: usize, wait: bool) -> Result<Option<(u32, usize)>> {
        let mut s = self.lock();
        loop {
            if let Some(why) = &s.dead {
                return Err(Error::Protocol(why.clone()));
            }
            if s.closed {
                return Err(Error::ChannelRefused(
                    "more data: the channel is closed".into(),
                ));
            }
            if s.available > 0 {
                break;
            }
            if !wait {
                return Ok(None);
            }
            s.waiters += 1;
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            s.waiters -= 1;
        }
        let max = s.max_packet.clamp(1, MAX_PACKET) as usize;
        let n = want.min(max).min(s.available as usize);
        s.available -= n as u64;
        Ok(Some((s.remote_id.unwrap_or_default(), n)))
    }

    /// Whether our CLOSE has been sealed.
    pub fn closed_by_us(&self) -> bool {
        self.closed_by_us.load(Ordering::SeqCst)
    }

    /// Records that our CLOSE is being sealed; true for the first call
    /// only. Senders stop too.
    pub fn mark_closed_by_us(&self) -> bool {
        let first = !self.closed_by_us.swap(true, Ordering::SeqCst);
        if first {
            self.close();
        }
        first
    }

    /// Bytes the peer still accepts, and senders asleep waiting for more
    /// (for tests that wait for a sender to block).
    pub fn snapshot(&self) -> (u64, u32) {
        let s = self.lock();
        (s.available, s.waiters)
    }
}
