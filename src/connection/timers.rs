//! The connection's clocks: the handshake deadline, the keepalive interval
//! and the key age limit, as deadlines the driver is told about
//! ([`Connection::poll_timeout`](super::Connection::poll_timeout)) and
//! fires ([`Connection::handle_timeout`](super::Connection::handle_timeout)).
//!
//! Every deadline that is reported is consumed once it is reached (it
//! fires and then moves on or disappears), so a driver that sleeps until
//! the reported instant never spins.

use std::time::{Duration, Instant};

use super::{Connection, Event};
use crate::error::Error;

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

/// The connection's timers, in the order they fire when due together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The key exchange deadline: the connection fails.
    Handshake,
    /// The oldest key reached the age limit: a rekey is wanted.
    KeyAge,
    /// No traffic for the keepalive interval: a keepalive is due.
    Keepalive,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::Handshake, Timer::KeyAge, Timer::Keepalive];
}

impl Connection {
    /// When `timer` fires, if it is armed now. The handshake deadline runs
    /// whatever the rekey state; the key age only after the initial kex and
    /// while no rekey is wanted; the keepalive only after the initial kex
    /// and never during a key exchange.
    fn deadline(&self, timer: Timer) -> Option<Instant> {
        let policy = &self.policy;
        let timers = &policy.timers;
        match timer {
            Timer::Handshake => timers.handshake_deadline(),
            Timer::KeyAge if policy.initial_kex_done && policy.rekey.is_none() => {
                timers.key_age_deadline()
            }
            Timer::Keepalive if self.keepalive_allowed() => timers.keepalive_deadline(),
            _ => None,
        }
    }

    /// Fires `timer`, which is due.
    fn fire(&mut self, timer: Timer) {
        let policy = &mut self.policy;
        match timer {
            Timer::Handshake => {
                policy.timers.handshake = Handshake::TimedOut;
                policy.raise(Event::HandshakeTimedOut);
                policy.latch.record_unreported(Error::HandshakeTimeout);
            }
            Timer::KeyAge => policy.want_rekey("the keys reached their age limit"),
            Timer::Keepalive => {
                // The interval starts again whether or not anything is sent.
                policy.timers.touch();
                policy.keepalives_due += 1;
                policy.raise(Event::KeepaliveDue);
            }
        }
    }

    /// The next instant at which [`Connection::handle_timeout`] has
    /// something to do: the handshake deadline, the keepalive, the key age.
    /// `None`: nothing until bytes move (or the connection ended).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.policy.latch.is_set() {
            return None;
        }
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.deadline(t))
            .min()
    }

    /// `n` bytes moved either way at `now` (none: only the time): the idle
    /// timer restarts if any did, and the deadlines are checked.
    pub(super) fn traffic(&mut self, n: usize, now: Instant) {
        self.policy.timers.advance(now);
        if n > 0 {
            self.policy.timers.touch();
        }
        self.handle_timeout(now);
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.policy.timers.advance(now);
        let now = self.policy.timers.now;
        for timer in Timer::ALL {
            // A timer that ended the connection ends the round too.
            if self.policy.latch.is_set() {
                return;
            }
            if self.deadline(timer).is_some_and(|due| now >= due) {
                self.fire(timer);
            }
        }
    }

    /// The next event, once each. The drivers take none: they follow
    /// [`Connection::rekeys_wanted`] and [`Connection::keepalives_due`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.policy.events.pop_front()
    }

    /// How many times the keepalive fell due: each time raised
    /// [`Event::KeepaliveDue`]. A driver that runs a keepalive callback
    /// remembers the count it last acted on, so it needs no event.
    pub fn keepalives_due(&self) -> u64 {
        self.policy.keepalives_due
    }

    /// Starts the key exchange deadline: `timeout` from `now`.
    pub fn start_handshake(&mut self, timeout: Duration, now: Instant) {
        self.policy.timers.advance(now);
        // A deadline past the end of time is no deadline.
        self.policy.timers.handshake = match now.checked_add(timeout) {
            Some(deadline) => Handshake::Until(deadline),
            None => Handshake::Off,
        };
    }

    /// Ends the key exchange deadline.
    pub fn complete_handshake(&mut self) {
        if self.policy.timers.handshake != Handshake::TimedOut {
            self.policy.timers.handshake = Handshake::Off;
        }
    }

    /// Whether the handshake deadline passed; false before
    /// `start_handshake` and after `complete_handshake`.
    pub fn handshake_timed_out(&self) -> bool {
        self.policy.timers.handshake == Handshake::TimedOut
    }

    /// Raises [`Event::KeepaliveDue`] after `interval` without traffic
    /// either way (only after the initial kex, never during one); `None`
    /// turns it off. Idle time before this call does not count. Intervals
    /// (and key age limits) under a millisecond count as one, so a deadline
    /// always lies ahead of the instant that fired the last one.
    pub fn set_keepalive(&mut self, interval: Option<Duration>, now: Instant) {
        self.policy.timers.advance(now);
        self.policy.timers.keepalive = interval.map(at_least_a_tick);
        self.policy.timers.touch();
    }
}
