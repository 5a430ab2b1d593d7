//! The fetcher machines driven through simulated time, with no store or
//! network.

use super::*;
use crate::node::mailbox::react::{REACT_EVERY, SETTLE};

fn full(run: &mut HolderFetch, now: Instant, next: u64) -> PageVerdict {
    run.page(now, PAGE_ITEMS, Some(next))
}

#[test]
fn an_honest_holder_is_followed_to_its_last_page() {
    let t0 = Instant::now();
    let mut run = HolderFetch::new(t0);
    assert_eq!(run.start(), Step::Ask(0));
    assert_eq!(full(&mut run, t0, 64).then, Step::Ask(64));
    assert_eq!(full(&mut run, t0, 200).then, Step::Ask(200));
    let last = run.page(t0, 3, None);
    assert_eq!(last.take, 3);
    assert_eq!(last.then, Step::Stop(Stop::Drained));
    let mut run = HolderFetch::new(t0);
    assert_eq!(
        run.page(t0, 0, Some(5)).then,
        Step::Stop(Stop::Drained),
        "an empty page ends the fetch whatever its cursor"
    );
}

#[test]
fn a_cursor_that_does_not_advance_ends_the_fetch_after_its_page() {
    let t0 = Instant::now();
    let mut run = HolderFetch::new(t0);
    // The first page may point anywhere past 0 ...
    assert_eq!(full(&mut run, t0, 7).then, Step::Ask(7));
    // ... but the same cursor again, or an earlier one, is the end.
    let again = full(&mut run, t0, 7);
    assert_eq!(again.take, PAGE_ITEMS, "the page itself is still taken");
    assert_eq!(again.then, Step::Stop(Stop::Stalled));
    let mut run = HolderFetch::new(t0);
    full(&mut run, t0, 100);
    assert_eq!(full(&mut run, t0, 99).then, Step::Stop(Stop::Stalled));
    let mut run = HolderFetch::new(t0);
    assert_eq!(
        full(&mut run, t0, 0).then,
        Step::Stop(Stop::Stalled),
        "the first page cannot point back to the start"
    );
}

#[test]
fn an_ever_advancing_holder_is_cut_off_at_the_item_and_page_caps() {
    let t0 = Instant::now();
    // Full pages: the item cap ends it.
    let mut run = HolderFetch::new(t0);
    let (mut asked, mut taken, mut cursor) = (1, 0, 0);
    let why = loop {
        cursor += 1;
        let v = full(&mut run, t0, cursor);
        taken += v.take;
        match v.then {
            Step::Ask(c) => {
                assert_eq!(c, cursor);
                asked += 1;
            }
            Step::Stop(why) => break why,
        }
    };
    assert_eq!(
        (asked, taken, why),
        (FETCH_ITEMS / PAGE_ITEMS, FETCH_ITEMS, Stop::ItemCap)
    );
    assert!(why.capped());
    // One-item pages: the page cap ends it.
    let mut run = HolderFetch::new(t0);
    let (mut pages, mut taken) = (0, 0);
    let why = loop {
        pages += 1;
        let v = run.page(t0, 1, Some(pages as u64));
        taken += v.take;
        if let Step::Stop(why) = v.then {
            break why;
        }
    };
    assert_eq!(
        (pages, taken, why),
        (FETCH_PAGES, FETCH_PAGES, Stop::PageCap)
    );
    assert!(why.capped());
}

#[test]
fn the_deadline_holds_whatever_the_holder_answers() {
    let t0 = Instant::now();
    let mut run = HolderFetch::new(t0);
    assert_eq!(run.deadline(), t0 + HOLDER_DEADLINE);
    // A slow holder: each page arrives just inside a 15 s timeout.
    let mut now = t0;
    let mut pages = 0;
    let why = loop {
        now += Duration::from_secs(14);
        pages += 1;
        let v = run.page(now, 1, Some(pages));
        if let Step::Stop(why) = v.then {
            assert_eq!(v.take, 0, "nothing is taken past the deadline");
            break why;
        }
    };
    assert_eq!(why, Stop::Deadline);
    assert_eq!(pages, 3, "two pages in 30 s, the third is too late");
    assert!(!why.capped());
}

#[test]
fn an_oversized_page_is_refused() {
    let t0 = Instant::now();
    let mut run = HolderFetch::new(t0);
    let v = run.page(t0, PAGE_ITEMS + 1, Some(1));
    assert_eq!((v.take, v.then), (0, Step::Stop(Stop::Oversized)));
}

#[test]
fn the_item_cap_truncates_the_page_that_crosses_it() {
    let t0 = Instant::now();
    let mut run = HolderFetch::new(t0);
    let mut taken = run.page(t0, 1, Some(1)).take;
    let mut c = 1;
    let last = loop {
        c += 1;
        let v = full(&mut run, t0, c);
        taken += v.take;
        if v.then != Step::Ask(c) {
            break v;
        }
    };
    assert_eq!(
        last.take,
        (FETCH_ITEMS - 1) % PAGE_ITEMS,
        "the rest of the budget"
    );
    assert_eq!(last.then, Step::Stop(Stop::ItemCap));
    assert_eq!(taken, FETCH_ITEMS);
}

