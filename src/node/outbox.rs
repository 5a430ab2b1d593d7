//! Which outgoing messages to try next, and when — a pure state machine
//! (no I/O, injected clock). The durable copy lives in the store; this
//! tracks only attempts in memory and is rebuilt from the store on start.
//!
//! A message is `Waiting` (with a due time) or `InFlight` (handed to a link,
//! awaiting the recipient's ack). A failed attempt waits with exponential
//! backoff ([`BACKOFF`]: 1 s doubling to 5 min, each delay ±20 % at
//! random); seeing the recipient's node again makes
//! all its messages due at once. Only the recipient takes a message out:
//! its ack for an attempt in flight to it, or its receipt; acks and
//! receipts naming the id from anyone else are ignored.
//!
//! A message whose direct attempt failed is deposited in the recipient's
//! mailboxes and *parked* ([`Outbox::parked`]). It is tried directly again
//! a few times soon after ([`PARKED_RECHECKS`]: 15 s, 1 min and 4 min
//! apart), and a missed recheck deposits nothing ([`Outbox::missed`]):
//! a failure is often passing (a lookup that timed out on a loaded
//! network, a dial that lost a race), and an online recipient otherwise
//! waits for its mailbox poll, up to 20 min. After the rechecks, it is
//! tried (and deposited again) every [`PARKED_RETRY`].
//!
//! A *direct-only* message ([`Outbox::enqueue_direct`]) gets one attempt:
//! it is neither retried nor left in a mailbox, so a failed attempt
//! drops it. That is for what is worth something only while both ends
//! are up (a large group's catch-up question and its answer), which the
//! asker asks again once it is back.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::backoff::{Backoff, Jitter, spread};
use crate::wire::message::MessageId;

/// First retry delay (nominal, before jitter).
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// When to retry a message after a failed attempt.
pub const BACKOFF: Backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
/// Retry interval of a message already deposited in mailboxes, once its
/// rechecks are used up; each retry that fails deposits it again.
pub const PARKED_RETRY: Duration = Duration::from_secs(1800);
/// The delays (nominal, ±20 % at random) before each direct recheck of a
/// message just deposited, counted from the deposit and then from each
/// missed recheck. They cost three lookups of an offline recipient in
/// about the first 5–6 min after a deposit (messages deposited together
/// recheck together: one lookup, not one each), and bring an online
/// recipient's message in seconds rather than at its next mailbox poll.
pub const PARKED_RECHECKS: [Duration; 3] = [
    Duration::from_secs(15),
    Duration::from_secs(60),
    Duration::from_secs(240),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting(Instant),
    InFlight,
}

#[derive(Debug, Clone)]
struct Item {
    to: PeerId,
    phase: Phase,
    failures: u32,
    /// The recipient's node was seen while this attempt was in flight: if
    /// the attempt fails (or ends in a mailbox), retry at once.
    seen: bool,
    /// One attempt over a link, then gone ([`Outbox::enqueue_direct`]).
    direct: bool,
    /// Times parked (saturating): the n-th park schedules recheck n while
    /// there is one ([`PARKED_RECHECKS`]); after that, the half-hourly
    /// retry.
    parks: u8,
}

impl Item {
    /// A copy is in the mailboxes and rechecks are left: until they are
    /// used up, a missed attempt deposits nothing ([`Outbox::missed`]).
    fn rechecking(&self) -> bool {
        (1..=PARKED_RECHECKS.len()).contains(&usize::from(self.parks))
    }
}

/// Where one undelivered message stands, as [`Outbox::attempts`] shows
/// it: what a bench or a test reads to tell why a message has not
/// arrived yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How long until the next attempt; `None` while one is in flight
    /// (handed to a link, waiting for the recipient's ack).
    pub due_in: Option<Duration>,
    /// Failed attempts since the last park.
    pub failures: u32,
    /// Times deposited in the recipient's mailboxes (or rechecked there).
    pub parks: u8,
}

/// The retry schedule of every undelivered message.
///
/// Indexed so that every operation costs O(log n) in the number of
/// undelivered messages, not a scan of all of them: the messaging service
/// asks for the next due time on every event, and a user with a thousand
/// messages parked for offline buddies must not pay for them on each.
#[derive(Debug, Default)]
pub struct Outbox {
    items: HashMap<MessageId, Item>,
    /// Waiting messages by due time; the first is the next due.
    due: BTreeSet<(Instant, MessageId)>,
    /// Undelivered messages per recipient.
    by_peer: HashMap<PeerId, HashSet<MessageId>>,
    /// Spreads the retries of messages that failed together.
    jitter: Jitter,
}

