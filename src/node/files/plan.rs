//! The download machine: which chunk ranges to ask which source for. Pure
//! (no sockets, no disk, no clock), so every rule is unit-tested.
//!
//! The missing part of a file is cut into pieces of at most `piece` chunks.
//! A source asks for work with the ranges it holds and gets the first
//! unclaimed piece it can serve (clipped to what it holds); the piece is
//! claimed until the source reports it done (verified and written) or
//! lost (the connection broke: the piece goes back) or lied (a chunk did
//! not verify: the piece goes back and the source is dropped for good) or
//! was too slow (its deadline passed: the piece goes back for another
//! source, and this source's next deadline is twice as long, so sources
//! that are all slow still make progress). A piece given back keeps the
//! chunks of it that already verified. A piece has a deadline only while
//! another source's worker runs; a source with nothing open waits while
//! another holds a piece it could serve, so it takes over a slow tail.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::wire::files::Span;

/// Why a piece did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The source went away or refused: it may serve again later.
    Lost,
    /// What it sent did not verify against the root: never ask it again.
    Lied,
    /// It did not deliver the piece before its deadline: the piece goes to
    /// whoever asks next; its own next deadline doubles.
    Slow,
}

/// Most doublings of a slow source's deadline.
const MAX_SLOW: u32 = 4;

/// The state of one download.
#[derive(Debug)]
pub struct Plan<S> {
    /// Unclaimed missing pieces, sorted.
    open: Vec<Span>,
    /// Pieces claimed, by source.
    claimed: HashMap<S, Span>,
    /// Sources caught lying.
    dropped: HashSet<S>,
    /// Deadlines missed, by source.
    slow: HashMap<S, u32>,
    /// Sources whose worker runs now (dialing or fetching).
    working: HashSet<S>,
    /// Most chunks in one piece.
    piece: u64,
}

impl<S: Copy + Eq + Hash> Plan<S> {
    /// A plan fetching `missing` (sorted, disjoint) in pieces of at most
    /// `piece` chunks (at least 1).
    pub fn new(missing: &[Span], piece: u64) -> Self {
        let piece = piece.max(1);
        let mut open = Vec::new();
        for &(a, b) in missing {
            let mut s = a;
            while s < b {
                let e = b.min(s + piece);
                open.push((s, e));
                s = e;
            }
        }
        Self {
            open,
            claimed: HashMap::new(),
            dropped: HashSet::new(),
            slow: HashMap::new(),
            working: HashSet::new(),
            piece,
        }
    }

    /// The next piece for `source`, which holds `has` (sorted, disjoint):
    /// `None` when it is dropped, already busy, or holds nothing missing.
    pub fn next(&mut self, source: S, has: &[Span]) -> Option<Span> {
        if self.dropped.contains(&source) || self.claimed.contains_key(&source) {
            return None;
        }
        for i in 0..self.open.len() {
            let (a, b) = self.open[i];
            // An empty or inverted span (a peer's claim) holds nothing.
            let Some(&(ha, hb)) = has.iter().find(|&&(ha, hb)| ha < hb && ha < b && hb > a) else {
                continue;
            };
            let (s, e) = (a.max(ha), b.min(hb).min(a.max(ha) + self.piece));
            if s >= e {
                continue;
            }
            self.open.remove(i);
            // What the source cannot serve goes back, in order.
            let mut back = Vec::new();
            if a < s {
                back.push((a, s));
            }
            if e < b {
                back.push((e, b));
            }
            for (k, p) in back.into_iter().enumerate() {
                self.open.insert(i + k, p);
            }
            self.claimed.insert(source, (s, e));
            return Some((s, e));
        }
        None
    }

    /// `source` delivered its piece, verified.
    pub fn done(&mut self, source: S) {
        self.claimed.remove(&source);
    }

    /// `source`'s piece did not arrive; it goes back to the open pieces.
    pub fn failed(&mut self, source: S, fault: Fault) {
        if let Some(p) = self.claimed.remove(&source) {
            let at = self.open.partition_point(|&(a, _)| a < p.0);
            self.open.insert(at, p);
        }
        match fault {
            Fault::Lied => {
                self.dropped.insert(source);
            }
            Fault::Slow => *self.slow.entry(source).or_default() += 1,
            Fault::Lost => {}
        }
    }

