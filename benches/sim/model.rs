//! The simulation core of `benches/sim.rs`, apart from its command line
//! and its clocks so that `tests/sim_determinism.rs` can run it too: the
//! modelled Kademlia network ([`Net`]: routing tables and iterative
//! lookups) here, the experiments in `locators.rs` (roost's locator
//! machine in a growing network), `mailboxes.rs` (offline delivery under
//! churn, its holders and recipients roost's mailbox machines run by
//! `holding.rs`) and `traffic.rs` (what one node sends in an hour).
//!
//! Deterministic: every figure it returns is a function of its arguments
//! and seed. Node and message ids come from the seeded generator or from
//! indices, not from the OS; every map and set is a `BTreeMap`/`BTreeSet`,
//! so no iteration follows a hash order; the wall clock only serves as the
//! origin of the simulated one.

use std::collections::{BTreeMap, BTreeSet};

use libp2p::PeerId;
use libp2p::kad::KBucketKey;
use roost::identity::Identity;
use serde_json::{Value, json};

use super::{Rng, pct};

#[path = "holding.rs"]
mod holding;
#[path = "locators.rs"]
mod locators;
#[path = "mailboxes.rs"]
mod mailboxes;
#[path = "traffic.rs"]
mod traffic;

pub use locators::locator_spread;
pub use mailboxes::offline_delivery;
pub use traffic::per_node_traffic;

const K: usize = 20;
const ALPHA: usize = 3;
const R: usize = 3;
const QUORUM: usize = 2;
const TIMEOUT_MS: f64 = 1000.0;

/// A Kademlia key: the SHA-256 of a peer ID or record key, as libp2p hashes it.
type Key = [u8; 32];

fn key_of_peer(p: &PeerId) -> Key {
    let k = KBucketKey::from(*p);
    let mut out = [0u8; 32];
    out.copy_from_slice(k.hashed_bytes());
    out
}

fn key_of_bytes(b: &[u8]) -> Key {
    let k = KBucketKey::new(b.to_vec());
    let mut out = [0u8; 32];
    out.copy_from_slice(k.hashed_bytes());
    out
}

fn xor(a: &Key, b: &Key) -> Key {
    let mut d = [0u8; 32];
    for i in 0..32 {
        d[i] = a[i] ^ b[i];
    }
    d
}

/// The key range sharing the first `b` bits of `k` (and, if `flip`, with
/// bit `b` inverted: Kademlia's bucket `b` of `k`).
fn prefix_range(k: &Key, b: usize, flip: bool) -> (Key, Key) {
    let (byte, bit) = (b / 8, 7 - (b % 8));
    let mut lo = *k;
    if flip {
        lo[byte] ^= 1 << bit;
    }
    // Clear bit `b` (unless flipping keeps it) and everything after it.
    let below: u8 = ((1u16 << bit) - 1) as u8;
    let keep_b = if flip { 1 << bit } else { 0 };
    lo[byte] &= !below & (!(1u8 << bit) | keep_b);
    let mut hi = lo;
    hi[byte] |= below | if flip { 0 } else { 1 << bit };
    for x in lo.iter_mut().skip(byte + 1) {
        *x = 0;
    }
    for x in hi.iter_mut().skip(byte + 1) {
        *x = 0xff;
    }
    (lo, hi)
}

/// A deterministic PeerId from the generator (an identity multihash of
/// random bytes: fine for routing, which only hashes the ID).
fn peer(rng: &mut Rng) -> PeerId {
    let mut b = [0u8; 32];
    for chunk in b.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_be_bytes());
    }
    let mh = libp2p::multihash::Multihash::<64>::wrap(0, &b).expect("32 bytes fit");
    PeerId::from_multihash(mh).expect("identity multihash")
}

pub struct Net {
    rng: Rng,
    /// Each node's identity, in a net built [`Net::signed`] (empty
    /// otherwise): the locator machines sign with it.
    idents: Vec<Identity>,
    peers: Vec<PeerId>,
    keys: Vec<Key>,
    alive: Vec<bool>,
    /// Per node: up to K entries per bucket, as of the last refresh.
    tables: Vec<Vec<u32>>,
    /// Per-node RTT coordinate (ms): RPC latency = |a - b| + 10 ms.
    coord: Vec<f64>,
}

