//! `cargo bench --bench messaging`: roost against the floors of its own
//! network stack, in the same run, plus the mailbox path, presence fan-out
//! and an idle node. Prints one JSON line per figure; docs/performance.md
//! explains them. Set `ROOST_BENCH_QUICK=1` for a fast smoke run with small
//! counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm};
use roost::node::{Own, OwnStatus};
use roost::store::{Direction, MessageState, StoredMessage};
use roost::wire::frame::{ReadFrame, read_frame, write_frame};
use roost::wire::message::MessageId;
use roost::{Config, Content, Event, Identity, Node, NodeHandle};
use serde_json::json;
use tokio::sync::Semaphore;

mod common;
use common::{
    arg, context_switches, cpu_s_of, init_tracing, raise_fd_limit, rss_mib, settle, wait_until,
};

const MSG_BYTES: usize = 100;
const WARMUP: usize = 100;
const WINDOW: usize = 64;
/// Longest wait for any bench condition.
const LIMIT: Duration = Duration::from_secs(120);

struct Counts {
    latency: usize,
    throughput: usize,
    mailbox: usize,
    /// Watchers, and whether over the memory transport.
    fanout: Vec<(usize, bool)>,
}

fn counts() -> Counts {
    if std::env::var_os("ROOST_BENCH_QUICK").is_some() {
        Counts {
            latency: 200,
            throughput: 2000,
            mailbox: 100,
            fanout: vec![(10, false), (10, true)],
        }
    } else {
        Counts {
            latency: 2000,
            throughput: 20000,
            mailbox: 1000,
            fanout: vec![(50, false), (100, false), (100, true), (500, true)],
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn line(system: &str, connect: Duration, mut rtts: Vec<Duration>, tp: f64, c: &Counts) {
    rtts.sort();
    println!(
        "{}",
        json!({
            "system": system,
            "connect_ms": (connect.as_secs_f64() * 1e4).round() / 10.0,
            "rtt_p50_us": percentile(&rtts, 0.50).round(),
            "rtt_p99_us": percentile(&rtts, 0.99).round(),
            "throughput_msgs_per_s": tp.round(),
            "msg_bytes": MSG_BYTES,
            "n_latency": c.latency,
            "n_throughput": c.throughput,
        })
    );
}

fn payload(i: usize) -> String {
    let head = format!("{i:08} ");
    head.clone() + &"x".repeat(MSG_BYTES - head.len())
}

/// In-process memory transport instead of TCP on 127.0.0.1: for runs with
/// more nodes than one process has file descriptors for.
const MEMORY: &str = "/memory/0";

fn bench_config(dir: &std::path::Path, boot: &[Multiaddr]) -> Config {
    let mut c = Config::local(dir.to_path_buf());
    if boot.iter().any(|a| a.to_string().starts_with("/memory/")) {
        c.listen = vec![MEMORY.parse().expect("memory multiaddr")];
    }
    c.bootstrap = boot.to_vec();
    c.auto_away = None;
    c.cache_bytes = 4 << 20;
    // The mailbox figure leaves up to 1000 messages from one sender for one
    // recipient: it measures the path, not the per-sender cap.
    c.mailbox.quotas.pair_items = 10_000;
    c
}

async fn node(root: &std::path::Path, name: &str, boot: &[Multiaddr]) -> NodeHandle {
    let dir = root.join(name);
    Identity::create_in(&dir).expect("identity");
    Node::start(bench_config(&dir, boot)).await.expect("node")
}

/// The full application path: sealed, authenticated, stored durably by the
/// recipient before it acknowledges, and B's answer too.
async fn roost_system(c: &Counts) {
    let root = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let seed = node(root.path(), "seed", &[]).await;
    let boot = seed.dial_addrs().await.unwrap();
    let a = node(root.path(), "a", &boot).await;
    let b = node(root.path(), "b", &boot).await;
    let (ida, idb) = (a.peer_id(), b.peer_id());
    // Connect: A knows only B's key; the first message finds B through the DHT.
    let mut a_events = a.events();
    let first = a.send(idb, Content::text(payload(0))).await.unwrap();
    loop {
        if let Ok(Event::State {
            id,
            state: MessageState::Delivered,
            ..
        }) = a_events.recv().await
            && id == first
        {
            break;
        }
    }
    let connect = t0.elapsed();
    // Buddies both ways (once connected, so as not to change the figure
    // above): a stranger's messages are capped
    // (`store::MAX_REQUEST_MESSAGES_PER_STRANGER`) below what is sent here.
    a.add_buddy(idb, "b".into()).await.unwrap();
    b.add_buddy(ida, "a".into()).await.unwrap();

    // B answers every message from A with a message of its own.
    let responder = {
        let b = b.clone();
        let mut ev = b.events();
        tokio::spawn(async move {
            while let Ok(e) = ev.recv().await {
                if let Event::Message(m) = e
                    && m.peer_id() == Some(ida)
                {
                    let _ = b.send(ida, Content::text(payload(1))).await;
                }
            }
        })
    };
    let mut rtts = Vec::with_capacity(c.latency);
    for i in 0..WARMUP + c.latency {
        let t = Instant::now();
        a.send(idb, Content::text(payload(i))).await.unwrap();
        loop {
            if let Ok(Event::Message(m)) = a_events.recv().await
                && m.peer_id() == Some(idb)
            {
                break;
            }
        }
        if i >= WARMUP {
            rtts.push(t.elapsed());
        }
    }
    responder.abort();

    // Throughput: at most WINDOW unacknowledged (not yet delivered).
    let window = Arc::new(Semaphore::new(WINDOW));
    let t = Instant::now();
    let sender = {
        let (a, window) = (a.clone(), window.clone());
        let n = c.throughput;
        tokio::spawn(async move {
            for i in 0..n {
                window.acquire().await.unwrap().forget();
                let a = a.clone();
                tokio::spawn(async move { a.send(idb, Content::text(payload(i))).await.unwrap() });
            }
        })
    };
    let mut delivered = 0;
    while delivered < c.throughput {
        match a_events.recv().await {
            Ok(Event::State {
                state: MessageState::Delivered,
                ..
            }) => {
                delivered += 1;
                window.add_permits(1);
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                panic!("event stream lagged by {n}")
            }
            _ => {}
        }
    }
    let tp = c.throughput as f64 / t.elapsed().as_secs_f64();
    sender.await.unwrap();
    line("roost", connect, rtts, tp, c);
    for n in [&a, &b, &seed] {
        n.shutdown().await.unwrap();
    }
}

const FLOOR: StreamProtocol = StreamProtocol::new("/roost-bench/floor/1");

fn bare_swarm() -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// Appends frames to a file and syncs once for everything pending.
struct Journal(std::fs::File);

impl Journal {
    fn new(dir: &std::path::Path, name: &str) -> Self {
        Self(std::fs::File::create(dir.join(name)).unwrap())
    }
    fn commit(&mut self, frames: &[Vec<u8>]) {
        use std::io::Write;
        for f in frames {
            self.0.write_all(f).unwrap();
        }
        self.0.sync_data().unwrap();
    }
}

/// The price of durability alone, with no messaging around it: one stored
/// message made power-safe by roost's store (a sled write, sled's flush and
/// an `fdatasync` of its log — what a recipient does before it
/// acknowledges) against one frame appended to a file and `fdatasync`ed
/// (what the durable floor does), alternating on the same disk — which of
/// the two goes first alternates too, so neither always finds the disk
/// just flushed. A round trip pays two commits, so twice the difference is
/// what roost's RTT carries over the durable floor's before any messaging
/// work.
fn commit(c: &Counts) {
    let dir = tempfile::tempdir().unwrap();
    let store = roost::store::Store::open(&dir.path().join("db"), 4 << 20).unwrap();
    let mut journal = Journal::new(dir.path(), "journal.log");
    let peer = Identity::generate().unwrap().peer_id().to_bytes();
    let (mut stored, mut appended) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + c.latency {
        let text = payload(i).into_bytes();
        let message = StoredMessage {
            id: MessageId::random(),
            peer: peer.clone(),
            direction: Direction::In,
            sent_at: i as u64,
            stored_at: i as u64,
            content_type: "text/plain".into(),
            subject: None,
            data: text.clone(),
            state: MessageState::Unread,
            request: false,
        };
        let store_commit = || {
            let t = Instant::now();
            store.insert_incoming(&[message]).unwrap();
            store.flush().unwrap();
            t.elapsed()
        };
        let append_commit = || {
            let t = Instant::now();
            journal.commit(&[text]);
            t.elapsed()
        };
        let (store_took, append_took) = if i % 2 == 0 {
            let s = store_commit();
            (s, append_commit())
        } else {
            let a = append_commit();
            (store_commit(), a)
        };
        if i >= WARMUP {
            stored.push(store_took);
            appended.push(append_took);
        }
    }
    stored.sort();
    appended.sort();
    println!(
        "{}",
        json!({
            "part": "commit",
            "store_commit_p50_us": percentile(&stored, 0.50).round(),
            "store_commit_p99_us": percentile(&stored, 0.99).round(),
            "append_commit_p50_us": percentile(&appended, 0.50).round(),
            "append_commit_p99_us": percentile(&appended, 0.99).round(),
            "n": c.latency,
        })
    );
}

/// One bare long-lived libp2p stream (TCP + Noise + Yamux) with
/// length-prefixed frames and an answer per frame; `durable` makes each side
/// journal and fdatasync what it received before answering.
async fn floor(c: &Counts, durable: bool) {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut sa = bare_swarm();
    let mut sb = bare_swarm();
    sb.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            sb.select_next_some().await
        {
            break address;
        }
    };
    let pb: PeerId = *sb.local_peer_id();
    let mut incoming = sb.behaviour().new_control().accept(FLOOR).unwrap();
    let mut control = sa.behaviour().new_control();
    sa.dial(addr.with(libp2p::multiaddr::Protocol::P2p(pb)))
        .unwrap();
    tokio::spawn(async move {
        loop {
            sa.select_next_some().await;
        }
    });
    tokio::spawn(async move {
        loop {
            sb.select_next_some().await;
        }
    });

    // B: reads what is available, journals it (durable), answers each.
    let bdir = dir.path().to_path_buf();
    tokio::spawn(async move {
        let (_, stream) = incoming.next().await.unwrap();
        let (mut r, mut w) = stream.split();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4096);
        tokio::spawn(async move {
            while let Ok(ReadFrame::Frame(f)) = read_frame(&mut r, 1 << 20).await {
                if tx.send(f).await.is_err() {
                    break;
                }
            }
        });
        let mut journal = durable.then(|| Journal::new(&bdir, "b.log"));
        let answer = payload(7).into_bytes();
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(f) = rx.try_recv() {
                batch.push(f);
            }
            if let Some(j) = journal.as_mut() {
                tokio::task::block_in_place(|| j.commit(&batch));
            }
            for _ in &batch {
                write_frame(&mut w, &answer).await.unwrap();
            }
            w.flush().await.unwrap();
        }
    });

    let stream = loop {
        match control.open_stream(pb, FLOOR).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    };
    let (mut r, mut w) = stream.split();
    let mut journal = durable.then(|| Journal::new(dir.path(), "a.log"));
    let msg = payload(1).into_bytes();
    let mut rtts = Vec::new();
    let mut connect = Duration::ZERO;
    for i in 0..WARMUP + c.latency + 1 {
        let t = Instant::now();
        write_frame(&mut w, &msg).await.unwrap();
        w.flush().await.unwrap();
        let ReadFrame::Frame(ans) = read_frame(&mut r, 1 << 20).await.unwrap() else {
            panic!("closed")
        };
        if let Some(j) = journal.as_mut() {
            tokio::task::block_in_place(|| j.commit(&[ans]));
        }
        if i == 0 {
            connect = t0.elapsed();
        } else if i > WARMUP {
            rtts.push(t.elapsed());
        }
    }
    let window = Arc::new(Semaphore::new(WINDOW));
    let n = c.throughput;
    let t = Instant::now();
    let writer = {
        let window = window.clone();
        tokio::spawn(async move {
            for _ in 0..n {
                window.acquire().await.unwrap().forget();
                write_frame(&mut w, &msg).await.unwrap();
                if window.available_permits() == 0 {
                    w.flush().await.unwrap();
                }
            }
            w.flush().await.unwrap();
        })
    };
    for _ in 0..n {
        let ReadFrame::Frame(_) = read_frame(&mut r, 1 << 20).await.unwrap() else {
            panic!("closed")
        };
        window.add_permits(1);
    }
    writer.await.unwrap();
    let tp = n as f64 / t.elapsed().as_secs_f64();
    line(
        if durable {
            "durable-floor"
        } else {
            "stream-floor"
        },
        connect,
        rtts,
        tp,
        c,
    );
}

