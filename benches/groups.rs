//! `cargo bench --bench groups [-- --nodes N --messages M --offline F --offline-messages K
//! --threshold T --sync-every S --settle S --settle-permille P]`: one private
//! group of `N` members (default 1000), every member a real roost node in
//! this process over libp2p's in-memory transport (as the swarm bench runs
//! them). Groups of `T`
//! members or more (default 2: this one) take the fast path — each
//! message once over gossip, no 1:1 copy, members catching up from each
//! other when they start following and every `S` seconds (default 60);
//! `--threshold 100000` measures the 1:1 path alone.
//!
//! Phases, each checked, each timed:
//! 1. start the nodes; node 0 creates the group and invites all others in
//!    one change; every node takes the invitation and joins (progress on
//!    stderr every 30 s while invitations are missing, and where each
//!    waits once no more than 20 are);
//!    then the process must settle (below `--settle-permille` of a core,
//!    default 50, for at most `--settle` seconds, default 300): the
//!    messages go to a running group, not into its start-up's tail;
//! 2. `M` messages, each from a random member, one after the other: the
//!    time from `group_send` to every other member having it (its event),
//!    and the bytes the sender wrote on its connections in the 2 s after
//!    the send (and in the 2 s before it, the idle baseline);
//! 3. `F` members leave; `K` messages are sent and reach every member
//!    online (fast path) or the away members' mailboxes (1:1 path); the
//!    away members come back and must have all `K`, once each.
//!
//! Prints one JSON line: p50/p99 send → every online member (and each
//! message's, in the order sent), the sender's
//! counted bytes per message (`roost::net::wire_count`: everything it
//! wrote, Noise and Yamux included, background traffic too), CPU per
//! message (the whole process: sender and every receiver), the share
//! of messages the offline members had after they returned, what the
//! nodes woke up for per node and minute (`roost::net::stats`) over 10 s of
//! quiet and over the message phase (also on stderr every 5 messages), and
//! each node's connected and topic peers after the message phase.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::{Multiaddr, PeerId};
use roost::crypto::Sealer;
use roost::net::wire_count::memory_bytes_written;
use roost::node::groups::GroupEvent;
use roost::node::groups::fast::FastConfig;
use roost::wire::group::{GroupBody, SignedState};
use roost::wire::message::{self, Body, Inner, MessageId};
use roost::{Config, Event, Identity, Node, NodeHandle};
use serde_json::json;

mod common;
use common::{Rng, Window, arg, cpu_s, init_tracing, ms, pct, settle};

/// How long any phase may take before the run fails.
const LIMIT: Duration = Duration::from_secs(900);
/// The span over which a sender's bytes are counted, before a send (idle)
/// and after it.
const WINDOW: Duration = Duration::from_secs(2);
/// Nodes started (or calls made) at once.
const PARALLEL: usize = 50;

fn config(dir: &std::path::Path, boot: Vec<Multiaddr>, fast: FastConfig) -> Config {
    let mut c = Config::local(dir.to_path_buf());
    c.listen = vec!["/memory/0".parse().expect("memory multiaddr")];
    c.bootstrap = boot;
    c.auto_away = None;
    c.cache_bytes = 1 << 20;
    c.republish_min_interval = Duration::from_secs(5);
    c.group_fast = fast;
    c
}

