//! One presence change pushed to many watchers.

use std::time::{Duration, Instant};

use roost::node::{Own, OwnStatus};
use roost::{Event, Identity, Node, NodeHandle};
use serde_json::json;

use crate::common::{Window, arg, context_switches, settle};
use crate::{LIMIT, MEMORY, bench_config, node, percentile};

/// One presence change pushed to `n` watchers, over TCP on loopback or
/// (`memory`) the in-process transport.
pub async fn fanout(n: usize, memory: bool) {
    let root = tempfile::tempdir().unwrap();
    let (publisher, watchers, last_start, online_time) = buddies(root.path(), n, memory).await;
    // Every watcher heard the publisher online this long after the last start.
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
            "fan-out {n}: +{:.0} s: {:.1} % of a core; per node and minute: {}",
            last_start.elapsed().as_secs_f64(),
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
    let (window, switches) = (Window::start(), context_switches("self"));
    tokio::time::sleep(idle).await;
    let (background, rates) = (window.cores(), window.per_node_minute(n + 1));
    // Wake-ups over the quiet spell by thread name, per second: what the
    // counters above do not see (sled's and libp2p's own threads).
    let woke: serde_json::Map<String, serde_json::Value> = context_switches("self")
        .into_iter()
        .map(|(name, n)| {
            (
                name.clone(),
                n.saturating_sub(switches.get(&name).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| {
            (
                name,
                ((n as f64 / idle.as_secs_f64()).round() as u64).into(),
            )
        })
        .collect();
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
            "quiet_wakeups_per_s_by_thread": woke,
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
/// has heard the publisher online; when the last watcher started, and how
/// long after that the last of them heard it.
async fn buddies(
    root: &std::path::Path,
    n: usize,
    memory: bool,
) -> (NodeHandle, Vec<NodeHandle>, Instant, Duration) {
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
    let first_start = Instant::now();
    let mut seen = Vec::new();
    for i in 0..n {
        last_start = Instant::now();
        let w = node(root, &format!("w{i}"), &boot).await;
        seen.push(online_at(&w, publisher.peer_id(), last_start));
        w.add_buddy(publisher.peer_id(), "p".into()).await.unwrap();
        publisher
            .add_buddy(w.peer_id(), format!("w{i}"))
            .await
            .unwrap();
        watchers.push(w);
    }
    let online = lag_report(first_start, last_start, seen).await;
    (publisher, watchers, last_start, online)
}

/// When watcher `w`, started at `start`, first hears `pid` online (by its
/// event, or by its buddy list if it missed events): the time from its own
/// start and the moment.
fn online_at(
    w: &NodeHandle,
    pid: libp2p::PeerId,
    start: Instant,
) -> tokio::task::JoinHandle<(Duration, Instant)> {
    use roost::wire::presence::Status;
    use tokio::sync::broadcast::error::RecvError;
    let (mut events, w) = (w.events(), w.clone());
    tokio::spawn(async move {
        let heard = async {
            loop {
                match events.recv().await {
                    Ok(Event::Presence { peer, info })
                        if peer == pid && info.status == Status::Online =>
                    {
                        return;
                    }
                    Err(RecvError::Lagged(_)) => {
                        let list = w.buddies().await.unwrap();
                        if list
                            .iter()
                            .any(|b| b.peer == pid && b.presence.status == Status::Online)
                        {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => {
                        panic!("watcher stopped before it heard the publisher")
                    }
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(LIMIT, heard)
            .await
            .expect("bench condition not reached: watcher sees online");
        (start.elapsed(), Instant::now())
    })
}

/// How long the watchers took to hear the publisher online, each from its
/// own start: the start-up's lag, and which watchers (by start order) lag.
async fn lag_report(
    first: Instant,
    last: Instant,
    seen: Vec<tokio::task::JoinHandle<(Duration, Instant)>>,
) -> Duration {
    let mut lags = Vec::new();
    for (i, h) in seen.into_iter().enumerate() {
        let (lag, at) = h.await.unwrap();
        lags.push((lag, i, at.saturating_duration_since(last)));
    }
    let mut sorted: Vec<_> = lags.iter().map(|l| l.0).collect();
    sorted.sort();
    lags.sort_by_key(|l| std::cmp::Reverse(l.0));
    let worst: Vec<String> = lags
        .iter()
        .take(10)
        .map(|(lag, i, after)| {
            format!(
                "w{i} {:.1}s (+{:.1}s)",
                lag.as_secs_f64(),
                after.as_secs_f64()
            )
        })
        .collect();
    eprintln!(
        "fan-out: start-up of the watchers took {:.1} s; from its own start a watcher heard the publisher online after p50 {:.2} s, p99 {:.2} s, max {:.2} s; slowest (lag, after the last start): {}",
        last.duration_since(first).as_secs_f64(),
        percentile(&sorted, 0.5) / 1e6,
        percentile(&sorted, 0.99) / 1e6,
        percentile(&sorted, 1.0) / 1e6,
        worst.join(", ")
    );
    lags.iter().map(|l| l.2).max().unwrap_or_default()
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
