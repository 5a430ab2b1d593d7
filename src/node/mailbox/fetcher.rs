//! The fetcher machines: when this node fetches its own mailbox
//! ([`Fetcher`]), the bounds and acks of one fetch from one holder
//! ([`HolderFetch`]); which fetched messages get a delivery receipt is
//! [`Receipted`]'s (`receipted.rs`). No I/O: the messaging service and its fetch tasks
//! (`node::messenger::fetch`) run the lookups, requests and store jobs.
//!
//! **When.** At start-up (a settle after the first peer is known), when a
//! peer that may hold our mail enters the routing table ([`Reach`]; settled
//! [`SETTLE`](super::react::SETTLE), at most every
//! [`REACT_EVERY`](super::react::REACT_EVERY)), every poll, and at once after
//! a fetch that stopped before a holder's end having brought new mail. One
//! fetch at a time. The poll backs off while fetches find nothing (up to
//! [`MAX_BACKOFF`] × the configured poll) and returns to its pace as soon
//! as mail is found ([`next_interval`]). A lookup called for by a grown
//! table or a silent holder (below) comes at the configured pace, a poll
//! after the last fetch, not at the backed-off one.
//!
//! **Whom** ([`Ask`]). A lookup of the mailbox key's neighbourhood and a
//! request to each of its (at most [`FETCH_FROM`]) peers costs a few dozen
//! requests, most over connections opened for them: in a 1000-node network
//! the polls alone opened several connections per node and minute. So a
//! lookup runs only when the neighbourhood may have changed ([`Why`]) —
//! at start-up, after a new peer within it ([`Reach`]), after [`GROWN`]
//! new peers of any distance (the network is growing: newcomers near the
//! key rarely enter our own table), after a holder did not answer (once
//! per holder until it answers again), in a network too small to fill a neighbourhood, and at least
//! every [`LOOKUP_AGE`] — and asks all its peers, which also clears copies
//! left on peers since outranked. Any other poll asks only the closest few
//! of the last neighbourhood that answered (`poll_from`, twice the
//! replicas), without a lookup: senders deposit with the R closest they
//! find and holders hand their items on towards the R closest, so that is
//! where new mail waits. A fetch that stopped early with new mail is
//! followed by one to the same holders.
//!
//! **Silent holders.** A holder that does not answer may have left, so
//! the next fetch looks up — once. It is remembered as silent until it
//! answers again: polls pass it over, and it does not make another
//! lookup, since a lookup only finds peers that answer it and the
//! neighbourhood's own changes come as [`Input::NewPeer`]. Otherwise a
//! single holder that keeps timing out (a peer gone for good that others
//! still name, one overloaded) would turn every poll into a lookup and its
//! few dozen connections.
//!
//! **Bounds.** A holder answers each `Fetch` with a page and a cursor for
//! the next one, and nothing in the protocol makes it stop: one that hands
//! back the same cursor, or a fresh one forever, or answers just inside the
//! request timeout, would keep the fetch running for good — and while a
//! fetch runs no other starts. So every fetch from one holder is held to
//! the rules of [`HolderFetch`]: the cursor must strictly advance, a fetch
//! takes at most [`FETCH_PAGES`] pages and [`FETCH_ITEMS`] items, and it
//! ends at [`HOLDER_DEADLINE`] whatever the holder does.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::placement::Reach;
use super::react::react_at;
pub use super::receipted::{RECEIPTED, Receipted};
use crate::wire::mailbox::{FETCH_FROM, PAGE_ITEMS};
use crate::wire::message::{Ack, AckResult, MessageId, RejectReason};

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
    /// We could not open or store a page it gave: our side failed, not
    /// the holder, which keeps the items for the next fetch.
    Unfiled,
}

impl Stop {
    /// Whether the holder may still have items for us that it was willing
    /// to give: the fetch ended at one of our caps, not at its end.
    #[cfg(test)]
    pub fn capped(self) -> bool {
        matches!(self, Self::PageCap | Self::ItemCap)
    }

