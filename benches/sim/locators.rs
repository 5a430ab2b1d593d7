//! Locators in a growing network, each node running roost's own locator
//! machine (`net::locator::Machine`: publication through its
//! `Republisher`, keep/replace, the hand-over to newcomers of
//! `net::record_handoff`, pass-on, the retry of a failed hand-over, the
//! answer rule of lookups) over the modelled network of [`super::Net`]. The
//! machine's outputs are carried out here: a put goes to the peers a
//! modelled lookup finds (or to the peers named), each receiver's machine
//! gets it as an inbound record; a lookup's answers come from the stores
//! of the peers it asked.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::kad::store::RecordStore;
use libp2p::kad::{KBucketKey, RecordKey};
use libp2p::{Multiaddr, PeerId};
use roost::net::locator::{CLOSEST_NEEDED, Dht, Input, Machine, Now, Output};
use roost::net::record_store::{MAX_RECORDS, SourceCappedStore};
use roost::wire::locator::{Locator, MAX_RECORD_BYTES};
use serde_json::{Value, json};

use super::{Key, Net, key_of_bytes, xor};

/// roost's default locator lifetime and least republish interval.
const TTL: Duration = Duration::from_secs(3600);
const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// The simulated clock's Unix milliseconds at its origin.
const BASE_MS: u64 = 1_800_000_000_000;
/// Simulated time per wave of growth: the whole growth stays within half
/// a locator's lifetime, as in the 1000-node run (12 minutes).
const WAVE: Duration = Duration::from_secs(5);

/// One node's side: its machine and its record store.
struct Node {
    machine: Machine,
    store: SourceCappedStore,
}

/// A node's DHT as its machine reads it: its store, and its routing table
/// without the peers that joined after `horizon`.
struct View<'a> {
    net: &'a Net,
    me: usize,
    horizon: usize,
    store: &'a mut SourceCappedStore,
}

impl View<'_> {
    fn known(&self) -> impl Iterator<Item = usize> + '_ {
        self.net.tables[self.me]
            .iter()
            .map(|&x| x as usize)
            .filter(|&x| x <= self.horizon)
    }
}

impl Dht for View<'_> {
    fn store(&mut self) -> &mut SourceCappedStore {
        self.store
    }

    fn closest_known(&mut self, key: &RecordKey) -> Vec<KBucketKey<PeerId>> {
        let target = key_of_bytes(key.as_ref());
        let mut table: Vec<(Key, usize)> = self
            .known()
            .map(|x| (xor(&self.net.keys[x], &target), x))
            .collect();
        if table.len() > CLOSEST_NEEDED {
            table.select_nth_unstable(CLOSEST_NEEDED);
            table.truncate(CLOSEST_NEEDED);
        }
        table.sort_unstable();
        table
            .into_iter()
            .map(|(_, x)| KBucketKey::from(self.net.peers[x]))
            .collect()
    }

    fn table_size(&mut self) -> usize {
        self.known().count()
    }

    fn addrs(&self) -> Vec<Multiaddr> {
        vec![Multiaddr::empty().with(libp2p::multiaddr::Protocol::Memory(self.me as u64))]
    }
}

/// The network of machines, with a simulated clock.
struct Growth {
    net: Net,
    nodes: Vec<Node>,
    index: BTreeMap<PeerId, usize>,
    t0: Instant,
    clock: Duration,
    /// Peers a held record was put to (hand-overs, pass-ons, retries).
    handed: usize,
    answers: BTreeMap<u64, Option<Locator>>,
}

impl Growth {
    fn new(n: usize, seed: u64) -> Self {
        let mut g = Self {
            net: Net::signed(n, seed),
            nodes: Vec::new(),
            index: BTreeMap::new(),
            t0: Instant::now(), // the simulated clock's origin
            clock: Duration::ZERO,
            handed: 0,
            answers: BTreeMap::new(),
        };
        g.adopt();
        g
    }