    /// `source` gave its piece back with the chunk ranges in `kept`
    /// already verified on disk: only the rest goes back to the open
    /// pieces, so a slow source's work is not fetched again.
    pub fn failed_keeping(&mut self, source: S, fault: Fault, kept: &[Span]) {
        if let Some((a, b)) = self.claimed.get(&source).copied() {
            let mut rest = Vec::new();
            let mut at = a;
            for &(ka, kb) in kept {
                let (ka, kb) = (ka.max(a), kb.min(b));
                if ka >= kb {
                    continue;
                }
                if ka > at {
                    rest.push((at, ka));
                }
                at = at.max(kb);
            }
            if at < b {
                rest.push((at, b));
            }
            self.claimed.remove(&source);
            for p in rest {
                let i = self.open.partition_point(|&(x, _)| x < p.0);
                self.open.insert(i, p);
            }
        }
        self.failed(source, fault);
    }

    /// `source`'s worker started (it dials, then fetches).
    pub fn join(&mut self, source: S) {
        self.working.insert(source);
    }

    /// `source`'s worker ended.
    pub fn leave(&mut self, source: S) {
        self.working.remove(&source);
    }

    /// Whether `source`'s piece gets a deadline: only while another
    /// source's worker runs, one that could take the piece over. A lone
    /// reachable source has none, however slow, so it still finishes.
    pub fn has_deadline(&self, source: &S) -> bool {
        self.working.iter().any(|s| s != source)
    }

    /// Whether `source`, which holds `has` and found nothing open, should
    /// wait rather than end: another source holds a piece it could serve,
    /// which comes back if that source is slow or goes away.
    pub fn should_wait(&self, source: &S, has: &[Span]) -> bool {
        !self.dropped.contains(source)
            && self.claimed.iter().any(|(s, &(a, b))| {
                s != source && has.iter().any(|&(ha, hb)| ha < hb && ha < b && hb > a)
            })
    }

    /// How many times the base deadline `source` has for a piece: doubled
    /// for each deadline it missed, at most 2^4.
    pub fn deadline_factor(&self, source: &S) -> u32 {
        1 << self.slow.get(source).copied().unwrap_or(0).min(MAX_SLOW)
    }

    /// Whether `source` was caught lying.
    pub fn is_dropped(&self, source: &S) -> bool {
        self.dropped.contains(source)
    }

    /// Nothing open, nothing in flight: every missing chunk arrived.
    pub fn is_complete(&self) -> bool {
        self.open.is_empty() && self.claimed.is_empty()
    }

