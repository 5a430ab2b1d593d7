//! The locator machine driven through time with a record store and a
//! routing table in memory: no swarm, no sockets.

use std::time::{Duration, Instant};

use libp2p::kad::{KBucketKey, Quorum, Record, RecordKey};
use libp2p::{Multiaddr, PeerId};

use super::*;
use crate::net::record_store::{MAX_RECORDS, SourceCappedStore};
use crate::net::republish::SETTLE;
use crate::wire::locator::{MAX_RECORD_BYTES, record_key, sign, validate};

mod hold;
mod rooms;

const TTL: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(5);
/// Unix ms at the tests' `t0`.
const BASE: u64 = 1_800_000_000_000;

/// A record store and routing table in memory.
struct FakeDht {
    store: SourceCappedStore,
    table: Vec<PeerId>,
    addrs: Vec<Multiaddr>,
}

impl FakeDht {
    fn new(local: PeerId) -> Self {
        Self {
            store: SourceCappedStore::new(local, MAX_RECORDS, MAX_RECORD_BYTES),
            table: Vec::new(),
            addrs: vec!["/ip4/10.0.0.1/tcp/7117".parse().unwrap()],
        }
    }

    fn held_seq(&mut self, key: &RecordKey) -> Option<u64> {
        self.held(key).and_then(|r| locator::seq_of(&r.value))
    }
}

impl Dht for FakeDht {
    fn store(&mut self) -> &mut SourceCappedStore {
        &mut self.store
    }

    fn closest_known(&mut self, key: &RecordKey) -> Vec<KBucketKey<PeerId>> {
        let target = KBucketKey::new(key.clone());
        let mut keys: Vec<_> = self.table.iter().map(|&p| KBucketKey::from(p)).collect();
        keys.sort_by_key(|k| target.distance(k));
        keys
    }

    fn table_size(&mut self) -> usize {
        self.table.len()
    }

    fn addrs(&self) -> Vec<Multiaddr> {
        self.addrs.clone()
    }
}

/// A machine, its DHT, and a clock starting at `t0`.
struct Rig {
    m: Machine,
    dht: FakeDht,
    t0: Instant,
    local: PeerId,
}

impl Rig {
    fn new(seq: u64) -> Self {
        let id = Identity::from_seed([7; 32]);
        let local = id.peer_id();
        Self {
            m: Machine::new(id, TTL, MIN, seq),
            dht: FakeDht::new(local),
            t0: Instant::now(),
            local,
        }
    }

    fn at(&self, d: Duration) -> Now {
        Now {
            at: self.t0 + d,
            unix_ms: BASE + d.as_millis() as u64,
        }
    }

    fn run(&mut self, input: Input, d: Duration) -> Vec<Output> {
        let now = self.at(d);
        self.m.handle(input, now, &mut self.dht)
    }

    /// Publishes at `d` (addresses changed `SETTLE` before); returns the
    /// put's op, record and quorum.
    fn publish_at(&mut self, d: Duration) -> (Op, Record, Quorum) {
        self.run(Input::AddressesChanged, d - SETTLE);
        let out = self.run(Input::Tick, d);
        the_put(out)
    }

    /// A lookup `op` found `record` at `d`, from the peer `from` (`None`:
    /// our own copy).
    fn found(&mut self, op: Op, from: Option<PeerId>, record: Record, d: Duration) -> Vec<Output> {
        self.run(Input::Found { op, from, record }, d)
    }

    fn key_of(&self) -> RecordKey {
        record_key(&self.local)
    }
}

fn the_put(out: Vec<Output>) -> (Op, Record, Quorum) {
    let mut puts = out.into_iter().filter_map(|o| match o {
        Output::PutRecord { op, record, quorum } => Some((op, record, quorum)),
        _ => None,
    });
    let put = puts.next().expect("a publication");
    assert!(puts.next().is_none(), "one publication");
    put
}

fn puts_to(out: &[Output]) -> Vec<(Op, Vec<PeerId>, Quorum)> {
    out.iter()
        .filter_map(|o| match o {
            Output::PutRecordTo {
                op, peers, quorum, ..
            } => Some((*op, peers.clone(), *quorum)),
            _ => None,
        })
        .collect()
}