struct Lookup {
    found: Vec<usize>,
    /// Every node that answered, in the order asked.
    asked: Vec<usize>,
    /// Rounds until the closest node of the final result was first learned.
    hops: u32,
    /// Rounds until the lookup ended (the K closest all queried).
    rounds: u32,
    msgs: u32,
    latency_ms: f64,
}

impl Net {
    pub fn new(n: usize, seed: u64) -> Self {
        Self::build(n, seed, false)
    }

    /// A net whose nodes have ed25519 identities (from the seeded
    /// generator), so that their locator records can be signed and checked.
    pub fn signed(n: usize, seed: u64) -> Self {
        Self::build(n, seed, true)
    }

    fn build(n: usize, seed: u64, signed: bool) -> Self {
        let mut net = Self {
            rng: Rng::new(seed),
            idents: Vec::new(),
            peers: Vec::new(),
            keys: Vec::new(),
            alive: Vec::new(),
            tables: Vec::new(),
            coord: Vec::new(),
        };
        for _ in 0..n {
            if signed {
                net.add_signed();
            } else {
                net.add();
            }
        }
        net.refresh();
        net
    }

    fn add(&mut self) -> usize {
        let p = peer(&mut self.rng);
        self.push(p)
    }

    /// Adds a node with an identity of its own.
    fn add_signed(&mut self) -> usize {
        let mut seed = [0u8; 32];
        for chunk in seed.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next().to_be_bytes());
        }
        let id = Identity::from_seed(seed);
        let p = id.peer_id();
        self.idents.push(id);
        self.push(p)
    }

    fn push(&mut self, p: PeerId) -> usize {
        self.keys.push(key_of_peer(&p));
        self.peers.push(p);
        self.alive.push(true);
        self.tables.push(Vec::new());
        self.coord.push(self.rng.unit() * 140.0);
        self.peers.len() - 1
    }

    fn rpc_ms(&mut self, a: usize, b: usize) -> f64 {
        (self.coord[a] - self.coord[b]).abs() + 10.0 + self.rng.unit() * 5.0
    }

    /// Rebuilds every live node's routing table from the live population,
    /// as Kademlia's bucket refreshes would (sampling K per bucket).
    fn refresh(&mut self) {
        let mut sorted: Vec<(Key, u32)> = (0..self.peers.len())
            .filter(|&i| self.alive[i])
            .map(|i| (self.keys[i], i as u32))
            .collect();
        sorted.sort_unstable();
        let count = |lo: &Key, hi: &Key| {
            let s = sorted.partition_point(|(x, _)| x < lo);
            let e = sorted.partition_point(|(x, _)| x <= hi);
            (s, e)
        };
        for i in 0..self.peers.len() {
            if !self.alive[i] {
                continue;
            }
            let me = self.keys[i];
            let mut table = Vec::new();
            for b in 0..256usize {
                // The subtree sharing at least b bits with me: once only I
                // am in it, every deeper bucket is empty.
                let (lo, hi) = prefix_range(&me, b, false);
                let (s, e) = count(&lo, &hi);
                if e - s <= 1 {
                    break;
                }
                // Bucket b: the same b bits, then the other branch.
                let (lo, hi) = prefix_range(&me, b, true);
                let (s, e) = count(&lo, &hi);
                let n = e - s;
                if n <= K {
                    table.extend(sorted[s..e].iter().map(|x| x.1));
                } else {
                    for _ in 0..K {
                        table.push(sorted[s + self.rng.below(n)].1);
                    }
                }
            }
            table.sort_unstable();
            table.dedup();
            self.tables[i] = table;
        }
    }

    /// An iterative Kademlia lookup from `from` for `target`.
    fn lookup(&mut self, from: usize, target: &Key) -> Lookup {
        let mut learned_in: BTreeMap<u32, u32> = BTreeMap::new();
        let mut cands: Vec<Cand> = self.tables[from]
            .iter()
            .map(|&j| (xor(&self.keys[j as usize], target), j, NEW))
            .collect();
        cands.sort_unstable();
        cands.truncate(K);
        let (mut hops, mut msgs, mut latency) = (0u32, 0u32, 0.0f64);
        let mut asked = Vec::new();
        loop {
            let next = next_round(&cands);
            if next.is_empty() {
                break;
            }
            hops += 1;
            msgs += next.len() as u32;
            let (round, learned) = self.ask(from, target, &mut cands, next, &mut asked);
            latency += round;
            merge(&mut cands, learned, from, hops, &mut learned_in);
        }
        let found: Vec<usize> = cands
            .iter()
            .filter(|c| c.2 == ANSWERED)
            .map(|c| c.1 as usize)
            .take(K)
            .collect();
        let to_closest = found
            .first()
            .map_or(0, |f| learned_in.get(&(*f as u32)).copied().unwrap_or(0));
        Lookup {
            found,
            asked,
            hops: to_closest,
            rounds: hops,
            msgs,
            latency_ms: latency,
        }
    }

    /// One round of a lookup from `from`: asks the candidates at `next`,
    /// marks them answered or failed (a departed node times out), and
    /// returns the round's latency and the K closest each answer named.
    fn ask(
        &mut self,
        from: usize,
        target: &Key,
        cands: &mut [Cand],
        next: Vec<usize>,
        asked: &mut Vec<usize>,
    ) -> (f64, Vec<(Key, u32)>) {
        let mut round = 0.0f64;
        let mut learned = Vec::new();
        for i in next {
            let j = cands[i].1 as usize;
            if self.alive[j] {
                round = round.max(self.rpc_ms(from, j));
                cands[i].2 = ANSWERED;
                asked.push(j);
                let mut theirs: Vec<(Key, u32)> = self.tables[j]
                    .iter()
                    .map(|&x| (xor(&self.keys[x as usize], target), x))
                    .collect();
                theirs.sort_unstable();
                learned.extend(theirs.into_iter().take(K));
            } else {
                round = round.max(TIMEOUT_MS);
                cands[i].2 = FAILED;
            }
        }
        (round, learned)
    }
}

