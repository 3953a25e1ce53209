//! The one timer an async driver keeps: it sleeps until the core's next
//! deadline or until the connection has been at rest long enough to give
//! its buffers back, whichever comes first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ::tokio::time::Sleep;

/// How long a connection stays at rest (nothing buffered, nothing to
/// write) before its drivers give the read and write buffers back. Long
/// enough that a busy connection, which rests between every two reads,
/// keeps its buffers; short enough that thousands of idle connections cost
/// little.
pub const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// The time, from tokio's clock (which tests may pause and move by hand).
pub(crate) fn now() -> Instant {
    ::tokio::time::Instant::now().into_std()
}

/// A lazily allocated `Sleep`, moved to whichever deadline is next.
#[derive(Default)]
pub(crate) struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline the sleep is set to.
    armed: Option<Instant>,
    /// When the buffers are given back if the connection stays at rest.
    release_at: Option<Instant>,
}

impl Timer {
    /// The connection is at rest, holding buffers: give them back after
    /// [`IDLE_RELEASE`] unless bytes move first. A rest that goes on (the
    /// read polled again for another reason, a `select!` tick) keeps the
    /// deadline it had.
    pub(crate) fn resting(&mut self, now: Instant) {
        if self.release_at.is_none() {
            self.release_at = now.checked_add(IDLE_RELEASE);
        }
    }

    /// The connection moved or gave its buffers back: no release is due.
    pub(crate) fn moving(&mut self) {
        self.release_at = None;
    }

    /// Whether the rest has lasted long enough to give the buffers back.
    pub(crate) fn release_due(&self, now: Instant) -> bool {
        self.release_at.is_some_and(|at| now >= at)
    }

    /// Sleeps until the core's next deadline (its `poll_timeout`) or the release, whichever is
    /// first; `Ready` once that instant has passed. With neither, the sleep
    /// is dropped, so a connection without timers keeps none.
    pub(crate) fn poll(
        &mut self,
        core_deadline: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let next = match (core_deadline, self.release_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(deadline) = next else {
            self.sleep = None;
            self.armed = None;
            return Poll::Pending;
        };
        let at = ::tokio::time::Instant::from_std(deadline);
        match &mut self.sleep {
            Some(sleep) if self.armed != Some(deadline) => sleep.as_mut().reset(at),
            Some(_) => {}
            None => self.sleep = Some(Box::pin(::tokio::time::sleep_until(at))),
        }
        self.armed = Some(deadline);
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}