impl Outbox {
    /// An empty schedule, its retries jittered by numbers from the OS.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty schedule whose retries are jittered by `jitter`: seeded,
    /// the same schedule every run (the simulator).
    #[cfg(any(test, feature = "test-util"))]
    pub fn with_jitter(jitter: Jitter) -> Self {
        Self {
            jitter,
            ..Self::default()
        }
    }

    /// A new (or reloaded) message, due at once.
    pub fn enqueue(&mut self, id: MessageId, to: PeerId, now: Instant) {
        self.insert(id, to, now, false);
    }

    /// A new message that only a direct link may carry, due at once: its
    /// first failed attempt ends it ([`Self::failed`] returns false), and
    /// it is never deposited ([`Self::is_direct`]).
    pub fn enqueue_direct(&mut self, id: MessageId, to: PeerId, now: Instant) {
        self.insert(id, to, now, true);
    }

    /// Whether `id` is a pending direct-only message: one that must not
    /// go to the recipient's mailboxes.
    pub fn is_direct(&self, id: &MessageId) -> bool {
        self.items.get(id).is_some_and(|i| i.direct)
    }

    fn insert(&mut self, id: MessageId, to: PeerId, now: Instant, direct: bool) {
        if self.items.contains_key(&id) {
            return;
        }
        self.items.insert(
            id,
            Item {
                to,
                phase: Phase::Waiting(now),
                failures: 0,
                seen: false,
                direct,
                parks: 0,
            },
        );
        self.due.insert((now, id));
        self.by_peer.entry(to).or_default().insert(id);
    }

    /// Messages due at `now`, grouped by recipient; they become in flight.
    pub fn take_due(&mut self, now: Instant) -> HashMap<PeerId, Vec<MessageId>> {
        let mut due: HashMap<PeerId, Vec<MessageId>> = HashMap::new();
        while let Some(&(t, id)) = self.due.first() {
            if t > now {
                break;
            }
            self.due.pop_first();
            if let Some(item) = self.items.get_mut(&id) {
                item.phase = Phase::InFlight;
                due.entry(item.to).or_default().push(id);
            }
        }
        due
    }

