use super::*;

fn gid(b: u8) -> GroupId {
    GroupId([b; 32])
}

#[test]
fn have_names_the_next_number_and_the_gaps_per_sender() {
    let (a, b) = (b"alice".as_slice(), b"bob".as_slice());
    let have = have_of([(a, 0), (a, 1), (a, 4), (b, 2), (a, 1)], 0);
    assert_eq!(have.len(), 2);
    let alice = have.iter().find(|h| h.sender == a).unwrap();
    assert_eq!((alice.next, alice.missing.clone()), (5, vec![2, 3]));
    let bob = have.iter().find(|h| h.sender == b).unwrap();
    assert_eq!((bob.next, bob.missing.clone()), (3, vec![0, 1]));
}

#[test]
fn the_gaps_named_are_capped() {
    let a = b"alice".as_slice();
    let have = have_of([(a, 10_000)], 0);
    assert_eq!(have[0].next, 10_001);
    assert_eq!(have[0].missing.len(), MAX_MISSING);
    assert_eq!(have[0].missing[0], 0);
}

#[test]
fn the_gaps_named_in_all_are_capped() {
    let senders: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 8]).collect();
    let have = have_of(senders.iter().map(|s| (s.as_slice(), 1000)), 0);
    let named: usize = have.iter().map(|h| h.missing.len()).sum();
    assert_eq!(named, MAX_MISSING_TOTAL);
    assert!(have.iter().all(|h| h.next == 1001));
}

#[test]
fn the_gaps_budget_starts_at_another_sender_each_round() {
    // 20 senders, each 1000 messages behind: the budget covers 8 of them
    // (64 gaps each), from the round's start on, wrapping.
    let senders: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 8]).collect();
    let asked = |round| -> Vec<usize> {
        let have = have_of(senders.iter().map(|s| (s.as_slice(), 1000)), round);
        assert_eq!(have.len(), 20, "every sender named, in its order");
        assert!(have.iter().zip(&senders).all(|(h, s)| &h.sender == s));
        let named: usize = have.iter().map(|h| h.missing.len()).sum();
        assert_eq!(named, MAX_MISSING_TOTAL);
        (0..20).filter(|&i| !have[i].missing.is_empty()).collect()
    };
    assert_eq!(SENDERS_PER_BUDGET, 8);
    assert_eq!(asked(0), (0..8).collect::<Vec<_>>());
    assert_eq!(asked(1), (8..16).collect::<Vec<_>>());
    assert_eq!(asked(2), [0, 1, 2, 3, 16, 17, 18, 19]);
    assert_eq!(asked(3), (4..12).collect::<Vec<_>>());
    assert_eq!(asked(7), asked(2), "the start is taken modulo the senders");
}

#[test]
fn successive_questions_name_every_sender_whatever_their_number() {
    // However many senders lag (each past the per-sender cap), as many
    // successive questions as there are senders name every one of them.
    for len in 1..=70usize {
        let senders: Vec<Vec<u8>> = (0..len)
            .map(|i| (i as u32).to_be_bytes().to_vec())
            .collect();
        let mut named = vec![false; len];
        for round in 0..len as u64 {
            let have = have_of(senders.iter().map(|s| (s.as_slice(), 1000)), round);
            for (i, h) in have.iter().enumerate() {
                named[i] |= !h.missing.is_empty();
            }
        }
        assert!(named.iter().all(|n| *n), "{len} senders: some never named");
    }
}

#[test]
fn the_answer_is_what_the_asker_lacks_in_our_order() {
    let (a, b, c) = (b"alice".as_slice(), b"bob".as_slice(), b"carol".as_slice());
    let have = have_of([(a, 0), (a, 2), (b, 0)], 0);
    let ours = [
        (a, 0, "a0"),
        (b, 0, "b0"),
        (a, 1, "a1"),
        (b, 1, "b1"),
        (a, 2, "a2"),
        (c, 0, "c0"),
        (a, 3, "a3"),
    ];
    assert_eq!(lacking(ours, &have), ["a1", "b1", "c0", "a3"]);
    // An asker with everything gets nothing.
    let all = have_of(ours.iter().map(|(s, n, _)| (*s, *n)), 0);
    assert!(lacking(ours, &all).is_empty());
}

#[test]
fn an_epoch_is_due_when_followed_then_every_period() {
    let every = Duration::from_secs(60);
    let t0 = Instant::now();
    let mut plan = SyncPlan::with_jitter(every, Jitter::seeded(1));
    assert!(plan.due(t0).is_empty(), "nothing followed");
    plan.follow([(gid(1), 1)], t0);
    assert_eq!(plan.due(t0), [(gid(1), 1)], "due as soon as followed");
    plan.asked((gid(1), 1), t0);
    assert!(plan.due(t0 + every / 2).is_empty());
    // A new epoch of the same group is due at once; the old one keeps its
    // time while followed.
    plan.follow([(gid(1), 1), (gid(1), 2)], t0 + every / 2);
    assert_eq!(plan.due(t0 + every / 2), [(gid(1), 2)]);
    // Due within the period's spread (±20 %).
    assert_eq!(plan.due(t0 + every * 6 / 5), [(gid(1), 1), (gid(1), 2)]);
    // One no longer followed is forgotten.
    plan.follow([(gid(1), 2)], t0 + every);
    assert_eq!(plan.due(t0 + every), [(gid(1), 2)]);
}

