//! Helpers shared by the benchmarks (each bench uses a part of them).
#![allow(dead_code)]

use std::time::{Duration, Instant};

pub mod bare;
mod pure;
#[allow(unused_imports)] // as the rest: each bench uses a part
pub use pure::{Rng, pct};

/// The allocator the `roost` binary runs with (see `src/main.rs`), so the
/// figures are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The value after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Milliseconds with one decimal, for JSON output.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Polls `f` every few milliseconds until it holds; panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < limit, "bench condition not reached: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Resident memory of process `pid` ("self" for this one), in MiB.
pub fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (kib / 102.4).round() / 10.0
}

/// Hundreds of TCP nodes in one process need far more file descriptors
/// than the usual soft limit (each node's connections count twice here).
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let want = 262_144.max(lim.rlim_cur);
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want.max(lim.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

/// `RUST_LOG=roost=debug` (or any filter) shows what the nodes do, on stderr.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
}

/// CPU time this process has used so far (user + system), in seconds:
/// the difference over a phase says what the phase cost, whatever the
/// machine's other load.
pub fn cpu_s() -> f64 {
    cpu_s_of("self")
}

/// CPU time process `pid` has used so far, in seconds.
pub fn cpu_s_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Waits until this process uses less than `share` of one core over a
/// one-second window (the nodes it runs have finished starting up), or
/// until `limit`. Returns how long that took (to the end of the first quiet
/// window) and the share of the last window, for the bench to print with
/// its figures. Every 5 s of waiting, `progress` is shown those 5 s.
pub async fn settle(share: f64, limit: Duration, progress: impl Fn(&Window)) -> (Duration, f64) {
    let t = Instant::now();
    let mut five = Window::start();
    loop {
        let w = Window::start();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = w.cores();
        if used < share || t.elapsed() >= limit {
            return (t.elapsed(), used);
        }
        if five.at.elapsed() >= Duration::from_secs(5) {
            progress(&five);
            five = Window::start();
        }
    }
}

/// Context switches so far of every thread of process `pid`, by thread
/// name (`/proc/<pid>/status` alone counts only the main thread's).
pub fn context_switches(pid: &str) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    for task in tasks.into_iter().flatten().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map_or(String::new(), |n| n.trim().to_string());
        let switches: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        *by_name.entry(name).or_insert(0) += switches;
    }
    by_name
}

/// What the nodes of this process did over a window: the counts of
/// `roost::net::stats` between two snapshots, per node and minute, by kind
/// (kinds that did not occur are left out), and the cores the process kept
/// busy (CPU time over wall time).
pub struct Window {
    counts: Vec<(&'static str, u64)>,
    cpu: f64,
    at: Instant,
}

impl Window {
    /// Starts a window now.
    pub fn start() -> Self {
        Self {
            counts: roost::net::stats::snapshot(),
            cpu: cpu_s(),
            at: Instant::now(),
        }
    }

    /// CPU seconds the process used since the start.
    pub fn cpu_s(&self) -> f64 {
        cpu_s() - self.cpu
    }

    /// Cores busy since the start (1.0 = one core all the time).
    pub fn cores(&self) -> f64 {
        self.cpu_s() / self.at.elapsed().as_secs_f64().max(1e-3)
    }

    /// What all nodes counted since the start, by kind (kinds that did
    /// not occur left out).
    pub fn counted(&self) -> Vec<(&'static str, u64)> {
        let now = roost::net::stats::snapshot();
        self.counts
            .iter()
            .zip(now)
            .map(|((name, before), (_, after))| (*name, after.saturating_sub(*before)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Per node and minute since the start, by kind, rounded to 0.01.
    pub fn per_node_minute(&self, nodes: usize) -> serde_json::Map<String, serde_json::Value> {
        let minutes = self.at.elapsed().as_secs_f64() / 60.0;
        let mut out = serde_json::Map::new();
        let mut total = 0.0;
        for (name, n) in self.counted() {
            let rate = n as f64 / nodes.max(1) as f64 / minutes.max(1e-6);
            total += rate;
            out.insert(name.to_string(), ((rate * 100.0).round() / 100.0).into());
        }
        out.insert("all".into(), ((total * 100.0).round() / 100.0).into());
        out
    }
}
