//! A large group's catch-up, its pure rules (see docs/rooms.md, "Large
//! groups: gossip, then catch-up from members").
//!
//! A large group's message goes out once, over gossip, with no 1:1 copy
//! (`super::fast`). Every member keeps the signed bytes of what it took
//! in its log, so a member that missed some (it was away, or outside the
//! mesh for a while) asks one or two members it sees on the epoch's
//! topic what they have that it lacks: a [`GroupBody::SyncAsk`] naming,
//! per sender, the numbers it has ([`have_of`]); the answer is a
//! [`GroupBody::Relay`] of the rest ([`lacking`]), each message checked by
//! its own sender's signature and filed like any other (once, by the
//! dedupe on sender, epoch and number). It asks when it starts following
//! an epoch's topic (at start, on joining, on a new epoch) and about every
//! [`FastConfig::sync_every`] after (±20 %, [`SyncPlan`]); an answer that left
//! some out (`more`) and brought something new is followed by the next
//! question at once.
//!
//! [`GroupBody::SyncAsk`]: crate::wire::group::GroupBody::SyncAsk
//! [`GroupBody::Relay`]: crate::wire::group::GroupBody::Relay
//! [`FastConfig::sync_every`]: super::fast::FastConfig::sync_every

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::backoff::{Jitter, spread};
use crate::net::ratelimit::RateLimiter;
use crate::wire::group::{GroupId, Have, MAX_MEMBERS, MAX_MISSING, MAX_RELAY};

/// Most members asked per epoch and round.
pub const ASKED_PER_ROUND: usize = 2;

/// Most bytes of signed messages in one answer: well inside a group
/// item's bytes (`wire::group::MAX_GROUP_BYTES`, 100 KiB), whatever the
/// messages' sizes.
pub const RELAY_BUDGET: usize = 48 * 1024;

/// Most messages one answer carries (the wire's cap).
pub const RELAY_MAX: usize = MAX_RELAY;

/// Most gaps named in one question, over all senders: with 1000 senders
/// (about 70 bytes each) the question stays within a group item's bytes
/// (`wire::group::MAX_GROUP_BYTES`, 100 KiB).
pub const MAX_MISSING_TOTAL: usize = 512;

/// The fewest senders one question's budget of gaps names when it runs
/// out (each named at most [`MAX_MISSING`]): how far the start moves from
/// one question about an epoch to the next.
pub const SENDERS_PER_BUDGET: usize = MAX_MISSING_TOTAL / MAX_MISSING;

/// What we have of an epoch, per sender, from the (sender, number) pairs
/// taken in it (`Store::group_seen_in`): the next number and the gaps
/// below it (the first [`MAX_MISSING`] per sender and
/// [`MAX_MISSING_TOTAL`] in all; the rest are asked for once those are
/// filled). At most [`MAX_MEMBERS`] senders, in their bytes' order.
///
/// The budget of gaps is spent from the sender at `round` ×
/// [`SENDERS_PER_BUDGET`] (modulo the senders) on, wrapping, `round`
/// being how many questions about the epoch went before: gaps that
/// nobody can fill (every holder away) would otherwise hold the front of
/// the budget every round, and the senders behind them would never be
/// asked about. The budget covers at least that many senders whenever it
/// runs out, so the windows of successive rounds leave no sender out.
pub fn have_of<'a>(taken: impl IntoIterator<Item = (&'a [u8], u64)>, round: u64) -> Vec<Have> {
    let mut per: BTreeMap<&[u8], Vec<u64>> = BTreeMap::new();
    for (sender, n) in taken {
        per.entry(sender).or_default().push(n);
    }
    let mut have: Vec<Have> = per
        .into_iter()
        .take(MAX_MEMBERS)
        .map(|(sender, mut ns)| {
            ns.sort_unstable();
            ns.dedup();
            let mut missing = Vec::new();
            let mut expect = 0u64;
            for &n in &ns {
                while expect < n && missing.len() < MAX_MISSING {
                    missing.push(expect);
                    expect += 1;
                }
                expect = n.saturating_add(1);
            }
            Have {
                sender: sender.to_vec(),
                next: expect,
                missing,
            }
        })
        .collect();
    let len = have.len();
    let step = SENDERS_PER_BUDGET as u64;
    let start = (round.wrapping_mul(step) % len.max(1) as u64) as usize;
    let mut budget = MAX_MISSING_TOTAL;
    for i in (start..len).chain(0..start) {
        let missing = &mut have[i].missing;
        missing.truncate(budget);
        budget -= missing.len();
    }
    have
}

