//! The fetcher machines: when this node fetches its own mailbox
//! ([`Fetcher`]), the bounds and acks of one fetch from one holder
//! ([`HolderFetch`]), and which fetched messages get a delivery receipt
//! ([`Receipted`]). No I/O: the messaging service and its fetch tasks
//! (`node::messenger::fetch`) run the lookups, requests and store jobs.
//!
//! **When.** At start-up (a settle after the first peer is known), when a
//! peer that may hold our mail enters the routing table ([`Reach`]; settled
//! [`SETTLE`], at most every [`REACT_EVERY`]), every poll, and at once after
//! a fetch that stopped before a holder's end having brought new mail. One
//! fetch at a time.
//!
//! **Bounds.** A holder answers each `Fetch` with a page and a cursor for
//! the next one, and nothing in the protocol makes it stop: one that hands
//! back the same cursor, or a fresh one forever, or answers just inside the
//! request timeout, would keep the fetch running for good — and while a
//! fetch runs no other starts. So every fetch from one holder is held to
//! the rules of [`HolderFetch`]: the cursor must strictly advance, a fetch
//! takes at most [`FETCH_PAGES`] pages and [`FETCH_ITEMS`] items, and it
//! ends at [`HOLDER_DEADLINE`] whatever the holder does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::placement::Reach;
use crate::wire::mailbox::{FETCH_FROM, PAGE_ITEMS};
use crate::wire::message::{Ack, AckResult, MessageId, RejectReason};

/// Delay that coalesces a burst of routing-table changes (and lets the
/// first peers of a start-up arrive before the first fetch).
pub const SETTLE: Duration = Duration::from_millis(100);
/// Least time between two fetches started by routing-table changes.
pub const REACT_EVERY: Duration = Duration::from_secs(10);

/// Most pages one fetch takes from one holder. A full mailbox (the default
/// recipient quota is 10 000 items) drains over a few fetches; see
/// [`Input::Done`]'s `more`.
pub const FETCH_PAGES: usize = 64;
/// Most items one fetch takes from one holder (32 full pages): bounds the
/// store work one holder can cause per fetch, where [`FETCH_PAGES`] bounds
/// its round trips and flushes.
pub const FETCH_ITEMS: usize = 2048;
/// Longest one fetch from one holder may take, requests, storing and acks
/// included. An honest holder hands over its [`FETCH_ITEMS`] in about a
/// second; this leaves room for a loaded machine, not for a holder that
/// answers each request just inside the 15 s request timeout.
pub const HOLDER_DEADLINE: Duration = Duration::from_secs(30);

/// What to do next in a fetch from one holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ask for the page at this cursor.
    Ask(u64),
    /// The fetch from this holder is over.
    Stop(Stop),
}

/// Why a fetch from one holder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The holder said there is nothing more (empty page, or no cursor).
    Drained,
    /// The next cursor did not advance past the one asked for.
    Stalled,
    /// [`FETCH_PAGES`] pages taken.
    PageCap,
    /// [`FETCH_ITEMS`] items taken.
    ItemCap,
    /// The page held more than [`PAGE_ITEMS`] items, which no holder sends.
    Oversized,
    /// [`HOLDER_DEADLINE`] passed.
    Deadline,
    /// The holder did not answer with a page.
    Failed,
}

impl Stop {
    /// Whether the holder may still have items for us that it was willing
    /// to give: the fetch ended at one of our caps, not at its end.
    #[cfg(test)]
    pub fn capped(self) -> bool {
        matches!(self, Self::PageCap | Self::ItemCap)
    }
}

/// Whether a fetch from one holder that ended at `stop`, after giving us
/// `fresh` messages new to our history, calls for another fetch at once
/// rather than at the next poll: it did not reach the holder's end, and
/// it brought real mail. Whatever made it stop — a cap, the deadline, a
/// stalled cursor, a failure — the rest may be real mail too. New messages
/// cannot be made up (each is sealed by its sender), so a hostile holder
/// cannot use this to keep us fetching: junk, duplicates and refused items
/// do not count.
pub fn follow_at_once(stop: Stop, fresh: usize) -> bool {
    stop != Stop::Drained && fresh > 0
}

