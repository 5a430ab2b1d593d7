//! `cargo bench --bench sim [-- --nodes N --seed S --messages M]`: a
//! deterministic discrete-event simulation of roost at a scale no test
//! machine can host (10 000 nodes by default; 100 000 run here).
//!
//! What is simulated and what is real:
//! - Kademlia routing and lookups are *modelled* here (k-buckets of K = 20,
//!   iterative lookups with α = 3, per-RPC latency, 1 s timeouts on departed
//!   nodes, routing tables refreshed once per churn wave, so lookups run on
//!   stale tables) — libp2p's Kademlia is not sans-IO, so it cannot run here.
//! - Mailbox placement, quorum and hand-off are roost's own pure functions
//!   (`node::mailbox::{holders, quorum, handoff}`), the sender's retries are
//!   roost's `node::outbox::Outbox`, and presence traffic comes from roost's
//!   `node::presence::{Publisher, Watcher}` driven by the simulated clock.
//!
//! - Which held locator a newly met peer is given is roost's
//!   `node::record_handoff::should_hand_over`.
//!
//! Locators in a growing network: `--grow-from` nodes (40) publish, then
//! the network grows to `--grow-to` (`--nodes`, at most 10 000) in waves of 5 %, routing tables refreshed
//! after each wave (a node knows a newcomer once the refresh puts it in its
//! table, and never one that joined after the newcomer being handed to). Every
//! joining node publishes its own locator; whether lookups at the end find
//! the early nodes' locators is measured with and without the hand-off on
//! join. Growth is taken to be faster than half a locator's lifetime, so no
//! owner republishes in between (the 1000-node run grows in 12 minutes).
//!
//! Churn runs over `--hours` simulated hours (10) in steps of
//! `--handoff-s` seconds (300, roost's periodic hand-off pass): 30 % of the
//! nodes leave for good and as many new ones join. In each step the holders
//! of every mailbox that lost a holder or one of its R closest peers run
//! roost's hand-off, and senders retry per their outbox; every hour routing
//! tables are refreshed and every holder runs a pass. A message is lost
//! only if every copy's holder leaves within one step while its sender is
//! gone too, or if copies drift out of the recipient's lookup result.
//!
//! Same seed, same output. Prints one JSON line per experiment.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::KBucketKey;
use roost::node::mailbox::{Handed, handoff, holders, quorum};
use roost::node::outbox::Outbox;
use roost::node::presence::{Own, OwnStatus, Permission, Publisher, SUBSCRIPTION, Watcher};
use roost::node::record_handoff::should_hand_over;
use roost::wire::locator::record_key;
use roost::wire::mailbox::mailbox_key;
use roost::wire::message::MessageId;
use serde_json::json;

mod common;
use common::{Rng, arg, pct};

const K: usize = 20;
const ALPHA: usize = 3;
const R: usize = 3;
const QUORUM: usize = 2;
const TIMEOUT_MS: f64 = 1000.0;

/// xorshift64*: tiny, seeded, reproducible.
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