    /// Whether the holder failed to answer in time: it may have left
    /// ([`Input::Done`]'s `unanswered`).
    pub fn unanswered(self) -> bool {
        matches!(self, Self::Failed | Self::Deadline)
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
    /// and the fetch from this holder is over ([`Stop::Unfiled`]).
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

/// Most the poll interval grows to, as a multiple of the configured poll,
/// while fetches find nothing: a settled node with no mail asks its
/// mailbox's K peers every 20 minutes instead of every 5.
pub const MAX_BACKOFF: u32 = 4;

/// The poll interval after a fetch: back to `poll` once mail was found
/// (more may follow the same way), else doubled up to [`MAX_BACKOFF`] ×
/// `poll`. The poll is the safety net for mail deposited while we were
/// online but not found by its sender; an idle node that keeps finding
/// nothing pays for it less often, and the first mail found brings the
/// poll back to its configured pace.
pub fn next_interval(current: Duration, poll: Duration, found: bool) -> Duration {
    if found {
        poll
    } else {
        (current * 2).min(poll * MAX_BACKOFF).max(poll)
    }
}

/// When the next fetch is due once it is wanted `at`: then, or at the
/// time already set if that is sooner. (Never later: a fetch planned for
/// later — after a neighbourhood change — must not delay one wanted now.)
fn due_by(due: Option<Instant>, at: Instant) -> Option<Instant> {
    Some(due.map_or(at, |t| t.min(at)))
}

/// Longest a neighbourhood found by a lookup is asked again without a new
/// one. Mail that moved beyond the peers a poll asks (a sender that saw
/// other closest peers than ours, a hand-off to a newcomer we do not know)
/// waits at most this long plus a poll; its sender retries the recipient
/// directly meanwhile.
pub const LOOKUP_AGE: Duration = Duration::from_secs(60 * 60);

/// New peers in our routing table, at any distance, after which the next
/// fetch looks up. A growing network brings newcomers near our mailbox
/// key that our own table, kept around our id, rarely takes in, and
/// senders deposit with them; the growth of our table is the sign of it.
/// A settled network adds a peer to a table now and then (the 1000-node
/// bench: under 0.1 a node and minute once all had joined), so its polls
/// keep asking without a lookup.
pub const GROWN: usize = 4;

/// Why a fetch looks the neighbourhood up rather than asking the last
/// one's closest: each is a sign that it may have changed (see the module
/// documentation). The service counts them (`net::stats`), so a bench
/// shows which rule its lookups and their connections come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No lookup yet.
    Start,
    /// A new peer that may hold our mail ([`Reach`]).
    Reach,
    /// A holder not already silent did not answer.
    Unanswered,
    /// [`GROWN`] new peers in our routing table.
    Grown,
    /// The last lookup found fewer than [`FETCH_FROM`] peers.
    Small,
    /// The last lookup is [`LOOKUP_AGE`] old.
    Aged,
}

/// Whom one fetch asks (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// Look the mailbox key's neighbourhood up and ask every peer of it,
    /// at most [`FETCH_FROM`].
    Lookup(Why),
    /// Ask these holders, without a lookup.
    Holders(Vec<PeerId>),
}

/// What the service tells the [`Fetcher`].
#[derive(Debug)]
pub enum Input {
    /// `peer` entered our routing table.
    NewPeer(PeerId),
    /// A fetch ended: it asked `asked`; `more` if some holder stopped
    /// before its end after giving new mail ([`HolderFetch::more`]).
    Done {
        /// The holders asked, closest first. (Mail it found comes as
        /// [`Input::Delivered`], which resets the poll's backoff.)
        asked: Vec<PeerId>,
        /// Fetch again at once.
        more: bool,
        /// The holders of `asked` that did not answer
        /// ([`Stop::unanswered`]).
        unanswered: Vec<PeerId>,
    },
    /// Messages fetched from a mailbox (new or already in our history),
    /// per sender: their senders are owed a delivery receipt, and the poll
    /// returns to its configured pace ([`next_interval`]).
    Delivered(HashMap<PeerId, Vec<MessageId>>),
    /// The time in [`Fetcher::poll_timeout`] has come.
    Tick,
}

