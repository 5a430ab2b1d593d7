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
    /// Rechecks scheduled since the message was first parked.
    rechecks: u8,
    /// A copy is in the mailboxes and rechecks are left: until they are
    /// used up, a missed attempt deposits nothing ([`Outbox::missed`]).
    rechecking: bool,
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
                rechecks: 0,
                rechecking: false,
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
            let recheck = PARKED_RECHECKS.get(usize::from(item.rechecks)).copied();
            item.rechecking = recheck.is_some();
            // A retry at once (the recipient's node was seen) uses up a
            // recheck too: it is one, only sooner.
            if recheck.is_some() {
                item.rechecks += 1;
            }
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
            .partition(|id| self.items.get(id).is_some_and(|i| i.rechecking));
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
mod tests {
    use super::*;

    /// Whether `delay` is `nominal` moved by the backoff's jitter (±20 %).
    fn within_jitter(delay: Duration, nominal: Duration) -> bool {
        delay >= nominal * 4 / 5 && delay <= nominal * 6 / 5
    }

    /// Two messages queued for one peer at `t0`.
    fn two_for(bob: PeerId, t0: Instant) -> (Outbox, MessageId, MessageId) {
        let mut o = Outbox::new();
        let (a, b) = (MessageId::random(), MessageId::random());
        o.enqueue(a, bob, t0);
        o.enqueue(b, bob, t0);
        (o, a, b)
    }

    #[test]
    fn due_messages_go_in_flight_once_and_acks_remove_them() {
        let t0 = Instant::now();
        let bob = PeerId::random();
        let (mut o, a, _) = two_for(bob, t0);
        let due = o.take_due(t0);
        assert_eq!(due[&bob].len(), 2);
        assert!(o.take_due(t0).is_empty(), "in flight is not due again");
        assert_eq!(o.next_due(), None);
        assert!(o.finished(&a));
        assert!(!o.finished(&a));
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn only_the_peer_a_message_is_in_flight_to_can_ack_it() {
        let t0 = Instant::now();
        let (bob, eve) = (PeerId::random(), PeerId::random());
        let (mut o, a, b) = two_for(bob, t0);
        // Not sent yet: not even Bob's ack counts.
        assert!(!o.acked(&a, &bob));
        assert!(!o.unavailable(&a, &bob, t0));
        o.take_due(t0);
        // In flight to Bob: Eve's acks change nothing, in either form.
        assert!(!o.acked(&a, &eve));
        assert!(!o.unavailable(&b, &eve, t0));
        assert_eq!(o.len(), 2);
        assert!(o.take_due(t0).is_empty(), "still in flight, not re-queued");
        assert_eq!(o.next_due(), None);
        // Bob's count.
        assert!(o.acked(&a, &bob));
        assert!(o.unavailable(&b, &bob, t0));
        assert_eq!(o.len(), 1);
        let due = o.next_due().expect("waiting again") - t0;
        assert!(within_jitter(due, BACKOFF_MIN), "{due:?}");
        // Waiting again: no ack counts until it is sent again.
        assert!(!o.acked(&b, &bob));
        assert!(!o.acked(&a, &bob), "a second ack finds nothing");
    }

    #[test]
    fn only_the_recipient_can_finish_a_message_with_a_receipt() {
        let t0 = Instant::now();
        let (bob, holder) = (PeerId::random(), PeerId::random());
        let mut o = Outbox::new();
        let id = MessageId::random();
        o.enqueue(id, bob, t0);
        o.take_due(t0);
        o.parked(&[id], t0); // in the mailbox `holder` keeps
        let due = o.next_due();
        assert!(!o.receipt(&id, &holder), "the holder saw the id");
        assert_eq!(o.len(), 1);
        assert_eq!(o.next_due(), due, "schedule kept");
        assert!(o.receipt(&id, &bob));
        assert!(o.is_empty());
        assert!(!o.receipt(&id, &bob));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let t0 = Instant::now();
        let bob = PeerId::random();
        let mut o = Outbox::new();
        let id = MessageId::random();
        o.enqueue(id, bob, t0);
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..12 {
            assert_eq!(o.take_due(now).len(), 1);
            o.failed(&id, now);
            let next = o.next_due().unwrap();
            delays.push(next - now);
            assert!(o.take_due(next - Duration::from_millis(1)).is_empty());
            now = next;
        }
        let nominal = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300];
        for (d, n) in delays.iter().zip(nominal) {
            assert!(within_jitter(*d, Duration::from_secs(n)), "{d:?} for {n} s");
            assert!(*d <= BACKOFF_MAX);
        }
    }

    /// One message sent at `t0`, in flight to its recipient.
    fn one_in_flight(t0: Instant) -> (Outbox, PeerId, MessageId) {
        let (mut o, bob, id) = (Outbox::new(), PeerId::random(), MessageId::random());
        o.enqueue(id, bob, t0);
        o.take_due(t0);
        (o, bob, id)
    }

