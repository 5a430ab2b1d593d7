//! My buddies' side of presence, a pure state machine (no I/O, injected
//! clock): the state of each buddy as last pushed to me, and when to
//! (re)subscribe to each — renewal halfway through a subscription, retries
//! with backoff while a buddy cannot be reached, at once when its node is
//! seen again.
//!
//! The first retry after a success (or at start) comes after
//! [`FIRST_RETRY`], well before the backoff's [`RETRY_MIN`]: a buddy whose
//! node has just started is often not found, or found under its previous
//! run's record, because its new record is not out yet — a NATed node
//! holds it back until it has a relay circuit to put in it (`net::reach`),
//! which takes a fraction of a second. Only a second failure in a row
//! means the buddy is most likely away.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::SUBSCRIPTION;
use crate::backoff::{Backoff, Jitter};
use crate::wire::presence::PresenceInfo;

/// Delay before the first re-lookup after a first failure in a row
/// (nominal, before jitter): time for a buddy that has just started to
/// publish its new locator record.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Retry delay after a second failure in a row (nominal, before jitter),
/// doubling with each further one.
pub const RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// When to subscribe again to a buddy we could not reach.
pub const RETRY: Backoff = Backoff::new(RETRY_MIN, RETRY_MAX);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Idle { retry_at: Instant },
    Pending,
    Active { renew_at: Instant },
}

#[derive(Debug, Clone)]
struct Watched {
    info: PresenceInfo,
    sub: Sub,
    failures: u32,
}

/// My buddies' states as pushed to me, and my subscriptions to them.
#[derive(Debug, Default)]
pub struct Watcher {
    buddies: HashMap<PeerId, Watched>,
    /// Spreads the retries of buddies that failed together.
    jitter: Jitter,
}

impl Watcher {
    /// No buddies yet; retries jittered by numbers from the OS.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts watching `peer` (subscribe at once).
    pub fn add(&mut self, peer: PeerId, now: Instant) {
        self.buddies.entry(peer).or_insert(Watched {
            info: PresenceInfo::offline(),
            sub: Sub::Idle { retry_at: now },
            failures: 0,
        });
    }

    /// Stops watching `peer`.
    pub fn remove(&mut self, peer: &PeerId) {
        self.buddies.remove(peer);
    }

    /// Buddies to (re)subscribe to now; they become pending.
    pub fn due(&mut self, now: Instant) -> Vec<PeerId> {
        let mut out = Vec::new();
        for (peer, w) in &mut self.buddies {
            let due = match w.sub {
                Sub::Idle { retry_at } => retry_at <= now,
                Sub::Active { renew_at } => renew_at <= now,
                Sub::Pending => false,
            };
            if due {
                w.sub = Sub::Pending;
                out.push(*peer);
            }
        }
        out
    }

    fn set(&mut self, peer: &PeerId, info: PresenceInfo) -> Option<PresenceInfo> {
        let w = self.buddies.get_mut(peer)?;
        (w.info != info).then(|| {
            w.info = info.clone();
            info
        })
    }

    /// The subscription was accepted with `info`; returns the new state if
    /// it changed.
    pub fn subscribed(
        &mut self,
        peer: &PeerId,
        info: PresenceInfo,
        now: Instant,
    ) -> Option<PresenceInfo> {
        let w = self.buddies.get_mut(peer)?;
        w.sub = Sub::Active {
            renew_at: now + SUBSCRIPTION / 2,
        };
        w.failures = 0;
        self.set(peer, info)
    }

    /// The buddy could not be reached (or refused): it shows `offline`, and
    /// we try again with backoff.
    pub fn failed(&mut self, peer: &PeerId, now: Instant) -> Option<PresenceInfo> {
        let w = self.buddies.get_mut(peer)?;
        let jitter = self.jitter.next_u64();
        let delay = match w.failures.checked_sub(1) {
            None => Backoff::new(FIRST_RETRY, RETRY_MAX).next_delay(0, jitter),
            Some(attempt) => RETRY.next_delay(attempt, jitter),
        };
        w.failures = w.failures.saturating_add(1);
        w.sub = Sub::Idle {
            retry_at: now + delay,
        };
        self.set(peer, PresenceInfo::offline())
    }

    /// A NOTIFY arrived; ignored unless we watch that buddy.
    pub fn notified(&mut self, peer: &PeerId, info: PresenceInfo) -> Option<PresenceInfo> {
        self.set(peer, info)
    }

    /// Whether we watch `peer` (only then are its NOTIFYs accepted).
    pub fn watches(&self, peer: &PeerId) -> bool {
        self.buddies.contains_key(peer)
    }

