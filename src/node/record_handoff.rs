//! Which held records a newly met peer should be given — a pure rule, so it
//! is tested without a network.
//!
//! A node puts its locator into the K peers closest to the record's key *at
//! that moment*. In a network that grows fast after it, hundreds of nodes may
//! join closer to the key than every holder; a lookup then walks to the K
//! closest of the grown network, none of which has the record, until the
//! owner republishes at half the record's lifetime. (Two of three
//! 1000-node runs lost an early node's locator that way.) Kademlia's answer
//! (Maymounkov & Mazières, §2.5) is that a node which learns of a new one
//! hands it the records it is now among the closest for.
//!
//! We add one restriction: only the node that is, as far as it knows, the
//! closest to the key sends. Every holder knows the newcomer's rank, so
//! without it a newcomer would get each record from up to K holders; with
//! it, once. As closer nodes join, the record moves with them: the newcomer
//! that was handed it is now the closest and hands it on. Best effort: only
//! meeting a peer triggers a hand-over, so a node that receives a record
//! after it met a newcomer does not pass it on, and the owner's republish at
//! half the lifetime covers that (a loaded test machine shows the race in a
//! small network: a newcomer then misses the record). libp2p's own
//! holder replication stays off (see `net::behaviour`): it re-puts every held
//! record to K peers every interval whether or not anything changed.

use libp2p::PeerId;
use libp2p::kad::{K_VALUE, KBucketKey};

/// Whether we should hand the record under `target` to `newcomer`.
///
/// `known` is our routing table ordered by distance to `target`, closest
/// first (what `kad::Behaviour::get_closest_local_peers` yields); it may
/// include the newcomer. Yes when nobody we know but the newcomer is closer
/// to the target than we are, and fewer than K peers (us included) are
/// closer than the newcomer. Stops after about K entries.
pub fn should_hand_over<T>(
    target: &KBucketKey<T>,
    local: &KBucketKey<PeerId>,
    newcomer: &KBucketKey<PeerId>,
    known: impl IntoIterator<Item = KBucketKey<PeerId>>,
) -> bool {
    let ours = target.distance(local);
    let theirs = target.distance(newcomer);
    // Peers closer to the target than the newcomer: its rank.
    let mut ahead = usize::from(ours < theirs);
    let mut first = true;
    for peer in known {
        if peer == *newcomer || peer == *local {
            continue;
        }
        let d = target.distance(&peer);
        if std::mem::take(&mut first) && d < ours {
            return false; // the closest we know is responsible, not us
        }
        if d >= theirs || ahead >= K_VALUE.get() {
            break;
        }
        ahead += 1;
    }
    ahead < K_VALUE.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::kad::RecordKey;

    fn key(peer: PeerId) -> KBucketKey<PeerId> {
        KBucketKey::from(peer)
    }

    /// The rule spelled out over the whole set, for comparison.
    fn by_brute_force(
        target: &KBucketKey<RecordKey>,
        local: PeerId,
        newcomer: PeerId,
        others: &[PeerId],
    ) -> bool {
        let d = |p: PeerId| target.distance(&key(p));
        let we_are_closest = others.iter().all(|&p| d(p) > d(local));
        let rank = others
            .iter()
            .chain([&local])
            .filter(|&&p| d(p) < d(newcomer))
            .count();
        we_are_closest && rank < K_VALUE.get()
    }

    fn sorted(target: &KBucketKey<RecordKey>, peers: &[PeerId]) -> Vec<KBucketKey<PeerId>> {
        let mut keys: Vec<_> = peers.iter().map(|&p| key(p)).collect();
        keys.sort_by_key(|k| target.distance(k));
        keys
    }

    #[test]
    fn agrees_with_the_rule_spelled_out() {
        let (mut yes, mut no) = (0, 0);
        for round in 0..3000 {
            let target = KBucketKey::new(RecordKey::new(&format!("record {round}")));
            let local = PeerId::random();
            let newcomer = PeerId::random();
            let others: Vec<PeerId> = (0..round % 45).map(|_| PeerId::random()).collect();
            let mut table = others.clone();
            table.push(newcomer); // the routing table already holds it
            let got = should_hand_over(
                &target,
                &key(local),
                &key(newcomer),
                sorted(&target, &table),
            );
            assert_eq!(
                got,
                by_brute_force(&target, local, newcomer, &others),
                "round {round}"
            );
            if got { yes += 1 } else { no += 1 }
        }
        // Both answers were exercised, in numbers.
        assert!(yes > 100 && no > 100, "yes {yes}, no {no}");
    }

    #[test]
    fn only_the_closest_holder_sends_and_only_to_the_k_closest() {
        let target = KBucketKey::new(RecordKey::new(&"a locator"));
        let mut peers: Vec<PeerId> = (0..30).map(|_| PeerId::random()).collect();
        peers.sort_by_key(|&p| target.distance(&key(p)));
        let table = |me: usize| {
            let rest: Vec<PeerId> = peers
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != me)
                .map(|(_, &p)| p)
                .collect();
            sorted(&target, &rest)
        };
        // Closest to the key is peers[0]: it hands the record to a newcomer
        // ranked second, and to one ranked K-th, but not (K+1)-th.
        assert!(should_hand_over(
            &target,
            &key(peers[0]),
            &key(peers[1]),
            table(0)
        ));
        let k = K_VALUE.get();
        assert!(should_hand_over(
            &target,
            &key(peers[0]),
            &key(peers[k - 1]),
            table(0)
        ));
        assert!(!should_hand_over(
            &target,
            &key(peers[0]),
            &key(peers[k]),
            table(0)
        ));
        // The second closest leaves it to the first...
        assert!(!should_hand_over(
            &target,
            &key(peers[1]),
            &key(peers[2]),
            table(1)
        ));
        // ...unless the newcomer is the one closer than it.
        assert!(should_hand_over(
            &target,
            &key(peers[1]),
            &key(peers[0]),
            table(1)
        ));
        // Alone with the newcomer, we always send.
        assert!(should_hand_over(
            &target,
            &key(peers[5]),
            &key(peers[9]),
            [key(peers[9])]
        ));
    }
}