#[test]
fn a_fetch_that_brought_new_mail_and_did_not_drain_is_followed_at_once() {
    for stop in [
        Stop::ItemCap,
        Stop::PageCap,
        Stop::Deadline,
        Stop::Stalled,
        Stop::Failed,
        Stop::Oversized,
    ] {
        assert!(follow_at_once(stop, 1), "{stop:?} after new mail");
        assert!(!follow_at_once(stop, 0), "{stop:?} with nothing new");
    }
    assert!(
        !follow_at_once(Stop::Drained, 5),
        "the holder has nothing more"
    );
}

#[test]
fn a_fetch_wanted_now_is_not_put_off_by_one_planned_later() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(10);
    assert_eq!(due_by(None, t0), Some(t0));
    assert_eq!(due_by(Some(later), t0), Some(t0), "brought forward");
    assert_eq!(due_by(Some(t0), later), Some(t0), "kept when sooner");
}

pub(super) fn ranked(key: &[u8], n: usize) -> Vec<PeerId> {
    crate::node::mailbox::holders(key, (0..n).map(|_| PeerId::random()), &[], n)
}

pub(super) const POLL: Duration = Duration::from_secs(300);
/// The default replicas, and the holders a poll without a lookup asks.
pub(super) const REPLICAS: usize = 3;
pub(super) const POLL_FROM: usize = 2 * REPLICAS;

#[test]
fn the_first_peer_starts_a_fetch_after_the_settle_and_one_fetch_runs_at_a_time() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(b"key", POLL, REPLICAS, t0);
    assert_eq!(f.poll_timeout(), t0 + POLL);
    assert!(f.handle(Input::NewPeer(PeerId::random()), t0).is_empty());
    assert_eq!(f.poll_timeout(), t0 + SETTLE);
    assert!(f.handle(Input::Tick, t0 + SETTLE / 2).is_empty());
    let t1 = t0 + SETTLE;
    assert_eq!(
        f.handle(Input::Tick, t1),
        vec![Output::Fetch(Ask::Lookup(Why::Start))]
    );
    // A peer while it runs: due after REACT_EVERY, but no tick is
    // wanted for it until the fetch ends.
    f.handle(Input::NewPeer(PeerId::random()), t1);
    let due = t1 + REACT_EVERY + SETTLE;
    assert_eq!(f.poll_timeout(), t1 + POLL, "no wake-up while fetching");
    assert!(f.handle(Input::Tick, due).is_empty(), "one fetch at a time");
    assert_eq!(
        f.handle(
            Input::Done {
                asked: Vec::new(),
                more: false,
                unanswered: Vec::new(),
            },
            due
        ),
        vec![Output::Fetch(Ask::Lookup(Why::Reach))],
        "the due fetch starts when the last one ends"
    );
}

#[test]
fn the_poll_fetches_without_a_reason_and_more_fetches_at_once() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(b"key", POLL, REPLICAS, t0);
    assert!(f.handle(Input::Tick, t0 + POLL / 2).is_empty());
    assert_eq!(
        f.handle(Input::Tick, t0 + POLL),
        vec![Output::Fetch(Ask::Lookup(Why::Start))]
    );
    let t1 = t0 + POLL + Duration::from_secs(1);
    // A fetch stopped at a cap after new mail: again at once, even
    // with one planned for later.
    f.handle(Input::NewPeer(PeerId::random()), t1);
    assert_eq!(
        f.handle(
            Input::Done {
                asked: Vec::new(),
                more: true,
                unanswered: Vec::new(),
            },
            t1
        ),
        vec![Output::Fetch(Ask::Lookup(Why::Reach))]
    );
    let t2 = t1 + Duration::from_secs(2);
    assert!(
        f.handle(
            Input::Done {
                asked: Vec::new(),
                more: false,
                unanswered: Vec::new(),
            },
            t2
        )
        .is_empty()
    );
    assert_eq!(
        f.poll_timeout(),
        t1 + POLL,
        "the poll counts from the last fetch"
    );
}

#[test]
fn after_a_full_fetch_only_a_peer_within_it_starts_another() {
    let t0 = Instant::now();
    let key = b"mailbox key".to_vec();
    let peers = ranked(&key, 40);
    let mut f = Fetcher::new(&key, POLL, REPLICAS, t0);
    f.handle(Input::NewPeer(peers[0]), t0);
    assert_eq!(
        f.handle(Input::Tick, t0 + SETTLE),
        vec![Output::Fetch(Ask::Lookup(Why::Start))]
    );
    let t1 = t0 + Duration::from_secs(60);
    let asked = peers[..FETCH_FROM].to_vec();
    assert!(
        f.handle(
            Input::Done {
                asked,
                more: false,
                unanswered: Vec::new(),
            },
            t1
        )
        .is_empty()
    );
    f.handle(Input::NewPeer(peers[39]), t1);
    assert_eq!(
        f.poll_timeout(),
        t0 + SETTLE + POLL,
        "beyond the fetch: nothing"
    );
    f.handle(Input::NewPeer(peers[3]), t1);
    assert_eq!(f.poll_timeout(), t1 + SETTLE);
}