    /// Gives every node of the net without a machine one.
    fn adopt(&mut self) {
        for i in self.nodes.len()..self.net.peers.len() {
            let id = self.net.idents[i].clone();
            self.index.insert(self.net.peers[i], i);
            self.nodes.push(Node {
                machine: Machine::new(id, TTL, MIN_INTERVAL, 0),
                store: SourceCappedStore::new(self.net.peers[i], MAX_RECORDS, MAX_RECORD_BYTES),
            });
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.t0 + self.clock,
            unix_ms: BASE_MS + self.clock.as_millis() as u64,
        }
    }

    /// Node `u` learns `input`; runs everything it sets off, until quiet,
    /// every node knowing the peers up to `horizon`.
    fn run(&mut self, u: usize, input: Input, horizon: usize) {
        let mut queue = VecDeque::from([(u, input)]);
        while let Some((u, input)) = queue.pop_front() {
            let now = self.now();
            let node = &mut self.nodes[u];
            let mut view = View {
                net: &self.net,
                me: u,
                horizon,
                store: &mut node.store,
            };
            for output in node.machine.handle(input, now, &mut view) {
                self.carry_out(u, output, &mut queue);
            }
        }
    }

    fn carry_out(&mut self, u: usize, output: Output, queue: &mut VecDeque<(usize, Input)>) {
        let source = self.net.peers[u];
        match output {
            Output::PutRecord { op, record, .. } => {
                // Kademlia's put: stored at home, then at the K closest a
                // lookup finds.
                let _ = self.nodes[u].store.put(record.clone());
                let found = self.net.lookup(u, &key_of_bytes(record.key.as_ref())).found;
                for f in found {
                    let record = record.clone();
                    queue.push_back((f, Input::Inbound { source, record }));
                }
                queue.push_back((u, Input::PutDone { op, result: Ok(()) }));
            }
            Output::PutRecordTo {
                op, record, peers, ..
            } => {
                self.handed += peers.len();
                let mut took = Vec::new();
                for p in &peers {
                    let i = self.index[p];
                    if self.net.alive[i] {
                        took.push(*p);
                        let record = record.clone();
                        queue.push_back((i, Input::Inbound { source, record }));
                    }
                }
                let result = if took.len() == peers.len() {
                    Ok(())
                } else {
                    Err(took)
                };
                queue.push_back((u, Input::PutDone { op, result }));
            }
            Output::GetRecord { op, key } => {
                let asked = self.net.lookup(u, &key_of_bytes(key.as_ref())).asked;
                let own = self.nodes[u].store.get(&key).map(|r| r.into_owned());
                if let Some(record) = own {
                    queue.push_back((
                        u,
                        Input::Found {
                            op,
                            from: None,
                            record,
                        },
                    ));
                }
                for a in asked {
                    if let Some(r) = self.nodes[a].store.get(&key) {
                        let (from, record) = (Some(self.net.peers[a]), r.into_owned());
                        queue.push_back((u, Input::Found { op, from, record }));
                    }
                }
                queue.push_back((u, Input::LookupDone { op }));
            }
            Output::Answer { waiter, locator } => {
                self.answers.insert(waiter, locator);
            }
            Output::FinishLookup { .. } | Output::PersistSeq(_) => {}
        }
    }

    /// Node `owner` comes up: its addresses settle and it publishes.
    fn publish(&mut self, owner: usize, horizon: usize) {
        self.run(owner, Input::AddressesChanged, horizon);
        self.clock += roost::net::republish::SETTLE;
        self.run(owner, Input::Tick, horizon);
    }

    /// Ticks every machine in `owners` whose timer is due.
    fn tick(&mut self, owners: &[usize], horizon: usize) {
        let at = self.now().at;
        for &o in owners {
            if self.nodes[o]
                .machine
                .poll_timeout()
                .is_some_and(|t| t <= at)
            {
                self.run(o, Input::Tick, horizon);
            }
        }
    }
}

