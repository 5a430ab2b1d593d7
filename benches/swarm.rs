//! `cargo bench --bench swarm [-- --nodes N --seed S --lookups L --messages M --offline F --idle SECS]`:
//! a smoke run of the *real* stack at scale — by default 1000 roost nodes in
//! one process, each with its own identity, sled database, Kademlia,
//! mailbox and presence services, connected by libp2p's in-memory
//! transport (same Noise and Yamux as over TCP; one process cannot hold a
//! thousand TCP nodes' file descriptors).
//!
//! Phases, each checked, each timed:
//! 1. start the nodes, each bootstrapping from up to three earlier ones;
//! 2. every node looks up `L` random others' locators through the DHT;
//! 3. `M` messages between random pairs, direct, until all are delivered;
//! 4. `F` nodes leave; `M` messages are sent to them and must reach
//!    `stored` in their mailboxes; they come back and must pick up all.
//!
//! `--idle` adds a quiet spell after start and reports the CPU it cost and
//! what the nodes woke up for, per node and minute (`roost::net::stats`).
//! Prints one JSON line, with the CPU time each phase took. Seeded: the
//! same seed picks the same pairs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::{Multiaddr, PeerId};
use roost::store::MessageState;
use roost::wire::message::MessageId;
use roost::{Config, Content, Event, Identity, Node, NodeHandle};
use serde_json::json;

mod common;
use common::{Rng, arg, cpu_s, init_tracing, ms, pct, rss_mib};

/// How long any phase may take before the run fails.
const LIMIT: Duration = Duration::from_secs(600);
/// Nodes started (or lookups run) at once.
const PARALLEL: usize = 50;

fn config(dir: &std::path::Path, boot: Vec<Multiaddr>) -> Config {
    let mut c = Config::local(dir.to_path_buf());
    c.listen = vec!["/memory/0".parse().expect("memory multiaddr")];
    c.bootstrap = boot;
    c.auto_away = None;
    c.cache_bytes = 1 << 20;
    // Production pacing, not the tests' quick one.
    c.republish_min_interval = Duration::from_secs(5);
    c
}

async fn start(dir: std::path::PathBuf, boot: Vec<Multiaddr>) -> NodeHandle {
    Node::start(config(&dir, boot)).await.expect("node starts")
}

/// Runs `jobs` with at most [`PARALLEL`] at a time; results in any order.
async fn parallel<T, F: std::future::Future<Output = T>>(jobs: Vec<F>) -> Vec<T> {
    let mut jobs = jobs.into_iter();
    let mut running: FuturesUnordered<F> = jobs.by_ref().take(PARALLEL).collect();
    let mut out = Vec::new();
    while let Some(r) = running.next().await {
        out.push(r);
        running.extend(jobs.next());
    }
    out
}

/// A message sent, as [`all_reach`] follows it.
type Sent = (usize, PeerId, MessageId, Instant);

/// Node `i` sends `text` to `to`.
/// Times from the call, not from its return: `send` returns once the
/// message is on the sender's disk, and it may well be delivered by then.
async fn send(nodes: &[NodeHandle], i: usize, to: PeerId, text: String) -> Sent {
    let t = Instant::now();
    let id = nodes[i].send(to, Content::text(text)).await.expect("send");
    (i, to, id, t)
}

/// Whether an outgoing message in state `now` got at least as far as `want`
/// (`failed` never counts).
fn reached(now: MessageState, want: MessageState) -> bool {
    use MessageState::*;
    match want {
        Delivered => matches!(now, Delivered | Read),
        _ => matches!(now, Stored | Delivered | Read),
    }
}

/// When each message reached each state, as its sender's events said.
type Seen = Arc<Mutex<HashMap<(MessageId, MessageState), Instant>>>;

/// Follows the state events of every node in `nodes` (subscribe before
/// sending: events are not replayed). Event times, not polling, give the
/// latencies: polling a thousand conversations takes seconds on a busy
/// machine and would be measured instead.
fn watch(nodes: &[NodeHandle]) -> (Seen, Vec<tokio::task::JoinHandle<()>>) {
    let seen: Seen = Arc::default();
    let tasks = nodes
        .iter()
        .map(|n| {
            let (mut events, seen) = (n.events(), seen.clone());
            tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(Event::State { id, state, .. }) => {
                            if let Ok(mut s) = seen.lock() {
                                s.entry((id, state)).or_insert_with(Instant::now);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        _ => {}
                    }
                }
            })
        })
        .collect();
    (seen, tasks)
}

