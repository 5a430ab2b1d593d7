//! Whom the fetcher machine asks, driven through simulated time: the
//! polls between lookups, the reasons a fetch looks up, and silent
//! holders.

use super::tests::{POLL, POLL_FROM, REPLICAS, ranked};
use super::*;

/// A fetcher started now for a mailbox key, and `n` peers ranked by
/// their distance to that key, closest first.
fn fetcher(n: usize) -> (Fetcher, Vec<PeerId>) {
    let key = b"mailbox key";
    let f = Fetcher::new(key, POLL, REPLICAS, Instant::now());
    (f, ranked(key, n))
}

/// Ends the running fetch at `at`, which asked `asked`; returns what the
/// machine asks for next, if anything.
fn done(f: &mut Fetcher, asked: &[PeerId], more: bool, at: Instant) -> Vec<Output> {
    ended(f, asked, more, &[], at)
}

/// [`done`], with `unanswered` of `asked` silent.
fn ended(
    f: &mut Fetcher,
    asked: &[PeerId],
    more: bool,
    unanswered: &[PeerId],
    at: Instant,
) -> Vec<Output> {
    let (asked, unanswered) = (asked.to_vec(), unanswered.to_vec());
    f.handle(
        Input::Done {
            asked,
            more,
            unanswered,
        },
        at,
    )
}

/// Runs the poll at its time; returns whom it asks, and when.
fn next_poll(f: &mut Fetcher) -> (Ask, Instant) {
    let at = f.poll_timeout();
    match f.handle(Input::Tick, at).pop() {
        Some(Output::Fetch(ask)) => (ask, at),
        other => panic!("the poll did not fetch: {other:?}"),
    }
}

/// Checks that the next fetch is a lookup for `why`, due at `at`, and
/// runs it.
fn looks_up_at(f: &mut Fetcher, why: Why, at: Instant, what: &str) {
    assert_eq!(f.poll_timeout(), at, "{what}");
    assert_eq!(next_poll(f), (Ask::Lookup(why), at), "{what}");
}

/// A fetcher whose first fetch, a lookup, found the full neighbourhood
/// `peers[..FETCH_FROM]` of its key; returns when it ended.
fn looked_up(f: &mut Fetcher, peers: &[PeerId]) -> Instant {
    let (ask, at) = next_poll(f);
    assert_eq!(ask, Ask::Lookup(Why::Start), "the first fetch looks up");
    assert!(done(f, &peers[..FETCH_FROM], false, at).is_empty());
    at
}

#[test]
fn polls_between_lookups_ask_the_closest_few_and_the_lookup_comes_back_with_age() {
    let (mut f, peers) = fetcher(40);
    let looked = looked_up(&mut f, &peers);
    let mut lookups = vec![looked];
    let mut asked_without = 0;
    while f.poll_timeout() < looked + 3 * LOOKUP_AGE {
        let (ask, at) = next_poll(&mut f);
        let asked = match ask {
            Ask::Lookup(_) => {
                lookups.push(at);
                peers[..FETCH_FROM].to_vec()
            }
            Ask::Holders(asked) => {
                assert_eq!(asked, peers[..POLL_FROM].to_vec(), "the closest few");
                asked_without += 1;
                asked
            }
        };
        assert!(done(&mut f, &asked, false, at).is_empty());
    }
    // Polls 5, 10, 20, 20 … min apart: a lookup at least every hour, and
    // never more often than the age asks.
    assert!(asked_without >= 6, "{asked_without} polls without a lookup");
    assert!(lookups.len() >= 3, "{lookups:?}");
    for w in lookups.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= LOOKUP_AGE && gap <= LOOKUP_AGE + MAX_BACKOFF * POLL,
            "{gap:?}"
        );
    }
}

#[test]
fn a_new_peer_within_reach_a_growing_table_or_a_silent_holder_brings_the_lookup_back() {
    let (mut f, peers) = fetcher(40);
    let t1 = looked_up(&mut f, &peers);
    // Peers beyond the neighbourhood change nothing, up to GROWN of them.
    for p in &peers[FETCH_FROM..FETCH_FROM + GROWN - 1] {
        f.handle(Input::NewPeer(*p), t1);
    }
    let (ask, at) = next_poll(&mut f);
    assert_eq!(ask, Ask::Holders(peers[..POLL_FROM].to_vec()));
    assert!(done(&mut f, &peers[..POLL_FROM], false, at).is_empty());
    // One more: the network is growing, the next poll looks up.
    f.handle(Input::NewPeer(peers[30]), at);
    let (ask, at) = next_poll(&mut f);
    assert_eq!(ask, Ask::Lookup(Why::Grown), "after {GROWN} new peers");
    assert!(done(&mut f, &peers[..FETCH_FROM], false, at).is_empty());
    let (ask, at) = next_poll(&mut f);
    assert!(matches!(ask, Ask::Holders(_)), "the count starts again");
    // A holder that does not answer: the next fetch looks up.
    assert!(ended(&mut f, &peers[..POLL_FROM], false, &peers[1..2], at).is_empty());
    let (ask, at) = next_poll(&mut f);
    assert_eq!(ask, Ask::Lookup(Why::Unanswered), "after a silent holder");
    assert!(done(&mut f, &peers[..FETCH_FROM], false, at).is_empty());
    let (ask, at) = next_poll(&mut f);
    assert!(matches!(ask, Ask::Holders(_)), "looked up: polls ask again");
    assert!(done(&mut f, &peers[..POLL_FROM], false, at).is_empty());
    // A new peer within it: a fetch soon, and it looks up.
    f.handle(Input::NewPeer(peers[2]), at);
    let (ask, _) = next_poll(&mut f);
    assert_eq!(
        ask,
        Ask::Lookup(Why::Reach),
        "after a new peer within reach"
    );
}