/// Locators in a network that grows from `from` nodes to `to`; see the
/// bench's doc. Tracks the locators of the first `from` nodes and of every
/// 25th later one; with `hand_over` off, no node is told of the peers
/// entering its routing table (so none hands over or passes on).
pub fn locator_spread(from: usize, to: usize, seed: u64, hand_over: bool) -> Value {
    let mut g = Growth::new(from.min(to), seed);
    let mut tracked: Vec<usize> = Vec::new();
    let n0 = g.net.peers.len();
    for owner in 0..n0 {
        g.publish(owner, n0 - 1);
        tracked.push(owner);
    }
    while g.net.peers.len() < to {
        let before = g.net.peers.len();
        let after = ((before as f64 * 1.05).ceil() as usize).clamp(before + 1, to);
        for _ in before..after {
            g.net.add_signed();
        }
        g.adopt();
        g.net.refresh();
        g.clock += WAVE;
        // Who meets each newcomer: the older nodes whose refreshed table
        // holds it, in order.
        let mut meets: Vec<Vec<usize>> = vec![Vec::new(); after - before];
        for u in 0..after {
            for &x in &g.net.tables[u] {
                let x = x as usize;
                if x >= before && u < x {
                    meets[x - before].push(u);
                }
            }
        }
        for w in before..after {
            if hand_over {
                for &u in &meets[w - before] {
                    g.run(u, Input::NewPeer(g.net.peers[w]), w);
                }
            }
            if w % 25 == 0 {
                g.publish(w, w);
                tracked.push(w);
            }
        }
        g.tick(&tracked, after - 1);
    }
    // A lookup from a random node, through its machine: the first valid
    // record a peer answers with, or its own copy.
    let (mut found, mut early_found, mut early) = (0usize, 0usize, 0usize);
    let n = g.net.peers.len();
    for (i, &owner) in tracked.iter().enumerate() {
        let a = g.net.rng.below(n);
        let peer = g.net.peers[owner];
        let waiter = i as u64;
        g.run(a, Input::Find { waiter, peer }, n - 1);
        let answer = g.answers.get(&waiter).cloned().flatten();
        let ok = answer.is_some_and(|l| l.peer == peer);
        found += usize::from(ok);
        if owner < from {
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
        // Puts that handed a held locator on (hand-overs, pass-ons,
        // retries), per locator, over the whole growth.
        "hand_overs_per_locator": (g.handed as f64 / tracked.len().max(1) as f64 * 10.0).round() / 10.0,
        "joins": n - from.min(to),
    })
}

/// One node's own locator in a net without identities (its records are
/// signed by an identity of its own, under that identity's key): roost's
/// machine decides when it publishes, on the simulated clock.
pub(super) struct OwnLocator {
    machine: Machine,
    store: SourceCappedStore,
    me: usize,
    t0: Instant,
}

impl OwnLocator {
    /// Node `me` came up with its addresses settled at `t0`: its first
    /// publication is at `t0`, and not counted.
    pub(super) fn start(net: &mut Net, me: usize, t0: Instant) -> Self {
        let id = roost::identity::Identity::from_seed([99; 32]);
        let store = SourceCappedStore::new(id.peer_id(), MAX_RECORDS, MAX_RECORD_BYTES);
        let mut own = Self {
            machine: Machine::new(id, TTL, MIN_INTERVAL, 0),
            store,
            me,
            t0,
        };
        let settle = roost::net::republish::SETTLE;
        own.handle(net, Input::AddressesChanged, t0 - settle);
        own.tick(net, t0);
        own
    }

    /// Runs the machine's timer if it is due at `now`; returns the requests
    /// its publications sent: a lookup of the record's key, then a put to
    /// each peer found.
    pub(super) fn tick(&mut self, net: &mut Net, now: Instant) -> usize {
        if self.machine.poll_timeout().is_none_or(|t| t > now) {
            return 0;
        }
        let mut sent = 0;
        for output in self.handle(net, Input::Tick, now) {
            if let Output::PutRecord { op, record, .. } = output {
                let l = net.lookup(self.me, &key_of_bytes(record.key.as_ref()));
                sent += l.msgs as usize + l.found.len();
                let result = Ok(());
                self.handle(net, Input::PutDone { op, result }, now);
            }
        }
        sent
    }

    fn handle(&mut self, net: &Net, input: Input, at: Instant) -> Vec<Output> {
        let since = at.saturating_duration_since(self.t0).as_millis() as u64;
        let now = Now {
            at,
            unix_ms: BASE_MS + since,
        };
        let mut view = View {
            net,
            me: self.me,
            horizon: usize::MAX,
            store: &mut self.store,
        };
        self.machine.handle(input, now, &mut view)
    }
}