fn answer(out: &[Output], w: u64) -> Option<Option<Locator>> {
    out.iter().find_map(|o| match o {
        Output::Answer { waiter, locator } if *waiter == w => Some(locator.clone()),
        _ => None,
    })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `owner`'s signed locator record with `seq`, valid for an hour from BASE.
fn record_of(owner: &Identity, seq: u64) -> Record {
    let addr: Multiaddr = "/ip4/10.0.0.9/tcp/1".parse().unwrap();
    let value = sign(owner, seq, &[addr], BASE + 3_600_000, true).unwrap();
    Record::new(record_key(&owner.peer_id()), value)
}

fn seq_in(record: &Record) -> u64 {
    validate(&record.key, &record.value, BASE, None)
        .unwrap()
        .seq
}

#[test]
fn the_seq_keeps_growing_across_restarts() {
    // A fresh node's first seq is the clock's.
    let mut r = Rig::new(0);
    let (_, record, _) = r.publish_at(secs(1));
    assert_eq!(seq_in(&record), BASE + 1000);
    // A seq persisted ahead of the clock (a clock set back) still grows.
    let ahead = BASE + 10 * 3_600_000;
    let mut r = Rig::new(ahead);
    r.run(Input::AddressesChanged, secs(1));
    let out = r.run(Input::Tick, secs(1) + SETTLE);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PersistSeq(s) if *s == ahead + 1)),
        "{out:?}"
    );
    let (_, record, _) = the_put(out);
    assert_eq!(seq_in(&record), ahead + 1);
    // The next run starts from what was persisted.
    let mut again = Rig::new(r.m.seq());
    let (_, record, _) = again.publish_at(secs(2));
    assert_eq!(seq_in(&record), ahead + 2);
}

#[test]
fn publishes_when_addresses_settle_then_at_half_life() {
    let mut r = Rig::new(0);
    assert_eq!(r.m.poll_timeout(), None, "nothing to do before addresses");
    r.run(Input::AddressesChanged, secs(1));
    assert_eq!(r.m.poll_timeout(), Some(r.t0 + secs(1) + SETTLE));
    assert!(r.run(Input::Tick, secs(1)).is_empty(), "not yet settled");
    let (_, record, quorum) = the_put(r.run(Input::Tick, secs(1) + SETTLE));
    assert!(matches!(quorum, Quorum::One));
    let loc = validate(&record.key, &record.value, BASE, None).unwrap();
    assert_eq!(loc.addrs, r.dht.addrs);
    assert!(loc.online);
    let half = secs(1) + SETTLE + TTL / 2;
    assert_eq!(r.m.poll_timeout(), Some(r.t0 + half));
    assert!(r.run(Input::Tick, half - secs(1)).is_empty());
    let (_, again, _) = the_put(r.run(Input::Tick, half));
    assert!(seq_in(&again) > loc.seq);
}

#[test]
fn a_growing_young_table_republishes_at_most_once_per_min_interval() {
    let mut r = Rig::new(0);
    r.dht.table.push(PeerId::random());
    let (op, _, _) = r.publish_at(secs(1));
    r.run(Input::PutDone { op, result: Ok(()) }, secs(1));
    r.dht.table.push(PeerId::random());
    let newcomer = r.dht.table[1];
    r.run(Input::NewPeer(newcomer), secs(2));
    assert_eq!(r.m.poll_timeout(), Some(r.t0 + secs(1) + MIN));
    assert!(r.run(Input::Tick, secs(1) + MIN - secs(1)).is_empty());
    the_put(r.run(Input::Tick, secs(1) + MIN));
}

#[test]
fn a_failed_publication_is_retried_after_min_interval() {
    let mut r = Rig::new(0);
    r.dht.table.push(PeerId::random());
    let (op, _, _) = r.publish_at(secs(1));
    r.run(
        Input::PutDone {
            op,
            result: Err(Vec::new()),
        },
        secs(2),
    );
    assert_eq!(r.m.poll_timeout(), Some(r.t0 + secs(2) + MIN));
    the_put(r.run(Input::Tick, secs(2) + MIN));
}

#[test]
fn our_own_lookup_answers_from_the_record_last_published() {
    let mut r = Rig::new(0);
    let local = r.local;
    let out = r.run(
        Input::Find {
            waiter: 1,
            peer: local,
        },
        secs(0),
    );
    assert_eq!(answer(&out, 1), Some(None), "nothing published yet");
    let (_, record, _) = r.publish_at(secs(1));
    // The put is not carried out: our own store does not hold the record.
    assert!(r.dht.held(&r.key_of()).is_none());
    let out = r.run(
        Input::Find {
            waiter: 2,
            peer: local,
        },
        secs(2),
    );
    let got = answer(&out, 2)
        .expect("answered at once")
        .expect("a locator");
    assert_eq!(got.seq, seq_in(&record));
    assert_eq!(&got, r.m.published().unwrap());
    assert!(!out.iter().any(|o| matches!(o, Output::GetRecord { .. })));
}

/// Starts a lookup of `owner`'s locator; returns its op.
fn look_up(r: &mut Rig, owner: &Identity, waiter: u64) -> Op {
    let out = r.run(
        Input::Find {
            waiter,
            peer: owner.peer_id(),
        },
        secs(1),
    );
    match out.as_slice() {
        [Output::GetRecord { op, key }] if *key == record_key(&owner.peer_id()) => *op,
        other => panic!("expected one lookup, got {other:?}"),
    }
}