/// Deposit with quorum, then pickup when the recipient connects after the
/// sender has left.
async fn mailbox(c: &Counts) {
    let root = tempfile::tempdir().unwrap();
    let seed = node(root.path(), "seed", &[]).await;
    let boot = seed.dial_addrs().await.unwrap();
    let mut holders = vec![seed];
    for i in 0..3 {
        holders.push(node(root.path(), &format!("h{i}"), &boot).await);
    }
    let a = node(root.path(), "a", &boot).await;
    let jack_dir = root.path().join("jack");
    let jack_id = Identity::create_in(&jack_dir).unwrap();
    let jack = jack_id.peer_id();
    // A is Jack's buddy (added while Jack is offline, straight in his
    // store): a stranger's messages are capped below what is sent here.
    {
        let db = jack_dir.join(roost::node::DB_DIR);
        let store = roost::store::Store::open(&db, 1 << 20).unwrap();
        store.add_buddy(&a.peer_id(), "a").unwrap();
    }
    wait_until("a connected", LIMIT, || async {
        a.connected_peers().await.unwrap().len() >= 3
    })
    .await;
    let t = Instant::now();
    let contents: Vec<Content> = (0..c.mailbox).map(|i| Content::text(payload(i))).collect();
    a.send_many(jack, contents).await.unwrap();
    wait_until("all stored", LIMIT, || async {
        let conv = a.conversation(jack, c.mailbox + 10).await.unwrap();
        conv.iter()
            .filter(|m| m.state == MessageState::Stored)
            .count()
            == c.mailbox
    })
    .await;
    let deposit = t.elapsed();
    // The sender is offline before the recipient starts, so only the
    // mailboxes can deliver.
    a.shutdown().await.unwrap();
    let t = Instant::now();
    let j = Node::start(bench_config(&jack_dir, &boot)).await.unwrap();
    wait_until("all picked up", LIMIT, || async {
        j.conversation(a.peer_id(), c.mailbox + 10)
            .await
            .unwrap()
            .len()
            == c.mailbox
    })
    .await;
    let pickup = t.elapsed();
    println!(
        "{}",
        json!({
            "system": "roost-mailbox",
            "messages": c.mailbox,
            "deposit_all_stored_ms": (deposit.as_secs_f64() * 1e4).round() / 10.0,
            "pickup_ms": (pickup.as_secs_f64() * 1e4).round() / 10.0,
            "note": "pickup = sender shut down, then recipient node started -> all messages stored locally",
        })
    );
    for n in holders.iter().chain([&j]) {
        n.shutdown().await.unwrap();
    }
}

