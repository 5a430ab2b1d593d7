//! Fetching our own mailbox from its holders, within bounds a holder cannot
//! stretch.
//!
//! A holder answers each `Fetch` with a page and a cursor for the next one,
//! and nothing in the protocol makes it stop: one that hands back the same
//! cursor, or a fresh one forever, or answers just inside the request
//! timeout, would keep the fetch running for good — and while a fetch runs
//! no other starts. So every fetch from one holder is held to the rules of
//! [`HolderFetch`] (a pure machine, driven by the caller's clock): the
//! cursor must strictly advance, a fetch takes at most [`FETCH_PAGES`]
//! pages and [`FETCH_ITEMS`] items, and it ends at [`HOLDER_DEADLINE`]
//! whatever the holder does. Holders are asked concurrently (at most
//! [`FETCH_FROM`] of them), each under its own bounds, so a slow or hostile
//! one delays nobody's items but its own. What a holder still has when its
//! fetch stops is asked for again by the next fetch.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::Internal;
use super::inbound::{Inbound, open_envelope, store_incoming};
use crate::net::NetClient;
use crate::node::mailbox::holders;
use crate::wire::mailbox::{FETCH_FROM, MailboxRequest, MailboxResponse, PAGE_ITEMS, mailbox_key};
use crate::wire::message::{AckResult, Body, MessageId, RejectReason};

/// Most pages one fetch takes from one holder. A full mailbox (the default
/// recipient quota is 10 000 items) drains over a few fetches; see
/// [`FetchOutcome::more`].
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
}

impl HolderFetch {
    /// A fetch starting at `now`, from the start of the mailbox.
    pub fn new(now: Instant) -> Self {
        Self {
            deadline: now + HOLDER_DEADLINE,
            cursor: 0,
            pages: 0,
            items: 0,
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
}

/// When the next fetch is due once it is wanted `at`: then, or at the
/// time already set if that is sooner. (Never later: a fetch planned for
/// later — after a neighbourhood change — must not delay one wanted now.)
pub(super) fn due_by(due: Option<Instant>, at: Instant) -> Option<Instant> {
    Some(due.map_or(at, |t| t.min(at)))
}

/// How a fetch of our own mailbox went, for the service.
#[derive(Debug, Default)]
pub(super) struct FetchOutcome {
    /// The holders asked.
    pub asked: Vec<PeerId>,
    /// Some holder stopped before its end after giving us new messages
    /// ([`follow_at_once`]): fetch again at once rather than at the next
    /// poll.
    pub more: bool,
}

/// Fetches our own mailbox from its holders, concurrently, each within
/// [`HolderFetch`]'s bounds: every page is stored through the normal
/// incoming path (one flush per page), then acknowledged to the holder,
/// which deletes what we stored.
pub(super) async fn fetch_own(
    inbound: Arc<Inbound>,
    net: NetClient,
    r: usize,
    int_tx: mpsc::Sender<Internal>,
) {
    let me = inbound.sealer.me();
    let key = mailbox_key(&me);
    let found = net.closest_peers(key.clone()).await.unwrap_or_default();
    // Every peer of the neighbourhood, not just the R closest: a copy left
    // on a peer that has since been outranked is found and cleared too.
    let asked = holders(&key, found, &[me], r.max(FETCH_FROM));
    let stops = join_all(asked.iter().map(|h| fetch_from(*h, &inbound, &net))).await;
    let more = stops
        .iter()
        .any(|(stop, fresh)| follow_at_once(*stop, *fresh));
    let _ = int_tx
        .send(Internal::FetchDone(FetchOutcome { asked, more }))
        .await;
}

/// Fetches from one holder until [`HolderFetch`] says stop; returns why,
/// and how many messages new to our history it gave.
async fn fetch_from(holder: PeerId, inbound: &Inbound, net: &NetClient) -> (Stop, usize) {
    let me = inbound.sealer.me().to_bytes();
    let mut run = HolderFetch::new(Instant::now());
    let deadline = tokio::time::Instant::from_std(run.deadline());
    let mut step = run.start();
    let mut fresh = 0;
    let stop = loop {
        let cursor = match step {
            Step::Ask(c) => c,
            Step::Stop(why) => break why,
        };
        let request = MailboxRequest::Fetch {
            recipient: me.clone(),
            cursor,
        };
        let (mut items, next) =
            match tokio::time::timeout_at(deadline, net.mailbox(holder, request)).await {
                Ok(Ok(MailboxResponse::Page { items, next })) => (items, next),
                Ok(_) => break Stop::Failed,
                Err(_) => break Stop::Deadline,
            };
        let verdict = run.page(Instant::now(), items.len(), next);
        items.truncate(verdict.take);
        step = verdict.then;
        if items.is_empty() {
            continue;
        }
        let opened: Vec<_> = items
            .iter()
            .map(|e| open_envelope(&inbound.sealer, e))
            .collect();
        // Only a message (not a receipt or buddy request, which are taken
        // every time they come) counts as new when accepted.
        let content: Vec<bool> = opened
            .iter()
            .map(|o| matches!(o, Ok((_, _, inner)) if matches!(inner.body, Body::Content { .. })))
            .collect();
        let (tx, rx) = oneshot::channel();
        store_incoming(inbound, opened, true, tx);
        // The deadline bounds our own storing too (a slow disk): a batch
        // still queued when it passes is stored all the same, but not
        // acknowledged, so the holder keeps it and the next fetch acks it
        // as a duplicate.
        let acks = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(acks)) if acks.len() == items.len() => acks,
            // Not stored: the holder keeps it all for the next fetch.
            Ok(_) => break Stop::Failed,
            Err(_) => break Stop::Deadline,
        };
        fresh += acks
            .iter()
            .zip(&content)
            .filter(|(a, c)| **c && a.result == AckResult::Accepted)
            .count();
        // Everything stored, duplicate or refused for good can go; what we
        // could not store stays with the holder.
        let done: Vec<MessageId> = acks
            .into_iter()
            .filter(|a| a.result != AckResult::Rejected(RejectReason::Unavailable))
            .filter_map(|a| a.id)
            .collect();
        let ack = MailboxRequest::Ack {
            recipient: me.clone(),
            ids: done,
        };
        if tokio::time::timeout_at(deadline, net.mailbox(holder, ack))
            .await
            .is_err()
        {
            break Stop::Deadline;
        }
    };
    if stop != Stop::Drained {
        debug!(%holder, ?stop, "fetch from mailbox holder stopped early");
    }
    (stop, fresh)
}

/// The ids we sent a delivery receipt for lately (at most `cap`, oldest
/// forgotten first). A fetched message that is already in our history
/// gets a receipt too — after a crash between storing it and sending the
/// receipt, nothing else would ever tell its sender — but each of the R
/// holders hands over the same message, and one receipt is enough.
#[derive(Debug)]
pub(super) struct Receipted {
    cap: usize,
    order: VecDeque<MessageId>,
    set: HashSet<MessageId>,
}

/// How many receipted ids are remembered: a few fetches' worth.
pub(super) const RECEIPTED: usize = 4 * FETCH_ITEMS;

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
}
