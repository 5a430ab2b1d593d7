//! The fast path's limits, pure rules (time is passed in) used by
//! `fast_service`: whom it dials so gossipsub can build a mesh and when it
//! stops trying, and how much gossip it files per author.
//!
//! A member seeing fewer than a mesh's worth of members on a topic dials a
//! few more each round. A member that cannot be reached is not dialled
//! again for a while: per (group, member) the wait doubles after every
//! failed dial, from [`BACKOFF_FIRST_MS`] up to [`BACKOFF_MAX_MS`], and no
//! round dials more than [`MAX_DIALS_PER_ROUND`] members over all groups.
//! Without this, a large group with few members online would have every
//! member look up and dial the offline ones every round, forever.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use libp2p::PeerId;

// Gossipsub's mesh sizes as roost sets them: with at least MESH_N_LOW
// peers on a topic its heartbeat keeps a mesh it is content with, and
// those connections stay open; below, it grafts up to MESH_N.
use crate::net::pubsub::{MESH_N, MESH_N_LOW};
use crate::net::ratelimit::RateLimiter;
use crate::wire::group::GroupId;

/// The wait after a member's first failed dial.
pub const BACKOFF_FIRST_MS: u64 = 10_000;
/// The longest wait between two dials of the same member of a group.
pub const BACKOFF_MAX_MS: u64 = 30 * 60_000;
/// Most (group, member) pairs remembered: the table is bounded whatever
/// the rosters hold; when full, the pair whose wait ends first is forgotten.
pub const MAX_BACKOFF_ENTRIES: usize = 4096;
/// Most members dialled in one round, over all groups.
pub const MAX_DIALS_PER_ROUND: usize = 12;

#[derive(Debug, Clone, Copy)]
struct Wait {
    until: u64,
    delay: u64,
}

/// The members not to dial yet, per group, after failed dials.
#[derive(Debug, Default)]
pub struct DialBackoff {
    waits: HashMap<(GroupId, PeerId), Wait>,
}

impl DialBackoff {
    /// Whether `peer` of `group` may be dialled at `now` (Unix ms).
    pub fn may_dial(&self, group: &GroupId, peer: &PeerId, now: u64) -> bool {
        self.waits
            .get(&(*group, *peer))
            .is_none_or(|w| now >= w.until)
    }

    /// A dial of `peer` for `group` failed at `now`: its wait doubles.
    pub fn failed(&mut self, group: &GroupId, peer: &PeerId, now: u64) {
        let key = (*group, *peer);
        if !self.waits.contains_key(&key) && self.waits.len() >= MAX_BACKOFF_ENTRIES {
            let first = self
                .waits
                .iter()
                .min_by_key(|(_, w)| w.until)
                .map(|(k, _)| *k);
            if let Some(k) = first {
                self.waits.remove(&k);
            }
        }
        let delay = match self.waits.get(&key) {
            Some(w) => w.delay.saturating_mul(2).min(BACKOFF_MAX_MS),
            None => BACKOFF_FIRST_MS,
        };
        self.waits.insert(
            key,
            Wait {
                until: now.saturating_add(delay),
                delay,
            },
        );
    }

    /// A dial of `peer` for `group` succeeded: it may be dialled again at
    /// once if it leaves.
    pub fn succeeded(&mut self, group: &GroupId, peer: &PeerId) {
        self.waits.remove(&(*group, *peer));
    }

    /// Pairs remembered (tests).
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.waits.len()
    }
}

/// How many roster members to dial for a topic on which `seen` peers are
/// known: none while gossipsub can keep a mesh from them (at least
/// [`MESH_N_LOW`]); below that, the shortfall to [`MESH_N`], at most
/// `budget`. Peers beyond the mesh are not kept (their connections idle
/// out), so dialling while `seen` is already enough would open the same
/// connections again every round.
pub fn dials_wanted(seen: usize, budget: usize) -> usize {
    if seen >= MESH_N_LOW {
        0
    } else {
        MESH_N.saturating_sub(seen).min(budget)
    }
}

