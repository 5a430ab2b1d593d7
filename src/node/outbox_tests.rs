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

#[test]
fn attempts_show_each_message_in_flight_failed_or_parked() {
    let t0 = Instant::now();
    let (bob, eve) = (PeerId::random(), PeerId::random());
    let (mut o, a, b) = two_for(bob, t0);
    let shown = |o: &Outbox, now| {
        let mut v = o.attempts(&bob, now);
        v.sort_by_key(|x| (x.parks, x.failures));
        v
    };
    assert!(o.attempts(&eve, t0).is_empty(), "nothing for Eve");
    let fresh = Attempt {
        due_in: Some(Duration::ZERO),
        failures: 0,
        parks: 0,
    };
    assert_eq!(shown(&o, t0), vec![fresh.clone(), fresh]);
    o.take_due(t0);
    assert!(
        shown(&o, t0).iter().all(|x| x.due_in.is_none()),
        "in flight"
    );
    // One fails and backs off; the other is deposited and waits for its
    // first recheck.
    o.failed(&a, t0);
    o.parked(&[b], t0);
    let v = shown(&o, t0);
    assert_eq!((v[0].failures, v[0].parks), (1, 0));
    assert!(within_jitter(v[0].due_in.expect("waiting"), BACKOFF_MIN));
    assert_eq!((v[1].failures, v[1].parks), (0, 1));
    assert!(within_jitter(
        v[1].due_in.expect("waiting"),
        PARKED_RECHECKS[0]
    ));
    // Seen from later, the wait is shorter.
    let later = shown(&o, t0 + Duration::from_secs(5));
    assert!(later[1].due_in < v[1].due_in);
    assert!(o.finished(&a) && o.finished(&b));
    assert!(o.attempts(&bob, t0).is_empty(), "delivered: nothing left");
}