/// A fetcher after `looked_up` whose polls found nothing until its poll
/// backed off all the way; returns when the last of them ended.
fn backed_off(f: &mut Fetcher, peers: &[PeerId]) -> Instant {
    let mut at = looked_up(f, peers);
    while f.poll_timeout() < at + MAX_BACKOFF * POLL {
        let (ask, t) = next_poll(f);
        assert_eq!(ask, Ask::Holders(peers[..POLL_FROM].to_vec()));
        assert!(done(f, &peers[..POLL_FROM], false, t).is_empty());
        at = t;
    }
    at
}

#[test]
fn a_grown_table_or_a_silent_holder_looks_up_a_configured_poll_after_the_last_fetch() {
    let (mut f, peers) = fetcher(40);
    let last = backed_off(&mut f, &peers);
    assert_eq!(f.poll_timeout(), last + MAX_BACKOFF * POLL, "backed off");
    // Fewer than GROWN new peers beyond the neighbourhood: no sooner.
    let soon = last + POLL / 2;
    for p in &peers[FETCH_FROM..FETCH_FROM + GROWN - 1] {
        f.handle(Input::NewPeer(*p), soon);
    }
    assert_eq!(f.poll_timeout(), last + MAX_BACKOFF * POLL);
    // The GROWN-th: a configured poll after the last fetch, and a lookup.
    f.handle(Input::NewPeer(peers[30]), soon);
    let at = last + POLL;
    looks_up_at(&mut f, Why::Grown, at, "a grown table waits one poll");
    assert!(done(&mut f, &peers[..FETCH_FROM], false, at).is_empty());
    // Nothing found: the poll stays backed off …
    let (ask, at) = next_poll(&mut f);
    assert_eq!(at, last + POLL + MAX_BACKOFF * POLL, "still backed off");
    assert_eq!(ask, Ask::Holders(peers[..POLL_FROM].to_vec()));
    // … and a holder that does not answer brings the lookup back to a
    // configured poll after this fetch, not the backed-off one.
    assert!(ended(&mut f, &peers[..POLL_FROM], false, &peers[1..2], at).is_empty());
    let t = at + POLL;
    looks_up_at(&mut f, Why::Unanswered, t, "a silent holder waits one poll");
    // A sign that comes when a poll has already passed since the last
    // fetch: at once.
    assert!(done(&mut f, &peers[..FETCH_FROM], false, t).is_empty());
    let late = t + 2 * POLL;
    for p in &peers[FETCH_FROM..FETCH_FROM + GROWN] {
        f.handle(Input::NewPeer(*p), late);
    }
    assert_eq!(f.poll_timeout(), late);
}

#[test]
fn a_fetch_that_had_more_asks_the_same_holders_again_without_a_lookup() {
    let (mut f, peers) = fetcher(40);
    let (ask, at) = next_poll(&mut f);
    assert_eq!(ask, Ask::Lookup(Why::Start));
    // The lookup's whole neighbourhood: all of it again, at once.
    let whole = peers[..FETCH_FROM].to_vec();
    let again = done(&mut f, &whole, true, at);
    assert_eq!(again, vec![Output::Fetch(Ask::Holders(whole.clone()))]);
    assert!(done(&mut f, &whole, false, at).is_empty());
    // A poll's few: the same few.
    let (ask, at) = next_poll(&mut f);
    let few = peers[..POLL_FROM].to_vec();
    assert_eq!(ask, Ask::Holders(few.clone()));
    let again = done(&mut f, &few, true, at);
    assert_eq!(again, vec![Output::Fetch(Ask::Holders(few.clone()))]);
    assert!(done(&mut f, &few, false, at).is_empty());
    assert_eq!(next_poll(&mut f).0, Ask::Holders(few));
}