    /// The recipient has it (or refused it for good): done.
    pub fn finished(&mut self, id: &MessageId) -> bool {
        let Some(item) = self.items.remove(id) else {
            return false;
        };
        if let Phase::Waiting(t) = item.phase {
            self.due.remove(&(t, *id));
        }
        if let Some(ids) = self.by_peer.get_mut(&item.to) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_peer.remove(&item.to);
            }
        }
        true
    }

    /// Whether `id` is on its way to `peer` right now: the only case in
    /// which `peer` can answer it with an ack.
    pub fn in_flight_to(&self, id: &MessageId, peer: &PeerId) -> bool {
        self.items
            .get(id)
            .is_some_and(|i| i.to == *peer && i.phase == Phase::InFlight)
    }

    /// `from` acked `id` (accepted, or refused for good): done — but only
    /// if `id` is in flight to `from`. An ack from anyone else, or for a
    /// message not sent yet, changes nothing and returns false: message
    /// ids are not secret (mailbox holders see them), so an ack proves
    /// nothing unless it comes from where the message went.
    pub fn acked(&mut self, id: &MessageId, from: &PeerId) -> bool {
        self.in_flight_to(id, from) && self.finished(id)
    }

    /// `from` answered `id` "cannot store it now": back off as after a
    /// failure (a direct-only message ends) — only if `id` is in flight to
    /// `from` (see [`Self::acked`]).
    pub fn unavailable(&mut self, id: &MessageId, from: &PeerId, now: Instant) -> bool {
        let ours = self.in_flight_to(id, from);
        if ours {
            self.failed(id, now);
        }
        ours
    }

    /// `from` sent a receipt (delivered, read) naming `id`: done, if `from`
    /// is its recipient, whatever the phase (a receipt also comes for a
    /// message parked in mailboxes). From anyone else — a mailbox holder
    /// sees the ids it holds — it changes nothing and returns false.
    pub fn receipt(&mut self, id: &MessageId, from: &PeerId) -> bool {
        self.items.get(id).is_some_and(|i| i.to == *from) && self.finished(id)
    }

    /// The attempt failed (no route, link lost before the ack): back off.
    /// Returns whether the message is still pending: a direct-only one
    /// ends here.
    pub fn failed(&mut self, id: &MessageId, now: Instant) -> bool {
        let Some(item) = self.items.get_mut(id) else {
            return false;
        };
        if item.direct {
            self.finished(id);
            return false;
        }
        let delay = BACKOFF.next_delay(item.failures, self.jitter.next_u64());
        let at = if std::mem::take(&mut item.seen) {
            now
        } else {
            now + delay
        };
        self.wait(id, at, |f| f.saturating_add(1));
        true
    }

    /// Deposited in the recipient's mailboxes (`ids`, all to one
    /// recipient): no need to hurry. Each is tried directly again at its
    /// next recheck ([`PARKED_RECHECKS`]) while it has one, else after
    /// [`PARKED_RETRY`] (re-depositing is idempotent), or as soon as the
    /// recipient's node is seen again. Messages parked in one call draw
    /// one jitter, so they come due together: one lookup, not one each.
    pub fn parked(&mut self, ids: &[MessageId], now: Instant) {
        let jitter = self.jitter.next_u64();
        for id in ids {
            let Some(item) = self.items.get_mut(id) else {
                continue;
            };
            // A retry at once (the recipient's node was seen) uses up a
            // recheck too: it is one, only sooner.
            item.parks = item.parks.saturating_add(1);
            let recheck = PARKED_RECHECKS.get(usize::from(item.parks) - 1).copied();
            let at = match (std::mem::take(&mut item.seen), recheck) {
                (true, _) => now,
                (false, Some(delay)) => now + spread(delay, jitter),
                (false, None) => now + PARKED_RETRY,
            };
            self.wait(id, at, |_| 0);
        }
    }

    /// The direct attempt at `ids` (all to one recipient) found no link.
    /// Those that were on a recheck wait for the next one (or for
    /// [`PARKED_RETRY`]), their copies still in the mailboxes; returns the
    /// others, which the caller deposits.
    pub fn missed(&mut self, ids: Vec<MessageId>, now: Instant) -> Vec<MessageId> {
        let (rechecked, deposit): (Vec<_>, Vec<_>) = ids
            .into_iter()
            .partition(|id| self.items.get(id).is_some_and(Item::rechecking));
        self.parked(&rechecked, now);
        deposit
    }

    /// The recipient's node is reachable again: retry its messages now —
    /// those in flight as soon as their attempt ends, should it fail (the
    /// connection may have come up just after a lookup missed the peer).
    pub fn peer_seen(&mut self, peer: &PeerId, now: Instant) {
        let ids: Vec<MessageId> = self
            .by_peer
            .get(peer)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            let Some(item) = self.items.get_mut(&id) else {
                continue;
            };
            match item.phase {
                Phase::Waiting(_) => self.wait(&id, now, |f| f),
                Phase::InFlight => item.seen = true,
            }
        }
    }

    /// Where each undelivered message to `to` stands at `now`.
    pub fn attempts(&self, to: &PeerId, now: Instant) -> Vec<Attempt> {
        let Some(ids) = self.by_peer.get(to) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| self.items.get(id))
            .map(|i| Attempt {
                due_in: match i.phase {
                    Phase::Waiting(at) => Some(at.saturating_duration_since(now)),
                    Phase::InFlight => None,
                },
                failures: i.failures,
                parks: i.parks,
            })
            .collect()
    }

    /// When the next waiting message becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(t, _)| *t)
    }

    /// Messages not yet delivered.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Makes `id` wait until `at`, with its failure count updated by `failures`.
    fn wait(&mut self, id: &MessageId, at: Instant, failures: impl FnOnce(u32) -> u32) {
        let Some(item) = self.items.get_mut(id) else {
            return;
        };
        if let Phase::Waiting(t) = item.phase {
            self.due.remove(&(t, *id));
        }
        item.phase = Phase::Waiting(at);
        item.failures = failures(item.failures);
        self.due.insert((at, *id));
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
