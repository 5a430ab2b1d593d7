//! Which peers a held record should go to when the network around its key
//! changes — two pure rules, so they are tested without a network.
//!
//! A node puts its locator into the K peers closest to the record's key *at
//! that moment*. In a network that grows fast after it, hundreds of nodes may
//! join closer to the key than every holder; a lookup then walks to the K
//! closest of the grown network, none of which has the record, until the
//! owner republishes at half the record's lifetime. (Two of three
//! 1000-node runs lost an early node's locator that way.) Kademlia's answer
//! (Maymounkov & Mazières, §2.5) is that a node which learns of a new one
//! hands it the records it is now among the closest for:
//! [`should_hand_over`].
//!
//! We add one restriction: only the node that is, as far as it knows, the
//! closest to the key sends. Every holder knows the newcomer's rank, so
//! without it a newcomer would get each record from up to K holders; with
//! it, once. As closer nodes join, the record moves with them: the newcomer
//! that was handed it is now the closest and hands it on.
//!
//! Meeting a peer alone leaves a race (the likely cause of the one loaded
//! 1000-node run in five that still lost an early locator): a node that
//! meets a closer newcomer *before* it
//! is itself handed the record (the put is still on its way) has nothing to
//! give then, and the holder that hands it over does not send to the
//! newcomer because it knows a closer peer. So a record handed over is also
//! passed on on receipt: [`pass_on`] sends it to the (at most
//! [`PASS_ON_TO`]) closest peers we know that are closer to the key than
//! both us and the holder that handed it to us — peers that holder
//! evidently did not count on. Each node passes a given record on once
//! (only a record new to it), and only towards the key, so the cascade
//! ends; in a settled network nobody we know is closer than the closest
//! holder, and it costs nothing. The owner's own puts are not passed on
//! (its lookup already found the K closest), nor puts from peers outside
//! the K closest we know (libp2p's caching after a lookup): we pass on only
//! what a holder handed over. A hand-over that fails is tried once more
//! (the locator machine, `net::locator`, does that: a closer peer that
//! missed the record stops the chain as surely as the race does).
//!
//! libp2p's own holder replication stays off (see `net::behaviour`): it
//! re-puts every held record to K peers every interval whether or not
//! anything changed.

use libp2p::PeerId;
use libp2p::kad::{K_VALUE, KBucketKey};

/// How many peers a record is passed on to at most: the closest of them is
/// the one lookups need, and each passes it on in turn if it lacked it. It
/// also bounds what one forged hand-over can make us send.
pub const PASS_ON_TO: usize = 3;

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