async fn start(dir: std::path::PathBuf, boot: Vec<Multiaddr>, fast: FastConfig) -> NodeHandle {
    Node::start(config(&dir, boot, fast))
        .await
        .expect("node starts")
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

/// When node `i` got its invitation (from its events).
type Invited = Arc<Mutex<HashMap<usize, Instant>>>;

/// Follows the group events of `node` (index `i`): messages and invitations.
fn watch(i: usize, node: &NodeHandle, seen: &Seen, invited: &Invited) {
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
                        s.entry(i).or_insert_with(Instant::now);
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

/// The nodes of a run and how to start them again.
struct Net {
    nodes: Vec<NodeHandle>,
    addrs: Vec<Vec<Multiaddr>>,
    dirs: Vec<std::path::PathBuf>,
    ids: Vec<PeerId>,
    fast: FastConfig,
}

/// The figures of the message phase.
struct Sent {
    to_all: Vec<f64>,
    per_member: Vec<f64>,
    sender_bytes: Vec<f64>,
    sender_idle: Vec<f64>,
    /// Messages whose delivery outlasted [`WINDOW`].
    slow: usize,
    cpu_per_msg: f64,
    wire_len: usize,
    secs: f64,
    /// What the nodes woke up for, per node and minute
    /// (`roost::net::stats`).
    woke: serde_json::Map<String, serde_json::Value>,
}

async fn run() {
    let n = arg("--nodes", 1000) as usize;
    let m = arg("--messages", 20) as usize;
    let off = arg("--offline", (n / 10) as u64) as usize;
    let k = arg("--offline-messages", 3) as usize;
    let fast = FastConfig {
        threshold: arg("--threshold", 2) as usize,
        sync_every: Duration::from_secs(arg("--sync-every", 60)),
    };
    let mut rng = Rng::new(arg("--seed", 1));
    let root = tempfile::tempdir().expect("temp dir");
    let t0 = Instant::now();
    let mut net = start_nodes(n, fast, root.path(), &mut rng).await;
    eprintln!("{:>6.1} s: {n} nodes up", t0.elapsed().as_secs_f64());
    let seen: Seen = Arc::default();
    let (gid, invite_ms) = make_group(&net, &seen).await;
    eprintln!("{:>6.1} s: all joined", t0.elapsed().as_secs_f64());
    // Messages in a running group, not in the tail of the start-up and the
    // joins (lookups, mailbox fetches, the invitations' connections
    // closing): the process must settle below `--settle-permille` of a
    // core, for at most `--settle` seconds; the time it took is a figure.
    let share = arg("--settle-permille", 50) as f64 / 1000.0;
    let limit = Duration::from_secs(arg("--settle", 300));
    let (waited, settled_share) = settle(share, limit, |w| {
        eprintln!(
            "{:>6.1} s: {:.1} % of a core; per node and minute: {}",
            t0.elapsed().as_secs_f64(),
            w.cores() * 100.0,
            serde_json::Value::Object(w.per_node_minute(n))
        );
    })
    .await;
    eprintln!(
        "{:>6.1} s: settled to {:.1} % of a core",
        t0.elapsed().as_secs_f64(),
        settled_share * 100.0
    );
    let (idle, idle_cores, idle_woke) = background_bytes(&net).await;
    let sent = send_messages(&net, &gid, &seen, m, &mut rng).await;
    eprintln!("{:>6.1} s: {m} messages to all", t0.elapsed().as_secs_f64());
    let (peers, topic_peers) = peer_counts(&net, &gid).await;
    let (away, got, back) = offline_members(&mut net, &gid, &seen, (off, k), &mut rng).await;
    let Sent {
        to_all,
        mut per_member,
        mut sender_bytes,
        mut sender_idle,
        ..
    } = sent;
    println!(
        "{}",
        json!({
            "nodes": n,
            "fast_threshold": fast.threshold,
            "sync_every_s": fast.sync_every.as_secs(),
            "invite_all_ms": invite_ms,
            "messages": m,
            "to_every_member_ms": {"p50": pct(&mut to_all.clone(), 0.5), "p99": pct(&mut to_all.clone(), 0.99)},
            // In the order sent: which messages made the tail.
            "to_every_member_each_ms": to_all.iter().map(|v| v.round()).collect::<Vec<_>>(),
            "per_member_ms": {"p50": pct(&mut per_member.clone(), 0.5), "p99": pct(&mut per_member, 0.99)},
            "bytes_of_a_1to1_copy": sent.wire_len,
            "sender_bytes_2s_after_send": {"p50": pct(&mut sender_bytes.clone(), 0.5), "max": pct(&mut sender_bytes, 1.0)},
            "sender_bytes_2s_before_send": {"p50": pct(&mut sender_idle.clone(), 0.5), "max": pct(&mut sender_idle, 1.0)},
            "messages_past_2s": sent.slow,
            "background_bytes_per_node_s": idle,
            "settle_s": waited.as_secs_f64(),
            "settled_cores": settled_share,
            "background_cpu_cores": idle_cores,
            "cpu_ms_per_message": sent.cpu_per_msg * 1e3,
            "phase_messages_s": sent.secs,
            "idle_per_node_min": idle_woke,
            "messages_per_node_min": sent.woke,
            "connected_peers_after": peers,
            "topic_peers_after": topic_peers,
            "offline": away,
            "offline_delivered_pct": 100.0 * got as f64 / (away * k).max(1) as f64,
            "offline_back_ms": ms(back),
        })
    );
    // All at once: one after another, a thousand nodes took longer to
    // stop than the whole run.
    let stop = |i: usize| {
        let node = net.nodes[i].clone();
        async move {
            let _ = node.shutdown().await;
        }
    };
    parallel((0..n).map(stop).collect()).await;
}

/// Phase 1a: `n` nodes, each bootstrapped from three started before it.
async fn start_nodes(n: usize, fast: FastConfig, root: &std::path::Path, rng: &mut Rng) -> Net {
    let dirs: Vec<_> = (0..n).map(|i| root.join(format!("n{i}"))).collect();
    let ids: Vec<PeerId> = dirs
        .iter()
        .map(|d| Identity::create_in(d).expect("identity").peer_id())
        .collect();
    let mut nodes = vec![start(dirs[0].clone(), vec![], fast).await];
    let mut addrs = vec![nodes[0].dial_addrs().await.expect("addrs")];
    for chunk in (1..n).collect::<Vec<_>>().chunks(PARALLEL) {
        let jobs: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let boot: Vec<Multiaddr> = (0..3)
                    .flat_map(|_| addrs[rng.below(addrs.len())].clone())
                    .collect();
                start(dirs[i].clone(), boot, fast)
            })
            .collect();
        for node in futures::future::join_all(jobs).await {
            addrs.push(node.dial_addrs().await.expect("addrs"));
            nodes.push(node);
        }
    }
    Net {
        nodes,
        addrs,
        dirs,
        ids,
        fast,
    }
}