/// One presence change pushed to `n` watchers, over TCP on loopback or
/// (`memory`) the in-process transport.
async fn fanout(n: usize, memory: bool) {
    let root = tempfile::tempdir().unwrap();
    let publisher = if memory {
        let dir = root.path().join("p");
        Identity::create_in(&dir).expect("identity");
        let mut c = bench_config(&dir, &[]);
        c.listen = vec![MEMORY.parse().expect("memory multiaddr")];
        Node::start(c).await.expect("node")
    } else {
        node(root.path(), "p", &[]).await
    };
    let boot = publisher.dial_addrs().await.unwrap();
    let mut watchers = Vec::new();
    for i in 0..n {
        let w = node(root.path(), &format!("w{i}"), &boot).await;
        w.add_buddy(publisher.peer_id(), "p".into()).await.unwrap();
        publisher
            .add_buddy(w.peer_id(), format!("w{i}"))
            .await
            .unwrap();
        watchers.push(w);
    }
    let pid = publisher.peer_id();
    for w in &watchers {
        wait_until("watcher sees online", LIMIT, || async {
            w.buddies().await.unwrap().iter().any(|b| {
                b.peer == pid && b.presence.status == roost::wire::presence::Status::Online
            })
        })
        .await;
    }
    // A change in a running network, not in the start-up storm of the
    // nodes just created (Kademlia bootstrap, first locator records and
    // mailbox fetches of every watcher).
    let (settle_time, background) = settle(0.1, Duration::from_secs(120)).await;
    let mut samples = Vec::new();
    for round in 0..5 {
        let mut streams: Vec<_> = watchers.iter().map(|w| w.events()).collect();
        let status = if round % 2 == 0 {
            OwnStatus::Away
        } else {
            OwnStatus::Busy
        };
        let t = Instant::now();
        publisher
            .set_presence(Own {
                status,
                note: Some(format!("round {round}")),
                ..Own::default()
            })
            .await
            .unwrap();
        let waits = streams.iter_mut().map(|s| async move {
            loop {
                if let Ok(Event::Presence { peer, .. }) = s.recv().await
                    && peer == pid
                {
                    return t.elapsed();
                }
            }
        });
        samples.extend(futures::future::join_all(waits).await);
    }
    samples.sort();
    println!(
        "{}",
        json!({
            "system": "roost-presence-fanout",
            "transport": if memory { "memory" } else { "tcp" },
            "watchers": n,
            "changes": 5,
            "p50_ms": (percentile(&samples, 0.5) / 100.0).round() / 10.0,
            "p99_ms": (percentile(&samples, 0.99) / 100.0).round() / 10.0,
            "max_ms": (percentile(&samples, 1.0) / 100.0).round() / 10.0,
            "settle_s": (settle_time.as_secs_f64() * 10.0).round() / 10.0,
            "background_cpu": (background * 1000.0).round() / 1000.0,
        })
    );
    // In parallel: each leaving node waits up to 3 s for its offline
    // record to be stored, and 500 of them one after another take minutes.
    let leaving = watchers.iter().chain([&publisher]).map(|w| w.shutdown());
    for r in futures::future::join_all(leaving).await {
        r.unwrap();
    }
}

