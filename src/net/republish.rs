//! When to (re)publish our locator record — a pure state machine owned by
//! the locator machine (`net::locator`), so its policy is tested without a
//! network.
//!
//! Policy:
//! - publish shortly after our listen addresses change (coalescing the burst
//!   of addresses a new listener reports);
//! - refresh at half the record's lifetime, so it never lapses while we run;
//! - while the routing table we published into was small, publish again as
//!   it grows (at most once per `min_interval`): the first put of a young
//!   node reaches only its bootstrap peer, and a record held by one peer
//!   dies with that peer.

use std::time::{Duration, Instant};

/// Routing table size (Kademlia's K) beyond which growth no longer triggers
/// a republish: the put already reached a full replica set.
pub const WELL_SPREAD: usize = 20;
/// Delay that coalesces bursts of address or peer events.
pub const SETTLE: Duration = Duration::from_millis(50);

/// The republish schedule.
#[derive(Debug, Clone)]
pub struct Republisher {
    ttl: Duration,
    min_interval: Duration,
    last: Option<Instant>,
    reach: usize,
    due: Option<Instant>,
}

impl Republisher {
    /// A schedule for records living `ttl`.
    pub fn new(ttl: Duration, min_interval: Duration) -> Self {
        Self {
            ttl,
            min_interval,
            last: None,
            reach: 0,
            due: None,
        }
    }

    /// Our listen addresses changed: the record is wrong now.
    pub fn addresses_changed(&mut self, now: Instant) {
        self.schedule(now + SETTLE);
    }

    /// A peer entered the routing table, which now has `table_size` entries.
    pub fn peer_added(&mut self, now: Instant, table_size: usize) {
        if self.last.is_none() || self.reach >= WELL_SPREAD || table_size <= self.reach {
            return;
        }
        let earliest = self.last.map_or(now, |l| l + self.min_interval);
        self.schedule(earliest.max(now + SETTLE));
    }

    /// We just put the record into a routing table of `table_size` peers.
    pub fn published(&mut self, now: Instant, table_size: usize) {
        self.last = Some(now);
        self.reach = table_size;
        self.due = Some(now + self.ttl / 2);
    }

    /// The put reached nobody. Retry soon if we know peers; otherwise the
    /// next peer to appear triggers it (no idle wake-ups on an empty table).
    pub fn failed(&mut self, now: Instant, table_size: usize) {
        self.reach = 0;
        if table_size > 0 {
            self.due = Some(now + self.min_interval);
        }
    }

    /// Moves a publication due before `at` to `at`: one held back goes
    /// out only once the address that ended the hold is in.
    pub fn not_before(&mut self, at: Instant) {
        self.due = self.due.map(|d| d.max(at));
    }

    /// When the next publication is due, if any.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether a publication is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|d| d <= now)
    }

    fn schedule(&mut self, at: Instant) {
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(3600);
    const MIN: Duration = Duration::from_secs(5);

    #[test]
    fn publishes_after_addresses_settle_then_refreshes_at_half_life() {
        let t0 = Instant::now();
        let mut r = Republisher::new(TTL, MIN);
        assert_eq!(r.due(), None);
        r.addresses_changed(t0);
        r.addresses_changed(t0 + SETTLE / 2);
        assert!(!r.is_due(t0 + SETTLE / 2));
        assert!(r.is_due(t0 + SETTLE));
        r.published(t0 + SETTLE, 30);
        assert_eq!(r.due(), Some(t0 + SETTLE + TTL / 2));
    }

    #[test]
    fn growth_of_a_small_table_triggers_rate_limited_republish() {
        let t0 = Instant::now();
        let mut r = Republisher::new(TTL, MIN);
        r.peer_added(t0, 1); // nothing published yet: nothing to do
        assert_eq!(r.due(), None);
        r.published(t0, 1);
        r.peer_added(t0 + Duration::from_secs(1), 2);
        assert_eq!(r.due(), Some(t0 + MIN));
        r.published(t0 + MIN, 2);
        // Same size again: no new reach.
        r.peer_added(t0 + MIN, 2);
        assert_eq!(r.due(), Some(t0 + MIN + TTL / 2));
    }

    #[test]
    fn a_well_spread_record_ignores_growth() {
        let t0 = Instant::now();
        let mut r = Republisher::new(TTL, MIN);
        r.published(t0, WELL_SPREAD);
        r.peer_added(t0 + Duration::from_secs(60), WELL_SPREAD + 5);
        assert_eq!(r.due(), Some(t0 + TTL / 2));
    }

    #[test]
    fn failure_retries_only_when_peers_exist() {
        let t0 = Instant::now();
        let mut r = Republisher::new(TTL, MIN);
        r.published(t0, 0);
        r.failed(t0, 0);
        assert_eq!(r.due(), Some(t0 + TTL / 2));
        r.failed(t0, 3);
        assert_eq!(r.due(), Some(t0 + MIN));
    }
}
