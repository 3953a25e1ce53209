//! The connection's clocks: the handshake deadline, the keepalive interval
//! and the key age limit, as deadlines the driver is told about
//! ([`Connection::poll_timeout`](super::Connection::poll_timeout)) and
//! fires ([`Connection::handle_timeout`](super::Connection::handle_timeout)).
//!
//! Every deadline that is reported is consumed once it is reached (it
//! fires and then moves on or disappears), so a driver that sleeps until
//! the reported instant never spins.

use std::time::{Duration, Instant};

/// Where the key exchange deadline stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// No deadline: before `start_handshake` or after `complete_handshake`.
    Off,
    /// The exchange must be done by then.
    Until(Instant),
    /// The deadline passed.
    TimedOut,
}

/// The timers of one connection.
#[derive(Debug)]
pub(crate) struct Timers {
    /// The latest instant the driver gave; key switches are stamped with it.
    pub(crate) now: Instant,
    pub(crate) handshake: Handshake,
    /// Idle time after which a keepalive is due; `None` for none.
    pub(crate) keepalive: Option<Duration>,
    /// The last time bytes moved either way (or a keepalive fell due).
    pub(crate) last_activity: Instant,
    /// The caller's rekey time limit.
    pub(crate) max_key_age: Option<Duration>,
    /// When each direction's current keys were installed (`None` in the
    /// clear mode), indexed by [`super::IN`] and [`super::OUT`].
    pub(crate) keys_since: [Option<Instant>; 2],
}

impl Timers {
    pub(crate) fn new(now: Instant) -> Timers {
        Timers {
            now,
            handshake: Handshake::Off,
            keepalive: None,
            last_activity: now,
            max_key_age: None,
            keys_since: [None; 2],
        }
    }

    /// Moves the clock; never backwards, so a driver with two threads that
    /// read the clock in either order cannot unfire a timer.
    pub(crate) fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// Records bytes moving either way.
    pub(crate) fn touch(&mut self) {
        self.last_activity = self.now;
    }

    pub(crate) fn handshake_deadline(&self) -> Option<Instant> {
        match self.handshake {
            Handshake::Until(deadline) => Some(deadline),
            _ => None,
        }
    }

    /// When the oldest key reaches its age limit (`None` past the end of
    /// time).
    pub(crate) fn key_age_deadline(&self) -> Option<Instant> {
        let max = self.max_key_age?;
        let since = self.keys_since.iter().flatten().min()?;
        since.checked_add(max)
    }

    pub(crate) fn keepalive_deadline(&self) -> Option<Instant> {
        self.last_activity.checked_add(self.keepalive?)
    }
}

/// The shortest interval a timer runs at: a zero interval would give a
/// deadline equal to the instant that fired the last one, and a driver that
/// sleeps until it would spin.
const TICK: Duration = Duration::from_millis(1);

/// `interval`, or one millisecond if it is shorter.
pub(crate) fn at_least_a_tick(interval: Duration) -> Duration {
    interval.max(TICK)
}

/// The earlier of two optional instants.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
