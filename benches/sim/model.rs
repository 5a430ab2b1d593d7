//! The simulation core of `benches/sim.rs`, apart from its command line
//! and its clocks so that `tests/sim_determinism.rs` can run it too.
//!
//! Deterministic: every figure it returns is a function of its arguments
//! and seed. Node and message ids come from the seeded generator or from
//! indices, not from the OS; every map and set is a `BTreeMap`/`BTreeSet`,
//! so no iteration follows a hash order; the wall clock only serves as the
//! origin of the simulated one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::KBucketKey;
use roost::backoff::Jitter;
use roost::net::record_handoff::should_hand_over;
use roost::node::mailbox::{Handed, handoff, holders, quorum};
use roost::node::outbox::Outbox;
use roost::node::presence::{Own, OwnStatus, Permission, Publisher, SUBSCRIPTION, Watcher};
use roost::wire::locator::record_key;
use roost::wire::mailbox::{FETCH_FROM, mailbox_key};
use roost::wire::message::MessageId;
use serde_json::{Value, json};

use super::{Rng, pct};

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
        let mut net = Self {
            rng: Rng::new(seed),
            peers: Vec::new(),
            keys: Vec::new(),
            alive: Vec::new(),
            tables: Vec::new(),
            coord: Vec::new(),
        };
        for _ in 0..n {
            net.add();
        }
        net.refresh();
        net
    }

    fn add(&mut self) -> usize {
        let p = peer(&mut self.rng);
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
        let dist = |k: &Key| xor(k, target);
        // (distance, node, state: 0 new, 1 queried ok, 2 failed)
        let mut learned_in: BTreeMap<u32, u32> = BTreeMap::new();
        let mut cands: Vec<(Key, u32, u8)> = self.tables[from]
            .iter()
            .map(|&j| (dist(&self.keys[j as usize]), j, 0u8))
            .collect();
        cands.sort_unstable();
        cands.truncate(K);
        let (mut hops, mut msgs, mut latency) = (0u32, 0u32, 0.0f64);
        let mut asked = Vec::new();
        loop {
            let live: Vec<usize> = cands
                .iter()
                .enumerate()
                .filter(|(_, c)| c.2 != 2)
                .map(|(i, _)| i)
                .take(K)
                .collect();
            let next: Vec<usize> = live
                .into_iter()
                .filter(|&i| cands[i].2 == 0)
                .take(ALPHA)
                .collect();
            if next.is_empty() {
                break;
            }
            hops += 1;
            let mut round = 0.0f64;
            let mut learned = Vec::new();
            for i in next {
                let j = cands[i].1 as usize;
                msgs += 1;
                if self.alive[j] {
                    round = round.max(self.rpc_ms(from, j));
                    cands[i].2 = 1;
                    asked.push(j);
                    let mut theirs: Vec<(Key, u32)> = self.tables[j]
                        .iter()
                        .map(|&x| (dist(&self.keys[x as usize]), x))
                        .collect();
                    theirs.sort_unstable();
                    learned.extend(theirs.into_iter().take(K));
                } else {
                    round = round.max(TIMEOUT_MS);
                    cands[i].2 = 2;
                }
            }
            latency += round;
            let known: BTreeSet<u32> = cands.iter().map(|c| c.1).collect();
            for (d, x) in learned {
                if x as usize != from && !known.contains(&x) {
                    learned_in.entry(x).or_insert(hops);
                    cands.push((d, x, 0));
                }
            }
            cands.sort_unstable();
            cands.dedup_by_key(|c| c.1);
            // Keep the frontier bounded: K live plus the failed ones seen.
            let mut keep = 0;
            cands.retain(|c| {
                if c.2 == 2 {
                    return true;
                }
                keep += 1;
                keep <= 3 * K
            });
        }
        let found: Vec<usize> = cands
            .iter()
            .filter(|c| c.2 == 1)
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

/// A locator followed through the growth experiment.
struct Tracked {
    owner: usize,
    /// The key as the model hashes it.
    key: Key,
    /// The same key as libp2p hashes it, for roost's rule.
    target: KBucketKey<libp2p::kad::RecordKey>,
    holders: Vec<usize>,
}

/// How many of `t`'s holders hand it to newcomer `w` by roost's rule,
/// each knowing its routing table without the nodes that joined after `w`.
fn senders_to(net: &Net, t: &Tracked, w: usize) -> usize {
    let newcomer = KBucketKey::from(net.peers[w]);
    let mut senders = 0;
    for &u in &t.holders {
        let known = || {
            net.tables[u]
                .iter()
                .map(|&x| x as usize)
                .filter(|&x| x <= w)
        };
        // Only a holder that met w and is the closest to the key it knows
        // can send; testing that first spares sorting every holder's table.
        let ours = xor(&net.keys[u], &t.key);
        if known().all(|x| x != w) || known().any(|x| x != w && xor(&net.keys[x], &t.key) < ours) {
            continue;
        }
        let mut table: Vec<(Key, usize)> =
            known().map(|x| (xor(&net.keys[x], &t.key), x)).collect();
        table.sort_unstable();
        let sorted = table.iter().map(|&(_, x)| KBucketKey::from(net.peers[x]));
        if should_hand_over(
            &t.target,
            &KBucketKey::from(net.peers[u]),
            &newcomer,
            sorted,
        ) {
            senders += 1;
        }
    }
    senders
}

/// Locators in a network that grows from `from` nodes to `to`; see the
/// module doc. Tracks the locators of the first `from` nodes and of every
/// 25th later one.
pub fn locator_spread(from: usize, to: usize, seed: u64, hand_over: bool) -> Value {
    let mut net = Net::new(from.min(to), seed);
    let mut tracked: Vec<Tracked> = Vec::new();
    let publish = |net: &mut Net, tracked: &mut Vec<Tracked>, owner: usize| {
        let target = KBucketKey::new(record_key(&net.peers[owner]));
        let mut key = [0u8; 32];
        key.copy_from_slice(target.hashed_bytes());
        // The owner stores its own record too, as libp2p's put does.
        let mut holders = net.lookup(owner, &key).found;
        holders.push(owner);
        tracked.push(Tracked {
            owner,
            key,
            target,
            holders,
        });
    };
    for owner in 0..net.peers.len() {
        publish(&mut net, &mut tracked, owner);
    }
    let mut puts = 0usize;
    while net.peers.len() < to {
        let before = net.peers.len();
        let after = ((before as f64 * 1.05).ceil() as usize).clamp(before + 1, to);
        for _ in before..after {
            net.add();
        }
        net.refresh();
        for w in before..after {
            for t in tracked.iter_mut() {
                let senders = if hand_over { senders_to(&net, t, w) } else { 0 };
                if senders > 0 {
                    t.holders.push(w);
                    puts += senders;
                }
            }
            if w % 25 == 0 {
                publish(&mut net, &mut tracked, w);
            }
        }
    }
    // A lookup from a random node finds a record if any peer it asked
    // holds it: roost's find takes the first valid record any peer returns.
    let (mut found, mut early_found, mut early) = (0usize, 0usize, 0usize);
    let n = net.peers.len();
    for t in &tracked {
        let a = net.rng.below(n);
        let l = net.lookup(a, &t.key);
        let ok = l.asked.iter().any(|p| t.holders.contains(p));
        found += usize::from(ok);
        if t.owner < from {
            early += 1;
            early_found += usize::from(ok);
        }
    }
    let pct1 = |a: usize, b: usize| (a as f64 * 1000.0 / b.max(1) as f64).round() / 10.0;
    json!({
        "experiment": "locators_in_a_growing_network",
        "hand_over_on_join": hand_over,
        "nodes_from": from, "nodes_to": n,
        "locators": tracked.len(), "found_pct": pct1(found, tracked.len()),
        "early_locators": early, "early_found_pct": pct1(early_found, early),
        // Puts that handed a tracked locator on, per locator, over the
        // whole growth.
        "hand_overs_per_locator": (puts as f64 / tracked.len().max(1) as f64 * 10.0).round() / 10.0,
        "joins": n - from.min(to),
    })
}

struct Item {
    id: MessageId,
    recipient: usize,
}

/// Who holds which copies: `held[node]` = set of (recipient, message id).
type Held = BTreeMap<usize, BTreeSet<(usize, MessageId)>>;

/// Per mailbox, the R closest peers its last deposit or hand-off lookup
/// found, and the reverse. Between routing-table refreshes a holder's
/// periodic lookup can only come out differently when one of these has
/// left, so the holders of exactly those mailboxes run their pass in a
/// step: the outcome of roost's full pass every step, at a fraction of
/// the lookups.
#[derive(Default)]
struct Tops {
    of: BTreeMap<usize, Vec<usize>>,
    watching: BTreeMap<usize, BTreeSet<usize>>,
}

impl Tops {
    fn set(&mut self, recipient: usize, top: Vec<usize>) {
        for old in self.of.get(&recipient).into_iter().flatten() {
            if let Some(w) = self.watching.get_mut(old) {
                w.remove(&recipient);
            }
        }
        for &t in &top {
            self.watching.entry(t).or_default().insert(recipient);
        }
        self.of.insert(recipient, top);
    }

    /// Mailboxes whose top R included `node`.
    fn left(&mut self, node: usize) -> BTreeSet<usize> {
        self.watching.remove(&node).unwrap_or_default()
    }
}

/// Holders run roost's hand-off for the given (holder, recipient) pairs:
/// a lookup of the mailbox key on their (possibly stale) routing table,
/// copies to the current R closest they have not handed to yet, and letting
/// go once outranked and all confirmed. Returns the copies made.
fn hand_off(
    net: &mut Net,
    held: &mut Held,
    handed: &mut BTreeMap<(usize, usize), Handed<MessageId>>,
    tops: &mut Tops,
    pairs: Vec<(usize, usize)>,
) -> usize {
    let mut copies = 0;
    for (h, r) in pairs {
        if !net.alive[h] {
            continue;
        }
        let ids: Vec<MessageId> = held
            .get(&h)
            .map(|s| {
                s.iter()
                    .filter(|(rr, _)| *rr == r)
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            continue;
        }
        let key = mailbox_key(&net.peers[r]);
        let l = net.lookup(h, &key_of_bytes(&key));
        let idx: BTreeMap<PeerId, usize> = l.found.iter().map(|&i| (net.peers[i], i)).collect();
        let top = holders(
            &key,
            l.found.iter().map(|&i| net.peers[i]),
            &[net.peers[r]],
            R,
        );
        tops.set(r, top.iter().map(|p| idx[p]).collect());
        let record = handed.entry((h, r)).or_default();
        let plan = handoff(
            &key,
            l.found.iter().map(|&i| net.peers[i]),
            net.peers[h],
            net.peers[r],
            R,
            &record.holding(&ids),
        );
        let mut confirmed = Vec::new();
        for t in &plan.targets {
            let ti = idx[t];
            if net.alive[ti] {
                for id in &ids {
                    held.entry(ti).or_default().insert((r, *id));
                    copies += 1;
                }
                confirmed.push(*t);
            }
        }
        record.ranked(&plan.ranking);
        record.gave(&confirmed, &ids);
        if !plan.keep
            && confirmed.len() == plan.targets.len()
            && let Some(set) = held.get_mut(&h)
        {
            set.retain(|(rr, _)| *rr != r);
        }
    }
    copies
}

/// Offline delivery under churn: deposit, then `hours` of departures and
/// arrivals, then the recipients come back and fetch.
///
/// Time runs in steps of `every` (roost's periodic hand-off, 5 min by
/// default): in each step some nodes leave for good and as many join;
/// the remaining holders of any mailbox that lost a holder hand off (as
/// their periodic pass would find); senders retry what their outbox says is
/// due. Once an hour, routing tables are refreshed and every holder runs a
/// full pass (reacting to the newcomers). Lookups in between run on stale
/// tables and time out on departed nodes.
pub fn offline_delivery(
    net: &mut Net,
    messages: usize,
    churn: f64,
    hours: usize,
    every: Duration,
) -> Value {
    let n0 = net.peers.len();
    let t0 = Instant::now(); // the simulated clock's origin
    let steps_per_hour = (3600 / every.as_secs().max(1)).max(1) as usize;
    let total_steps = hours * steps_per_hour;
    // Recipients go offline (they are away, not gone); senders are live.
    let mut msgs = Vec::new();
    let (mut away, mut senders) = (BTreeSet::new(), BTreeSet::new());
    while msgs.len() < messages {
        let (s, r) = (net.rng.below(n0), net.rng.below(n0));
        // Senders and recipients are different people.
        if s == r || away.contains(&s) || senders.contains(&r) || !net.alive[s] {
            continue;
        }
        away.insert(r);
        senders.insert(s);
        // Ids from the message's index: unique, and the same in every run.
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&(msgs.len() as u64).to_be_bytes());
        msgs.push((
            s,
            Item {
                id: MessageId(id),
                recipient: r,
            },
        ));
    }
    for &r in &away {
        net.alive[r] = false;
    }
    let mut held: Held = BTreeMap::new();
    let mut outboxes: BTreeMap<usize, Outbox> = BTreeMap::new();
    let mut to_of: BTreeMap<MessageId, (usize, usize)> = BTreeMap::new();
    for (s, it) in &msgs {
        outboxes
            .entry(*s)
            // Seeded, so the retries' jitter is the same every run.
            .or_insert_with(|| Outbox::with_jitter(Jitter::seeded(*s as u64)))
            .enqueue(it.id, net.peers[it.recipient], t0);
        to_of.insert(it.id, (*s, it.recipient));
    }
    let mut handed: BTreeMap<(usize, usize), Handed<MessageId>> = BTreeMap::new();
    let mut tops = Tops::default();
    let (mut deposits, mut handoff_copies, mut stored_first) = (0usize, 0usize, 0usize);
    let mut gone_total = 0usize;
    let leave_by =
        |k: usize| ((n0 as f64) * churn * k as f64 / total_steps as f64).round() as usize;
    for k in 0..=total_steps {
        let now = t0 + every * k as u32;
        // Senders: whatever their outbox says is due is (re)deposited.
        let senders: Vec<usize> = outboxes.keys().copied().collect();
        for s in senders {
            if !net.alive[s] {
                continue;
            }
            let due = outboxes
                .get_mut(&s)
                .map(|o| o.take_due(now))
                .unwrap_or_default();
            for (_, ids) in due {
                for id in ids {
                    let (_, r) = to_of[&id];
                    let key = mailbox_key(&net.peers[r]);
                    let l = net.lookup(s, &key_of_bytes(&key));
                    let cands: Vec<PeerId> = l.found.iter().map(|&i| net.peers[i]).collect();
                    let chosen = holders(&key, cands, &[net.peers[s], net.peers[r]], R);
                    let idx: BTreeMap<PeerId, usize> =
                        l.found.iter().map(|&i| (net.peers[i], i)).collect();
                    tops.set(r, chosen.iter().map(|h| idx[h]).collect());
                    let mut ok = 0;
                    for h in &chosen {
                        let hi = idx[h];
                        deposits += 1;
                        if net.alive[hi] {
                            held.entry(hi).or_default().insert((r, id));
                            ok += 1;
                        }
                    }
                    let o = outboxes.get_mut(&s).expect("sender's outbox");
                    if !chosen.is_empty() && ok >= quorum(chosen.len(), QUORUM) {
                        o.parked(&id, now);
                        if k == 0 {
                            stored_first += 1;
                        }
                    } else {
                        o.failed(&id, now);
                    }
                }
            }
        }
        if k == total_steps {
            break;
        }
        // Churn: some live nodes leave for good (never the away recipients,
        // who are not live), the same number of new nodes join.
        let leaving = leave_by(k + 1) - leave_by(k);
        let mut affected = BTreeSet::new();
        let mut gone = 0;
        while gone < leaving {
            let i = net.rng.below(net.peers.len());
            if net.alive[i] && !away.contains(&i) {
                net.alive[i] = false;
                if let Some(items) = held.remove(&i) {
                    affected.extend(items.into_iter().map(|(r, _)| r));
                }
                affected.extend(tops.left(i));
                gone += 1;
            }
        }
        gone_total += gone;
        for _ in 0..leaving {
            net.add();
        }
        let hourly = (k + 1) % steps_per_hour == 0;
        if hourly {
            // Newcomers enter routing tables; every holder reacts.
            net.refresh();
        }
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (&h, items) in &held {
            let mut rs: Vec<usize> = items
                .iter()
                .map(|(r, _)| *r)
                .filter(|r| hourly || affected.contains(r))
                .collect();
            rs.sort_unstable();
            rs.dedup();
            pairs.extend(rs.into_iter().map(|r| (h, r)));
        }
        handoff_copies += hand_off(net, &mut held, &mut handed, &mut tops, pairs);
    }
    // Recipients come back and fetch from their mailbox's neighbourhood.
    for &r in &away {
        net.alive[r] = true;
    }
    net.refresh();
    let (mut delivered, mut lost_no_copy) = (0, 0);
    for (_, it) in &msgs {
        let r = it.recipient;
        let key = mailbox_key(&net.peers[r]);
        let l = net.lookup(r, &key_of_bytes(&key));
        if l.found
            .iter()
            .any(|f| held.get(f).is_some_and(|s| s.contains(&(r, it.id))))
        {
            delivered += 1;
        } else if !held.values().any(|s| s.contains(&(r, it.id))) {
            lost_no_copy += 1;
        }
    }
    let copies: usize = held.values().map(|s| s.len()).sum();
    json!({
        "experiment": "offline_delivery",
        "nodes": n0,
        "messages": messages,
        "churn_fraction_left": (gone_total as f64 / n0 as f64 * 1000.0).round() / 1000.0,
        "hours": hours,
        "handoff_every_s": every.as_secs(),
        "stored_at_first_attempt": stored_first,
        "delivered": delivered,
        "lost": messages - delivered,
        // Lost because no copy was left anywhere (the rest: copies
        // left on peers outside the recipient's lookup result).
        "lost_no_copy_left": lost_no_copy,
        "success_percent": (delivered as f64 / messages as f64 * 1e4).round() / 100.0,
        "deposit_rpcs": deposits,
        "handoff_copies": handoff_copies,
        "copies_left_at_end_per_message": (copies as f64 / messages as f64 * 100.0).round() / 100.0,
    })
}

/// What one node sends in a simulated hour, counted where it is sent.
#[derive(Default)]
struct Tally {
    subscribe_renewals: usize,
    subscribe_answers: usize,
    notifies: usize,
    notifies_received: usize,
    mailbox_poll: usize,
    handoff: usize,
    locator: usize,
    refresh: usize,
}

/// Kademlia's bucket refresh of node `me`, as libp2p's periodic bootstrap
/// runs it: a lookup of its own key, then one for a random key in every
/// non-empty bucket of its routing table. Returns the RPCs sent.
fn bucket_refresh(net: &mut Net, me: usize) -> usize {
    let own = net.keys[me];
    let buckets: BTreeSet<usize> = net.tables[me]
        .iter()
        .map(|&x| {
            let d = xor(&own, &net.keys[x as usize]);
            d.iter()
                .position(|&b| b != 0)
                .map_or(256, |i| i * 8 + d[i].leading_zeros() as usize)
        })
        .collect();
    let mut rpcs = net.lookup(me, &own).msgs as usize;
    for b in buckets {
        let (lo, hi) = prefix_range(&own, b, true);
        let mut target = lo;
        for (t, (l, h)) in target.iter_mut().zip(lo.iter().zip(&hi)) {
            *t = l | (net.rng.next() as u8 & (l ^ h));
        }
        rpcs += net.lookup(me, &target).msgs as usize;
    }
    rpcs
}

/// Presence and background traffic of one live node of `net` over an hour,
/// from roost's own state machines on the simulated clock: its presence
/// publisher and watcher and those of its `buddies` (who change state as
/// often as it does), its mailbox poll with the hand-off pass over the
/// `held` mailboxes it holds for others (every 5 min), its locator
/// republish (every 30 min, half the locator's lifetime) and the hourly
/// bucket refresh, each lookup run on the model. Every figure is a count of
/// requests and answers as the simulation sends them.
pub fn per_node_traffic(
    net: &mut Net,
    buddies: usize,
    changes_per_hour: u32,
    held: usize,
) -> Value {
    const POLL_S: u32 = 300;
    const REPUBLISH_S: u32 = 1800;
    const REFRESH_S: u32 = 3600;
    let t0 = Instant::now(); // the simulated clock's origin
    let live = |net: &mut Net, not: &[usize]| loop {
        let i = net.rng.below(net.peers.len());
        if net.alive[i] && !not.contains(&i) {
            break i;
        }
    };
    let me = live(net, &[]);
    let mut others = vec![me];
    for _ in 0..held {
        let o = live(net, &others);
        others.push(o);
    }
    others.remove(0);
    let me_id = net.peers[me];
    let mut rng = Rng::new(99);
    let ids: Vec<PeerId> = (0..buddies).map(|_| peer(&mut rng)).collect();
    let mut publisher = Publisher::new(Own::default(), None, t0);
    let mut watcher = Watcher::new();
    // Each buddy's publisher and its watcher of us.
    let mut theirs: Vec<(Publisher, Watcher)> = ids
        .iter()
        .map(|_| {
            let mut w = Watcher::new();
            w.add(me_id, t0);
            (Publisher::new(Own::default(), None, t0), w)
        })
        .collect();
    for p in &ids {
        watcher.add(*p, t0);
    }
    let mut sent = Tally::default();
    let mut now = t0;
    for s in 1..=3600u32 {
        now += Duration::from_secs(1);
        // We renew our subscriptions; each buddy answers.
        for p in watcher.due(now) {
            sent.subscribe_renewals += 1;
            let b = ids.iter().position(|x| *x == p).expect("a buddy");
            let info = theirs[b]
                .0
                .subscribe(me_id, Permission::Allowed, SUBSCRIPTION, now)
                .expect("allowed");
            watcher.subscribed(&p, info, now);
        }
        // Our buddies renew theirs to us; we answer each.
        for (b, (_, w)) in theirs.iter_mut().enumerate() {
            for _ in w.due(now) {
                let info = publisher
                    .subscribe(ids[b], Permission::Allowed, SUBSCRIPTION, now)
                    .expect("allowed");
                sent.subscribe_answers += 1;
                w.subscribed(&me_id, info, now);
            }
        }
        let every = 3600 / changes_per_hour.max(1);
        if changes_per_hour > 0 && s.is_multiple_of(every) {
            let status = if (s / every).is_multiple_of(2) {
                OwnStatus::Online
            } else {
                OwnStatus::Away
            };
            let own = Own {
                status,
                ..Own::default()
            };
            publisher.set_own(own.clone(), now);
            sent.notifies += publisher.notifications(|_| Permission::Allowed).len();
            for (p, _) in theirs.iter_mut() {
                p.set_own(own.clone(), now);
                sent.notifies_received += p
                    .notifications(|_| Permission::Allowed)
                    .iter()
                    .filter(|(to, _)| *to == me_id)
                    .count();
            }
        }
        publisher.tick(now);
        for (p, _) in theirs.iter_mut() {
            p.tick(now);
        }
        if s.is_multiple_of(POLL_S) {
            // The mailbox poll: a lookup of our mailbox key, then a fetch
            // from each peer roost's poll picks among those found.
            let key = mailbox_key(&me_id);
            let l = net.lookup(me, &key_of_bytes(&key));
            sent.mailbox_poll += l.msgs as usize;
            let found: Vec<PeerId> = l.found.iter().map(|&i| net.peers[i]).collect();
            sent.mailbox_poll += holders(&key, found, &[me_id], R.max(FETCH_FROM)).len();
            // The hand-off pass: a lookup per mailbox held for others.
            for &r in &others {
                let key = mailbox_key(&net.peers[r]);
                sent.handoff += net.lookup(me, &key_of_bytes(&key)).msgs as usize;
            }
        }
        if s.is_multiple_of(REPUBLISH_S) {
            // A lookup of our locator's key, then a put to each peer found.
            let key = key_of_bytes(&record_key(&me_id).to_vec());
            let l = net.lookup(me, &key);
            sent.locator += l.msgs as usize + l.found.len();
        }
        if s.is_multiple_of(REFRESH_S) {
            sent.refresh += bucket_refresh(net, me);
        }
    }
    let total = sent.subscribe_renewals
        + sent.subscribe_answers
        + sent.notifies
        + sent.mailbox_poll
        + sent.handoff
        + sent.locator
        + sent.refresh;
    json!({
        "experiment": "per_node_per_hour",
        "nodes": net.alive.iter().filter(|a| **a).count(),
        "buddies": buddies,
        "presence_changes": changes_per_hour,
        "mailboxes_held": held,
        "subscribe_renewals_sent": sent.subscribe_renewals,
        "subscribe_answers_sent": sent.subscribe_answers,
        "notifies_sent": sent.notifies,
        "notifies_received": sent.notifies_received,
        "mailbox_poll_rpcs": sent.mailbox_poll,
        "handoff_pass_rpcs": sent.handoff,
        "locator_republish_rpcs": sent.locator,
        "dht_refresh_rpcs": sent.refresh,
        "total_sent": total,
    })
}