    /// Twenty messages to `bob` sent at `t0`, in flight, in an outbox
    /// whose jitter is seeded with `seed`.
    fn twenty_in_flight(bob: PeerId, t0: Instant, seed: u64) -> (Outbox, Vec<MessageId>) {
        let mut o = Outbox::with_jitter(Jitter::seeded(seed));
        let ids: Vec<MessageId> = (0..20).map(|_| MessageId::random()).collect();
        for id in &ids {
            o.enqueue(*id, bob, t0);
        }
        o.take_due(t0);
        (o, ids)
    }

    #[test]
    fn messages_that_fail_together_retry_apart() {
        let t0 = Instant::now();
        let (mut o, ids) = twenty_in_flight(PeerId::random(), t0, 3);
        for id in &ids {
            o.failed(id, t0);
        }
        let mut at = BTreeSet::new();
        let mut retried = 0;
        while let Some(next) = o.next_due() {
            assert!(within_jitter(next - t0, BACKOFF_MIN), "{:?}", next - t0);
            at.insert(next);
            retried += o.take_due(next).values().map(Vec::len).sum::<usize>();
        }
        assert_eq!(retried, 20);
        assert!(at.len() > 15, "{} distinct retry times of 20", at.len());
    }

    /// Parks `id` (to `bob`) at `t0`, then lets every attempt miss as
    /// soon as it is due: the delays between attempts, and how many of
    /// the misses `missed` handed back for a deposit.
    fn miss_every_attempt(
        o: &mut Outbox,
        id: MessageId,
        t0: Instant,
        n: usize,
    ) -> (Vec<Duration>, usize) {
        o.parked(&[id], t0);
        let (mut now, mut delays, mut deposits) = (t0, Vec::new(), 0);
        for _ in 0..n {
            let next = o.next_due().expect("still pending");
            assert!(o.take_due(next - Duration::from_millis(1)).is_empty());
            delays.push(next - now);
            now = next;
            let ids = o.take_due(now).remove(&o.items[&id].to).unwrap_or_default();
            let deposit = o.missed(ids, now);
            deposits += deposit.len();
            // What the caller deposits parks again once stored.
            o.parked(&deposit, now);
        }
        (delays, deposits)
    }

    #[test]
    fn a_parked_message_is_rechecked_three_times_then_retried_every_half_hour() {
        let t0 = Instant::now();
        let mut o = Outbox::new();
        let id = MessageId::random();
        o.enqueue(id, PeerId::random(), t0);
        o.take_due(t0);
        let (delays, deposits) = miss_every_attempt(&mut o, id, t0, 6);
        for (d, nominal) in delays.iter().zip(PARKED_RECHECKS) {
            assert!(within_jitter(*d, nominal), "{d:?} for {nominal:?}");
        }
        assert_eq!(&delays[3..], [PARKED_RETRY; 3], "then the long pace");
        // The rechecks' misses deposit nothing; the three half-hourly
        // ones each deposit again, as before the rechecks.
        assert_eq!(deposits, 3);
    }

    #[test]
    fn a_message_never_parked_is_handed_back_for_a_deposit() {
        let t0 = Instant::now();
        let bob = PeerId::random();
        let (mut o, a, b) = two_for(bob, t0);
        o.take_due(t0);
        assert_eq!(o.missed(vec![a, b], t0).len(), 2);
        // One of them is stored; its next miss is a recheck's.
        o.parked(&[a], t0);
        o.failed(&b, t0);
        let due = o.take_due(t0 + PARKED_RETRY).remove(&bob).unwrap();
        assert_eq!(o.missed(due, t0 + PARKED_RETRY), vec![b]);
    }

    #[test]
    fn messages_parked_together_are_rechecked_together() {
        let t0 = Instant::now();
        let bob = PeerId::random();
        let (mut o, ids) = twenty_in_flight(bob, t0, 5);
        o.parked(&ids, t0);
        let first = o.next_due().unwrap();
        assert_eq!(o.take_due(first)[&bob].len(), 20, "one attempt for all");
        // Parked apart (two deposits), they draw apart.
        o.parked(&ids[..10], first);
        o.parked(&ids[10..], first);
        let next = o.next_due().unwrap();
        assert_eq!(o.take_due(next)[&bob].len(), 10);
    }

    #[test]
    fn parked_messages_wake_when_the_peer_is_seen() {
        let t0 = Instant::now();
        let (mut o, bob, id) = one_in_flight(t0);
        o.parked(&[id], t0);
        assert!(o.next_due() > Some(t0 + Duration::from_secs(5)));
        o.peer_seen(&bob, t0 + Duration::from_secs(5));
        assert_eq!(o.take_due(t0 + Duration::from_secs(5)).len(), 1);
    }