/// Invitees listed one by one once no more than this many are missing.
const MISSING_SHOWN: usize = 20;

/// Where the invitations still missing wait: per invitee, whether the
/// inviter (node 0) holds a connection to it, how many copies of mail for
/// it the network's mailbox holders keep (a deposited invitation waits
/// there for the invitee's fetch) and when that fetch comes, and where
/// the inviter's outbox stands with it (next attempt, failures, parks,
/// the link's set-up).
async fn missing(net: &Net, invited: &Invited) -> serde_json::Value {
    let have: HashSet<usize> = invited
        .lock()
        .map(|s| s.keys().copied().collect())
        .unwrap_or_default();
    let connected: HashSet<PeerId> = net.nodes[0]
        .connected_peers()
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    let absent: Vec<usize> = (1..net.nodes.len()).filter(|i| !have.contains(i)).collect();
    // One pass over the nodes, each asked for every invitee missing.
    let held = |j: usize| {
        let node = net.nodes[j].clone();
        let ids: Vec<PeerId> = absent.iter().map(|&i| net.ids[i]).collect();
        async move {
            let mut copies = Vec::with_capacity(ids.len());
            for id in ids {
                copies.push(node.held_for(id).await.unwrap_or(0));
            }
            copies
        }
    };
    let mut copies = vec![0; absent.len()];
    for per_node in parallel((0..net.nodes.len()).map(held).collect()).await {
        copies.iter_mut().zip(per_node).for_each(|(c, n)| *c += n);
    }
    let mut rows = Vec::new();
    for (&i, copies) in absent.iter().zip(copies) {
        let id = net.ids[i];
        let attempts = net.nodes[0].outbox_attempts(id).await.ok();
        let fetch = net.nodes[i].next_fetch().await.ok();
        rows.push(json!({
            "node": i,
            "connected_to_inviter": connected.contains(&id),
            "copies_held_for_it": copies,
            "its_next_fetch_s": fetch.map(|(next, _)| next.as_secs()),
            "its_poll_interval_s": fetch.map(|(_, every)| every.as_secs()),
            "inviter_link": attempts.as_ref().map(|a| format!("{:?}", a.link)),
            "inviter_outbox": attempts.map(|a| a.messages.iter().map(|m| json!({
                "in_flight": m.due_in.is_none(),
                "due_in_s": m.due_in.map(|d| d.as_secs()),
                "failures": m.failures,
                "parks": m.parks,
            })).collect::<Vec<_>>()),
        }));
    }
    json!({
        "inviter_outbox": net.nodes[0].outbox_len().await.unwrap_or(0),
        "invitees": rows,
    })
}