    /// A connection to `peer` opened: if we are not subscribed, try now.
    pub fn connected(&mut self, peer: &PeerId, now: Instant) {
        if let Some(w) = self.buddies.get_mut(peer)
            && matches!(w.sub, Sub::Idle { .. })
        {
            w.sub = Sub::Idle { retry_at: now };
            w.failures = 0;
        }
    }

    /// The last connection to `peer` closed: re-subscribe at once (which
    /// re-dials); only if that fails does the buddy turn offline.
    pub fn disconnected(&mut self, peer: &PeerId, now: Instant) {
        if let Some(w) = self.buddies.get_mut(peer)
            && matches!(w.sub, Sub::Active { .. })
        {
            w.sub = Sub::Idle { retry_at: now };
        }
    }

    /// What we know of `peer`.
    pub fn view(&self, peer: &PeerId) -> PresenceInfo {
        self.buddies
            .get(peer)
            .map_or_else(PresenceInfo::offline, |w| w.info.clone())
    }

    /// When [`Self::due`] next has something.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.buddies
            .values()
            .filter_map(|w| match w.sub {
                Sub::Idle { retry_at } => Some(retry_at),
                Sub::Active { renew_at } => Some(renew_at),
                Sub::Pending => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::presence::Status;

    /// Whether `delay` is `nominal` moved by the backoff's jitter (±20 %).
    fn within_jitter(delay: Duration, nominal: Duration) -> bool {
        delay >= nominal * 4 / 5 && delay <= nominal * 6 / 5
    }

    #[test]
    fn buddies_that_fail_together_are_retried_apart() {
        let t0 = Instant::now();
        let mut w = Watcher {
            jitter: Jitter::seeded(5),
            ..Watcher::default()
        };
        let buddies: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        for b in &buddies {
            w.add(*b, t0);
        }
        assert_eq!(w.due(t0).len(), 20);
        for b in &buddies {
            w.failed(b, t0);
        }
        let mut at = std::collections::BTreeSet::new();
        let mut retried = 0;
        while let Some(next) = w.next_deadline() {
            assert!(within_jitter(next - t0, FIRST_RETRY), "{:?}", next - t0);
            at.insert(next);
            retried += w.due(next).len();
        }
        assert_eq!(retried, 20);
        assert!(at.len() > 15, "{} distinct retry times of 20", at.len());
    }

    #[test]
    fn watcher_subscribes_renews_backs_off_and_reacts_to_connections() {
        let t0 = Instant::now();
        let mut w = Watcher::new();
        let bob = PeerId::random();
        w.add(bob, t0);
        assert_eq!(w.due(t0), vec![bob]);
        assert!(w.due(t0).is_empty(), "pending is not due again");
        let online = PresenceInfo {
            status: Status::Online,
            ..PresenceInfo::offline()
        };
        assert_eq!(w.subscribed(&bob, online.clone(), t0), Some(online.clone()));
        assert_eq!(w.next_deadline(), Some(t0 + SUBSCRIPTION / 2));
        assert_eq!(w.due(t0 + SUBSCRIPTION / 2), vec![bob], "renewal");

        // Unreachable: offline, then a prompt re-lookup (a new record may
        // be on its way), then retries back off.
        assert_eq!(w.failed(&bob, t0), Some(PresenceInfo::offline()));
        let first = w.next_deadline().expect("a retry") - t0;
        assert!(within_jitter(first, FIRST_RETRY), "{first:?}");
        assert!(w.due(t0 + first - Duration::from_millis(1)).is_empty());
        assert_eq!(w.due(t0 + first), vec![bob]);
        w.failed(&bob, t0);
        let second = w.next_deadline().expect("a retry") - t0;
        assert!(within_jitter(second, RETRY_MIN), "{second:?}");
        assert_eq!(w.due(t0 + second), vec![bob]);
        w.failed(&bob, t0);
        let third = w.next_deadline().expect("a retry") - t0;
        assert!(within_jitter(third, 2 * RETRY_MIN), "{third:?}");
        // A success starts the count over: the next failure is retried
        // promptly again.
        w.due(t0 + third);
        w.subscribed(&bob, online.clone(), t0);
        w.failed(&bob, t0);
        let again = w.next_deadline().expect("a retry") - t0;
        assert!(within_jitter(again, FIRST_RETRY), "{again:?}");
        // Seen again: retry now.
        w.connected(&bob, t0 + Duration::from_secs(1));
        assert_eq!(w.due(t0 + Duration::from_secs(1)), vec![bob]);
        // Notifies from strangers change nothing.
        assert_eq!(w.notified(&PeerId::random(), online), None);
        assert!(!w.watches(&PeerId::random()));
    }
}