/// The topic to look after per group: of the topics followed (a group's
/// current epoch and, during its grace, the previous one), the one of the
/// highest epoch, so a new epoch's mesh is built as soon as it begins.
pub fn current_topics(followed: &HashMap<String, (GroupId, u64)>) -> HashMap<GroupId, String> {
    let mut best: HashMap<GroupId, (u64, &String)> = HashMap::new();
    for (topic, (group, epoch)) in followed {
        let e = best.entry(*group).or_insert((*epoch, topic));
        if *epoch > e.0 {
            *e = (*epoch, topic);
        }
    }
    best.into_iter().map(|(g, (_, t))| (g, t.clone())).collect()
}

/// Gossip messages one author may have filed at once: generous for a
/// person typing (a pasted burst), tight enough that a member flooding
/// valid messages cannot take the filing slots from the others.
pub const GOSSIP_BURST: f64 = 50.0;
/// Gossip messages per second one author may have filed after its burst.
pub const GOSSIP_RATE: f64 = 10.0;
/// Most gossip messages being filed at once, over all authors.
pub const MAX_FILING: usize = 256;
/// Gossip messages one forwarding peer may have us check (decode and
/// verify a signature, in the network task) at once, and per second
/// after that: gossipsub checks only a message's first copy, so a mesh
/// peer forwards each group message once, far below this; a peer
/// sending junk costs at most this many signature checks a second.
pub const FORWARDER_BURST: f64 = 400.0;
/// See [`FORWARDER_BURST`].
pub const FORWARDER_RATE: f64 = 200.0;

/// Which gossip messages are checked and filed: per forwarding peer a
/// token bucket before any check ([`FORWARDER_BURST`],
/// [`FORWARDER_RATE`]), and once checked at most [`MAX_FILING`] being
/// filed at once and per author a token bucket ([`GOSSIP_BURST`],
/// [`GOSSIP_RATE`]; the tables are capped by [`RateLimiter`]). A message
/// beyond any of them is ignored (not forwarded, nobody penalised); the
/// member catches it up from another member later (`super::sync`).
#[derive(Debug)]
pub struct GossipGate {
    per_author: RateLimiter,
    per_forwarder: RateLimiter,
}

impl Default for GossipGate {
    fn default() -> Self {
        Self {
            per_author: RateLimiter::new(GOSSIP_RATE, GOSSIP_BURST),
            per_forwarder: RateLimiter::new(FORWARDER_RATE, FORWARDER_BURST),
        }
    }
}

impl GossipGate {
    /// Whether a message `from` this forwarding peer is checked at all at
    /// `now`.
    pub fn check(&mut self, from: PeerId, now: Instant) -> bool {
        self.per_forwarder.allow(from, now)
    }

    /// Whether a message by `author` is filed at `now`, with `filing`
    /// messages being filed already.
    pub fn admit(&mut self, author: PeerId, filing: usize, now: Instant) -> bool {
        filing < MAX_FILING && self.per_author.allow(author, now)
    }
}

/// One gossip message being filed, counted in a shared count while it
/// lives: the count goes down when the slot is dropped, whether the store
/// job that holds it ran or was dropped unrun, so a lost job cannot leak a
/// slot of [`MAX_FILING`] for good.
#[derive(Debug)]
pub struct FilingSlot(Arc<AtomicUsize>);