/// What to do with a page that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageVerdict {
    /// Store (and acknowledge) the first this many of its items.
    pub take: usize,
    /// Then this.
    pub then: Step,
}

/// The rules of one fetch from one holder: every cursor it hands back must
/// be past the one asked for, pages and items are capped, and the whole
/// fetch has a deadline. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub struct HolderFetch {
    deadline: Instant,
    cursor: u64,
    pages: usize,
    items: usize,
    /// Messages new to our history it gave ([`follow_at_once`]).
    fresh: usize,
}

impl HolderFetch {
    /// A fetch starting at `now`, from the start of the mailbox.
    pub fn new(now: Instant) -> Self {
        Self {
            deadline: now + HOLDER_DEADLINE,
            cursor: 0,
            pages: 0,
            items: 0,
            fresh: 0,
        }
    }

    /// When this fetch must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The first request.
    pub fn start(&self) -> Step {
        Step::Ask(self.cursor)
    }

    /// A page of `len` items arrived at `now`, with `next` as the cursor
    /// for the one after.
    pub fn page(&mut self, now: Instant, len: usize, next: Option<u64>) -> PageVerdict {
        let stop = |why| PageVerdict {
            take: 0,
            then: Step::Stop(why),
        };
        if now >= self.deadline {
            return stop(Stop::Deadline);
        }
        if len > PAGE_ITEMS {
            return stop(Stop::Oversized);
        }
        let take = len.min(FETCH_ITEMS - self.items);
        self.items += take;
        self.pages += 1;
        let then = match next {
            _ if len == 0 => Step::Stop(Stop::Drained),
            None => Step::Stop(Stop::Drained),
            Some(c) if c <= self.cursor => Step::Stop(Stop::Stalled),
            Some(_) if self.items >= FETCH_ITEMS => Step::Stop(Stop::ItemCap),
            Some(_) if self.pages >= FETCH_PAGES => Step::Stop(Stop::PageCap),
            Some(c) => {
                self.cursor = c;
                Step::Ask(c)
            }
        };
        PageVerdict { take, then }
    }

    /// The items taken from a page were filed with these `acks` (none, or
    /// not one per item: the store failed); `content[i]` says whether item
    /// `i` is a message (receipts and buddy requests, which a holder can
    /// replay, never count as new). Returns the ids to acknowledge to the
    /// holder — everything stored, duplicate or refused for good; what we
    /// could not store stays with it — or `None` when nothing was stored
    /// and the fetch from this holder is over ([`Stop::Failed`]).
    pub fn filed(&mut self, acks: Vec<Ack>, content: &[bool]) -> Option<Vec<MessageId>> {
        if acks.len() != content.len() {
            return None;
        }
        self.fresh += acks
            .iter()
            .zip(content)
            .filter(|(a, c)| **c && a.result == AckResult::Accepted)
            .count();
        Some(
            acks.into_iter()
                .filter(|a| a.result != AckResult::Rejected(RejectReason::Unavailable))
                .filter_map(|a| a.id)
                .collect(),
        )
    }

    /// Whether a fetch from this holder that ended at `stop` calls for
    /// another fetch at once ([`follow_at_once`]).
    pub fn more(&self, stop: Stop) -> bool {
        follow_at_once(stop, self.fresh)
    }
}

/// When the next fetch is due once it is wanted `at`: then, or at the
/// time already set if that is sooner. (Never later: a fetch planned for
/// later — after a neighbourhood change — must not delay one wanted now.)
fn due_by(due: Option<Instant>, at: Instant) -> Option<Instant> {
    Some(due.map_or(at, |t| t.min(at)))
}