    /// Chunks neither here nor in flight.
    pub fn open_chunks(&self) -> u64 {
        self.open.iter().map(|(a, b)| b - a).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_gets_every_piece_in_order() {
        let mut p = Plan::new(&[(0, 40)], 16);
        let all = [(0, u64::MAX)];
        assert_eq!(p.next(1, &all), Some((0, 16)));
        assert_eq!(p.next(1, &all), None, "one piece in flight per source");
        p.done(1);
        assert_eq!(p.next(1, &all), Some((16, 32)));
        p.done(1);
        assert_eq!(p.next(1, &all), Some((32, 40)));
        assert!(!p.is_complete());
        p.done(1);
        assert!(p.is_complete());
        assert_eq!(p.next(1, &all), None);
    }

    #[test]
    fn partial_sources_each_serve_what_they_hold() {
        let mut p = Plan::new(&[(0, 64)], 16);
        let first_half = [(0, 32)];
        let second_half = [(32, 64)];
        assert_eq!(p.next('b', &second_half), Some((32, 48)));
        assert_eq!(p.next('a', &first_half), Some((0, 16)));
        p.done('a');
        p.done('b');
        assert_eq!(p.next('a', &first_half), Some((16, 32)));
        assert_eq!(p.next('b', &second_half), Some((48, 64)));
        p.done('a');
        assert_eq!(p.next('a', &first_half), None, "a holds nothing missing");
        p.done('b');
        assert!(p.is_complete());
    }

    #[test]
    fn a_piece_is_clipped_to_what_the_source_holds() {
        let mut p = Plan::new(&[(0, 64)], 64);
        assert_eq!(p.next('a', &[(16, 32)]), Some((16, 32)));
        assert_eq!(p.open_chunks(), 48);
        assert_eq!(p.next('b', &[(0, 64)]), Some((0, 16)));
        p.done('b');
        assert_eq!(p.next('b', &[(0, 64)]), Some((32, 64)));
    }

    #[test]
    fn empty_and_inverted_spans_claim_nothing() {
        let mut p = Plan::new(&[(0, 40)], 16);
        assert_eq!(p.next('x', &[(10, 5), (7, 7)]), None);
        assert_eq!(p.open_chunks(), 40, "nothing was claimed");
        assert_eq!(p.next('x', &[(10, 5), (20, 24)]), Some((20, 24)));
        assert_eq!(p.next('y', &[(0, 40)]), Some((0, 16)));
    }

    #[test]
    fn a_liar_is_dropped_and_its_piece_goes_to_another() {
        let mut p = Plan::new(&[(0, 32)], 16);
        let all = [(0, 32)];
        assert_eq!(p.next('x', &all), Some((0, 16)));
        assert_eq!(p.next('h', &all), Some((16, 32)));
        p.failed('x', Fault::Lied);
        assert!(p.is_dropped(&'x'));
        assert_eq!(p.next('x', &all), None, "never asked again");
        p.done('h');
        assert_eq!(p.next('h', &all), Some((0, 16)), "the liar's piece");
        p.done('h');
        assert!(p.is_complete());
    }

    #[test]
    fn a_lost_piece_goes_back_and_the_source_may_try_again() {
        let mut p = Plan::new(&[(0, 32)], 16);
        let all = [(0, 32)];
        assert_eq!(p.next('a', &all), Some((0, 16)));
        p.failed('a', Fault::Lost);
        assert!(!p.is_dropped(&'a'));
        assert_eq!(p.next('a', &all), Some((0, 16)));
    }

    #[test]
    fn a_slow_sources_piece_goes_to_another_and_its_deadline_doubles() {
        let mut p = Plan::new(&[(0, 32)], 16);
        let all = [(0, 32)];
        assert_eq!(p.next('s', &all), Some((0, 16)));
        assert_eq!(p.next('f', &all), Some((16, 32)));
        assert_eq!(p.deadline_factor(&'s'), 1);
        p.failed('s', Fault::Slow);
        assert!(!p.is_dropped(&'s'), "slow is not dropped");
        assert_eq!(p.deadline_factor(&'s'), 2);
        assert_eq!(p.deadline_factor(&'f'), 1);
        p.done('f');
        assert_eq!(p.next('f', &all), Some((0, 16)), "the slow one's piece");
        p.done('f');
        assert!(p.is_complete());
        for _ in 0..10 {
            p.failed('s', Fault::Slow);
        }
        assert_eq!(p.deadline_factor(&'s'), 16, "capped");
    }

    #[test]
    fn a_lone_working_source_has_no_deadline() {
        let mut p = Plan::new(&[(0, 40)], 16);
        // Two sources listed, one reachable: only the reachable one joins.
        p.join(1);
        assert!(!p.has_deadline(&1), "a lone source got a deadline");
        p.join(2);
        assert!(p.has_deadline(&1));
        assert!(p.has_deadline(&2));
        p.leave(2);
        assert!(!p.has_deadline(&1), "a source that left still counts");
    }

    #[test]
    fn a_piece_given_back_keeps_its_verified_part() {
        let mut p = Plan::new(&[(0, 32)], 16);
        let all = [(0, u64::MAX)];
        assert_eq!(p.next(1, &all), Some((0, 16)));
        p.failed_keeping(1, Fault::Slow, &[(0, 5), (8, 9)]);
        assert_eq!(
            p.open_chunks(),
            32 - 6,
            "verified chunks were planned again"
        );
        assert_eq!(p.next(2, &all), Some((5, 8)));
        p.done(2);
        assert_eq!(p.next(2, &all), Some((9, 16)));
    }

    #[test]
    fn an_idle_source_waits_for_the_tail_another_holds() {
        let mut p = Plan::new(&[(0, 16)], 16);
        let all = [(0, u64::MAX)];
        assert_eq!(p.next(1, &all), Some((0, 16)));
        assert_eq!(p.next(2, &all), None);
        assert!(p.should_wait(&2, &all), "the idle source would end");
        assert!(
            !p.should_wait(&2, &[(20, 30)]),
            "it cannot serve that piece"
        );
        p.failed(1, Fault::Slow);
        assert_eq!(p.next(2, &all), Some((0, 16)));
        p.done(2);
        assert!(!p.should_wait(&1, &all));
    }

    #[test]
    fn only_the_missing_ranges_are_planned() {
        // A resumed download: chunks 16..48 are already verified on disk.
        let mut p = Plan::new(&[(0, 16), (48, 64)], 16);
        assert_eq!(p.open_chunks(), 32);
        let all = [(0, 64)];
        assert_eq!(p.next(1, &all), Some((0, 16)));
        p.done(1);
        assert_eq!(p.next(1, &all), Some((48, 64)));
    }
}
