//! State both directions share: closed, timers, rekey signalling, hexdump.
//!
//! Behind an `Arc` so the halves of a split Packetizer on two threads see the
//! same state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::clock::Clock;
use crate::error::Error;

/// Which way a key switch went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    In = 0,
    Out = 1,
}

#[derive(Debug)]
struct Timers {
    /// Last time bytes were read or written, in either direction.
    last_activity: Instant,
    /// Set by `start_handshake`, cleared by `complete_handshake`.
    handshake_deadline: Option<Instant>,
    /// A rekey was asked for by either direction's budget or the time limit.
    rekey_wanted: bool,
    /// Which directions switched keys since the last time both had.
    switched: [bool; 2],
    /// When each direction last switched keys.
    keys_since: [Instant; 2],
    /// The caller's rekey time limit.
    max_key_age: Option<Duration>,
}

pub(crate) struct Shared {
    clock: Arc<dyn Clock>,
    closed: AtomicBool,
    hexdump: AtomicBool,
    timers: Mutex<Timers>,
}

impl Shared {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Arc<Shared> {
        let now = clock.now();
        Arc::new(Shared {
            clock,
            closed: AtomicBool::new(false),
            hexdump: AtomicBool::new(false),
            timers: Mutex::new(Timers {
                last_activity: now,
                handshake_deadline: None,
                rekey_wanted: false,
                switched: [false; 2],
                keys_since: [now; 2],
                max_key_age: None,
            }),
        })
    }

    fn timers(&self) -> MutexGuard<'_, Timers> {
        // Plain data: usable even if a panic elsewhere poisoned the lock.
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Passes `result` through, closing the connection if it is a fatal
    /// error: after one, every call must answer `Closed`.
    pub(crate) fn settle<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            if e.is_fatal() && !self.is_closed() {
                log::debug!("closing after: {e}");
                self.close();
            }
        }
        result
    }

    pub(crate) fn hexdump(&self) -> bool {
        self.hexdump.load(Ordering::Relaxed)
    }

    pub(crate) fn set_hexdump(&self, on: bool) {
        self.hexdump.store(on, Ordering::Relaxed);
    }

    /// Records traffic: the keepalive interval starts again.
    pub(crate) fn touch(&self) {
        let now = self.now();
        self.timers().last_activity = now;
    }

    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.now();
        now.saturating_duration_since(self.timers().last_activity)
    }

    pub(crate) fn start_handshake(&self, timeout: Duration) {
        let deadline = self.now() + timeout;
        self.timers().handshake_deadline = Some(deadline);
    }

    pub(crate) fn complete_handshake(&self) {
        self.timers().handshake_deadline = None;
    }

    pub(crate) fn handshake_timed_out(&self) -> bool {
        let now = self.now();
        self.timers()
            .handshake_deadline
            .is_some_and(|deadline| now > deadline)
    }

    pub(crate) fn want_rekey(&self) {
        let mut t = self.timers();
        if !t.rekey_wanted {
            log::debug!("rekey needed");
            t.rekey_wanted = true;
        }
    }

    /// Whether a rekey is wanted, by a budget or by the key age limit. Runs
    /// per packet, so the clock is read only when there is an age limit.
    pub(crate) fn rekey_wanted(&self) -> bool {
        let mut t = self.timers();
        if !t.rekey_wanted {
            if let Some(max) = t.max_key_age {
                let now = self.now();
                let aged = |since: Instant| now.saturating_duration_since(since) >= max;
                if aged(t.keys_since[0]) || aged(t.keys_since[1]) {
                    log::debug!("rekey needed: keys reached their age limit");
                    t.rekey_wanted = true;
                }
            }
        }
        t.rekey_wanted
    }

    /// Records a key switch; once both directions have switched, a pending
    /// rekey request is satisfied.
    pub(crate) fn keys_switched(&self, way: Way) {
        let now = self.now();
        let mut t = self.timers();
        t.switched[way as usize] = true;
        t.keys_since[way as usize] = now;
        if t.switched == [true; 2] {
            t.switched = [false; 2];
            t.rekey_wanted = false;
        }
    }

    pub(crate) fn set_max_key_age(&self, max: Option<Duration>) {
        self.timers().max_key_age = max;
    }
}