/// To whom we should pass on a record `source` has just handed us (a record
/// new to us: the caller drops copies it already holds).
///
/// `known` is our routing table ordered by distance to `target`, closest
/// first; it may include the source. Empty unless the source ranks among
/// the K closest to the target (us included) — a holder handing over, not a
/// peer caching a lookup's result; otherwise the peers closer to the target
/// than both us and the source, closest first, at most [`PASS_ON_TO`].
pub fn pass_on<T>(
    target: &KBucketKey<T>,
    local: &KBucketKey<PeerId>,
    source: &KBucketKey<PeerId>,
    known: impl IntoIterator<Item = KBucketKey<PeerId>>,
) -> Vec<PeerId> {
    let ours = target.distance(local);
    let theirs = target.distance(source);
    // Peers closer to the target than the source: its rank.
    let mut ahead = usize::from(ours < theirs);
    let mut to = Vec::new();
    for peer in known {
        if peer == *source || peer == *local {
            continue;
        }
        let d = target.distance(&peer);
        if d >= theirs || ahead >= K_VALUE.get() {
            break;
        }
        ahead += 1;
        if d < ours && to.len() < PASS_ON_TO {
            to.push(*peer.preimage());
        }
    }
    if ahead < K_VALUE.get() {
        to
    } else {
        Vec::new()
    }
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

    /// One random case: a record's key, us, the other peer in question
    /// (newcomer or source) and up to 44 more peers we know.
    fn random_round(round: usize) -> (KBucketKey<RecordKey>, PeerId, PeerId, Vec<PeerId>) {
        let target = KBucketKey::new(RecordKey::new(&format!("record {round}")));
        let others = (0..round % 45).map(|_| PeerId::random()).collect();
        (target, PeerId::random(), PeerId::random(), others)
    }

    #[test]
    fn agrees_with_the_rule_spelled_out() {
        let (mut yes, mut no) = (0, 0);
        for round in 0..3000 {
            let (target, local, newcomer, others) = random_round(round);
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

    /// Thirty random peers ordered by distance to a record's key.
    fn thirty_by_distance() -> (KBucketKey<RecordKey>, Vec<PeerId>) {
        let target = KBucketKey::new(RecordKey::new(&"a locator"));
        let mut peers: Vec<PeerId> = (0..30).map(|_| PeerId::random()).collect();
        peers.sort_by_key(|&p| target.distance(&key(p)));
        (target, peers)
    }

    /// The routing table of `peers[me]`: everyone else, closest first.
    fn all_but_one(
        target: &KBucketKey<RecordKey>,
        peers: &[PeerId],
        me: usize,
    ) -> Vec<KBucketKey<PeerId>> {
        let rest: Vec<PeerId> = peers
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != me)
            .map(|(_, &p)| p)
            .collect();
        sorted(target, &rest)
    }

    /// [`pass_on`] spelled out over the whole set, for comparison.
    fn passed_on_by_brute_force(
        target: &KBucketKey<RecordKey>,
        local: PeerId,
        source: PeerId,
        others: &[PeerId],
    ) -> Vec<PeerId> {
        let d = |p: PeerId| target.distance(&key(p));
        let rank = others
            .iter()
            .chain([&local])
            .filter(|&&p| d(p) < d(source))
            .count();
        if rank >= K_VALUE.get() {
            return Vec::new();
        }
        let mut to: Vec<PeerId> = others
            .iter()
            .copied()
            .filter(|&p| d(p) < d(local) && d(p) < d(source))
            .collect();
        to.sort_by_key(|&p| d(p));
        to.truncate(PASS_ON_TO);
        to
    }

    #[test]
    fn pass_on_agrees_with_the_rule_spelled_out() {
        let (mut some, mut none, mut refused) = (0, 0, 0);
        for round in 0..3000 {
            let (target, local, source, others) = random_round(round);
            let mut table = others.clone();
            if round % 2 == 0 {
                table.push(source); // whether or not we know the source
            }
            let got = pass_on(&target, &key(local), &key(source), sorted(&target, &table));
            let want = passed_on_by_brute_force(&target, local, source, &others);
            assert_eq!(got, want, "round {round}");
            assert!(got.len() <= PASS_ON_TO);
            let rank = others
                .iter()
                .chain([&local])
                .filter(|&&p| target.distance(&key(p)) < target.distance(&key(source)))
                .count();
            match got.len() {
                0 if rank >= K_VALUE.get() => refused += 1,
                0 => none += 1,
                _ => some += 1,
            }
        }
        // Every outcome was exercised, in numbers.
        assert!(
            some > 100 && none > 100 && refused > 100,
            "{some} {none} {refused}"
        );
    }

    #[test]
    fn a_record_handed_over_goes_on_towards_the_key_only() {
        let (target, peers) = thirty_by_distance();
        let all_but = |me: usize| all_but_one(&target, &peers, me);
        // The race: peers[3] met peers[0..3] before peers[5] handed it the
        // record; it passes the record to those three, closest first...
        assert_eq!(
            pass_on(&target, &key(peers[3]), &key(peers[5]), all_but(3)),
            peers[..3]
        );
        // ...and from further out, to the closest three only.
        assert_eq!(
            pass_on(&target, &key(peers[8]), &key(peers[12]), all_but(8)),
            peers[..PASS_ON_TO]
        );
        // Handed it by a closer holder, only the peers closer than that
        // holder: the holder had them in view.
        assert_eq!(
            pass_on(&target, &key(peers[6]), &key(peers[2]), all_but(6)),
            peers[..2]
        );
        // The closest we know passes nothing on: the cascade ends with it.
        assert!(pass_on(&target, &key(peers[0]), &key(peers[4]), all_but(0)).is_empty());
        // A put from beyond the K closest (libp2p caching a lookup's
        // result) is kept but not passed on.
        let k = K_VALUE.get();
        assert!(pass_on(&target, &key(peers[3]), &key(peers[k]), all_but(3)).is_empty());
        assert_eq!(
            pass_on(&target, &key(peers[3]), &key(peers[k - 1]), all_but(3)),
            peers[..3]
        );
    }

    #[test]
    fn only_the_closest_holder_sends_and_only_to_the_k_closest() {
        let (target, peers) = thirty_by_distance();
        let table = |me: usize| all_but_one(&target, &peers, me);
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