impl Input {
    /// [`Input::Done`] for a fetch that asked `asked`, whose fetch from
    /// each holder ended as `ends`: why it stopped, and
    /// [`HolderFetch::more`].
    pub fn done(asked: Vec<PeerId>, ends: &[(Stop, bool)]) -> Self {
        let unanswered = asked
            .iter()
            .zip(ends)
            .filter(|(_, (stop, _))| stop.unanswered())
            .map(|(peer, _)| *peer)
            .collect();
        Self::Done {
            asked,
            more: ends.iter().any(|(_, more)| *more),
            unanswered,
        }
    }
}

/// What the [`Fetcher`] asks the service to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Fetch our own mailbox now, from these holders, then report
    /// [`Input::Done`].
    Fetch(Ask),
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
    /// The poll interval now: `poll`, grown by [`next_interval`] while
    /// fetches find nothing.
    interval: Duration,
    /// Whether mail was fetched since the last fetch started.
    found: bool,
    fetching: bool,
    due: Option<Instant>,
    /// When the last fetch started.
    last: Option<Instant>,
    next_poll: Instant,
    /// Which new peers may hold mail the last lookup did not find.
    reach: Reach,
    /// How many of the neighbourhood's closest a poll without a lookup
    /// asks.
    poll_from: usize,
    /// The peers the last lookup found and asked, closest first, and
    /// when it ran.
    neighbourhood: Vec<PeerId>,
    looked: Option<Instant>,
    /// Holders that did not answer when last asked, all of them in
    /// `neighbourhood` (so at most [`FETCH_FROM`]): polls pass them over,
    /// and they make no second lookup.
    silent: HashSet<PeerId>,
    /// The next fetch must look up, and why: a peer that may hold mail
    /// came, or a holder stopped answering.
    stale: Option<Why>,
    /// New peers in our routing table since the last lookup started.
    grown: usize,
    /// The running fetch looked up.
    looking: bool,
    /// Holders to ask again at once: they stopped early with new mail.
    follow: Option<Vec<PeerId>>,
    receipted: Receipted,
}

