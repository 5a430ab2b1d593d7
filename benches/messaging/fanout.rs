//! One presence change pushed to many watchers.

use std::time::{Duration, Instant};

use roost::node::{Own, OwnStatus};
use roost::{Event, Identity, Node, NodeHandle};
use serde_json::json;

use crate::common::{Window, arg, settle, wait_until};
use crate::{LIMIT, MEMORY, bench_config, node, percentile};

/// One presence change pushed to `n` watchers, over TCP on loopback or
/// (`memory`) the in-process transport.
pub async fn fanout(n: usize, memory: bool) {
    let root = tempfile::tempdir().unwrap();
    let (publisher, watchers, last_start) = buddies(root.path(), n, memory).await;
    // Every watcher sees the publisher online this long after the last start.
    let online_time = last_start.elapsed();
    eprintln!(
        "fan-out {n}: every watcher sees the publisher online {:.1} s after the last start",
        online_time.as_secs_f64()
    );
    // A change in a running network, not in the start-up storm of the
    // nodes just created (Kademlia bootstrap, first locator records and
    // mailbox fetches of every watcher): the network must settle below 5 %
    // of a core, and the time it takes from the last start is a figure.
    let (_, settle_share) = settle(0.05, Duration::from_secs(120), |w| {
        eprintln!(
            "fan-out {n}: {:.1} % of a core; per node and minute: {}",
            w.cores() * 100.0,
            serde_json::Value::Object(w.per_node_minute(n + 1))
        );
    })
    .await;
    // From the last node's start, not from the end of the wait above.
    let settle_time = last_start.elapsed();
    eprintln!(
        "fan-out {n}: settled to {:.1} % of a core {:.1} s after the last start",
        settle_share * 100.0,
        settle_time.as_secs_f64(),
    );
    // The quiet spell: what the settled network does, counted.
    let idle = Duration::from_secs(arg("--idle", 30));
    let window = Window::start();
    tokio::time::sleep(idle).await;
    let (background, rates) = (window.cores(), window.per_node_minute(n + 1));
    // What the five changes cost the whole network, counted.
    let during = Window::start();
    let mut samples = changes(&publisher, &watchers).await;
    let (change_cpu_s, change_counts) = (during.cpu_s(), during.counted());
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
            "online_s": (online_time.as_secs_f64() * 10.0).round() / 10.0,
            "settle_s": (settle_time.as_secs_f64() * 10.0).round() / 10.0,
            "idle_s": idle.as_secs(),
            "background_cpu_pct": (background * 1000.0).round() / 10.0,
            "per_node_per_min": rates,
            "changes_cpu_s": (change_cpu_s * 100.0).round() / 100.0,
            "changes_counted": serde_json::Map::from_iter(
                change_counts.into_iter().map(|(k, n)| (k.to_string(), n.into()))
            ),
        })
    );
    // In parallel: each leaving node waits up to 3 s for its offline
    // record to be stored, and 500 of them one after another take minutes.
    let leaving = watchers.iter().chain([&publisher]).map(|w| w.shutdown());
    for r in futures::future::join_all(leaving).await {
        r.unwrap();
    }
}

/// A publisher and `n` watchers, buddies both ways, once every watcher
/// sees the publisher online; and when the last watcher started.
async fn buddies(
    root: &std::path::Path,
    n: usize,
    memory: bool,
) -> (NodeHandle, Vec<NodeHandle>, Instant) {
    let publisher = if memory {
        let dir = root.join("p");
        Identity::create_in(&dir).expect("identity");
        let mut c = bench_config(&dir, &[]);
        c.listen = vec![MEMORY.parse().expect("memory multiaddr")];
        Node::start(c).await.expect("node")
    } else {
        node(root, "p", &[]).await
    };
    let boot = publisher.dial_addrs().await.unwrap();
    let mut watchers = Vec::new();
    let mut last_start = Instant::now();
    for i in 0..n {
        last_start = Instant::now();
        let w = node(root, &format!("w{i}"), &boot).await;
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
    (publisher, watchers, last_start)
}

/// Five presence changes: per change and watcher, how long until the
/// watcher saw it.
async fn changes(publisher: &NodeHandle, watchers: &[NodeHandle]) -> Vec<Duration> {
    let pid = publisher.peer_id();
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
    samples
}
