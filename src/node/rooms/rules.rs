//! The rules of a public room as pure functions and a small machine, with
//! time passed in: whether a gossiped message is shown and forwarded
//! (signature, ban list, per-sender rate, duplicates), which of
//! several records found for a name counts, when a pushed record replaces
//! ours, and how the history several members hand a joiner is merged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::RecordKey;

pub use crate::config::RoomLimits;
use crate::net::ratelimit::RateLimiter;
use crate::wire::room::{self, RoomError, RoomId, RoomMessage, RoomRecord};

/// Messages dated further ahead of our clock than this are ignored: they
/// would sit at the end of every log.
pub const MAX_AHEAD_MS: u64 = 5 * 60 * 1000;
/// Messages gossiped more than this after their date are ignored: gossip
/// carries a message within seconds, and anyone may gossip any signed
/// message (its signature, not the gossip, names its author), so an old
/// one coming round again is a replay, which the seen ids alone would
/// let through once they have forgotten it. Joiners get old messages by
/// the history exchange, not by gossip.
pub const MAX_LATE_MS: u64 = 5 * 60 * 1000;
/// Message ids remembered per room to spot duplicates before the store.
const SEEN_CAP: usize = 4096;

/// What becomes of a gossiped message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Shown, stored and forwarded.
    Accept,
    /// Seen before: neither shown nor forwarded again.
    Duplicate,
    /// Its sender is on the owner's ban list.
    Banned,
    /// Its sender is over its rate.
    OverRate,
    /// Dated too far ahead.
    FromFuture,
    /// Dated too long ago for gossip ([`MAX_LATE_MS`]).
    Stale,
}

/// One room as a member sees it.
#[derive(Debug)]
pub struct RoomState {
    /// Its id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// The newest valid record we have, by the first owner we saw.
    pub record: Option<RoomRecord>,
    limiter: RateLimiter,
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
}

impl RoomState {
    /// A room we join, with the record found for it (if any).
    pub fn new(id: RoomId, name: String, record: Option<RoomRecord>, limits: RoomLimits) -> Self {
        Self {
            id,
            name,
            record,
            limiter: RateLimiter::new(limits.rate, limits.burst),
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
        }
    }

    /// Whether `peer` is on the owner's ban list.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.record.as_ref().is_some_and(|r| r.bans.contains(peer))
    }

    /// The owner, if the record is known.
    pub fn owner(&self) -> Option<PeerId> {
        self.record.as_ref().map(|r| r.owner)
    }

    /// Whether message `id` was seen here.
    pub fn has_seen(&self, id: &str) -> bool {
        self.seen_set.contains(id)
    }

    /// Remembers `id` as seen (bounded); `false` if it was already.
    pub fn see(&mut self, id: &str) -> bool {
        if self.seen_set.contains(id) {
            return false;
        }
        if self.seen.len() >= SEEN_CAP
            && let Some(old) = self.seen.pop_front()
        {
            self.seen_set.remove(&old);
        }
        self.seen.push_back(id.to_string());
        self.seen_set.insert(id.to_string());
        true
    }

    /// Judges a message whose signature already checked out (its signer
    /// is its author, whoever gossiped it), at `now`. Bans come before
    /// the rate, so a banned key spends no tokens; the rate before
    /// remembering the id, so a message over the rate can come back later.
    pub fn judge(&mut self, m: &RoomMessage, now: Instant, now_ms: u64) -> Verdict {
        if self.seen_set.contains(&m.id) {
            return Verdict::Duplicate;
        }
        if self.is_banned(&m.sender) {
            return Verdict::Banned;
        }
        if m.sent_at > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Verdict::FromFuture;
        }
        if m.sent_at.saturating_add(MAX_LATE_MS) < now_ms {
            return Verdict::Stale;
        }
        if !self.limiter.allow(m.sender, now) {
            return Verdict::OverRate;
        }
        self.see(&m.id);
        Verdict::Accept
    }

    /// Takes a record pushed or found for this room if it may replace ours
    /// ([`room::may_replace`]); `Ok(true)` if it did.
    pub fn apply_record(&mut self, new: RoomRecord) -> Result<bool, RoomError> {
        if new.id != self.id {
            return Err(RoomError::KeyMismatch);
        }
        if self.record.as_ref().is_some_and(|r| r.raw == new.raw) {
            return Ok(false);
        }
        room::may_replace(self.record.as_ref(), &new)?;
        self.record = Some(new);
        Ok(true)
    }
}