/// Waits until every message in `sent` has reached at least `state` at its
/// sender; returns each one's latency from `send` returning, in ms.
async fn all_reach(seen: &Seen, sent: &[Sent], state: MessageState) -> Vec<f64> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let done: Vec<f64> = {
            let s = seen.lock().expect("not poisoned");
            sent.iter()
                .filter_map(|(_, _, id, t)| {
                    [
                        MessageState::Stored,
                        MessageState::Delivered,
                        MessageState::Read,
                    ]
                    .into_iter()
                    .filter(|now| reached(*now, state))
                    .filter_map(|now| s.get(&(*id, now)))
                    .min()
                    .map(|at| at.saturating_duration_since(*t).as_secs_f64() * 1e3)
                })
                .collect()
        };
        if done.len() == sent.len() {
            return done;
        }
        assert!(Instant::now() < deadline, "messages stuck before {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The running network: node `i` is `nodes[i]`, started from `dirs[i]`
/// and dialable at `addrs[i]`.
struct Swarm {
    dirs: Vec<std::path::PathBuf>,
    ids: Vec<PeerId>,
    nodes: Vec<NodeHandle>,
    addrs: Vec<Vec<Multiaddr>>,
    rng: Rng,
    /// When the run started, for the progress lines.
    run: Instant,
}

/// Phase 1: starts `n` nodes in `root`, node i bootstrapping from up to
/// three random earlier nodes; and how long starting them took.
async fn start_all(
    root: &std::path::Path,
    n: usize,
    mut rng: Rng,
    run: Instant,
) -> (Swarm, Duration) {
    let dirs: Vec<_> = (0..n).map(|i| root.join(format!("n{i}"))).collect();
    let ids: Vec<PeerId> = dirs
        .iter()
        .map(|d| Identity::create_in(d).expect("identity").peer_id())
        .collect();
    let t = Instant::now();
    let mut nodes: Vec<NodeHandle> = vec![start(dirs[0].clone(), vec![]).await];
    let mut addrs: Vec<Vec<Multiaddr>> = vec![nodes[0].dial_addrs().await.expect("addrs")];
    for chunk in (1..n).collect::<Vec<_>>().chunks(PARALLEL) {
        let jobs: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let boot: Vec<Multiaddr> = (0..3)
                    .flat_map(|_| addrs[rng.below(addrs.len())].clone())
                    .collect();
                start(dirs[i].clone(), boot)
            })
            .collect();
        // Keep the order: node i is nodes[i].
        let started = futures::future::join_all(jobs).await;
        for node in started {
            addrs.push(node.dial_addrs().await.expect("addrs"));
            nodes.push(node);
        }
        // Memory grows with the connections open (each holds its
        // protocols' state and buffers), so the two are printed together.
        let peers = connected_peers(&nodes).await;
        eprintln!(
            "{:>6.1} s: {} nodes up ({:.0} s CPU, {:.0} MiB; connected peers a node: mean {:.1}, max {:.0})",
            run.elapsed().as_secs_f64(),
            nodes.len(),
            cpu_s(),
            rss_mib("self"),
            peers.iter().sum::<f64>() / peers.len() as f64,
            peers.iter().copied().fold(0.0, f64::max)
        );
    }
    let swarm = Swarm {
        dirs,
        ids,
        nodes,
        addrs,
        rng,
        run,
    };
    (swarm, t.elapsed())
}

/// What phase 2 measured.
struct Lookups {
    asked: usize,
    /// Per lookup that found its target: tries, and ms until found.
    results: Vec<(usize, f64)>,
    phase: Duration,
    cpu_s: f64,
}

/// Phase 2: every node looks up `per_node` random others by key alone; a
/// miss is retried (the network may still be settling).
async fn lookups(s: &mut Swarm, per_node: usize) -> Lookups {
    let n = s.nodes.len();
    let t = Instant::now();
    let cpu_before = cpu_s();
    let rng = &mut s.rng;
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..per_node).map(move |_| i))
        .map(|i| {
            let mut j = rng.below(n);
            while j == i {
                j = rng.below(n);
            }
            (i, j)
        })
        .collect();
    let results = parallel(
        pairs
            .iter()
            .map(|&(i, j)| find(&s.nodes[i], i, s.ids[j], j))
            .collect(),
    )
    .await;
    let phase = t.elapsed();
    let cpu = cpu_s() - cpu_before;
    eprintln!(
        "{:>6.1} s: {} lookups done",
        s.run.elapsed().as_secs_f64(),
        results.len()
    );
    Lookups {
        asked: pairs.len(),
        results,
        phase,
        cpu_s: cpu,
    }
}