    #[test]
    fn the_index_agrees_with_a_scan_through_random_operations() {
        let t0 = Instant::now();
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let ids: Vec<MessageId> = (0..40).map(|_| MessageId::random()).collect();
        let mut o = Outbox::new();
        let mut x: u64 = 7;
        for step in 0..2000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let now = t0 + Duration::from_millis(step * 300);
            let id = ids[(x % 40) as usize];
            match (x >> 8) % 6 {
                0 if x & 1 == 0 => o.enqueue(id, peers[(x >> 16) as usize % 3], now),
                0 => o.enqueue_direct(id, peers[(x >> 16) as usize % 3], now),
                1 => {
                    o.take_due(now);
                }
                2 => {
                    o.failed(&id, now);
                }
                3 if x & 1 == 0 => o.parked(&[id], now),
                3 => {
                    o.missed(vec![id], now);
                }
                4 => o.peer_seen(&peers[(x >> 16) as usize % 3], now),
                _ => {
                    o.finished(&id);
                }
            }
            let scan = o
                .items
                .values()
                .filter_map(|i| match i.phase {
                    Phase::Waiting(t) => Some(t),
                    Phase::InFlight => None,
                })
                .min();
            assert_eq!(o.next_due(), scan);
            let waiting = o
                .items
                .values()
                .filter(|i| matches!(i.phase, Phase::Waiting(_)))
                .count();
            assert_eq!(o.due.len(), waiting);
            assert_eq!(o.by_peer.values().map(HashSet::len).sum::<usize>(), o.len());
        }
    }

    #[test]
    fn a_peer_seen_during_an_attempt_is_retried_when_the_attempt_fails() {
        let t0 = Instant::now();
        let bob = PeerId::random();
        let (mut o, a, b) = two_for(bob, t0);
        o.take_due(t0);
        // The lookup missed Bob; meanwhile his node connected.
        o.peer_seen(&bob, t0);
        o.parked(&[a], t0); // ended in his mailbox
        o.failed(&b, t0);
        assert_eq!(o.next_due(), Some(t0));
        assert_eq!(o.take_due(t0)[&bob].len(), 2);
        // Only once: the next failure backs off as usual.
        o.failed(&b, t0);
        assert!(o.next_due() > Some(t0));
    }

    #[test]
    fn retries_at_once_use_up_the_rechecks_too() {
        let t0 = Instant::now();
        let (mut o, bob, id) = one_in_flight(t0);
        assert_eq!(
            o.missed(vec![id], t0),
            vec![id],
            "a first miss is deposited"
        );
        o.parked(&[id], t0);
        // From now on Bob's node connects during every attempt, and every
        // attempt misses: each is retried at once, but only as often as
        // the rechecks allow before one is deposited again.
        let mut at_once = 0;
        loop {
            let due = o.next_due().expect("pending");
            let ids = o.take_due(due).remove(&bob).expect("due");
            o.peer_seen(&bob, due);
            if !o.missed(ids, due).is_empty() {
                break;
            }
            assert_eq!(o.next_due(), Some(due), "at once");
            at_once += 1;
            assert!(
                at_once <= PARKED_RECHECKS.len(),
                "retried at once without end"
            );
        }
        assert_eq!(at_once, PARKED_RECHECKS.len());
    }

    #[test]
    fn seeing_the_peer_again_retries_at_once() {
        let t0 = Instant::now();
        let (bob, eve) = (PeerId::random(), PeerId::random());
        let mut o = Outbox::new();
        let (a, b) = (MessageId::random(), MessageId::random());
        o.enqueue(a, bob, t0);
        o.enqueue(b, eve, t0);
        o.take_due(t0);
        o.failed(&a, t0);
        o.failed(&b, t0);
        let later = t0 + Duration::from_millis(10);
        o.peer_seen(&bob, later);
        let due = o.take_due(later);
        assert_eq!(due.get(&bob), Some(&vec![a]));
        assert!(!due.contains_key(&eve));
    }

    #[test]
    fn a_direct_only_message_gets_one_attempt_whichever_way_it_fails() {
        let t0 = Instant::now();
        let (bob, eve) = (PeerId::random(), PeerId::random());
        let mut o = Outbox::new();
        let (lost, refused, kept) = (
            MessageId::random(),
            MessageId::random(),
            MessageId::random(),
        );
        o.enqueue_direct(lost, bob, t0);
        o.enqueue_direct(refused, bob, t0);
        o.enqueue(kept, bob, t0);
        assert!(o.is_direct(&lost) && !o.is_direct(&kept));
        assert_eq!(o.take_due(t0)[&bob].len(), 3);
        // Bob's node is seen meanwhile: an ordinary message would be
        // retried at once, a direct-only one still ends.
        o.peer_seen(&bob, t0);
        assert!(!o.failed(&lost, t0), "a lost link ends it");
        assert!(!o.unavailable(&refused, &eve, t0), "not Eve's to answer");
        assert!(o.unavailable(&refused, &bob, t0));
        assert!(o.failed(&kept, t0), "the ordinary one waits for a retry");
        assert_eq!(o.len(), 1);
        assert!(!o.is_direct(&lost) && !o.is_direct(&refused));
        let later = t0 + BACKOFF_MAX * 2;
        assert_eq!(
            o.take_due(later).get(&bob),
            Some(&vec![kept]),
            "only it comes back"
        );
        assert!(o.take_due(later).is_empty());
    }
}
