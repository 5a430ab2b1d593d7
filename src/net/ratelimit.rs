//! Per-peer token buckets for inbound requests, so one peer cannot flood a
//! node's services. Pure (time is passed in) and bounded: it tracks at most
//! [`MAX_PEERS`] peers and forgets idle ones.

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

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per peer: `burst` requests at once, refilled at `rate`
/// per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    peers: HashMap<PeerId, Bucket>,
}

impl RateLimiter {
    /// Allows `burst` at once and `rate` per second after that.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            peers: HashMap::new(),
        }
    }

    /// Whether `peer` may make one more request at `now`.
    pub fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&peer) {
            self.prune(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self.peers.entry(peer).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets peers whose bucket is full again (they are idle); if that is
    /// not enough, forgets everyone (they start with a full bucket, which
    /// is what they would have after idling).
    fn prune(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.peers.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
        if self.peers.len() >= MAX_PEERS {
            self.peers.clear();
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
