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
//! `--idle` adds a quiet spell after start and reports the CPU it cost.
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
    // Connections made only for DHT queries go after 30 s instead of 300 s
    // (a message link keeps its connection open while its stream is):
    // otherwise a startup storm leaves every node connected to most others.
    c.idle_timeout = Duration::from_secs(30);
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    init_tracing();
    let n = arg("--nodes", 1000) as usize;
    let seed = arg("--seed", 1);
    let lookups = arg("--lookups", 3) as usize;
    let messages = arg("--messages", 1000) as usize;
    let offline = arg("--offline", 50) as usize;
    assert!(n >= 4 && offline < n / 2, "need more nodes than that");
    let mut rng = Rng::new(seed);
    let root = tempfile::tempdir().expect("temp dir");
    let run = Instant::now();

    // 1. Start: node i bootstraps from up to three random earlier nodes.
    let dirs: Vec<_> = (0..n).map(|i| root.path().join(format!("n{i}"))).collect();
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
        eprintln!(
            "{:>6.1} s: {} nodes up ({:.0} s CPU)",
            run.elapsed().as_secs_f64(),
            nodes.len(),
            cpu_s()
        );
    }
    let started = t.elapsed();
    let cpu_start = cpu_s();
    let mut conns = Vec::with_capacity(n);
    for node in &nodes {
        conns.push(node.connected_peers().await.expect("running").len() as f64);
    }
    // Optionally, a quiet spell: what a settled network costs doing nothing.
    let idle = Duration::from_secs(arg("--idle", 0));
    let before_idle = cpu_s();
    tokio::time::sleep(idle).await;
    let cpu_idle = cpu_s() - before_idle;
    if !idle.is_zero() {
        eprintln!(
            "{:>6.1} s: idle {} s used {cpu_idle:.1} s CPU",
            run.elapsed().as_secs_f64(),
            idle.as_secs()
        );
    }
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());

    // 2. Lookups by key alone; a miss is retried (the network may still be
    // settling), and both first-try and final success are reported.
    let t = Instant::now();
    let cpu_before_lookups = cpu_s();
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..lookups).map(move |_| i))
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
            .map(|&(i, j)| {
                let (node, target) = (&nodes[i], ids[j]);
                async move {
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
            })
            .collect(),
    )
    .await;
    let lookup_phase = t.elapsed();
    let cpu_lookups = cpu_s();
    eprintln!(
        "{:>6.1} s: {} lookups done",
        run.elapsed().as_secs_f64(),
        results.len()
    );
    let first_try = results.iter().filter(|(tries, _)| *tries == 1).count();
    let mut lookup_ms: Vec<f64> = results.iter().map(|(_, ms)| *ms).collect();

    // 3. Direct messages between random pairs.
    let (seen, watchers) = watch(&nodes);
    let t = Instant::now();
    let mut sent = Vec::with_capacity(messages);
    for k in 0..messages {
        let (i, j) = (rng.below(n), rng.below(n));
        let j = if i == j { (j + 1) % n } else { j };
        sent.push(send(&nodes, i, ids[j], format!("direct {k}")).await);
    }
    let mut direct_ms = all_reach(&seen, &sent, MessageState::Delivered).await;
    let direct_phase = t.elapsed();
    eprintln!(
        "{:>6.1} s: direct messages delivered",
        run.elapsed().as_secs_f64()
    );

    // 4. Mailboxes: the last `offline` nodes leave (cleanly); others write
    // to them; they return and collect.
    let away: Vec<usize> = (n - offline..n).collect();
    for &i in &away {
        nodes[i].shutdown().await.expect("shutdown");
    }
    let t = Instant::now();
    let mut queued = Vec::with_capacity(messages);
    for k in 0..messages {
        let i = rng.below(n - offline);
        let j = away[rng.below(offline)];
        queued.push(send(&nodes, i, ids[j], format!("offline {k}")).await);
    }
    let mut stored_ms = all_reach(&seen, &queued, MessageState::Stored).await;
    let deposit_phase = t.elapsed();
    eprintln!(
        "{:>6.1} s: offline messages stored",
        run.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let back = futures::future::join_all(away.iter().map(|&i| {
        let boot = addrs[rng.below(n - offline)].clone();
        start(dirs[i].clone(), boot)
    }))
    .await;
    for (&i, node) in away.iter().zip(back) {
        nodes[i] = node;
    }
    // Each returning node waits for the ids queued for it, by id: it also
    // holds the direct messages of phase 3, so its message count says
    // nothing.
    let deadline = Instant::now() + LIMIT;
    let mut picked_up = 0usize;
    for &i in &away {
        let want: HashSet<MessageId> = queued
            .iter()
            .filter(|(_, to, _, _)| *to == ids[i])
            .map(|(_, _, id, _)| *id)
            .collect();
        loop {
            let got = nodes[i]
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
    let pickup = t.elapsed();
    let rss = rss_mib("self");

    println!(
        "{}",
        json!({
            "system": "roost-swarm",
            "transport": "memory",
            "nodes": n,
            "seed": seed,
            "start_all_s": (started.as_secs_f64() * 10.0).round() / 10.0,
            "start_cpu_s": cpu_start.round(),
            "threads": threads,
            "connections_per_node_p50": pct(&mut conns, 0.5),
            "connections_per_node_max": pct(&mut conns, 1.0),
            "rss_mib": rss,
            "lookups": pairs.len(),
            // Every entry of `results` is a lookup that found its target.
            "lookups_found": results.len(),
            "lookups_first_try": first_try,
            "lookup_p50_ms": pct(&mut lookup_ms, 0.5).round(),
            "lookup_p99_ms": pct(&mut lookup_ms, 0.99).round(),
            "lookup_phase_s": (lookup_phase.as_secs_f64() * 10.0).round() / 10.0,
            "lookup_cpu_s": (cpu_lookups - cpu_before_lookups).round(),
            "idle_s": idle.as_secs(),
            "idle_cpu_s": (!idle.is_zero()).then_some((cpu_idle * 10.0).round() / 10.0),
            "direct_messages": messages,
            "direct_delivered": direct_ms.len(),
            "direct_p50_ms": pct(&mut direct_ms, 0.5).round(),
            "direct_p99_ms": pct(&mut direct_ms, 0.99).round(),
            "direct_phase_ms": ms(direct_phase),
            "offline_nodes": offline,
            "mailbox_messages": messages,
            "mailbox_stored": stored_ms.len(),
            "mailbox_stored_p50_ms": pct(&mut stored_ms, 0.5).round(),
            "mailbox_stored_p99_ms": pct(&mut stored_ms, 0.99).round(),
            "deposit_phase_ms": ms(deposit_phase),
            "mailbox_picked_up": picked_up,
            "pickup_all_ms": ms(pickup),
            "run_s": run.elapsed().as_secs(),
        })
    );
    watchers.iter().for_each(|w| w.abort());
    parallel(nodes.iter().map(|n| n.shutdown()).collect()).await;
}
