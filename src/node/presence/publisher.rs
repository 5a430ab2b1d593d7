//! My side of presence, a pure state machine (no I/O, injected clock):
//! my own state (explicit, plus implicit auto-away), the table of who
//! subscribed to it, and what each of them may see. The permission is
//! checked for every subscriber on every notify, so hiding from or
//! removing a buddy takes effect at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::SUBSCRIPTION;
use crate::wire::presence::{Own, OwnStatus, PresenceInfo, Status};

/// What a given watcher may see of me.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// A buddy: the real state.
    Allowed,
    /// A buddy I hide from: always `offline` (not a refusal, so hiding is
    /// not revealed).
    Hidden,
    /// Not a buddy, or blocked: no subscription at all.
    Denied,
}

/// My state and its subscribers.
#[derive(Debug)]
pub struct Publisher {
    own: Own,
    auto_away: Option<Duration>,
    last_activity: Instant,
    idle: bool,
    subs: HashMap<PeerId, Instant>,
}

impl Publisher {
    /// Starts with `own` (as restored from disk); auto-away after
    /// `auto_away` without user activity, if set.
    pub fn new(own: Own, auto_away: Option<Duration>, now: Instant) -> Self {
        Self {
            own,
            auto_away,
            last_activity: now,
            idle: false,
            subs: HashMap::new(),
        }
    }

    /// My explicit state.
    pub fn own(&self) -> &Own {
        &self.own
    }

    /// The state a permitted watcher sees: explicit state, except that an
    /// idle user who said "online" shows as `away`.
    pub fn effective(&self) -> PresenceInfo {
        let status = match self.own.status {
            OwnStatus::Online if self.idle => Status::Away,
            OwnStatus::Online => Status::Online,
            OwnStatus::Away => Status::Away,
            OwnStatus::Busy => Status::Busy,
            OwnStatus::Invisible => return PresenceInfo::offline(),
        };
        PresenceInfo {
            status,
            note: self.own.note.clone(),
            activity: self.own.activity.clone(),
            location: self.own.location.clone(),
            until: self.own.until.clone(),
        }
    }

    fn view(&self, perm: Permission) -> Option<PresenceInfo> {
        match perm {
            Permission::Allowed => Some(self.effective()),
            Permission::Hidden => Some(PresenceInfo::offline()),
            Permission::Denied => None,
        }
    }

    /// A SUBSCRIBE: `None` means reject; otherwise the answer, and the
    /// watcher is registered until `now + expires`.
    pub fn subscribe(
        &mut self,
        peer: PeerId,
        perm: Permission,
        expires: Duration,
        now: Instant,
    ) -> Option<PresenceInfo> {
        let view = self.view(perm)?;
        self.subs.insert(peer, now + expires.min(2 * SUBSCRIPTION));
        Some(view)
    }

    /// Whether `peer` is subscribed (and not expired at the last tick):
    /// only subscribers keep a push stream.
    pub fn is_subscribed(&self, peer: &PeerId) -> bool {
        self.subs.contains_key(peer)
    }

    /// The watcher left (unsubscribed, or its connection dropped).
    pub fn unsubscribe(&mut self, peer: &PeerId) {
        self.subs.remove(peer);
    }

    /// A new explicit state; always notifies.
    pub fn set_own(&mut self, own: Own, now: Instant) {
        self.own = own;
        self.idle = false;
        self.last_activity = now;
    }

    /// The user did something: returns true if that ended an auto-away.
    pub fn activity(&mut self, now: Instant) -> bool {
        self.last_activity = now;
        std::mem::replace(&mut self.idle, false)
    }

    /// Expires subscriptions and detects idleness; returns true if the
    /// visible state changed (auto-away began).
    pub fn tick(&mut self, now: Instant) -> bool {
        self.subs.retain(|_, exp| *exp > now);
        if let Some(after) = self.auto_away
            && !self.idle
            && self.own.status == OwnStatus::Online
            && now >= self.last_activity + after
        {
            self.idle = true;
            return true;
        }
        false
    }

