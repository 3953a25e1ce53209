//! Throttling of unauthenticated connections, as sshd does it.
//!
//! - MaxStartups `start:rate:full` (sshd's default 10:30:100): with
//!   `start` or more connections not yet authenticated, a new one is
//!   dropped with probability `rate` percent, rising linearly (in sshd's
//!   integer steps) to every one at `full`. This is random early drop: a
//!   flood cannot hold all the places, and a legitimate client that tries
//!   again gets in.
//! - PerSourceMaxStartups `n` (off by default, as in sshd 9.2): at most `n`
//!   unauthenticated connections from one address; more are dropped at
//!   once.
//!
//! A connection counts from its admission until it authenticates or ends
//! ([`Startup`]). The drop decision draws from a seeded generator, so a
//! test can count outcomes exactly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// sshd's MaxStartups triple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxStartups {
    /// Unauthenticated connections from which dropping starts.
    pub start: u32,
    /// The percentage dropped at `start`.
    pub rate: u32,
    /// Unauthenticated connections from which every new one is dropped.
    pub full: u32,
}

impl Default for MaxStartups {
    /// sshd's default, 10:30:100.
    fn default() -> Self {
        MaxStartups {
            start: 10,
            rate: 30,
            full: 100,
        }
    }
}

impl MaxStartups {
    /// Parses sshd's forms: `start:rate:full`, or a single number (every
    /// connection beyond it dropped).
    pub fn parse(text: &str) -> Result<MaxStartups, String> {
        let numbers: Vec<u32> = text
            .split(':')
            .map(|n| n.parse().map_err(|_| format!("not a number: {n:?}")))
            .collect::<Result<_, _>>()?;
        let parsed = match numbers[..] {
            [start] => MaxStartups {
                start,
                rate: 100,
                full: start,
            },
            [start, rate, full] => MaxStartups { start, rate, full },
            _ => return Err(format!("{text:?} is neither N nor start:rate:full")),
        };
        if parsed.rate > 100 || parsed.full < parsed.start || parsed.full == 0 {
            return Err(format!(
                "{text:?}: rate must be at most 100 and full at least start (and above 0)"
            ));
        }
        Ok(parsed)
    }

    /// The percentage of new connections to drop with `startups`
    /// unauthenticated ones open: sshd's integer ramp.
    pub fn drop_percent(&self, startups: u32) -> u32 {
        if startups < self.start {
            0
        } else if startups >= self.full || self.rate == 100 {
            100
        } else {
            (100 - self.rate) * (startups - self.start) / (self.full - self.start) + self.rate
        }
    }
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// MaxStartups's random early drop.
    MaxStartups,
    /// Too many unauthenticated connections from its address.
    PerSource,
}

impl Dropped {
    /// What the client is told (sshd's words), before the hang-up.
    pub fn message(self) -> &'static str {
        match self {
            Dropped::MaxStartups => "Exceeded MaxStartups",
            Dropped::PerSource => "Exceeded PerSourceMaxStartups",
        }
    }
}

#[derive(Debug)]
struct Counts {
    /// Unauthenticated connections open.
    startups: u32,
    /// The same, per address (only with a per-source limit).
    by_source: HashMap<IpAddr, u32>,
    rng: fastrand::Rng,
}

/// The server's count of unauthenticated connections, and its decisions.
#[derive(Debug)]
pub struct Throttle {
    max_startups: MaxStartups,
    per_source: Option<u32>,
    counts: Mutex<Counts>,
}

