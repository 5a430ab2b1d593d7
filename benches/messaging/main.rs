//! `cargo bench --bench messaging`: roost against the floors of its own
//! network stack, in the same run, plus the mailbox path, presence fan-out
//! and an idle node. Prints one JSON line per figure; docs/performance.md
//! explains them. Set `ROOST_BENCH_QUICK=1` for a fast smoke run with small
//! counts.
//!
//! Its parts: `floor` (the bare-stream floors and the commit price),
//! `system` (roost's round trips, throughput and mailbox path), `fanout`
//! (a presence change pushed to many watchers) and `idle` (an idle
//! daemon).

use std::time::Duration;

use libp2p::Multiaddr;
use roost::{Config, Identity, Node, NodeHandle};
use serde_json::json;

#[path = "../common/mod.rs"]
mod common;
mod fanout;
mod floor;
mod idle;
mod slowsync;
mod system;

use common::{arg, init_tracing, raise_fd_limit};

const MSG_BYTES: usize = 100;
const WARMUP: usize = 100;
/// Messages unacknowledged at most in a throughput phase, unless
/// `ROOST_BENCH_WINDOW` says otherwise.
const WINDOW: usize = 64;
/// Longest wait for any bench condition.
const LIMIT: Duration = Duration::from_secs(120);

struct Counts {
    latency: usize,
    throughput: usize,
    /// Most unacknowledged in a throughput phase (roost's and the floors').
    window: usize,
    mailbox: usize,
    /// Watchers, and whether over the memory transport.
    fanout: Vec<(usize, bool)>,
}

/// `ROOST_BENCH_ROUNDS` and `ROOST_BENCH_MESSAGES` override the round
/// trips and the throughput messages (a profile of one phase makes the
/// other small), `ROOST_BENCH_WINDOW` the throughput window.
fn counts() -> Counts {
    let mut c = default_counts();
    let get = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    if let Some(n) = get("ROOST_BENCH_ROUNDS") {
        c.latency = n;
    }
    if let Some(n) = get("ROOST_BENCH_MESSAGES") {
        c.throughput = n;
    }
    if let Some(n) = get("ROOST_BENCH_WINDOW") {
        c.window = n;
    }
    c
}

fn default_counts() -> Counts {
    if std::env::var_os("ROOST_BENCH_QUICK").is_some() {
        Counts {
            latency: 200,
            throughput: 2000,
            window: WINDOW,
            mailbox: 100,
            fanout: vec![(10, false), (10, true)],
        }
    } else {
        Counts {
            latency: 2000,
            throughput: 20000,
            window: WINDOW,
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

/// Each system's RTT p50 (µs) and throughput (msgs/s) in this run, for
/// the ratios.
static FIGURES: std::sync::Mutex<Vec<(String, f64, f64)>> = std::sync::Mutex::new(Vec::new());

fn line(system: &str, connect: Duration, mut rtts: Vec<Duration>, tp: f64, c: &Counts) {
    rtts.sort();
    let system = if slowsync::is_child() {
        format!("{system}+1ms-sync")
    } else {
        system.to_string()
    };
    if let Ok(mut f) = FIGURES.lock() {
        f.push((system.clone(), percentile(&rtts, 0.50), tp));
    }
    println!(
        "{}",
        json!({
            "system": system,
            "connect_ms": common::ms(connect),
            "rtt_p50_us": percentile(&rtts, 0.50).round(),
            "rtt_p99_us": percentile(&rtts, 0.99).round(),
            "throughput_msgs_per_s": tp.round(),
            "msg_bytes": MSG_BYTES,
            "n_latency": rtts.len(),
            "n_throughput": c.throughput,
            "window": c.window,
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
    if slowsync::is_child() {
        slowsync::check_active();
    }
    let mut c = counts();
    if watchers > 0 {
        c.fanout = vec![(watchers, watchers > 100)];
    }
    if want("floor") {
        within("stream-floor", floor::floor(&c, false)).await;
        within(
            "durable-floor",
            syncs("durable-floor", &c, floor::floor(&c, true)),
        )
        .await;
    }
    if want("commit") {
        floor::commit(&c);
    }
    if want("roost") {
        within("roost", syncs("roost", &c, system::roost_system(&c))).await;
        ratios();
    }
    if want("slowsync") && !slowsync::is_child() {
        slowsync::run();
    }
    if want("mailbox") {
        within("mailbox", system::mailbox(&c)).await;
    }
    if want("fanout") {
        for &(n, memory) in &c.fanout {
            within("fanout", fanout::fanout(n, memory)).await;
        }
    }
    if want("idle") {
        within("idle", idle::idle()).await;
    }
}

/// Longest a part may take: a part that hangs fails the run, naming
/// itself, instead of leaving it waiting for good.
const PART_LIMIT: Duration = Duration::from_secs(1800);

/// Awaits `part`, panicking if it takes longer than [`PART_LIMIT`].
async fn within(name: &str, part: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(PART_LIMIT, part).await.is_err() {
        panic!("bench part {name} did not finish within {PART_LIMIT:?}");
    }
}

/// Runs a part; under the slow-sync shim, prints how many syncs it made
/// (all of the process's threads, sled's periodic ones included).
async fn syncs(system: &str, c: &Counts, part: impl std::future::Future<Output = ()>) {
    let before = slowsync::calls();
    part.await;
    if let (Some(b), Some(a)) = (before, slowsync::calls()) {
        let messages = 2 * (WARMUP + c.latency) + c.throughput;
        println!(
            "{}",
            json!({
                "part": "slowsync-calls",
                "system": system,
                "syncs": a - b,
                "messages": messages,
                "messages_per_sync": ((messages as f64 / (a - b).max(1) as f64) * 10.0).round() / 10.0,
            })
        );
    }
}

/// roost's RTT p50 and throughput as multiples of the durable floor's in
/// this run (the targets are ratios: absolute figures drift across runs).
fn ratios() {
    let Ok(f) = FIGURES.lock() else { return };
    let find = |prefix: &str| f.iter().rev().find(|(s, _, _)| s.starts_with(prefix));
    if let (Some(floor), Some(roost)) = (find("durable-floor"), find("roost")) {
        println!(
            "{}",
            json!({
                "part": "ratios",
                "floor": floor.0,
                "system": roost.0,
                "rtt_p50_ratio": (roost.1 / floor.1 * 100.0).round() / 100.0,
                "throughput_ratio": (roost.2 / floor.2 * 100.0).round() / 100.0,
            })
        );
    }
}
