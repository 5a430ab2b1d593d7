//! Mailbox placement — pure functions, no I/O: who holds a recipient's
//! mailbox, how many acknowledgements make a deposit safe, to whom held
//! items are handed on, and which new peers may hold our own mail.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use libp2p::PeerId;
use libp2p::kad::{KBucketDistance, KBucketKey};

use crate::wire::mailbox::ItemHash;

/// What the last fetch of our own mailbox covered, so that a change of
/// the routing table triggers another fetch only when it can matter.
///
/// Senders deposit with the closest peers they find and holders hand on
/// to closer ones, so a peer new to us can hold our mail only if it is as
/// close to our mailbox key as the farthest peer we asked. Once a fetch
/// asked a full neighbourhood, that is about one join in N/K; reacting to
/// every join instead cost the 200-node benchmark a whole core in fetches
/// that could not find anything.
#[derive(Debug, Clone)]
pub struct Reach {
    key: KBucketKey<Vec<u8>>,
    /// Distance of the farthest peer asked; `None` until a fetch asked a
    /// full neighbourhood (a young node's or a small network's), when any
    /// new peer may hold mail.
    radius: Option<KBucketDistance>,
}

impl Reach {
    /// Nothing fetched yet from the mailbox at `key`.
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: KBucketKey::new(key.to_vec()),
            radius: None,
        }
    }

    /// A fetch asked `asked`; a neighbourhood has `full` peers.
    pub fn fetched(&mut self, asked: &[PeerId], full: usize) {
        self.radius = (asked.len() >= full)
            .then(|| {
                asked
                    .iter()
                    .map(|p| KBucketKey::from(*p).distance(&self.key))
                    .max()
            })
            .flatten();
    }

    /// Whether `peer`, new in our routing table, may hold mail we have not
    /// fetched.
    pub fn may_hold(&self, peer: &PeerId) -> bool {
        self.radius
            .is_none_or(|r| KBucketKey::from(*peer).distance(&self.key) <= r)
    }
}

/// Whether `peer`, new in our routing table, is closer to the mailbox at
/// `key` than we are, so that it may outrank us or a co-holder: only then
/// is it worth a holder's looking again at who should hold that mailbox.
pub fn outranks(key: &[u8], peer: &PeerId, me: &PeerId) -> bool {
    let key = KBucketKey::new(key.to_vec());
    KBucketKey::from(*peer).distance(&key) < KBucketKey::from(*me).distance(&key)
}

/// The `r` peers closest to `key` by Kademlia's XOR distance, leaving out
/// `exclude` (the recipient, who is away, and the sender, whose outbox
/// already keeps a copy).
pub fn holders(
    key: &[u8],
    candidates: impl IntoIterator<Item = PeerId>,
    exclude: &[PeerId],
    r: usize,
) -> Vec<PeerId> {
    let target = KBucketKey::new(key.to_vec());
    let mut peers: Vec<PeerId> = candidates
        .into_iter()
        .filter(|p| !exclude.contains(p))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    peers.sort_by_key(|p| KBucketKey::from(*p).distance(&target));
    peers.truncate(r);
    peers
}

/// Acknowledgements a deposit needs: `want`, or all holders when fewer
/// exist (a tiny network still gets its messages stored).
pub fn quorum(holders: usize, want: usize) -> usize {
    want.min(holders).max(1)
}

/// What a holder should do with one recipient's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// Peers among the `r` closest to the key that have not had the items
    /// from us yet: send them copies.
    pub targets: Vec<PeerId>,
    /// Whether we are still among the `r` closest ourselves. If not, once
    /// every one of them has a copy, ours can go: the items have moved on.
    pub keep: bool,
    /// The `r` closest as we see them, us included if we are: what
    /// [`Handed::ranked`] keeps.
    pub ranking: Vec<PeerId>,
}

/// What a holder knows of the copies it handed on for one recipient: which
/// peer confirmed which items.
///
/// Only peers still among the `r` closest are trusted to keep theirs: one
/// that dropped out may let its copy go (it hands on and lets go itself),
/// so if it comes back it must get the items again. The simulator lost a
/// message exactly that way before this was kept per pass: the last holder
/// never re-sent to two former co-holders that had let go. And trust is
/// per item, so an item deposited after a hand-off reaches those peers too.
///
/// An item is named by `K`: a holder uses the envelope's
/// [`crate::wire::mailbox::ItemHash`], never the message id alone, so a
/// peer that gave us other bytes under a real id is not taken to hold the
/// real item (and we do not let go of it on that belief).
#[derive(Debug, Clone)]
pub struct Handed<K = ItemHash>(HashMap<PeerId, HashSet<K>>);