/// An idle daemon: resident memory and CPU time over 30 s.
async fn idle() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_roost");
    let ok = std::process::Command::new(bin)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("init")
        .output()
        .unwrap();
    assert!(ok.status.success());
    let mut child = std::process::Command::new(bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = pid.to_string();
    let (c0, s0, t0) = (cpu_s_of(&pid), context_switches(&pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (c1, s1, secs) = (
        cpu_s_of(&pid),
        context_switches(&pid),
        t0.elapsed().as_secs_f64(),
    );
    let rss = rss_mib(&pid);
    // Wake-ups in the window, per thread name: who is not idle.
    let woke: std::collections::BTreeMap<&String, u64> = s1
        .iter()
        .map(|(name, n)| (name, n.saturating_sub(s0.get(name).copied().unwrap_or(0))))
        .filter(|(_, n)| *n > 0)
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "{}",
        json!({
            "system": "roost-idle",
            "rss_mib": rss,
            "cpu_percent": ((c1 - c0) / secs * 1000.0).round() / 10.0,
            "seconds": secs.round(),
            "context_switches": woke.values().sum::<u64>(),
            "context_switches_by_thread": woke,
        })
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `--watchers N`: one fan-out size only (over TCP up to 100, else memory).
    let watchers = arg("--watchers", 0) as usize;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<usize>().is_err())
        .collect();
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    raise_fd_limit();
    init_tracing();
    // `cargo bench --bench messaging -- fanout` runs only the named parts.
    let want = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let mut c = counts();
    if watchers > 0 {
        c.fanout = vec![(watchers, watchers > 100)];
    }
    if want("floor") {
        floor(&c, false).await;
        floor(&c, true).await;
    }
    if want("commit") {
        commit(&c);
    }
    if want("roost") {
        roost_system(&c).await;
    }
    if want("mailbox") {
        mailbox(&c).await;
    }
    if want("fanout") {
        for &(n, memory) in &c.fanout {
            fanout(n, memory).await;
        }
    }
    if want("idle") {
        idle().await;
    }
}