/// What the service tells the [`Fetcher`].
#[derive(Debug)]
pub enum Input {
    /// `peer` entered our routing table.
    NewPeer(PeerId),
    /// A fetch ended: it asked `asked`; `more` if some holder stopped
    /// before its end after giving new mail ([`HolderFetch::more`]).
    Done {
        /// The holders asked.
        asked: Vec<PeerId>,
        /// Fetch again at once.
        more: bool,
    },
    /// Messages fetched from a mailbox (new or already in our history),
    /// per sender: their senders are owed a delivery receipt.
    Delivered(HashMap<PeerId, Vec<MessageId>>),
    /// The time in [`Fetcher::poll_timeout`] has come.
    Tick,
}

/// What the [`Fetcher`] asks the service to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Fetch our own mailbox now, then report [`Input::Done`].
    Fetch,
    /// Send `peer` a delivery receipt for `ids`.
    Receipt {
        /// The sender.
        peer: PeerId,
        /// Its messages.
        ids: Vec<MessageId>,
    },
}

/// When to fetch our own mailbox, and which receipts fetched messages
/// are owed. See the module documentation.
#[derive(Debug)]
pub struct Fetcher {
    poll: Duration,
    fetching: bool,
    due: Option<Instant>,
    /// When the last fetch started.
    last: Option<Instant>,
    next_poll: Instant,
    /// Which new peers may hold mail the last fetch did not ask for.
    reach: Reach,
    receipted: Receipted,
}

impl Fetcher {
    /// Nothing fetched yet from the mailbox at `key`, at `now`; polls
    /// every `poll`.
    pub fn new(key: &[u8], poll: Duration, now: Instant) -> Self {
        Self {
            poll,
            fetching: false,
            due: None,
            last: None,
            next_poll: now + poll,
            reach: Reach::new(key),
            receipted: Receipted::new(RECEIPTED),
        }
    }

    /// When the machine next wants [`Input::Tick`]. A fetch that falls due
    /// while one runs waits for [`Input::Done`], not for a tick.
    pub fn poll_timeout(&self) -> Instant {
        match self.due {
            Some(due) if !self.fetching => due.min(self.next_poll),
            _ => self.next_poll,
        }
    }

    /// Takes one input at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        match input {
            Input::NewPeer(peer) => {
                // A fetch costs a lookup plus up to K requests, and in a
                // growing network every node's table changes all the
                // time: react only to a peer that may hold mail ([`Reach`]).
                if self.reach.may_hold(&peer) {
                    let at = self.last.map_or(now, |t| t + REACT_EVERY).max(now) + SETTLE;
                    self.due.get_or_insert(at);
                }
                Vec::new()
            }
            Input::Done { asked, more } => {
                self.fetching = false;
                self.reach.fetched(&asked, FETCH_FROM);
                if more {
                    // At once, even if a later fetch was already planned.
                    self.due = due_by(self.due, now);
                }
                self.tick(now)
            }
            Input::Delivered(by_sender) => by_sender
                .into_iter()
                .filter_map(|(peer, ids)| {
                    let ids = self.receipted.fresh(ids);
                    (!ids.is_empty()).then_some(Output::Receipt { peer, ids })
                })
                .collect(),
            Input::Tick => self.tick(now),
        }
    }

    fn tick(&mut self, now: Instant) -> Vec<Output> {
        if now >= self.next_poll {
            self.next_poll = now + self.poll;
            self.due = due_by(self.due, now);
        }
        if self.fetching || !self.due.is_some_and(|t| t <= now) {
            return Vec::new();
        }
        self.due = None;
        self.last = Some(now);
        self.fetching = true;
        self.next_poll = now + self.poll;
        vec![Output::Fetch]
    }
}

/// The ids we sent a delivery receipt for lately (at most `cap`, oldest
/// forgotten first). A fetched message that is already in our history
/// gets a receipt too — after a crash between storing it and sending the
/// receipt, nothing else would ever tell its sender — but each of the R
/// holders hands over the same message, and one receipt is enough.
#[derive(Debug)]
pub struct Receipted {
    cap: usize,
    order: VecDeque<MessageId>,
    set: HashSet<MessageId>,
}