/// A lookup candidate: (distance to the target, node, state).
type Cand = (Key, u32, u8);
/// Candidate states: not asked yet, answered, failed.
const NEW: u8 = 0;
const ANSWERED: u8 = 1;
const FAILED: u8 = 2;

/// The next round's candidates: the first [`ALPHA`] not yet asked among
/// the K closest that have not failed.
fn next_round(cands: &[Cand]) -> Vec<usize> {
    cands
        .iter()
        .enumerate()
        .filter(|(_, c)| c.2 != FAILED)
        .take(K)
        .filter(|(_, c)| c.2 == NEW)
        .map(|(i, _)| i)
        .take(ALPHA)
        .collect()
}

/// Adds what a round learned to the candidates (noting the round in which
/// each node was first learned), closest first, the frontier bounded to
/// 3K live plus the failed ones seen.
fn merge(
    cands: &mut Vec<Cand>,
    learned: Vec<(Key, u32)>,
    from: usize,
    hops: u32,
    learned_in: &mut BTreeMap<u32, u32>,
) {
    let known: BTreeSet<u32> = cands.iter().map(|c| c.1).collect();
    for (d, x) in learned {
        if x as usize != from && !known.contains(&x) {
            learned_in.entry(x).or_insert(hops);
            cands.push((d, x, NEW));
        }
    }
    cands.sort_unstable();
    cands.dedup_by_key(|c| c.1);
    let mut keep = 0;
    cands.retain(|c| {
        if c.2 == FAILED {
            return true;
        }
        keep += 1;
        keep <= 3 * K
    });
}

/// Lookup hops and latency between random live nodes.
pub fn lookups(net: &mut Net, n: usize) -> Value {
    let (mut hops, mut lat, mut msgs, mut rounds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let total = net.peers.len();
    for _ in 0..n {
        let (a, b) = (net.rng.below(total), net.rng.below(total));
        let target = net.keys[b];
        let l = net.lookup(a, &target);
        hops.push(l.hops as f64);
        rounds.push(l.rounds as f64);
        lat.push(l.latency_ms);
        msgs.push(l.msgs as f64);
    }
    let mean_msgs = msgs.iter().sum::<f64>() / msgs.len() as f64;
    json!({
        "experiment": "lookup",
        "nodes": total,
        "lookups": n,
        "hops_to_closest_p50": pct(&mut hops, 0.5), "hops_to_closest_p99": pct(&mut hops, 0.99), "hops_to_closest_max": pct(&mut hops, 1.0),
        "rounds_p50": pct(&mut rounds, 0.5), "rounds_max": pct(&mut rounds, 1.0),
        "latency_ms_p50": pct(&mut lat, 0.5).round(), "latency_ms_p99": pct(&mut lat, 0.99).round(),
        "rpcs_mean": (mean_msgs * 10.0).round() / 10.0,
        "log2_nodes": (total as f64).log2().round(),
    })
}
