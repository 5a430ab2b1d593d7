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
mod system;

use common::{arg, init_tracing, raise_fd_limit};

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
            "connect_ms": common::ms(connect),
            "rtt_p50_us": percentile(&rtts, 0.50).round(),
            "rtt_p99_us": percentile(&rtts, 0.99).round(),
            "throughput_msgs_per_s": tp.round(),
            "msg_bytes": MSG_BYTES,
            "n_latency": rtts.len(),
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
        floor::floor(&c, false).await;
        floor::floor(&c, true).await;
    }
    if want("commit") {
        floor::commit(&c);
    }
    if want("roost") {
        system::roost_system(&c).await;
    }
    if want("mailbox") {
        system::mailbox(&c).await;
    }
    if want("fanout") {
        for &(n, memory) in &c.fanout {
            fanout::fanout(n, memory).await;
        }
    }
    if want("idle") {
        idle::idle().await;
    }
}
