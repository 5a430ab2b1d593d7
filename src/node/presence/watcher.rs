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
    /// A state was pushed since our last SUBSCRIBE went out. The answer
    /// to that SUBSCRIBE travels another way than pushes (through both
    /// network tasks) and may arrive after a newer pushed state; it then
    /// must not overwrite it.
    heard: bool,
    /// The buddy granted us its presence (its buddy request came) while
    /// our SUBSCRIBE was in flight: if that one is refused (the publisher
    /// answered it before the grant), try again at once, not after the
    /// backoff.
    granted: bool,
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
            heard: false,
            granted: false,
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
                w.heard = false;
                w.granted = false;
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
    /// it changed. A state pushed since the SUBSCRIBE went out is newer
    /// than `info` and stays.
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
        if w.heard {
            return None;
        }
        self.set(peer, info)
    }

    /// The buddy could not be reached (or refused): it shows `offline`, and
    /// we try again with backoff.
    pub fn failed(&mut self, peer: &PeerId, now: Instant) -> Option<PresenceInfo> {
        let w = self.buddies.get_mut(peer)?;
        if std::mem::take(&mut w.granted) {
            w.failures = 0;
            w.sub = Sub::Idle { retry_at: now };
            return self.set(peer, PresenceInfo::offline());
        }
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

    /// A NOTIFY arrived (pushed or as a request); ignored unless we watch
    /// that buddy.
    pub fn notified(&mut self, peer: &PeerId, info: PresenceInfo) -> Option<PresenceInfo> {
        if let Some(w) = self.buddies.get_mut(peer) {
            w.heard = true;
        }
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

    /// `peer` granted us its presence (its buddy request arrived): if we
    /// are not subscribed, try now; if a SUBSCRIBE is in flight and is
    /// refused, try again at once.
    pub fn granted(&mut self, peer: &PeerId, now: Instant) {
        match self.buddies.get(peer).map(|w| w.sub) {
            Some(Sub::Pending) => {
                if let Some(w) = self.buddies.get_mut(peer) {
                    w.granted = true;
                }
            }
            Some(_) => self.connected(peer, now),
            None => {}
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

    /// A buddy request that arrives while our SUBSCRIBE is in flight is
    /// not lost: when that SUBSCRIBE is refused (answered before the
    /// grant), the next goes at once; without a grant, the backoff holds.
    #[test]
    fn a_grant_during_a_subscribe_in_flight_retries_at_once_if_refused() {
        let t0 = Instant::now();
        let mut w = Watcher::new();
        let bob = PeerId::random();
        w.add(bob, t0);
        assert_eq!(w.due(t0), vec![bob]);
        w.granted(&bob, t0);
        let t1 = t0 + Duration::from_millis(10);
        w.failed(&bob, t1);
        assert_eq!(w.due(t1), vec![bob], "the refused one is retried at once");
        w.failed(&bob, t1);
        assert!(w.due(t1).is_empty(), "without a grant, the backoff holds");
        let next = w.next_deadline().expect("a retry");
        assert!(within_jitter(next - t1, FIRST_RETRY), "{:?}", next - t1);
    }

    /// The answer to a SUBSCRIBE can arrive after a state the publisher
    /// pushed later: the pushed one stays. The next SUBSCRIBE's answer,
    /// with nothing pushed meanwhile, is taken.
    #[test]
    fn an_answer_overtaken_by_a_pushed_state_does_not_overwrite_it() {
        let t0 = Instant::now();
        let mut w = Watcher::new();
        let bob = PeerId::random();
        let state = |status| PresenceInfo {
            status,
            ..PresenceInfo::offline()
        };
        w.add(bob, t0);
        assert_eq!(w.due(t0), vec![bob]);
        assert!(w.notified(&bob, state(Status::Busy)).is_some());
        assert_eq!(w.subscribed(&bob, state(Status::Online), t0), None);
        assert_eq!(w.view(&bob).status, Status::Busy, "the older answer won");
        let renew = w.next_deadline().expect("a renewal");
        assert_eq!(w.due(renew), vec![bob]);
        let answer = w.subscribed(&bob, state(Status::Away), renew);
        assert_eq!(answer.map(|i| i.status), Some(Status::Away));
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
