//! Which outgoing messages to try next, and when — a pure state machine
//! (no I/O, injected clock). The durable copy lives in the store; this
//! tracks only attempts in memory and is rebuilt from the store on start.
//!
//! A message is `Waiting` (with a due time) or `InFlight` (handed to a link,
//! awaiting the recipient's ack). A failed attempt waits with exponential
//! backoff (1 s doubling to 5 min); seeing the recipient's node again makes
//! all its messages due at once. Only an ack or a permanent rejection takes
//! a message out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::wire::message::MessageId;

/// First retry delay.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Retry interval of a message already deposited in mailboxes.
pub const PARKED_RETRY: Duration = Duration::from_secs(1800);

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
}

/// The retry schedule of every undelivered message.
#[derive(Debug, Default)]
pub struct Outbox {
    items: HashMap<MessageId, Item>,
}

impl Outbox {
    /// An empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new (or reloaded) message, due at once.
    pub fn enqueue(&mut self, id: MessageId, to: PeerId, now: Instant) {
        self.items.entry(id).or_insert(Item {
            to,
            phase: Phase::Waiting(now),
            failures: 0,
        });
    }

    /// Messages due at `now`, grouped by recipient; they become in flight.
    pub fn take_due(&mut self, now: Instant) -> HashMap<PeerId, Vec<MessageId>> {
        let mut due: HashMap<PeerId, Vec<MessageId>> = HashMap::new();
        for (id, item) in &mut self.items {
            if matches!(item.phase, Phase::Waiting(t) if t <= now) {
                item.phase = Phase::InFlight;
                due.entry(item.to).or_default().push(*id);
            }
        }
        due
    }

    /// The recipient has it (or refused it for good): done.
    pub fn finished(&mut self, id: &MessageId) -> bool {
        self.items.remove(id).is_some()
    }

    /// The attempt failed (no route, link lost before the ack): back off.
    pub fn failed(&mut self, id: &MessageId, now: Instant) {
        if let Some(item) = self.items.get_mut(id) {
            let delay = BACKOFF_MIN
                .saturating_mul(1u32 << item.failures.min(16))
                .min(BACKOFF_MAX);
            item.failures = item.failures.saturating_add(1);
            item.phase = Phase::Waiting(now + delay);
        }
    }

    /// Deposited in the recipient's mailboxes: no need to hurry. Retry only
    /// after [`PARKED_RETRY`] (re-depositing is idempotent) or as soon as
    /// the recipient's node is seen again.
    pub fn parked(&mut self, id: &MessageId, now: Instant) {
        if let Some(item) = self.items.get_mut(id) {
            item.failures = 0;
            item.phase = Phase::Waiting(now + PARKED_RETRY);
        }
    }

    /// The recipient's node is reachable again: retry its messages now.
    pub fn peer_seen(&mut self, peer: &PeerId, now: Instant) {
        for item in self.items.values_mut() {
            if item.to == *peer && matches!(item.phase, Phase::Waiting(_)) {
                item.phase = Phase::Waiting(now);
            }
        }
    }

    /// When the next waiting message becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.items
            .values()
            .filter_map(|i| match i.phase {
                Phase::Waiting(t) => Some(t),
                Phase::InFlight => None,
            })
            .min()
    }

    /// Messages not yet delivered.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_messages_go_in_flight_once_and_acks_remove_them() {
        let t0 = Instant::now();
        let bob = PeerId::random();
        let mut o = Outbox::new();
        let (a, b) = (MessageId::random(), MessageId::random());
        o.enqueue(a, bob, t0);
        o.enqueue(b, bob, t0);
        let due = o.take_due(t0);
        assert_eq!(due[&bob].len(), 2);
        assert!(o.take_due(t0).is_empty(), "in flight is not due again");
        assert_eq!(o.next_due(), None);
        assert!(o.finished(&a));
        assert!(!o.finished(&a));
        assert_eq!(o.len(), 1);
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
            delays.push((next - now).as_secs());
            assert!(o.take_due(next - Duration::from_millis(1)).is_empty());
            now = next;
        }
        assert_eq!(&delays[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(*delays.last().unwrap(), 300);
    }

    #[test]
    fn parked_messages_wait_long_but_wake_when_the_peer_is_seen() {
        let t0 = Instant::now();
        let bob = PeerId::random();
        let mut o = Outbox::new();
        let id = MessageId::random();
        o.enqueue(id, bob, t0);
        o.take_due(t0);
        o.parked(&id, t0);
        assert_eq!(o.next_due(), Some(t0 + PARKED_RETRY));
        o.peer_seen(&bob, t0 + Duration::from_secs(5));
        assert_eq!(o.take_due(t0 + Duration::from_secs(5)).len(), 1);
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
}