#[test]
fn a_network_too_small_for_a_neighbourhood_looks_up_every_time() {
    let (mut f, peers) = fetcher(FETCH_FROM - 1);
    for (i, more) in [false, true, false].into_iter().enumerate() {
        let (ask, at) = next_poll(&mut f);
        let why = if i == 0 { Why::Start } else { Why::Small };
        assert_eq!(ask, Ask::Lookup(why));
        let next = done(&mut f, &peers, more, at);
        let want = if more {
            vec![Output::Fetch(Ask::Lookup(Why::Small))]
        } else {
            Vec::new()
        };
        assert_eq!(next, want);
        if more {
            assert!(done(&mut f, &peers, false, at).is_empty());
        }
    }
}

#[test]
fn a_holder_that_stays_silent_costs_one_lookup_and_polls_pass_it_over() {
    let (mut f, peers) = fetcher(40);
    looked_up(&mut f, &peers);
    let gone = peers[1];
    // The poll asks the closest few; one of them does not answer.
    let (ask, at2) = next_poll(&mut f);
    assert_eq!(ask, Ask::Holders(peers[..POLL_FROM].to_vec()));
    assert!(ended(&mut f, &peers[..POLL_FROM], false, &[gone], at2).is_empty());
    // One lookup, which others still answer with the silent holder in
    // it (it answered their lookup, or they still name it).
    let (ask, at3) = next_poll(&mut f);
    assert_eq!(ask, Ask::Lookup(Why::Unanswered));
    let hood = &peers[..FETCH_FROM];
    assert!(ended(&mut f, hood, false, &[gone], at3).is_empty());
    // From then on the polls ask the closest few that answer, without a
    // lookup, however long it stays silent.
    let without: Vec<PeerId> = hood
        .iter()
        .filter(|p| **p != gone)
        .take(POLL_FROM)
        .copied()
        .collect();
    let mut polls = 0;
    while f.poll_timeout() < at3 + LOOKUP_AGE {
        let (ask, at) = next_poll(&mut f);
        assert_eq!(ask, Ask::Holders(without.clone()), "passed over, no lookup");
        assert!(done(&mut f, &without, false, at).is_empty());
        polls += 1;
    }
    assert!(polls >= 2, "{polls} polls");
    // It answers a lookup's fetch again: the polls ask it again, and its
    // next silence is news, so the fetch after it looks up.
    let (ask, at4) = next_poll(&mut f);
    assert_eq!(ask, Ask::Lookup(Why::Aged));
    assert!(done(&mut f, hood, false, at4).is_empty());
    let (ask, at5) = next_poll(&mut f);
    assert_eq!(ask, Ask::Holders(peers[..POLL_FROM].to_vec()));
    assert!(ended(&mut f, &peers[..POLL_FROM], false, &[gone], at5).is_empty());
    assert_eq!(next_poll(&mut f).0, Ask::Lookup(Why::Unanswered));
}

#[test]
fn silent_holders_outside_the_new_neighbourhood_are_forgotten_and_all_silent_looks_up() {
    let (mut f, peers) = fetcher(40);
    looked_up(&mut f, &peers);
    // Every holder the poll asks is silent, and so is the rest of the
    // neighbourhood when the lookup asks it: the poll after has no one
    // left to ask, so it looks up again.
    let (_, at) = next_poll(&mut f);
    let few = &peers[..POLL_FROM];
    assert!(ended(&mut f, few, false, few, at).is_empty());
    let (ask, at) = next_poll(&mut f);
    assert_eq!(ask, Ask::Lookup(Why::Unanswered));
    let hood = &peers[..FETCH_FROM];
    assert!(ended(&mut f, hood, false, hood, at).is_empty());
    let (ask, at) = next_poll(&mut f);
    assert_eq!(ask, Ask::Lookup(Why::Unanswered), "no one left to poll");
    // That lookup finds a neighbourhood without them: all forgotten, so
    // if they come back within a later neighbourhood they are asked.
    let moved = &peers[FETCH_FROM..2 * FETCH_FROM];
    assert!(done(&mut f, moved, false, at).is_empty());
    assert!(f.silent.is_empty(), "{:?}", f.silent);
    assert_eq!(
        next_poll(&mut f).0,
        Ask::Holders(moved[..POLL_FROM].to_vec())
    );
}

#[test]
fn a_fetchs_end_names_the_holders_that_did_not_answer() {
    let asked: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
    // A page we could not store is our failure, not the holder's.
    let ends = [
        (Stop::Drained, false),
        (Stop::Failed, false),
        (Stop::ItemCap, true),
        (Stop::Deadline, false),
        (Stop::Unfiled, false),
    ];
    let Input::Done {
        more, unanswered, ..
    } = Input::done(asked.clone(), &ends)
    else {
        panic!("not Done");
    };
    assert!(more);
    assert_eq!(unanswered, vec![asked[1], asked[3]]);
}
