//! An idle daemon: what it costs to leave roost running.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{context_switches, cpu_s_of, rss_mib};

/// An idle daemon: resident memory and CPU time over 30 s, after
/// `--settle S` seconds (3 by default) for its start-up to end.
pub async fn idle() {
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
    tokio::time::sleep(Duration::from_secs(crate::common::arg("--settle", 3))).await;
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