#[test]
fn a_peer_answer_beats_and_replaces_our_stale_copy() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([1; 32]);
    let holder = PeerId::random();
    r.dht.put_from(holder, record_of(&owner, 1), r.t0).unwrap();
    let op = look_up(&mut r, &owner, 5);
    // libp2p reports our own copy first: it does not answer...
    let own = record_of(&owner, 1);
    let out = r.found(op, None, own, secs(1));
    assert!(out.is_empty(), "{out:?}");
    // ...a peer's newer one does, ends the lookup and replaces our copy.
    let peer = PeerId::random();
    let out = r.found(op, Some(peer), record_of(&owner, 2), secs(1));
    assert_eq!(answer(&out, 5).unwrap().unwrap().seq, 2);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::FinishLookup { op: o } if *o == op))
    );
    assert_eq!(r.dht.held_seq(&record_key(&owner.peer_id())), Some(2));
    assert_eq!(
        r.dht.store.held_from(&peer),
        1,
        "charged to the answering peer"
    );
    // The end of the lookup answers nobody twice.
    assert!(r.run(Input::LookupDone { op }, secs(2)).is_empty());
}

#[test]
fn our_newer_copy_answers_over_an_older_peer_answer_and_stays() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([1; 32]);
    r.dht
        .put_from(owner.peer_id(), record_of(&owner, 3), r.t0)
        .unwrap();
    let op = look_up(&mut r, &owner, 6);
    r.found(op, None, record_of(&owner, 3), secs(1));
    let out = r.found(op, Some(PeerId::random()), record_of(&owner, 2), secs(1));
    assert_eq!(answer(&out, 6).unwrap().unwrap().seq, 3);
    assert_eq!(r.dht.held_seq(&record_key(&owner.peer_id())), Some(3));
}

#[test]
fn our_copy_answers_only_when_no_peer_does() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([1; 32]);
    let other = Identity::from_seed([2; 32]);
    let op = look_up(&mut r, &owner, 7);
    r.found(op, None, record_of(&owner, 1), secs(1));
    // A peer answering with another identity's valid record is ignored.
    let out = r.found(op, Some(PeerId::random()), record_of(&other, 9), secs(1));
    assert!(out.is_empty(), "{out:?}");
    let out = r.run(Input::LookupDone { op }, secs(2));
    assert_eq!(answer(&out, 7).unwrap().unwrap().seq, 1);
    // With no copy of our own, an unanswered lookup ends with nothing.
    let op = look_up(&mut r, &other, 8);
    let out = r.run(Input::LookupDone { op }, secs(2));
    assert_eq!(answer(&out, 8), Some(None));
}

#[test]
fn keeps_newer_records_and_refuses_older_or_forged_ones() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([1; 32]);
    let forger = Identity::from_seed([2; 32]);
    let key = record_key(&owner.peer_id());
    let source = owner.peer_id();
    r.run(
        Input::Inbound {
            source,
            record: record_of(&owner, 5),
        },
        secs(1),
    );
    assert_eq!(r.dht.held_seq(&key), Some(5));
    // Older: refused.
    r.run(
        Input::Inbound {
            source,
            record: record_of(&owner, 4),
        },
        secs(1),
    );
    assert_eq!(r.dht.held_seq(&key), Some(5));
    // Another identity's record under the owner's key: refused.
    let mut forged = record_of(&forger, 9);
    forged.key = key.clone();
    let source = forger.peer_id();
    r.run(
        Input::Inbound {
            source,
            record: forged,
        },
        secs(1),
    );
    assert_eq!(r.dht.held_seq(&key), Some(5));
    assert_eq!(r.dht.store.held_from(&source), 0);
    // Newer: replaces.
    let source = owner.peer_id();
    r.run(
        Input::Inbound {
            source,
            record: record_of(&owner, 6),
        },
        secs(1),
    );
    assert_eq!(r.dht.held_seq(&key), Some(6));
}

/// `n` random peers farther from `key` than `local`, and one closer.
fn around(key: &RecordKey, local: PeerId, n: usize) -> (Vec<PeerId>, PeerId) {
    let target = KBucketKey::new(key.clone());
    let ours = target.distance(&KBucketKey::from(local));
    let (mut far, mut near) = (Vec::new(), None);
    while far.len() < n || near.is_none() {
        let p = PeerId::random();
        if target.distance(&KBucketKey::from(p)) > ours {
            if far.len() < n {
                far.push(p);
            }
        } else {
            near = Some(p);
        }
    }
    (far, near.expect("found"))
}