impl Throttle {
    /// A throttle drawing from a generator seeded with `seed`.
    pub fn new(max_startups: MaxStartups, per_source: Option<u32>, seed: u64) -> Arc<Throttle> {
        Arc::new(Throttle {
            max_startups,
            per_source,
            counts: Mutex::new(Counts {
                startups: 0,
                by_source: HashMap::new(),
                rng: fastrand::Rng::with_seed(seed),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides on a new connection from `source`: admitted (and counted
    /// until it authenticates or ends), or dropped.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Startup, Dropped> {
        let mut counts = self.lock();
        if let Some(limit) = self.per_source {
            if counts.by_source.get(&source).copied().unwrap_or(0) >= limit {
                return Err(Dropped::PerSource);
            }
        }
        let percent = self.max_startups.drop_percent(counts.startups);
        if percent > 0 && counts.rng.u32(0..100) < percent {
            return Err(Dropped::MaxStartups);
        }
        counts.startups += 1;
        if self.per_source.is_some() {
            *counts.by_source.entry(source).or_insert(0) += 1;
        }
        Ok(Startup {
            throttle: self.clone(),
            source,
            counted: true,
        })
    }

    /// Unauthenticated connections open now.
    pub fn startups(&self) -> u32 {
        self.lock().startups
    }

    fn release(&self, source: IpAddr) {
        let mut counts = self.lock();
        counts.startups = counts.startups.saturating_sub(1);
        if let Some(n) = counts.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                counts.by_source.remove(&source);
            }
        }
    }
}

/// An admitted connection's place among the unauthenticated, given back
/// when it authenticates or when dropped.
#[derive(Debug)]
pub struct Startup {
    throttle: Arc<Throttle>,
    source: IpAddr,
    counted: bool,
}

impl Startup {
    /// The connection authenticated: it no longer counts.
    pub fn authenticated(mut self) {
        self.give_back();
    }

    fn give_back(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.throttle.release(self.source);
        }
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        self.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn the_ramp_is_sshds() {
        let m = MaxStartups::default();
        assert_eq!(m.drop_percent(9), 0);
        assert_eq!(m.drop_percent(10), 30);
        // 70 points over 90 connections, in integer steps.
        assert_eq!(m.drop_percent(11), 30);
        assert_eq!(m.drop_percent(12), 31);
        assert_eq!(m.drop_percent(55), 65);
        assert_eq!(m.drop_percent(99), 99);
        assert_eq!(m.drop_percent(100), 100);
        assert_eq!(MaxStartups::parse("10:30:100"), Ok(m));
        let single = MaxStartups::parse("4").unwrap();
        assert_eq!((single.drop_percent(3), single.drop_percent(4)), (0, 100));
        assert!(MaxStartups::parse("10:130:100").is_err());
        assert!(MaxStartups::parse("10:30:5").is_err());
        assert!(MaxStartups::parse("a:b").is_err());
    }

    #[test]
    fn below_start_nothing_is_dropped_and_at_full_everything() {
        let t = Throttle::new(MaxStartups::default(), None, 1);
        let admitted: Vec<_> = (0..10).map(|_| t.admit(A).unwrap()).collect();
        assert_eq!(t.startups(), 10);
        // Up to `full`, some are admitted; from it on, none.
        let mut held = admitted;
        while t.startups() < 100 {
            if let Ok(s) = t.admit(A) {
                held.push(s);
            }
        }
        for _ in 0..1000 {
            assert_eq!(t.admit(A).unwrap_err(), Dropped::MaxStartups);
        }
        // Authenticated or gone, they stop counting.
        held.pop().unwrap().authenticated();
        drop(held.pop());
        assert_eq!(t.startups(), 98);
    }

    #[test]
    fn the_drop_rate_between_follows_the_ramp() {
        // 55 unauthenticated open: 65 % of new ones are dropped. Each
        // admitted one is let go at once, so the count stays at 55.
        let t = Throttle::new(MaxStartups::default(), None, 7);
        let _open: Vec<_> = (0..55)
            .map(|_| loop {
                if let Ok(s) = t.admit(A) {
                    break s;
                }
            })
            .collect();
        let trials = 10_000;
        let dropped = (0..trials).filter(|_| t.admit(A).is_err()).count();
        assert_eq!(t.startups(), 55);
        // Seeded: the count is the same every run; the band says it is the
        // ramp's 65 %.
        assert!((6_300..=6_700).contains(&dropped), "{dropped}");
    }

    #[test]
    fn the_per_source_limit_counts_each_address() {
        let t = Throttle::new(MaxStartups::default(), Some(3), 3);
        let from_a: Vec<_> = (0..3).map(|_| t.admit(A).unwrap()).collect();
        assert_eq!(t.admit(A).unwrap_err(), Dropped::PerSource);
        let _b = t.admit(B).unwrap();
        let mut from_a = from_a;
        from_a.pop().unwrap().authenticated();
        let _again = t.admit(A).unwrap();
        assert_eq!(t.admit(A).unwrap_err(), Dropped::PerSource);
        assert_eq!(t.startups(), 4);
    }
}
