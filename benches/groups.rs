//! `cargo bench --bench groups [-- --nodes N --messages M --offline F --offline-messages K]`:
//! one private group of `N` members (default 1000), every member a real
//! roost node in this process over libp2p's in-memory transport (as the
//! swarm bench runs them).
//!
//! Phases, each checked, each timed:
//! 1. start the nodes; node 0 creates the group and invites all others in
//!    one change; every node takes the invitation and joins;
//! 2. `M` messages, each from a random member, one after the other: the
//!    time from `group_send` to every other member having it (its event);
//! 3. `F` members leave; `K` messages are sent and reach their mailboxes;
//!    they come back and must have all `K`.
//!
//! Prints one JSON line: p50/p99 send → every online member, bytes each
//! member's copy takes on the wire and the sender's bytes per message, CPU
//! per message (the whole process: sender and every receiver), and the
//! share of messages the offline members had after they returned.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::{Multiaddr, PeerId};
use roost::crypto::Sealer;
use roost::node::groups::GroupEvent;
use roost::wire::group::{GroupBody, SignedState};
use roost::wire::message::{self, Body, Inner, MessageId};
use roost::{Config, Event, Identity, Node, NodeHandle};
use serde_json::json;

mod common;
use common::{Rng, arg, cpu_s, init_tracing, ms, pct};

/// How long any phase may take before the run fails.
const LIMIT: Duration = Duration::from_secs(900);
/// Nodes started (or calls made) at once.
const PARALLEL: usize = 50;