#[test]
fn epochs_asked_in_the_same_instant_are_next_due_spread_over_the_period() {
    // A thousand members start following a new epoch in the same second
    // and ask at once; each plan's own numbers spread their next ones.
    let every = Duration::from_secs(60);
    let t0 = Instant::now();
    let mut plans: Vec<SyncPlan> = (0..100)
        .map(|i| SyncPlan::with_jitter(every, Jitter::seeded(i)))
        .collect();
    for p in &mut plans {
        p.follow([(gid(1), 1)], t0);
        p.asked((gid(1), 1), t0);
    }
    let due_at = |plans: &[SyncPlan], after: Duration| {
        plans
            .iter()
            .filter(|p| !p.due(t0 + after).is_empty())
            .count()
    };
    assert_eq!(due_at(&plans, every * 4 / 5 - Duration::from_millis(1)), 0);
    assert_eq!(due_at(&plans, every * 6 / 5), 100);
    // Spread over the window, not bunched at one end: about half by the
    // nominal period, and each tenth of the window holds some.
    let half = due_at(&plans, every);
    assert!((30..=70).contains(&half), "{half} of 100 due by the period");
    let mut before = 0;
    for tenth in 1..=10 {
        let by = due_at(&plans, every * (80 + 4 * tenth) / 100);
        assert!(by > before, "nobody due in tenth {tenth} of the window");
        before = by;
    }
}

#[test]
fn the_round_of_an_epoch_counts_its_questions() {
    let t0 = Instant::now();
    let mut plan = SyncPlan::new(Duration::from_secs(60));
    plan.follow([(gid(1), 1), (gid(1), 2)], t0);
    assert_eq!(plan.round((gid(1), 1)), 0);
    plan.asked((gid(1), 1), t0);
    plan.asked((gid(1), 1), t0);
    assert_eq!(plan.round((gid(1), 1)), 2, "each question counted");
    assert_eq!(plan.round((gid(1), 2)), 0, "per epoch");
    // Kept while followed, forgotten with the epoch.
    plan.follow([(gid(1), 1)], t0);
    assert_eq!(plan.round((gid(1), 1)), 2);
    plan.follow([], t0);
    assert_eq!(plan.round((gid(1), 1)), 0);
}

#[test]
fn the_asked_rotate_over_the_members_seen() {
    let me = PeerId::random();
    let seen: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
    let mut all = std::collections::HashSet::new();
    for round in 0..40 {
        let asked = pick_asked(&seen, &me, round);
        assert_eq!(asked.len(), ASKED_PER_ROUND);
        all.extend(asked);
    }
    assert!(all.len() > ASKED_PER_ROUND, "the same members every round");
    assert!(pick_asked(&[], &me, 0).is_empty());
}

#[test]
fn an_asker_gets_a_burst_then_one_answer_a_period() {
    let (mut limit, asker, other) = (answer_limit(), PeerId::random(), PeerId::random());
    let t0 = 1_000_000;
    let burst = (0..ANSWER_BURST * 2)
        .filter(|_| limit.allow(asker, t0))
        .count();
    assert_eq!(burst as u64, ANSWER_BURST, "a burst, then refused");
    assert!(limit.allow(other, t0), "another asker has its own burst");
    // Half a period later: still none; a whole period: one, then none.
    assert!(!limit.allow(asker, t0 + ANSWER_EVERY_MS / 2));
    assert!(limit.allow(asker, t0 + ANSWER_EVERY_MS));
    assert!(!limit.allow(asker, t0 + ANSWER_EVERY_MS));
    // The refused half period was not lost: one more at two periods.
    assert!(limit.allow(asker, t0 + 2 * ANSWER_EVERY_MS));
    // Long quiet: a full burst again, no more.
    let later = t0 + 1000 * ANSWER_EVERY_MS;
    let again = (0..ANSWER_BURST * 2)
        .filter(|_| limit.allow(asker, later))
        .count();
    assert_eq!(again as u64, ANSWER_BURST);
}

#[test]
fn a_clock_stepping_back_does_not_silence_an_asker() {
    let (mut limit, asker) = (answer_limit(), PeerId::random());
    let t0 = 10_000_000;
    while limit.allow(asker, t0) {}
    // An hour back: nothing given back, but a period later one answer,
    // not an hour's wait for the clock to pass t0 again.
    let back = t0 - 3_600_000;
    assert!(!limit.allow(asker, back));
    assert!(limit.allow(asker, back + ANSWER_EVERY_MS));
}

#[test]
fn the_askers_table_is_capped_and_keeps_the_drained() {
    let mut limit = answer_limit();
    let t0 = 1_000_000;
    let drained = PeerId::random();
    while limit.allow(drained, t0) {}
    for _ in 0..MAX_ASKERS * 2 {
        assert!(limit.allow(PeerId::random(), t0));
        assert!(limit.tracked() <= MAX_ASKERS);
    }
    assert!(
        !limit.allow(drained, t0),
        "a drained asker forgotten: new askers bought it a fresh burst"
    );
}