    /// When [`Self::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let idle = self
            .auto_away
            .filter(|_| !self.idle && self.own.status == OwnStatus::Online)
            .map(|a| self.last_activity + a);
        self.subs.values().copied().chain(idle).min()
    }

    /// The NOTIFYs to send now: every live subscriber gets what it may see
    /// under its *current* permission. A subscriber no longer allowed gets
    /// `offline` once and is dropped.
    pub fn notifications(
        &mut self,
        perm: impl Fn(&PeerId) -> Permission,
    ) -> Vec<(PeerId, PresenceInfo)> {
        let mut out = Vec::with_capacity(self.subs.len());
        let mut dropped = Vec::new();
        for peer in self.subs.keys() {
            match self.view(perm(peer)) {
                Some(v) => out.push((*peer, v)),
                None => {
                    out.push((*peer, PresenceInfo::offline()));
                    dropped.push(*peer);
                }
            }
        }
        for p in dropped {
            self.subs.remove(&p);
        }
        out
    }

    /// The NOTIFY for one subscriber whose permission just changed, if it
    /// is subscribed.
    pub fn notification_for(&mut self, peer: &PeerId, perm: Permission) -> Option<PresenceInfo> {
        self.subs.contains_key(peer).then_some(())?;
        match self.view(perm) {
            Some(v) => Some(v),
            None => {
                self.subs.remove(peer);
                Some(PresenceInfo::offline())
            }
        }
    }

    /// Number of live subscribers: the service ends the push streams of
    /// those gone when it changes.
    pub fn subscriber_count(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn away(note: &str) -> Own {
        Own {
            status: OwnStatus::Away,
            note: Some(note.into()),
            ..Own::default()
        }
    }

    #[test]
    fn permissions_decide_what_each_watcher_sees_on_every_notify() {
        let t0 = Instant::now();
        let mut p = Publisher::new(Own::default(), None, t0);
        let (alice, alex, eve) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert_eq!(p.subscribe(eve, Permission::Denied, SUBSCRIPTION, t0), None);
        assert_eq!(
            p.subscribe(alice, Permission::Allowed, SUBSCRIPTION, t0)
                .unwrap()
                .status,
            Status::Online
        );
        // A hidden buddy is told offline, not refused.
        assert_eq!(
            p.subscribe(alex, Permission::Hidden, SUBSCRIPTION, t0),
            Some(PresenceInfo::offline())
        );
        assert_eq!(p.subscriber_count(), 2);

        p.set_own(away("lunch"), t0);
        let perm = |peer: &PeerId| {
            if *peer == alex {
                Permission::Hidden
            } else {
                Permission::Allowed
            }
        };
        let mut n = p.notifications(perm);
        n.sort_by_key(|(peer, _)| *peer == alex);
        assert_eq!(n[0].1.status, Status::Away);
        assert_eq!(n[0].1.note.as_deref(), Some("lunch"));
        assert_eq!(n[1].1, PresenceInfo::offline());

        // Alice is removed from the buddy list: she gets offline once, then nothing.
        let n = p.notifications(|peer| {
            if *peer == alice {
                Permission::Denied
            } else {
                Permission::Hidden
            }
        });
        assert!(n.contains(&(alice, PresenceInfo::offline())));
        assert_eq!(p.subscriber_count(), 1);
        // Showing Alex again: his next notify carries the real state.
        assert_eq!(
            p.notification_for(&alex, Permission::Allowed)
                .unwrap()
                .status,
            Status::Away
        );
    }

    #[test]
    fn invisible_appears_offline_to_everyone() {
        let t0 = Instant::now();
        let mut p = Publisher::new(Own::default(), None, t0);
        let bob = PeerId::random();
        p.set_own(
            Own {
                status: OwnStatus::Invisible,
                note: Some("secret".into()),
                ..Own::default()
            },
            t0,
        );
        assert_eq!(
            p.subscribe(bob, Permission::Allowed, SUBSCRIPTION, t0),
            Some(PresenceInfo::offline())
        );
    }

    #[test]
    fn auto_away_after_idleness_and_back_on_activity_but_explicit_wins() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(300);
        let mut p = Publisher::new(Own::default(), Some(idle), t0);
        assert_eq!(p.next_deadline(), Some(t0 + idle));
        assert!(!p.tick(t0 + Duration::from_secs(10)));
        assert!(p.tick(t0 + idle));
        assert_eq!(p.effective().status, Status::Away);
        assert!(p.activity(t0 + idle + Duration::from_secs(1)));
        assert_eq!(p.effective().status, Status::Online);
        // Explicit busy is never overridden by idleness.
        p.set_own(
            Own {
                status: OwnStatus::Busy,
                ..Own::default()
            },
            t0,
        );
        assert!(!p.tick(t0 + 10 * idle));
        assert_eq!(p.effective().status, Status::Busy);
    }

    #[test]
    fn subscriptions_expire() {
        let t0 = Instant::now();
        let mut p = Publisher::new(Own::default(), None, t0);
        p.subscribe(PeerId::random(), Permission::Allowed, SUBSCRIPTION, t0);
        assert_eq!(p.next_deadline(), Some(t0 + SUBSCRIPTION));
        p.tick(t0 + SUBSCRIPTION);
        assert_eq!(p.subscriber_count(), 0);
    }
}