fn config(dir: &std::path::Path, boot: Vec<Multiaddr>) -> Config {
    let mut c = Config::local(dir.to_path_buf());
    c.listen = vec!["/memory/0".parse().expect("memory multiaddr")];
    c.bootstrap = boot;
    c.auto_away = None;
    c.cache_bytes = 1 << 20;
    c.republish_min_interval = Duration::from_secs(5);
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

/// When node `i` got group message `id` (from its events).
type Seen = Arc<Mutex<HashMap<(usize, String), Instant>>>;

/// Follows the group events of `node` (index `i`): messages and invitations.
fn watch(i: usize, node: &NodeHandle, seen: &Seen, invited: &Arc<Mutex<HashSet<usize>>>) {
    let (mut events, seen, invited) = (node.events(), seen.clone(), invited.clone());
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Group(GroupEvent::Message { id, .. })) => {
                    if let Ok(mut s) = seen.lock() {
                        s.entry((i, id)).or_insert_with(Instant::now);
                    }
                }
                Ok(Event::Group(GroupEvent::Invitation { .. })) => {
                    if let Ok(mut s) = invited.lock() {
                        s.insert(i);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    });
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "stuck: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn main() {
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let n = arg("--nodes", 1000) as usize;
    let m = arg("--messages", 20) as usize;
    let off = arg("--offline", (n / 10) as u64) as usize;
    let k = arg("--offline-messages", 3) as usize;
    let mut rng = Rng::new(arg("--seed", 1));
    let root = tempfile::tempdir().expect("temp dir");
    let run = Instant::now();

    // Phase 1: the nodes, the group.
    let dirs: Vec<_> = (0..n).map(|i| root.path().join(format!("n{i}"))).collect();
    let ids: Vec<PeerId> = dirs
        .iter()
        .map(|d| Identity::create_in(d).expect("identity").peer_id())
        .collect();
    let mut nodes = vec![start(dirs[0].clone(), vec![]).await];
    let mut addrs = vec![nodes[0].dial_addrs().await.expect("addrs")];
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
        for node in futures::future::join_all(jobs).await {
            addrs.push(node.dial_addrs().await.expect("addrs"));
            nodes.push(node);
        }
    }
    eprintln!("{:>6.1} s: {n} nodes up", run.elapsed().as_secs_f64());
    let seen: Seen = Arc::default();
    let invited: Arc<Mutex<HashSet<usize>>> = Arc::default();
    for (i, node) in nodes.iter().enumerate() {
        watch(i, node, &seen, &invited);
    }
    let t = Instant::now();
    let (gid, _) = nodes[0].group_create("bench").await.expect("create");
    let gid = gid.to_string();
    nodes[0]
        .group_invite(&gid, ids[1..].to_vec())
        .await
        .expect("invite");
    wait("every invitation arrives", || {
        invited.lock().is_ok_and(|s| s.len() == n - 1)
    })
    .await;
    let invite_ms = ms(t.elapsed());
    parallel(
        (1..n)
            .map(|i| {
                let (node, gid) = (nodes[i].clone(), gid.clone());
                async move { node.group_join(&gid).await.expect("join") }
            })
            .collect(),
    )
    .await;
    eprintln!("{:>6.1} s: all joined", run.elapsed().as_secs_f64());

    // Phase 2: messages to every online member.
    let cpu0 = cpu_s();
    let t2 = Instant::now();
    let mut to_all = Vec::new();
    let mut per_member = Vec::new();
    let mut wire_len = 0;
    for j in 0..m {
        let s = 1 + rng.below(n - 1);
        let t = Instant::now();
        let id = nodes[s]
            .group_send(&gid, &format!("message {j:04} {}", "x".repeat(80)))
            .await
            .expect("send");
        let others: Vec<usize> = (0..n).filter(|&i| i != s).collect();
        wait("every member has the message", || {
            let seen = seen.lock().expect("not poisoned");
            others.iter().all(|&i| seen.contains_key(&(i, id.clone())))
        })
        .await;
        let lat: Vec<f64> = {
            let seen = seen.lock().expect("not poisoned");
            others
                .iter()
                .filter_map(|&i| seen.get(&(i, id.clone())))
                .map(|at| ms(at.saturating_duration_since(t)))
                .collect()
        };
        to_all.push(lat.iter().copied().fold(0.0, f64::max));
        per_member.extend(lat);
        if wire_len == 0 {
            wire_len = copy_len(&nodes[s], &gid, &id, ids[0]).await;
        }
    }
    let cpu_per_msg = (cpu_s() - cpu0) / m as f64;
    let phase2 = t2.elapsed();
    eprintln!(
        "{:>6.1} s: {m} messages to all",
        run.elapsed().as_secs_f64()
    );

    // Phase 3: offline members, back later.
    let away: Vec<usize> = {
        let mut set = HashSet::new();
        while set.len() < off.min(n.saturating_sub(2)) {
            set.insert(1 + rng.below(n - 1));
        }
        set.into_iter().collect()
    };
    for &i in &away {
        nodes[i].shutdown().await.expect("shutdown");
    }
    let online: Vec<usize> = (1..n).filter(|i| !away.contains(i)).collect();
    let mut sent_away = Vec::new();
    for j in 0..k {
        let s = online[rng.below(online.len())];
        let id = nodes[s]
            .group_send(&gid, &format!("while away {j}"))
            .await
            .expect("send");
        sent_away.push(id);
    }
    // In the mailboxes of every member away before they return.
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut held: HashMap<PeerId, usize> = HashMap::new();
        for &i in &online {
            for &a in &away {
                *held.entry(ids[a]).or_default() +=
                    nodes[i].held_envelopes(ids[a]).await.map_or(0, |v| v.len());
            }
        }
        if away
            .iter()
            .all(|a| held.get(&ids[*a]).copied().unwrap_or(0) >= k)
        {
            break;
        }
        assert!(Instant::now() < deadline, "not all deposited");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t3 = Instant::now();
    for &i in &away {
        let boot = addrs[online[rng.below(online.len())]].clone();
        nodes[i] = start(dirs[i].clone(), boot).await;
    }
    let mut got = 0;
    for &i in &away {
        let deadline = Instant::now() + LIMIT;
        loop {
            let log = nodes[i].group_log(&gid, 10_000).await.expect("log");
            let have = sent_away
                .iter()
                .filter(|id| log.iter().any(|l| &l.id == *id))
                .count();
            if have == k {
                got += have;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "an offline member lacks messages"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let back = t3.elapsed();
    println!(
        "{}",
        json!({
            "nodes": n,
            "invite_all_ms": invite_ms,
            "messages": m,
            "to_every_member_ms": {"p50": pct(&mut to_all.clone(), 0.5), "p99": pct(&mut to_all, 0.99)},
            "per_member_ms": {"p50": pct(&mut per_member.clone(), 0.5), "p99": pct(&mut per_member, 0.99)},
            "bytes_per_member_per_message": wire_len,
            "sender_bytes_per_message": wire_len * (n - 1),
            "cpu_ms_per_message": cpu_per_msg * 1e3,
            "phase_messages_s": phase2.as_secs_f64(),
            "offline": away.len(),
            "offline_delivered_pct": 100.0 * got as f64 / (away.len() * k).max(1) as f64,
            "offline_back_ms": ms(back),
        })
    );
    for node in &nodes {
        let _ = node.shutdown().await;
    }
}

/// The bytes one member's copy of message `id` takes on the wire: its
/// group bytes in a 1:1 envelope, framed.
async fn copy_len(sender: &NodeHandle, gid: &str, id: &str, to: PeerId) -> usize {
    let log = sender.group_log(gid, 10_000).await.expect("log");
    let wire = log.iter().find(|l| l.id == id).and_then(|l| l.wire.clone());
    let signed: SignedState =
        roost::wire::decode(&wire.expect("wire bytes"), 1 << 20).expect("decode");
    let body = roost::wire::encode(&GroupBody::Message(signed)).expect("encode");
    let me = Identity::generate().expect("identity");
    let inner = Inner {
        from: me.peer_id().to_bytes(),
        sent_at: 1,
        body: Body::Group(body),
    };
    let env = message::seal(&Sealer::new(&me), MessageId::random(), &to, &inner).expect("seal");
    message::encode_deliver(&env).expect("frame").len() + 4
}