impl<K> Default for Handed<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Eq + Hash + Copy> Handed<K> {
    /// Peers known to hold every one of `items`: [`handoff`]'s `already`.
    pub fn holding(&self, items: &[K]) -> HashSet<PeerId> {
        self.0
            .iter()
            .filter(|(_, got)| items.iter().all(|i| got.contains(i)))
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether `peer` is known to hold `item`.
    pub fn has(&self, peer: &PeerId, item: &K) -> bool {
        self.0.get(peer).is_some_and(|got| got.contains(item))
    }

    /// `peers` confirmed copies of `items` (or gave them to us).
    pub fn gave(&mut self, peers: &[PeerId], items: &[K]) {
        for p in peers {
            self.0.entry(*p).or_default().extend(items.iter().copied());
        }
    }

    /// A pass ranked `ranking` the closest: forget what we gave the rest.
    pub fn ranked(&mut self, ranking: &[PeerId]) {
        self.0.retain(|p, _| ranking.contains(p));
    }

    /// Forgets items no longer held (released or purged), so what is
    /// kept per peer never outgrows what we hold; true when nothing is
    /// left to remember.
    pub fn keep_only(&mut self, held: &HashSet<K>) -> bool {
        self.0.retain(|_, got| {
            got.retain(|i| held.contains(i));
            !got.is_empty()
        });
        self.0.is_empty()
    }
}

impl Handoff {
    /// Whether a holder may let its copies go once `confirmed` answered
    /// that they hold them: only when outranked, and only when every
    /// target confirmed (a target known to hold these exact items already
    /// is not a target).
    pub fn lets_go(&self, confirmed: &[PeerId]) -> bool {
        !self.keep && self.targets.iter().all(|t| confirmed.contains(t))
    }
}

/// Plans a hand-off: the ranking includes us, so copies go only to the
/// current `r` closest peers (never further out), and a holder that has
/// dropped out of them hands its items on and lets go.
pub fn handoff(
    key: &[u8],
    closest: impl IntoIterator<Item = PeerId>,
    me: PeerId,
    recipient: PeerId,
    r: usize,
    already: &HashSet<PeerId>,
) -> Handoff {
    let ranking = holders(key, closest.into_iter().chain([me]), &[recipient], r);
    Handoff {
        keep: ranking.contains(&me),
        targets: ranking
            .iter()
            .filter(|p| **p != me && !already.contains(p))
            .copied()
            .collect(),
        ranking,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::MessageId;

    #[test]
    fn holders_are_the_closest_excluding_recipient_and_sender() {
        let key = b"some mailbox key".to_vec();
        let peers: Vec<PeerId> = (0..20).map(|_| PeerId::random()).collect();
        let all = holders(&key, peers.clone(), &[], 20);
        let target = KBucketKey::new(key.clone());
        for w in all.windows(2) {
            assert!(
                KBucketKey::from(w[0]).distance(&target)
                    <= KBucketKey::from(w[1]).distance(&target)
            );
        }
        let chosen = holders(&key, peers.clone(), &[all[0], all[2]], 3);
        assert_eq!(chosen, vec![all[1], all[3], all[4]]);
        assert!(holders(&key, Vec::new(), &[], 3).is_empty());
    }

    /// `n` random peers, closest to `key` first.
    fn ranked(key: &[u8], n: usize) -> Vec<PeerId> {
        holders(key, (0..n).map(|_| PeerId::random()), &[], n)
    }

    #[test]
    fn quorum_is_two_or_all_when_fewer() {
        assert_eq!(quorum(3, 2), 2);
        assert_eq!(quorum(1, 2), 1);
        assert_eq!(quorum(0, 2), 1);
    }

    #[test]
    fn handoff_goes_to_the_closest_only_and_an_outranked_holder_lets_go() {
        let key = b"k".to_vec();
        let jack = PeerId::random();
        let top = ranked(&key, 8);
        let mut cands = top.clone();
        cands.push(jack);

        // The 2nd closest holds: it copies to the 1st and 3rd, and keeps.
        let me = top[1];
        let plan = handoff(&key, cands.clone(), me, jack, 3, &HashSet::new());
        assert_eq!(plan.targets, vec![top[0], top[2]]);
        assert!(plan.keep);
        let already: HashSet<PeerId> = plan.targets.iter().copied().collect();
        assert!(
            handoff(&key, cands.clone(), me, jack, 3, &already)
                .targets
                .is_empty()
        );

        // The 6th closest is outranked: it copies to the top 3 and lets go.
        let plan = handoff(&key, cands, top[5], jack, 3, &HashSet::new());
        assert_eq!(plan.targets, top[..3].to_vec());
        assert!(!plan.keep);
    }

    #[test]
    fn a_peer_that_dropped_out_of_the_closest_gets_the_items_again() {
        let key = b"k".to_vec();
        let jack = PeerId::random();
        let top = ranked(&key, 8);
        let peers = top.clone();
        let (me, items) = (top[0], [MessageId::random(), MessageId::random()]);
        let mut handed = Handed::default();

        // top[1] and top[2] get copies.
        let plan = handoff(&key, peers.clone(), me, jack, 3, &handed.holding(&items));
        assert_eq!(plan.targets, vec![top[1], top[2]]);
        handed.ranked(&plan.ranking);
        handed.gave(&plan.targets, &items);
        assert!(handed.has(&top[1], &items[0]) && !handed.has(&top[3], &items[0]));
        assert!(
            handoff(&key, peers.clone(), me, jack, 3, &handed.holding(&items))
                .targets
                .is_empty()
        );

        // A newcomer closer than all: top[2] drops out and may let go.
        let newcomer = loop {
            let p = PeerId::random();
            if holders(&key, [p, top[0]], &[], 1)[0] == p {
                break p;
            }
        };
        let mut with_newcomer = peers.clone();
        with_newcomer.push(newcomer);
        let plan = handoff(&key, with_newcomer, me, jack, 3, &handed.holding(&items));
        handed.ranked(&plan.ranking);
        handed.gave(&plan.targets, &items);

        // The newcomer leaves: top[2] is back among the three closest and
        // gets the items again; top[1], which never dropped out, does not.
        let plan = handoff(&key, peers.clone(), me, jack, 3, &handed.holding(&items));
        assert_eq!(plan.targets, vec![top[2]]);

        // An item deposited later goes to peers that hold the earlier ones.
        let mut handed = Handed::default();
        handed.ranked(&[me, top[1], top[2]]);
        handed.gave(&[top[1], top[2]], &items[..1]);
        let plan = handoff(&key, peers, me, jack, 3, &handed.holding(&items));
        assert_eq!(plan.targets, vec![top[1], top[2]]);
    }

    #[test]
    fn only_peers_within_a_full_fetch_may_hold_our_mail() {
        let key = b"mailbox key".to_vec();
        let mut reach = Reach::new(&key);
        let stranger = PeerId::random();
        assert!(reach.may_hold(&stranger), "nothing fetched yet");
        let peers = ranked(&key, 40);
        // A neighbourhood of only 3: any newcomer may matter.
        reach.fetched(&peers[..3], 20);
        assert!(reach.may_hold(&peers[39]));
        // A full one: those inside it may hold mail, those beyond may not.
        reach.fetched(&peers[..20], 20);
        assert!(reach.may_hold(&peers[0]));
        assert!(reach.may_hold(&peers[19]));
        assert!(!reach.may_hold(&peers[20]));
        assert!(!reach.may_hold(&peers[39]));
        // A failed lookup asked nobody: react again.
        reach.fetched(&[], 20);
        assert!(reach.may_hold(&peers[39]));
    }

    #[test]
    fn a_newcomer_outranks_a_holder_only_when_closer() {
        let key = b"mailbox key".to_vec();
        let peers = ranked(&key, 10);
        assert!(outranks(&key, &peers[2], &peers[5]));
        assert!(!outranks(&key, &peers[7], &peers[5]));
        assert!(!outranks(&key, &peers[5], &peers[5]));
    }

    #[test]
    fn handed_forgets_items_no_longer_held() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let (x, y) = (ItemHash([1; 32]), ItemHash([2; 32]));
        let mut handed: Handed = Handed::default();
        handed.gave(&[a], &[x, y]);
        handed.gave(&[b], &[y]);
        assert!(!handed.keep_only(&HashSet::from([x])));
        assert!(handed.has(&a, &x) && !handed.has(&a, &y));
        assert!(!handed.has(&b, &y));
        assert!(handed.keep_only(&HashSet::new()), "nothing left");
    }
}