impl FilingSlot {
    /// Takes a slot of `count`.
    pub fn take(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for FilingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_member_waits_doubling_up_to_the_cap() {
        let (g, p) = (GroupId([1; 32]), PeerId::random());
        let mut b = DialBackoff::default();
        assert!(b.may_dial(&g, &p, 0));
        b.failed(&g, &p, 0);
        assert!(!b.may_dial(&g, &p, BACKOFF_FIRST_MS - 1), "first wait");
        assert!(b.may_dial(&g, &p, BACKOFF_FIRST_MS));
        assert!(b.may_dial(&GroupId([2; 32]), &p, 1), "another group");
        assert!(b.may_dial(&g, &PeerId::random(), 1), "another member");
        b.failed(&g, &p, BACKOFF_FIRST_MS);
        assert!(
            !b.may_dial(&g, &p, 3 * BACKOFF_FIRST_MS - 1),
            "the wait doubled"
        );
        assert!(b.may_dial(&g, &p, 3 * BACKOFF_FIRST_MS));
        let mut now = 3 * BACKOFF_FIRST_MS;
        for _ in 0..20 {
            b.failed(&g, &p, now);
            now += BACKOFF_MAX_MS;
        }
        assert!(!b.may_dial(&g, &p, now - 1), "capped, not shorter");
        assert!(b.may_dial(&g, &p, now), "capped at the maximum");
        b.succeeded(&g, &p);
        assert!(b.may_dial(&g, &p, 0), "a success forgets the wait");
    }

    #[test]
    fn a_forwarder_past_its_burst_is_not_checked_until_its_bucket_refills() {
        let mut gate = GossipGate::default();
        let (junk, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let checked = (0..1000).filter(|_| gate.check(junk, t0)).count();
        assert_eq!(checked, FORWARDER_BURST as usize);
        assert!(gate.check(other, t0), "another forwarder is not held back");
        assert!(!gate.check(junk, t0 + std::time::Duration::from_millis(1)));
        assert!(gate.check(junk, t0 + std::time::Duration::from_millis(20)));
    }

    #[test]
    fn the_table_is_capped() {
        let g = GroupId([1; 32]);
        let mut b = DialBackoff::default();
        for i in 0..MAX_BACKOFF_ENTRIES as u64 + 100 {
            b.failed(&g, &PeerId::random(), i);
        }
        assert_eq!(b.remembered(), MAX_BACKOFF_ENTRIES);
    }

    #[test]
    fn the_highest_epoch_of_each_group_is_looked_after() {
        let (g, h) = (GroupId([1; 32]), GroupId([2; 32]));
        for _ in 0..20 {
            // HashMap order varies between maps: build it afresh each time.
            let followed: HashMap<String, (GroupId, u64)> = [
                ("g-old".to_string(), (g, 4)),
                ("g-new".to_string(), (g, 5)),
                ("h".to_string(), (h, 1)),
            ]
            .into_iter()
            .collect();
            let cur = current_topics(&followed);
            assert_eq!(cur.len(), 2);
            assert_eq!(cur[&g], "g-new");
            assert_eq!(cur[&h], "h");
        }
    }
}

#[cfg(test)]
mod dial_tests {
    use super::*;

    #[test]
    fn a_mesh_gossipsub_keeps_dials_none() {
        for seen in MESH_N_LOW..MESH_N_LOW + 20 {
            assert_eq!(dials_wanted(seen, 12), 0, "{seen} peers seen");
        }
    }

    #[test]
    fn too_few_dials_the_shortfall_within_the_budget() {
        assert_eq!(dials_wanted(0, 12), MESH_N);
        assert_eq!(dials_wanted(MESH_N_LOW - 1, 12), MESH_N - MESH_N_LOW + 1);
        assert_eq!(dials_wanted(0, 2), 2);
        assert_eq!(dials_wanted(0, 0), 0);
    }
}

#[cfg(test)]
mod gate_tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_flooding_author_is_held_to_its_rate_and_others_still_pass() {
        let mut gate = GossipGate::default();
        let (mallory, alice) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let mut passed = 0;
        for _ in 0..1000 {
            if gate.admit(mallory, 0, t0) {
                passed += 1;
            }
        }
        assert_eq!(passed, GOSSIP_BURST as usize, "the flood beyond its burst");
        assert!(gate.admit(alice, 0, t0), "another author still passes");
        assert!(
            gate.admit(mallory, 0, t0 + Duration::from_secs(1)),
            "refilled at its rate"
        );
        assert!(!gate.admit(alice, MAX_FILING, t0), "the global cap");
    }

    #[test]
    fn a_filing_slot_is_given_back_when_its_job_is_dropped_unrun() {
        let count = Arc::new(AtomicUsize::new(0));
        let slot = FilingSlot::take(&count);
        let job = move || drop(slot);
        assert_eq!(count.load(Ordering::Acquire), 1);
        drop(job);
        assert_eq!(count.load(Ordering::Acquire), 0, "the slot leaked");
        let ran = FilingSlot::take(&count);
        drop(ran);
        assert_eq!(count.load(Ordering::Acquire), 0);
    }
}