/// Phase 1b: node 0 makes the group and invites everyone in one change;
/// all join, and (on the fast path) all see a member on its topic.
/// Returns the group's id and how long the invitations took.
async fn make_group(net: &Net, seen: &Seen) -> (String, f64) {
    let n = net.nodes.len();
    let invited: Invited = Arc::default();
    for (i, node) in net.nodes.iter().enumerate() {
        watch(i, node, seen, &invited);
    }
    let t = Instant::now();
    let (gid, _) = net.nodes[0].group_create("bench").await.expect("create");
    let gid = gid.to_string();
    net.nodes[0]
        .group_invite(&gid, net.ids[1..].to_vec())
        .await
        .expect("invite");
    // Progress every 30 s: a phase that stalls (invitations fallen back
    // to mailboxes on a saturated start-up wait for their invitees' poll)
    // says how far it got and what the nodes were doing.
    let (deadline, mut woke, mut report) = (t + LIMIT, Window::start(), t);
    loop {
        let got = invited.lock().map_or(0, |s| s.len());
        if got == n - 1 {
            break;
        }
        if report.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "invitations: {got} of {} after {:.0} s; per node and minute: {}",
                n - 1,
                t.elapsed().as_secs_f64(),
                serde_json::Value::Object(woke.per_node_minute(n))
            );
            if n - 1 - got <= MISSING_SHOWN {
                eprintln!("still missing: {}", missing(net, &invited).await);
            }
            (woke, report) = (Window::start(), Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "stuck: {got} of {} invitations arrived",
            n - 1
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // From the events, not from this loop: a report that reads where the
    // last invitations wait takes a while, and must not count in.
    let last = invited.lock().ok().and_then(|s| s.values().max().copied());
    let invite_ms = ms(last.map_or(t.elapsed(), |l| l.saturating_duration_since(t)));
    let join = |i: usize| {
        let (node, gid) = (net.nodes[i].clone(), gid.clone());
        async move { node.group_join(&gid).await.expect("join") }
    };
    parallel((1..n).map(join).collect()).await;
    if n >= net.fast.threshold {
        let meshed = |i: usize| {
            let (node, gid) = (net.nodes[i].clone(), gid.clone());
            async move {
                let deadline = Instant::now() + LIMIT;
                while node.group_gossip_peers(&gid).await.unwrap_or(0) == 0 {
                    assert!(Instant::now() < deadline, "stuck: a member meets none");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        parallel((0..n).map(meshed).collect()).await;
    }
    (gid, invite_ms)
}

/// What a node writes per second when nothing is sent (DHT upkeep,
/// gossipsub heartbeats), counted over every node for 10 s, the cores
/// the whole process kept busy meanwhile (what each message's gossip
/// hops compete with), and what the nodes woke up for, per node and
/// minute.
async fn background_bytes(net: &Net) -> (f64, f64, serde_json::Map<String, serde_json::Value>) {
    let total = || net.ids.iter().map(memory_bytes_written).sum::<u64>();
    let (b0, cpu0, t, woke) = (total(), cpu_s(), Instant::now(), Window::start());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let secs = t.elapsed().as_secs_f64();
    let bytes = (total() - b0) as f64 / secs / net.ids.len() as f64;
    let cores = (cpu_s() - cpu0) / secs;
    (bytes, cores, woke.per_node_minute(net.ids.len()))
}

/// Per node, after the message phase: the peers it has a connection to
/// and those it sees on the group's topic (p50, min, max of each).
async fn peer_counts(net: &Net, gid: &str) -> (serde_json::Value, serde_json::Value) {
    let (mut peers, mut topic) = (Vec::new(), Vec::new());
    for node in &net.nodes {
        peers.push(node.connected_peers().await.map_or(0, |p| p.len()) as f64);
        topic.push(node.group_gossip_peers(gid).await.unwrap_or(0) as f64);
    }
    let spread = |v: &mut Vec<f64>| json!({"p50": pct(&mut v.clone(), 0.5), "min": pct(&mut v.clone(), 0.0), "max": pct(v, 1.0)});
    (spread(&mut peers), spread(&mut topic))
}

/// Phase 2: `m` messages, one at a time, each from a random member.
async fn send_messages(net: &Net, gid: &str, seen: &Seen, m: usize, rng: &mut Rng) -> Sent {
    let n = net.nodes.len();
    let (cpu0, woke) = (cpu_s(), Window::start());
    let t2 = Instant::now();
    let (mut to_all, mut per_member, mut sender_bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wire_len, mut slow) = (0, 0);
    let mut sender_idle = Vec::new();
    for j in 0..m {
        let s = 1 + rng.below(n - 1);
        let sender = &net.nodes[s];
        // The sender's own bytes over the [`WINDOW`] before the send (idle)
        // and over the one after it (the message).
        let idle0 = memory_bytes_written(&net.ids[s]);
        tokio::time::sleep(WINDOW).await;
        let bytes0 = memory_bytes_written(&net.ids[s]);
        sender_idle.push((bytes0 - idle0) as f64);
        let t = Instant::now();
        let id = sender
            .group_send(gid, &format!("message {j:04} {}", "x".repeat(80)))
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
            let got = others.iter().filter_map(|&i| seen.get(&(i, id.clone())));
            got.map(|at| ms(at.saturating_duration_since(t))).collect()
        };
        to_all.push(lat.iter().copied().fold(0.0, f64::max));
        per_member.extend(lat);
        tokio::time::sleep_until((t + WINDOW).into()).await;
        sender_bytes.push((memory_bytes_written(&net.ids[s]) - bytes0) as f64);
        slow += usize::from(t.elapsed() > WINDOW + Duration::from_millis(100));
        if wire_len == 0 {
            wire_len = copy_len(sender, gid, &id, net.ids[0]).await;
        }
        if j % 5 == 4 {
            let rates = serde_json::Value::Object(woke.per_node_minute(n));
            eprintln!("{} messages; per node and minute: {rates}", j + 1);
        }
    }
    Sent {
        to_all,
        per_member,
        sender_bytes,
        sender_idle,
        slow,
        cpu_per_msg: (cpu_s() - cpu0) / m as f64,
        wire_len,
        secs: t2.elapsed().as_secs_f64(),
        woke: woke.per_node_minute(n),
    }
}

/// Phase 3: `off` members stop; `k` messages are sent and reach every
/// member online (fast path: the away ones must catch up from them) or
/// the away members' mailboxes (1:1 path); they come back. Returns how
/// many were away, how many of the messages they had in all, and how
/// long that took.
async fn offline_members(
    net: &mut Net,
    gid: &str,
    seen: &Seen,
    (off, k): (usize, usize),
    rng: &mut Rng,
) -> (usize, usize, Duration) {
    let n = net.nodes.len();
    let away: Vec<usize> = {
        let mut set = HashSet::new();
        while set.len() < off.min(n.saturating_sub(2)) {
            set.insert(1 + rng.below(n - 1));
        }
        set.into_iter().collect()
    };
    for &i in &away {
        net.nodes[i].shutdown().await.expect("shutdown");
    }
    let online: Vec<usize> = (1..n).filter(|i| !away.contains(i)).collect();
    let mut sent_away = Vec::new();
    for j in 0..k {
        let s = online[rng.below(online.len())];
        let id = net.nodes[s]
            .group_send(gid, &format!("while away {j}"))
            .await
            .expect("send");
        sent_away.push((s, id));
    }
    if n >= net.fast.threshold {
        wait("every member online has the messages", || {
            let seen = seen.lock().expect("not poisoned");
            sent_away.iter().all(|(s, id)| {
                online
                    .iter()
                    .all(|&i| i == *s || seen.contains_key(&(i, id.clone())))
            })
        })
        .await;
    } else {
        wait_deposited(net, &away, &online, k).await;
    }
    let t3 = Instant::now();
    for &i in &away {
        let boot = net.addrs[online[rng.below(online.len())]].clone();
        net.nodes[i] = start(net.dirs[i].clone(), boot, net.fast).await;
    }
    let mut got = 0;
    for &i in &away {
        let deadline = Instant::now() + LIMIT;
        loop {
            let log = net.nodes[i].group_log(gid, 10_000).await.expect("log");
            let have = sent_away
                .iter()
                .filter(|(_, id)| log.iter().filter(|l| &l.id == id).count() == 1)
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
    (away.len(), got, t3.elapsed())
}

/// Waits until the mailboxes of every member `away` hold `k` items.
async fn wait_deposited(net: &Net, away: &[usize], online: &[usize], k: usize) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut held: HashMap<PeerId, usize> = HashMap::new();
        for &i in online {
            for &a in away {
                let items = net.nodes[i].held_envelopes(net.ids[a]).await;
                *held.entry(net.ids[a]).or_default() += items.map_or(0, |v| v.len());
            }
        }
        if away
            .iter()
            .all(|a| held.get(&net.ids[*a]).copied().unwrap_or(0) >= k)
        {
            return;
        }
        assert!(Instant::now() < deadline, "not all deposited");
        tokio::time::sleep(Duration::from_millis(500)).await;
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