/// Node `i` looks up `target` (node `j`) until it finds it online: the
/// tries and the ms it took.
async fn find(node: &NodeHandle, i: usize, target: PeerId, j: usize) -> (usize, f64) {
    let t = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let found = node.find(target).await.expect("running");
        if found.is_some_and(|l| l.peer == target && l.online) {
            return (tries, t.elapsed().as_secs_f64() * 1e3);
        }
        assert!(
            t.elapsed() < LIMIT,
            "{target} (node {j}) never found by node {i}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Phase 3: `messages` direct messages between random pairs, until all
/// are delivered: per message the ms until delivered, and the phase's time.
async fn direct(s: &mut Swarm, seen: &Seen, messages: usize) -> (Vec<f64>, Duration) {
    let n = s.nodes.len();
    let t = Instant::now();
    let mut sent = Vec::with_capacity(messages);
    for k in 0..messages {
        let (i, j) = (s.rng.below(n), s.rng.below(n));
        let j = if i == j { (j + 1) % n } else { j };
        sent.push(send(&s.nodes, i, s.ids[j], format!("direct {k}")).await);
    }
    let direct_ms = all_reach(seen, &sent, MessageState::Delivered).await;
    let phase = t.elapsed();
    eprintln!(
        "{:>6.1} s: direct messages delivered",
        s.run.elapsed().as_secs_f64()
    );
    (direct_ms, phase)
}

/// What phase 4 measured.
struct Mailboxes {
    stored_ms: Vec<f64>,
    deposit_phase: Duration,
    picked_up: usize,
    pickup: Duration,
}

/// Phase 4: the last `offline` nodes leave (cleanly); others write
/// `messages` to them; they return and collect.
async fn mailboxes(s: &mut Swarm, seen: &Seen, messages: usize, offline: usize) -> Mailboxes {
    let n = s.nodes.len();
    let away: Vec<usize> = (n - offline..n).collect();
    for &i in &away {
        s.nodes[i].shutdown().await.expect("shutdown");
    }
    let t = Instant::now();
    let mut queued = Vec::with_capacity(messages);
    for k in 0..messages {
        let i = s.rng.below(n - offline);
        let j = away[s.rng.below(offline)];
        queued.push(send(&s.nodes, i, s.ids[j], format!("offline {k}")).await);
    }
    let stored_ms = all_reach(seen, &queued, MessageState::Stored).await;
    let deposit_phase = t.elapsed();
    eprintln!(
        "{:>6.1} s: offline messages stored",
        s.run.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let back = futures::future::join_all(away.iter().map(|&i| {
        let boot = s.addrs[s.rng.below(n - offline)].clone();
        start(s.dirs[i].clone(), boot)
    }))
    .await;
    for (&i, node) in away.iter().zip(back) {
        s.nodes[i] = node;
    }
    let picked_up = pick_up(s, &away, &queued).await;
    Mailboxes {
        stored_ms,
        deposit_phase,
        picked_up,
        pickup: t.elapsed(),
    }
}

/// Each returning node waits for the ids queued for it, by id: it also
/// holds the direct messages of phase 3, so its message count says
/// nothing. Returns the messages picked up.
async fn pick_up(s: &Swarm, away: &[usize], queued: &[Sent]) -> usize {
    let deadline = Instant::now() + LIMIT;
    let mut picked_up = 0usize;
    for &i in away {
        let want: HashSet<MessageId> = queued
            .iter()
            .filter(|(_, to, _, _)| *to == s.ids[i])
            .map(|(_, _, id, _)| *id)
            .collect();
        loop {
            let got = s.nodes[i]
                .received()
                .await
                .expect("running")
                .iter()
                .filter(|m| want.contains(&m.id))
                .count();
            if got == want.len() {
                picked_up += got;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} got {got} of its {} queued messages",
                want.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    picked_up
}

/// What the network looked like once started.
struct Started {
    all: Duration,
    cpu_s: f64,
    conns: Vec<f64>,
    threads: usize,
    /// The optional quiet spell and the CPU it cost.
    idle: Duration,
    idle_cpu_s: f64,
    /// What the nodes woke up for in the quiet spell, per node and minute.
    idle_counts: serde_json::Map<String, serde_json::Value>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    init_tracing();
    let n = arg("--nodes", 1000) as usize;
    let seed = arg("--seed", 1);
    let per_node = arg("--lookups", 3) as usize;
    let messages = arg("--messages", 1000) as usize;
    let offline = arg("--offline", 50) as usize;
    assert!(n >= 4 && offline < n / 2, "need more nodes than that");
    let root = tempfile::tempdir().expect("temp dir");
    let run = Instant::now();
    let (mut s, took) = start_all(root.path(), n, Rng::new(seed), run).await;
    let started = settled(&s, took).await;
    let found = lookups(&mut s, per_node).await;
    let (seen, watchers) = watch(&s.nodes);
    let (direct_ms, direct_phase) = direct(&mut s, &seen, messages).await;
    let mail = mailboxes(&mut s, &seen, messages, offline).await;
    let figures = Figures {
        n,
        seed,
        messages,
        offline,
        started,
        found,
        direct_ms,
        direct_phase,
        mail,
    };
    println!("{}", figures.json(run));
    watchers.iter().for_each(|w| w.abort());
    parallel(s.nodes.iter().map(|n| n.shutdown()).collect()).await;
}

/// How many peers each node is connected to, in node order.
async fn connected_peers(nodes: &[NodeHandle]) -> Vec<f64> {
    let mut peers = Vec::with_capacity(nodes.len());
    for node in nodes {
        peers.push(node.connected_peers().await.expect("running").len() as f64);
    }
    peers
}

/// After start (which took `all`): the CPU it used, connections per node,
/// and optionally (`--idle`) a quiet spell: what a settled network costs
/// doing nothing.
async fn settled(s: &Swarm, all: Duration) -> Started {
    let cpu_start = cpu_s();
    let conns = connected_peers(&s.nodes).await;
    let idle = Duration::from_secs(arg("--idle", 0));
    let before_idle = cpu_s();
    let window = common::Window::start();
    tokio::time::sleep(idle).await;
    let idle_cpu_s = cpu_s() - before_idle;
    let idle_counts = window.per_node_minute(s.nodes.len());
    if !idle.is_zero() {
        eprintln!(
            "{:>6.1} s: idle {} s used {idle_cpu_s:.1} s CPU",
            s.run.elapsed().as_secs_f64(),
            idle.as_secs()
        );
    }
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    Started {
        all,
        cpu_s: cpu_start,
        conns,
        threads,
        idle,
        idle_cpu_s,
        idle_counts,
    }
}

/// Every figure of the run.
struct Figures {
    n: usize,
    seed: u64,
    messages: usize,
    offline: usize,
    started: Started,
    found: Lookups,
    direct_ms: Vec<f64>,
    direct_phase: Duration,
    mail: Mailboxes,
}

impl Figures {
    /// The run's JSON line (`run`: when it started).
    fn json(mut self, run: Instant) -> serde_json::Value {
        let rss = rss_mib("self");
        let (st, found, mail) = (&mut self.started, &self.found, &mut self.mail);
        let first_try = found.results.iter().filter(|(t, _)| *t == 1).count();
        let mut lookup_ms: Vec<f64> = found.results.iter().map(|(_, ms)| *ms).collect();
        json!({
            "system": "roost-swarm",
            "transport": "memory",
            "nodes": self.n,
            "seed": self.seed,
            "start_all_s": (st.all.as_secs_f64() * 10.0).round() / 10.0,
            "start_cpu_s": st.cpu_s.round(),
            "threads": st.threads,
            "connections_per_node_p50": pct(&mut st.conns, 0.5),
            "connections_per_node_max": pct(&mut st.conns, 1.0),
            "rss_mib": rss,
            "lookups": found.asked,
            // Every entry of `results` is a lookup that found its target.
            "lookups_found": found.results.len(),
            "lookups_first_try": first_try,
            "lookup_p50_ms": pct(&mut lookup_ms, 0.5).round(),
            "lookup_p99_ms": pct(&mut lookup_ms, 0.99).round(),
            "lookup_phase_s": (found.phase.as_secs_f64() * 10.0).round() / 10.0,
            "lookup_cpu_s": found.cpu_s.round(),
            "idle_s": st.idle.as_secs(),
            "idle_cpu_s": (!st.idle.is_zero()).then_some((st.idle_cpu_s * 10.0).round() / 10.0),
            "idle_per_node_per_min": (!st.idle.is_zero()).then_some(&st.idle_counts),
            "direct_messages": self.messages,
            "direct_delivered": self.direct_ms.len(),
            "direct_p50_ms": pct(&mut self.direct_ms, 0.5).round(),
            "direct_p99_ms": pct(&mut self.direct_ms, 0.99).round(),
            "direct_phase_ms": ms(self.direct_phase),
            "offline_nodes": self.offline,
            "mailbox_messages": self.messages,
            "mailbox_stored": mail.stored_ms.len(),
            "mailbox_stored_p50_ms": pct(&mut mail.stored_ms, 0.5).round(),
            "mailbox_stored_p99_ms": pct(&mut mail.stored_ms, 0.99).round(),
            "deposit_phase_ms": ms(mail.deposit_phase),
            "mailbox_picked_up": mail.picked_up,
            "pickup_all_ms": ms(mail.pickup),
            "run_s": run.elapsed().as_secs(),
        })
    }
}