/// Of the (sender, number) pairs we have (in our order), those an asker
/// with `have` lacks.
pub fn lacking<'a, T>(ours: impl IntoIterator<Item = (&'a [u8], u64, T)>, have: &[Have]) -> Vec<T> {
    let by: HashMap<&[u8], &Have> = have.iter().map(|h| (h.sender.as_slice(), h)).collect();
    ours.into_iter()
        .filter(|(sender, n, _)| match by.get(sender) {
            None => true,
            Some(h) => *n >= h.next || h.missing.contains(n),
        })
        .map(|(_, _, t)| t)
        .collect()
}

/// When each followed epoch is next asked about: at once when it starts
/// being followed, then every `every`, each period spread by ±20 %
/// ([`crate::backoff::spread`]). Every member starts following a new
/// epoch in the same second (the change that made it reaches them all at
/// once), and a fixed period would keep a thousand members asking in
/// that second every minute for as long as they run: a burst of
/// questions and answers on the same cores and links as the messages.
/// With the spread their questions drift apart within a few rounds.
#[derive(Debug)]
pub struct SyncPlan {
    every: Duration,
    jitter: Jitter,
    /// Per followed epoch: when it is next due, and how many questions
    /// about it went out (the round [`have_of`] starts its budget from).
    next: HashMap<(GroupId, u64), (Instant, u64)>,
}

impl SyncPlan {
    /// A plan asking about every `every`, spread by numbers from the OS.
    pub fn new(every: Duration) -> Self {
        Self::with_jitter(every, Jitter::from_entropy())
    }

    /// A plan whose spread comes from `jitter`: seeded, the same times
    /// every run (tests).
    pub fn with_jitter(every: Duration, jitter: Jitter) -> Self {
        Self {
            every,
            jitter,
            next: HashMap::new(),
        }
    }

    /// The epochs followed now: a new one is due at `now`, one no longer
    /// followed is forgotten.
    pub fn follow(&mut self, epochs: impl IntoIterator<Item = (GroupId, u64)>, now: Instant) {
        let mut next = HashMap::new();
        for k in epochs {
            let at = self.next.get(&k).copied().unwrap_or((now, 0));
            next.insert(k, at);
        }
        self.next = next;
    }

    /// The epochs to ask about at `now`.
    pub fn due(&self, now: Instant) -> Vec<(GroupId, u64)> {
        let mut d: Vec<_> = self
            .next
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(k, _)| *k)
            .collect();
        d.sort_unstable();
        d
    }

    /// We asked about `epoch` at `now`: the next question is due about
    /// `every` later. (An epoch with nobody to ask is not `asked`: it
    /// stays due, and the next round looks again.)
    pub fn asked(&mut self, epoch: (GroupId, u64), now: Instant) {
        if let Some((at, questions)) = self.next.get_mut(&epoch) {
            *at = now + spread(self.every, self.jitter.next_u64());
            *questions += 1;
        }
    }

    /// How many questions about `epoch` went out so far: the round of the
    /// next one ([`have_of`]).
    pub fn round(&self, epoch: (GroupId, u64)) -> u64 {
        self.next.get(&epoch).map_or(0, |(_, q)| *q)
    }
}

/// Questions one asker may have answered back to back: a member back
/// from a long absence asks again at once after each answer that left
/// some out, and 64 answers carry up to 16 384 messages (3 MiB).
pub const ANSWER_BURST: u64 = 64;

/// After a burst, one answer per asker this often (milliseconds). Each
/// question costs a read of the epoch's index and up to
/// [`RELAY_BUDGET`] bytes sent: a member asking in a loop gets this pace,
/// not our disk and uplink.
pub const ANSWER_EVERY_MS: u64 = 1000;

/// Most askers the answer limit tracks; one absent from the table has a
/// full burst, so when it is full the one closest to a full burst goes.
pub const MAX_ASKERS: usize = 1024;

/// How many catch-up questions each asker may have answered: a token
/// bucket per asker ([`RateLimiter`]), [`ANSWER_BURST`] deep, one token
/// back every [`ANSWER_EVERY_MS`], at most [`MAX_ASKERS`] tracked. Time
/// is the caller's (unix milliseconds).
pub type AnswerLimit = RateLimiter<u64>;

/// A fresh [`AnswerLimit`].
pub fn answer_limit() -> AnswerLimit {
    RateLimiter::with_cap(
        1000.0 / ANSWER_EVERY_MS as f64,
        ANSWER_BURST as f64,
        MAX_ASKERS,
    )
}

/// Whom to ask of the members `seen` on the topic: up to
/// [`ASKED_PER_ROUND`], from a place that moves with the round, so the
/// questions spread over the members.
pub fn pick_asked(seen: &[PeerId], me: &PeerId, round: u64) -> Vec<PeerId> {
    super::fast::pick_dials(seen, me, &|_| false, round, ASKED_PER_ROUND)
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