struct Net {
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
    fn new(n: usize, seed: u64) -> Self {
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
        let mut learned_in: HashMap<u32, u32> = HashMap::new();
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
            let known: HashSet<u32> = cands.iter().map(|c| c.1).collect();
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
fn lookups(net: &mut Net, n: usize) -> f64 {
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
    println!(
        "{}",
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
    );
    mean_msgs
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
fn locator_spread(from: usize, to: usize, seed: u64, hand_over: bool) {
    let started = Instant::now();
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
    println!(
        "{}",
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
            "s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    );
}

struct Item {
    id: MessageId,
    recipient: usize,
}

/// Who holds which copies: `held[node]` = set of (recipient, message id).
type Held = HashMap<usize, HashSet<(usize, MessageId)>>;

/// Per mailbox, the R closest peers its last deposit or hand-off lookup
/// found, and the reverse. Between routing-table refreshes a holder's
/// periodic lookup can only come out differently when one of these has
/// left, so the holders of exactly those mailboxes run their pass in a
/// step: the outcome of roost's full pass every step, at a fraction of
/// the lookups.
#[derive(Default)]
struct Tops {
    of: HashMap<usize, Vec<usize>>,
    watching: HashMap<usize, HashSet<usize>>,
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
    fn left(&mut self, node: usize) -> HashSet<usize> {
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
    handed: &mut HashMap<(usize, usize), Handed<MessageId>>,
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
        let idx: HashMap<PeerId, usize> = l.found.iter().map(|&i| (net.peers[i], i)).collect();
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
fn offline_delivery(net: &mut Net, messages: usize, churn: f64, hours: usize, every: Duration) {
    let n0 = net.peers.len();
    let t0 = Instant::now(); // the simulated clock's origin
    let steps_per_hour = (3600 / every.as_secs().max(1)).max(1) as usize;
    let total_steps = hours * steps_per_hour;
    // Recipients go offline (they are away, not gone); senders are live.
    let mut msgs = Vec::new();
    let (mut away, mut senders) = (HashSet::new(), HashSet::new());
    while msgs.len() < messages {
        let (s, r) = (net.rng.below(n0), net.rng.below(n0));
        // Senders and recipients are different people.
        if s == r || away.contains(&s) || senders.contains(&r) || !net.alive[s] {
            continue;
        }
        away.insert(r);
        senders.insert(s);
        msgs.push((
            s,
            Item {
                id: MessageId::random(),
                recipient: r,
            },
        ));
    }
    for &r in &away {
        net.alive[r] = false;
    }
    let mut held: Held = HashMap::new();
    let mut outboxes: HashMap<usize, Outbox> = HashMap::new();
    let mut to_of: HashMap<MessageId, (usize, usize)> = HashMap::new();
    for (s, it) in &msgs {
        outboxes
            .entry(*s)
            .or_default()
            .enqueue(it.id, net.peers[it.recipient], t0);
        to_of.insert(it.id, (*s, it.recipient));
    }
    let mut handed: HashMap<(usize, usize), Handed<MessageId>> = HashMap::new();
    let mut tops = Tops::default();
    let (mut deposits, mut handoff_copies, mut stored_first) = (0usize, 0usize, 0usize);
    let mut gone_total = 0usize;
    let leave_by =
        |k: usize| ((n0 as f64) * churn * k as f64 / total_steps as f64).round() as usize;
    for k in 0..=total_steps {
        let now = t0 + every * k as u32;
        // Senders: whatever their outbox says is due is (re)deposited.
        let mut senders: Vec<usize> = outboxes.keys().copied().collect();
        senders.sort_unstable(); // HashMap order is not seeded
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
                    let idx: HashMap<PeerId, usize> =
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
        let mut affected = HashSet::new();
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
        pairs.sort_unstable(); // HashMap order is not seeded: keep runs reproducible
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
    println!(
        "{}",
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
    );
}

/// Presence and background traffic of one node per hour, from roost's own
/// state machines on the simulated clock, plus the DHT work its timers cause.
fn per_node_traffic(lookup_rpcs: f64, buddies: usize, changes_per_hour: u32, held: f64) {
    let t0 = Instant::now();
    let mut rng = Rng::new(99);
    let ids: Vec<PeerId> = (0..buddies).map(|_| peer(&mut rng)).collect();
    let mut publisher = Publisher::new(Own::default(), None, t0);
    let mut watcher = Watcher::new();
    for p in &ids {
        watcher.add(*p, t0);
        publisher.subscribe(*p, Permission::Allowed, SUBSCRIPTION, t0);
    }
    let (mut subscribes, mut notifies) = (0usize, 0usize);
    let step = Duration::from_secs(1);
    let mut now = t0;
    for s in 1..=3600u32 {
        now += step;
        for p in watcher.due(now) {
            subscribes += 1;
            watcher.subscribed(&p, roost::wire::presence::PresenceInfo::offline(), now);
            // Our buddies renew their subscriptions to us at the same rate.
            publisher.subscribe(p, Permission::Allowed, SUBSCRIPTION, now);
        }
        let every = 3600 / changes_per_hour.max(1);
        if changes_per_hour > 0 && s.is_multiple_of(every) {
            let status = if (s / every).is_multiple_of(2) {
                OwnStatus::Online
            } else {
                OwnStatus::Away
            };
            publisher.set_own(
                Own {
                    status,
                    ..Own::default()
                },
                now,
            );
            notifies += publisher.notifications(|_| Permission::Allowed).len();
        }
        publisher.tick(now);
    }
    // Timers: mailbox poll every 5 min (a lookup + up to 20 fetches), with
    // it a hand-off pass (a lookup per mailbox held for others), locator
    // republish at half its 1 h TTL (a lookup + K puts), Kademlia's bucket
    // refresh every 5 min (a lookup).
    let mailbox = 12.0 * (lookup_rpcs + 20.0);
    let handoff = 12.0 * held * lookup_rpcs;
    let locator = 2.0 * (lookup_rpcs + K as f64);
    let refresh = 12.0 * lookup_rpcs;
    println!(
        "{}",
        json!({
            "experiment": "per_node_per_hour",
            "buddies": buddies,
            "presence_changes": changes_per_hour,
            "subscribe_renewals_sent": subscribes,
            "notifies_sent": notifies,
            "notifies_received_if_buddies_alike": notifies,
            "mailbox_poll_rpcs": mailbox.round(),
            "mailboxes_held": held,
            "handoff_pass_rpcs": handoff.round(),
            "locator_republish_rpcs": locator.round(),
            "dht_refresh_rpcs": refresh.round(),
            "total_rpcs_sent": (subscribes as f64 * 2.0 + notifies as f64 + mailbox + handoff + locator + refresh).round(),
        })
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let nodes = arg("--nodes", 10_000) as usize;
    let seed = arg("--seed", 1);
    let messages = arg("--messages", 10_000) as usize;
    let hours = arg("--hours", 10) as usize;
    // roost's periodic hand-off pass (the mailbox poll); 3600 = hourly only.
    let every = Duration::from_secs(arg("--handoff-s", 300));
    // The growth experiment tracks ~N/25 locators over every join; past
    // 10 000 nodes it would dominate the run, so it stops there by default.
    let grow_from = arg("--grow-from", 40) as usize;
    let grow_to = arg("--grow-to", nodes.min(10_000) as u64) as usize;
    for hand_over in [false, true] {
        locator_spread(grow_from, grow_to, seed, hand_over);
    }
    let started = Instant::now();
    let mut net = Net::new(nodes, seed);
    let built = started.elapsed();
    let rpcs = lookups(&mut net, 2000);
    offline_delivery(&mut net, messages, 0.30, hours, every);
    // Every user with mail waiting puts R mailboxes on others: 3 per node
    // if everyone has some.
    per_node_traffic(rpcs, 20, 4, R as f64);
    println!(
        "{}",
        json!({
            "experiment": "run",
            "nodes": nodes,
            "seed": seed,
            "build_s": (built.as_secs_f64() * 10.0).round() / 10.0,
            "total_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    );
}