/// A rig holding `owner`'s record (its own put), closer to the key than
/// every peer it knows; returns the closer peer left out of its table.
fn holding_closest(r: &mut Rig, owner: &Identity) -> PeerId {
    let key = record_key(&owner.peer_id());
    let source = owner.peer_id();
    r.run(
        Input::Inbound {
            source,
            record: record_of(owner, 1),
        },
        secs(1),
    );
    assert_eq!(r.dht.held_seq(&key), Some(1));
    let (far, near) = around(&key, r.local, 5);
    r.dht.table = far;
    near
}

#[test]
fn hands_a_held_record_to_a_closer_newcomer_only_when_closest() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([3; 32]);
    let near = holding_closest(&mut r, &owner);
    r.dht.table.push(near);
    let out = r.run(Input::NewPeer(near), secs(2));
    let puts = puts_to(&out);
    assert_eq!(puts.len(), 1, "{out:?}");
    assert_eq!(puts[0].1, vec![near]);
    // Now `near` is the closest we know: a later newcomer is its to serve.
    let later = PeerId::random();
    r.dht.table.push(later);
    let out = r.run(Input::NewPeer(later), secs(3));
    assert!(puts_to(&out).is_empty(), "{out:?}");
}

#[test]
fn a_failed_hand_over_is_retried_once() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([3; 32]);
    let near = holding_closest(&mut r, &owner);
    r.dht.table.push(near);
    let out = r.run(Input::NewPeer(near), secs(2));
    let (op, _, _) = puts_to(&out)[0].clone();
    let failed = |op| Input::PutDone {
        op,
        result: Err(Vec::new()),
    };
    let out = r.run(failed(op), secs(3));
    let retry = puts_to(&out);
    assert_eq!(retry.len(), 1, "{out:?}");
    assert_eq!(retry[0].1, vec![near]);
    assert!(matches!(retry[0].2, Quorum::All));
    let out = r.run(failed(retry[0].0), secs(4));
    assert!(out.is_empty(), "a second failure is left alone: {out:?}");
}

#[test]
fn a_record_handed_over_is_passed_on_to_closer_peers_not_an_owners_put() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([4; 32]);
    let key = record_key(&owner.peer_id());
    let (far, near) = around(&key, r.local, 5);
    r.dht.table = far.clone();
    r.dht.table.push(near);
    // The owner's own put is not passed on...
    let source = owner.peer_id();
    let out = r.run(
        Input::Inbound {
            source,
            record: record_of(&owner, 1),
        },
        secs(1),
    );
    assert!(puts_to(&out).is_empty(), "{out:?}");
    // ...a holder's hand-over of a newer copy goes on to the closer peer.
    let source = far[0];
    let out = r.run(
        Input::Inbound {
            source,
            record: record_of(&owner, 2),
        },
        secs(2),
    );
    let puts = puts_to(&out);
    assert_eq!(puts.len(), 1, "{out:?}");
    assert_eq!(puts[0].1, vec![near]);
    // The same copy again is nothing new: not passed on twice.
    let out = r.run(
        Input::Inbound {
            source,
            record: record_of(&owner, 2),
        },
        secs(3),
    );
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn shutdown_puts_offline_to_all_then_stops_at_the_grace_deadline() {
    let mut r = Rig::new(0);
    let owner = Identity::from_seed([3; 32]);
    let near = holding_closest(&mut r, &owner);
    r.publish_at(secs(1));
    let (_, record, quorum) = the_put(r.run(Input::Shutdown, secs(10)));
    assert!(matches!(quorum, Quorum::All));
    assert!(
        !validate(&record.key, &record.value, BASE, None)
            .unwrap()
            .online
    );
    assert_eq!(r.m.poll_timeout(), Some(r.t0 + secs(10) + SHUTDOWN_GRACE));
    // Leaving, we hand nothing over and publish nothing more.
    r.dht.table.push(near);
    assert!(r.run(Input::NewPeer(near), secs(11)).is_empty());
    assert!(r.run(Input::Tick, secs(11)).is_empty());
    assert!(
        r.run(Input::Shutdown, secs(11)).is_empty(),
        "one offline put"
    );
    assert!(!r.m.is_stopped());
    r.run(Input::Tick, secs(10) + SHUTDOWN_GRACE);
    assert!(r.m.is_stopped());
    assert_eq!(r.m.poll_timeout(), None);
}

#[test]
fn shutdown_stops_once_every_holder_took_the_offline_record() {
    let mut r = Rig::new(0);
    r.publish_at(secs(1));
    let (op, _, _) = the_put(r.run(Input::Shutdown, secs(10)));
    assert!(!r.m.is_stopped());
    r.run(Input::PutDone { op, result: Ok(()) }, secs(11));
    assert!(r.m.is_stopped());
}