/// How many receipted ids are remembered: a few fetches' worth.
pub const RECEIPTED: usize = 4 * FETCH_ITEMS;

impl Receipted {
    /// Remembers at most `cap` ids.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Of `ids`, those not receipted lately, now remembered as receipted.
    pub fn fresh(&mut self, ids: Vec<MessageId>) -> Vec<MessageId> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if self.cap == 0 || !self.set.insert(id) {
                continue;
            }
            self.order.push_back(id);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
            out.push(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_receipt_goes_once_per_id_while_it_is_remembered() {
        let id = |n: u8| MessageId([n; 16]);
        let mut r = Receipted::new(3);
        assert_eq!(r.fresh(vec![id(1), id(2)]), vec![id(1), id(2)]);
        assert_eq!(r.fresh(vec![id(2), id(3), id(3)]), vec![id(3)]);
        // A fourth id pushes out the oldest, which may be receipted again.
        assert_eq!(r.fresh(vec![id(4)]), vec![id(4)]);
        assert_eq!(r.fresh(vec![id(2), id(1)]), vec![id(1)]);
        assert!(r.set.len() <= 3 && r.order.len() <= 3);
    }

    fn ranked(key: &[u8], n: usize) -> Vec<PeerId> {
        crate::node::mailbox::holders(key, (0..n).map(|_| PeerId::random()), &[], n)
    }

    const POLL: Duration = Duration::from_secs(300);

    #[test]
    fn the_first_peer_starts_a_fetch_after_the_settle_and_one_fetch_runs_at_a_time() {
        let t0 = Instant::now();
        let mut f = Fetcher::new(b"key", POLL, t0);
        assert_eq!(f.poll_timeout(), t0 + POLL);
        assert!(f.handle(Input::NewPeer(PeerId::random()), t0).is_empty());
        assert_eq!(f.poll_timeout(), t0 + SETTLE);
        assert!(f.handle(Input::Tick, t0 + SETTLE / 2).is_empty());
        let t1 = t0 + SETTLE;
        assert_eq!(f.handle(Input::Tick, t1), vec![Output::Fetch]);
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
                    more: false
                },
                due
            ),
            vec![Output::Fetch],
            "the due fetch starts when the last one ends"
        );
    }

    #[test]
    fn the_poll_fetches_without_a_reason_and_more_fetches_at_once() {
        let t0 = Instant::now();
        let mut f = Fetcher::new(b"key", POLL, t0);
        assert!(f.handle(Input::Tick, t0 + POLL / 2).is_empty());
        assert_eq!(f.handle(Input::Tick, t0 + POLL), vec![Output::Fetch]);
        let t1 = t0 + POLL + Duration::from_secs(1);
        // A fetch stopped at a cap after new mail: again at once, even
        // with one planned for later.
        f.handle(Input::NewPeer(PeerId::random()), t1);
        assert_eq!(
            f.handle(
                Input::Done {
                    asked: Vec::new(),
                    more: true
                },
                t1
            ),
            vec![Output::Fetch]
        );
        let t2 = t1 + Duration::from_secs(2);
        assert!(
            f.handle(
                Input::Done {
                    asked: Vec::new(),
                    more: false
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
        let mut f = Fetcher::new(&key, POLL, t0);
        f.handle(Input::NewPeer(peers[0]), t0);
        assert_eq!(f.handle(Input::Tick, t0 + SETTLE), vec![Output::Fetch]);
        let t1 = t0 + Duration::from_secs(60);
        let asked = peers[..FETCH_FROM].to_vec();
        assert!(f.handle(Input::Done { asked, more: false }, t1).is_empty());
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
        let mut f = Fetcher::new(b"key", POLL, t0);
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
}