impl Fetcher {
    /// Nothing fetched yet from the mailbox at `key`, at `now`; polls
    /// every `poll`, asking between lookups the closest twice `replicas`
    /// (the holders a sender deposits with).
    pub fn new(key: &[u8], poll: Duration, replicas: usize, now: Instant) -> Self {
        Self {
            poll,
            interval: poll,
            found: false,
            fetching: false,
            due: None,
            last: None,
            next_poll: now + poll,
            reach: Reach::new(key),
            poll_from: (2 * replicas).clamp(1, FETCH_FROM),
            neighbourhood: Vec::new(),
            looked: None,
            silent: HashSet::new(),
            stale: Some(Why::Start),
            grown: 0,
            looking: false,
            follow: None,
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
                self.grown = self.grown.saturating_add(1);
                if self.reach.may_hold(&peer) {
                    self.stale.get_or_insert(Why::Reach);
                    self.due.get_or_insert(react_at(self.last, now));
                } else if self.grown == GROWN {
                    self.due = due_by(self.due, self.paced(now));
                }
                Vec::new()
            }
            Input::Done {
                asked,
                more,
                unanswered,
            } => {
                self.fetching = false;
                self.interval = next_interval(self.interval, self.poll, self.found || more);
                if self.looking {
                    self.reach.fetched(&asked, FETCH_FROM);
                    self.neighbourhood.clone_from(&asked);
                    let hood = &self.neighbourhood;
                    self.silent.retain(|p| hood.contains(p));
                }
                self.heard(&asked, &unanswered, now);
                if more {
                    // At once, even if a later fetch was already planned.
                    self.due = due_by(self.due, now);
                    self.follow = Some(asked);
                }
                self.tick(now)
            }
            Input::Delivered(by_sender) => {
                if !by_sender.is_empty() {
                    self.found_mail(now);
                }
                by_sender
                    .into_iter()
                    .filter_map(|(peer, ids)| {
                        let ids = self.receipted.fresh(ids);
                        (!ids.is_empty()).then_some(Output::Receipt { peer, ids })
                    })
                    .collect()
            }
            Input::Tick => self.tick(now),
        }
    }

    /// The poll interval now (see [`next_interval`]).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A fetch asked `asked`, of which `unanswered` did not answer: those
    /// not already silent make the next fetch a lookup, at the configured
    /// poll's pace ([`Fetcher::paced`]); all of them are silent until they
    /// answer again (see the module documentation).
    fn heard(&mut self, asked: &[PeerId], unanswered: &[PeerId], now: Instant) {
        for peer in asked {
            if !unanswered.contains(peer) {
                self.silent.remove(peer);
            } else if self.neighbourhood.contains(peer) && self.silent.insert(*peer) {
                self.stale.get_or_insert(Why::Unanswered);
                self.due = due_by(self.due, self.paced(now));
            }
        }
    }

    /// When a lookup for a grown table or a silent holder falls due: a
    /// configured poll after the last fetch started, not at the next poll,
    /// up to [`MAX_BACKOFF`] polls away. Such signs come mostly while a
    /// network forms; at the backed-off pace, a start-up's lookups and
    /// their dozens of connections fell into the settled network's traffic.
    fn paced(&self, now: Instant) -> Instant {
        self.last.map_or(now, |t| t + self.poll).max(now)
    }

    /// Mail came from a mailbox: the poll returns to its configured pace
    /// at once, whenever the fetch that found it reports its end.
    fn found_mail(&mut self, now: Instant) {
        self.found = true;
        self.interval = self.poll;
        self.next_poll = self.next_poll.min(now + self.poll);
    }

    fn tick(&mut self, now: Instant) -> Vec<Output> {
        if now >= self.next_poll {
            self.next_poll = now + self.interval;
            self.due = due_by(self.due, now);
        }
        if self.fetching || self.due.is_none_or(|t| t > now) {
            return Vec::new();
        }
        self.due = None;
        self.last = Some(now);
        self.fetching = true;
        self.found = false;
        self.next_poll = now + self.interval;
        let ask = self.ask(now);
        self.looking = matches!(ask, Ask::Lookup(_));
        if self.looking {
            self.stale = None;
            self.grown = 0;
            self.looked = Some(now);
        }
        vec![Output::Fetch(ask)]
    }

    /// Whom the fetch starting at `now` asks (see the module
    /// documentation).
    fn ask(&mut self, now: Instant) -> Ask {
        let follow = self.follow.take();
        let young = self
            .looked
            .is_some_and(|t| now.saturating_duration_since(t) < LOOKUP_AGE);
        let why = match self.stale {
            Some(why) => Some(why),
            None if !young => Some(Why::Aged),
            None if self.neighbourhood.len() < FETCH_FROM => Some(Why::Small),
            None if self.grown >= GROWN => Some(Why::Grown),
            None => None,
        };
        if let Some(why) = why {
            return Ask::Lookup(why);
        }
        let asked = follow.unwrap_or_else(|| {
            self.neighbourhood
                .iter()
                .filter(|p| !self.silent.contains(*p))
                .take(self.poll_from)
                .copied()
                .collect()
        });
        if asked.is_empty() {
            // Every holder of the last neighbourhood is silent.
            return Ask::Lookup(Why::Unanswered);
        }
        Ask::Holders(asked)
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "fetcher_ask_tests.rs"]
mod ask_tests;