/// Of the values a DHT lookup found under `key`, the record that counts:
/// the valid ones grouped by owner; the owner most holders answered with
/// (ties: the earliest `created_at`, then the lowest key), and that
/// owner's highest seq. Holders keep the first owner they saw, so
/// disagreement means a squatter reached some of them first.
pub fn pick_record(key: &RecordKey, values: &[Vec<u8>]) -> Option<RoomRecord> {
    let mut by_owner: HashMap<PeerId, (usize, RoomRecord)> = HashMap::new();
    for v in values {
        let Ok(r) = room::validate_record(key, v) else {
            continue;
        };
        match by_owner.get_mut(&r.owner) {
            Some((n, best)) => {
                *n += 1;
                if r.seq > best.seq {
                    *best = r;
                }
            }
            None => {
                by_owner.insert(r.owner, (1, r));
            }
        }
    }
    by_owner
        .into_values()
        .max_by(|(na, a), (nb, b)| {
            na.cmp(nb)
                .then(b.created_at.cmp(&a.created_at))
                .then(b.owner.to_bytes().cmp(&a.owner.to_bytes()))
        })
        .map(|(_, r)| r)
}

/// Merges the history answers of several members for `room`: each
/// message's signature checked, banned senders and messages already
/// `known` dropped, duplicates across answers kept once, ordered by
/// `sent_at` then id, the last `limit` kept.
pub fn merge_history(
    room: RoomId,
    bans: &[PeerId],
    answers: &[Vec<Vec<u8>>],
    known: impl Fn(&str) -> bool,
    limit: usize,
) -> Vec<RoomMessage> {
    let mut ids = HashSet::new();
    let mut out: Vec<RoomMessage> = answers
        .iter()
        .flatten()
        .filter_map(|raw| room::open_message(raw, room).ok())
        .filter(|m| !bans.contains(&m.sender) && !known(&m.id))
        .filter(|m| ids.insert(m.id.clone()))
        .collect();
    out.sort_by(|a, b| (a.sent_at, &a.id).cmp(&(b.sent_at, &b.id)));
    let skip = out.len().saturating_sub(limit);
    out.split_off(skip)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::identity::Identity;
    use crate::wire::room::{sign_message, sign_record};

    fn ids() -> (Identity, Identity, Identity) {
        (
            Identity::from_seed([1; 32]),
            Identity::from_seed([2; 32]),
            Identity::from_seed([3; 32]),
        )
    }

    fn state(owner: &Identity, bans: &[PeerId], limits: RoomLimits) -> RoomState {
        let r = sign_record(owner, "lobby", 1, 1, bans).unwrap();
        RoomState::new(r.id, "lobby".into(), Some(r), limits)
    }

    #[test]
    fn a_banned_sender_is_dropped_and_others_pass() {
        let (owner, bad, good) = ids();
        let mut s = state(&owner, &[bad.peer_id()], RoomLimits::default());
        let now = Instant::now();
        let m = sign_message(&bad, s.id, 5, "spam").unwrap();
        assert_eq!(s.judge(&m, now, 5), Verdict::Banned);
        let ok = sign_message(&good, s.id, 6, "hi").unwrap();
        assert_eq!(s.judge(&ok, now, 6), Verdict::Accept);
        assert_eq!(s.judge(&ok, now, 6), Verdict::Duplicate);
    }

    #[test]
    fn a_sender_over_its_rate_is_dropped_until_it_refills() {
        let (owner, fast, other) = ids();
        let limits = RoomLimits {
            rate: 1.0,
            burst: 3.0,
        };
        let mut s = state(&owner, &[], limits);
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..5)
            .map(|n| {
                let m = sign_message(&fast, s.id, n, &format!("m{n}")).unwrap();
                s.judge(&m, t0, n)
            })
            .collect();
        let accepted = verdicts.iter().filter(|v| **v == Verdict::Accept).count();
        assert_eq!(accepted, 3, "{verdicts:?}");
        assert_eq!(verdicts[3], Verdict::OverRate);
        // Another sender has its own bucket.
        let m = sign_message(&other, s.id, 9, "mine").unwrap();
        assert_eq!(s.judge(&m, t0, 9), Verdict::Accept);
        // A second later one more token; the refused message may now pass.
        let again = sign_message(&fast, s.id, 3, "m3").unwrap();
        let later = t0 + Duration::from_secs(1);
        assert_eq!(s.judge(&again, later, 1000), Verdict::Accept);
    }

    #[test]
    fn a_message_from_the_future_or_from_long_ago_is_dropped() {
        let (owner, a, _) = ids();
        let mut s = state(&owner, &[], RoomLimits::default());
        let now = Instant::now();
        let t = 10 * MAX_LATE_MS;
        let ahead = sign_message(&a, s.id, t + MAX_AHEAD_MS + 1, "ahead").unwrap();
        assert_eq!(s.judge(&ahead, now, t), Verdict::FromFuture);
        let old = sign_message(&a, s.id, t - MAX_LATE_MS - 1, "old").unwrap();
        assert_eq!(s.judge(&old, now, t), Verdict::Stale);
        // Neither was remembered: at the edges both pass.
        let edge = sign_message(&a, s.id, t - MAX_LATE_MS, "edge").unwrap();
        assert_eq!(s.judge(&edge, now, t), Verdict::Accept);
        let edge = sign_message(&a, s.id, t + MAX_AHEAD_MS, "edge").unwrap();
        assert_eq!(s.judge(&edge, now, t), Verdict::Accept);
    }

    #[test]
    fn a_pushed_record_replaces_only_by_the_same_owner_and_a_higher_seq() {
        let (owner, other, banned) = ids();
        let mut s = state(&owner, &[], RoomLimits::default());
        let squat = sign_record(&other, "lobby", 0, 50, &[]).unwrap();
        assert_eq!(s.apply_record(squat), Err(RoomError::NameTaken));
        let ban = sign_record(&owner, "lobby", 1, 2, &[banned.peer_id()]).unwrap();
        assert_eq!(s.apply_record(ban.clone()), Ok(true));
        assert!(s.is_banned(&banned.peer_id()));
        let old = sign_record(&owner, "lobby", 1, 1, &[]).unwrap();
        assert!(s.apply_record(old).is_err());
        assert!(s.is_banned(&banned.peer_id()));
        let elsewhere = sign_record(&owner, "elsewhere", 1, 9, &[]).unwrap();
        assert_eq!(s.apply_record(elsewhere), Err(RoomError::KeyMismatch));
    }

    #[test]
    fn the_record_most_holders_give_wins_and_its_newest_seq() {
        let (owner, squatter, _) = ids();
        let key = RoomId::of_name("lobby").unwrap().record_key();
        let r1 = sign_record(&owner, "lobby", 5, 1, &[]).unwrap();
        let r2 = sign_record(&owner, "lobby", 5, 2, &[]).unwrap();
        let sq = sign_record(&squatter, "lobby", 1, 9, &[]).unwrap();
        let mut forged = r2.raw.clone();
        let n = forged.len() - 1;
        forged[n] ^= 1;
        let values = vec![
            sq.raw.clone(),
            r1.raw.clone(),
            r2.raw.clone(),
            forged.clone(),
            forged,
        ];
        assert_eq!(pick_record(&key, &values), Some(r2));
        // A tie goes to the earlier claim.
        assert_eq!(
            pick_record(&key, &[r1.raw.clone(), sq.raw.clone()]),
            Some(sq)
        );
        assert_eq!(pick_record(&key, &[vec![1, 2, 3]]), None);
    }

    #[test]
    fn history_from_several_members_is_checked_deduped_ordered_and_bounded() {
        let (owner, a, banned) = ids();
        let room = RoomId::of_name("lobby").unwrap();
        let msg = |who: &Identity, t: u64| sign_message(who, room, t, &format!("t{t}")).unwrap();
        let (m1, m2, m3) = (msg(&a, 1), msg(&a, 2), msg(&a, 3));
        let bad = msg(&banned, 4);
        let other_room = sign_message(&a, RoomId::of_name("x").unwrap(), 5, "x").unwrap();
        let mut forged = msg(&owner, 6).raw;
        let n = forged.len() - 1;
        forged[n] ^= 1;
        let answers = vec![
            vec![m3.raw.clone(), m1.raw.clone(), bad.raw.clone()],
            vec![m2.raw.clone(), m3.raw.clone(), other_room.raw, forged],
        ];
        let got = merge_history(room, &[banned.peer_id()], &answers, |_| false, 10);
        assert_eq!(got, vec![m1.clone(), m2.clone(), m3.clone()]);
        let got = merge_history(room, &[], &answers, |id| id == m1.id, 2);
        assert_eq!(got, vec![m3, bad]);
    }
}