#[test]
fn fetched_messages_are_receipted_once_per_sender_and_id() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(b"key", POLL, REPLICAS, t0);
    let (alice, bob) = (PeerId::random(), PeerId::random());
    let (a, b) = (MessageId([1; 16]), MessageId([2; 16]));
    let first = f.handle(Input::Delivered(HashMap::from([(alice, vec![a])])), t0);
    assert_eq!(
        first,
        vec![Output::Receipt {
            peer: alice,
            ids: vec![a]
        }]
    );
    // The same message from a second holder, and another of Bob's.
    let again = HashMap::from([(alice, vec![a]), (bob, vec![b])]);
    assert_eq!(
        f.handle(Input::Delivered(again), t0),
        vec![Output::Receipt {
            peer: bob,
            ids: vec![b]
        }]
    );
}

#[test]
fn a_filed_page_acks_all_but_the_unavailable_and_counts_new_messages_only() {
    let t0 = Instant::now();
    let mut run = HolderFetch::new(t0);
    let ack = |n: u8, result| Ack {
        id: Some(MessageId([n; 16])),
        result,
    };
    let acks = vec![
        ack(1, AckResult::Accepted),
        ack(2, AckResult::Duplicate),
        ack(3, AckResult::Rejected(RejectReason::Unavailable)),
        ack(4, AckResult::Rejected(RejectReason::Malformed)),
        ack(5, AckResult::Accepted), // a receipt: not new mail
        Ack {
            id: None,
            result: AckResult::Rejected(RejectReason::Malformed),
        },
    ];
    let content = [true, true, true, true, false, false];
    let ids = run.filed(acks, &content).expect("filed");
    let want: Vec<MessageId> = [1, 2, 4, 5].map(|n| MessageId([n; 16])).to_vec();
    assert_eq!(ids, want);
    assert!(run.more(Stop::ItemCap), "one new message");
    assert!(!run.more(Stop::Drained));
    let mut run = HolderFetch::new(t0);
    assert_eq!(run.filed(Vec::new(), &[true]), None, "not stored");
    run.filed(vec![ack(5, AckResult::Accepted)], &[false]);
    assert!(!run.more(Stop::ItemCap), "receipts do not count");
}

#[test]
fn the_poll_interval_doubles_while_nothing_is_found_and_resets_on_mail() {
    let mut i = POLL;
    let mut seen = Vec::new();
    for _ in 0..5 {
        i = next_interval(i, POLL, false);
        seen.push(i.as_secs());
    }
    assert_eq!(seen, vec![600, 1200, 1200, 1200, 1200]);
    assert_eq!(next_interval(i, POLL, true), POLL);
    assert_eq!(next_interval(POLL, POLL, true), POLL);
}

/// Runs the poll once at its time with nothing found; returns when it ran.
fn empty_poll(f: &mut Fetcher) -> Instant {
    let at = f.poll_timeout();
    let fetch = f.handle(Input::Tick, at);
    assert!(
        matches!(fetch[..], [Output::Fetch(Ask::Lookup(_))]),
        "{fetch:?}"
    );
    let done = Input::Done {
        asked: Vec::new(),
        more: false,
        unanswered: Vec::new(),
    };
    assert!(f.handle(done, at).is_empty());
    at
}

#[test]
fn an_idle_poll_backs_off_and_mail_found_brings_it_back() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(b"key", POLL, REPLICAS, t0);
    let mut at = t0;
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let next = empty_poll(&mut f);
        gaps.push((next - at).as_secs());
        at = next;
    }
    assert_eq!(gaps, vec![300, 300, 600, 1200, 1200]);
    // A fetch that finds mail: the next poll is back at the configured
    // pace, counted from when the mail came.
    let t1 = f.poll_timeout();
    assert_eq!(
        f.handle(Input::Tick, t1),
        vec![Output::Fetch(Ask::Lookup(Why::Small))]
    );
    let from = PeerId::random();
    let mail = HashMap::from([(from, vec![MessageId::random()])]);
    assert_eq!(f.handle(Input::Delivered(mail), t1).len(), 1);
    let done = Input::Done {
        asked: Vec::new(),
        more: false,
        unanswered: Vec::new(),
    };
    assert!(f.handle(done, t1).is_empty());
    assert_eq!(f.interval(), POLL);
    assert_eq!(f.poll_timeout(), t1 + POLL);
    // Mail reported after its fetch's end (the two come by different
    // channels) resets the backoff all the same.
    let t2 = empty_poll(&mut f);
    assert_eq!(f.interval(), 2 * POLL);
    let late = HashMap::from([(from, vec![MessageId::random()])]);
    f.handle(Input::Delivered(late), t2);
    assert_eq!(f.interval(), POLL);
    assert_eq!(f.poll_timeout(), t2 + POLL);
}
