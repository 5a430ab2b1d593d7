//! Per-peer token buckets for inbound requests, so one peer cannot flood a
//! node's services. Pure (time is passed in) and bounded: it tracks at most
//! [`MAX_PEERS`] peers (or a cap of the caller's) and forgets idle ones.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;

/// Most peers tracked at once; beyond it the table is pruned.
pub const MAX_PEERS: usize = 10_000;
/// Mailbox requests one peer may make at once: generous for honest peers
/// (a fetch is a few requests), tight enough to stop a flood.
pub const MAILBOX_BURST: f64 = 200.0;
/// Mailbox requests per second one peer may make after its burst.
pub const MAILBOX_RATE: f64 = 50.0;
/// Presence requests (or pushed states) one peer may send at once: a
/// user changes state a few times a minute.
pub const PRESENCE_BURST: f64 = 100.0;
/// Presence requests (or pushed states) per second after the burst.
pub const PRESENCE_RATE: f64 = 20.0;

/// A point in time a limiter measures from: an [`Instant`], or unix
/// milliseconds (`u64`) where the caller's rules take the wall clock as
/// an input. Time going backwards counts as none gone by.
pub trait Moment: Copy {
    /// Seconds from `earlier` to `self`, 0 if `earlier` is later.
    fn secs_since(self, earlier: Self) -> f64;
}

impl Moment for Instant {
    fn secs_since(self, earlier: Self) -> f64 {
        self.saturating_duration_since(earlier).as_secs_f64()
    }
}

impl Moment for u64 {
    fn secs_since(self, earlier: Self) -> f64 {
        self.saturating_sub(earlier) as f64 / 1000.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket<T> {
    tokens: f64,
    at: T,
}

/// A token bucket per peer: `burst` requests at once, refilled at `rate`
/// per second; at most `cap` peers tracked.
#[derive(Debug)]
pub struct RateLimiter<T = Instant> {
    rate: f64,
    burst: f64,
    cap: usize,
    peers: HashMap<PeerId, Bucket<T>>,
}

impl<T: Moment> RateLimiter<T> {
    /// Allows `burst` at once and `rate` per second after that, for up to
    /// [`MAX_PEERS`] peers.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self::with_cap(rate, burst, MAX_PEERS)
    }

    /// [`RateLimiter::new`] tracking at most `cap` peers.
    pub fn with_cap(rate: f64, burst: f64, cap: usize) -> Self {
        Self {
            rate,
            burst,
            cap: cap.max(1),
            peers: HashMap::new(),
        }
    }

    /// Whether `peer` may make one more request at `now`.
    pub fn allow(&mut self, peer: PeerId, now: T) -> bool {
        if self.peers.len() >= self.cap && !self.peers.contains_key(&peer) {
            self.prune(now);
        }
        let burst = self.burst;
        let b = self.peers.entry(peer).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.secs_since(b.at) * self.rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A bucket's tokens at `now`.
    fn tokens(&self, b: &Bucket<T>, now: T) -> f64 {
        (b.tokens + now.secs_since(b.at) * self.rate).min(self.burst)
    }

    /// Forgets peers whose bucket is full again (they are idle: a peer
    /// not tracked starts full); if none is, forgets the one nearest a
    /// full bucket, so that fresh peers cannot buy a drained one a new
    /// burst by crowding it out.
    fn prune(&mut self, now: T) {
        let peers = std::mem::take(&mut self.peers);
        self.peers = peers
            .into_iter()
            .filter(|(_, b)| self.tokens(b, now) < self.burst)
            .collect();
        if self.peers.len() >= self.cap {
            let fullest = self
                .peers
                .iter()
                .max_by(|a, b| self.tokens(a.1, now).total_cmp(&self.tokens(b.1, now)))
                .map(|(p, _)| *p);
            if let Some(p) = fullest {
                self.peers.remove(&p);
            }
        }
    }

    /// Peers currently tracked (tests).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10.0, 5.0);
        let p = PeerId::random();
        assert_eq!((0..8).filter(|_| r.allow(p, t0)).count(), 5);
        assert!(!r.allow(p, t0 + Duration::from_millis(50)));
        assert!(r.allow(p, t0 + Duration::from_millis(100)));
        // Others are not affected.
        assert!(r.allow(PeerId::random(), t0));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| r.allow(p, later)).count(), 5);
    }

    #[test]
    fn the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1.0, 2.0);
        for _ in 0..MAX_PEERS + 100 {
            r.allow(PeerId::random(), t0);
        }
        assert!(r.tracked() <= MAX_PEERS);
    }
}
