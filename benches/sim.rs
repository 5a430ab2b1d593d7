//! `cargo bench --bench sim [-- --nodes N --seed S --messages M]`: a
//! deterministic discrete-event simulation of roost at a scale no test
//! machine can host (10 000 nodes by default; 100 000 run here).
//!
//! What is simulated and what is real:
//! - Kademlia routing and lookups are *modelled* here (k-buckets of K = 20,
//!   iterative lookups with α = 3, per-RPC latency, 1 s timeouts on departed
//!   nodes, routing tables refreshed once per churn wave, so lookups run on
//!   stale tables) — libp2p's Kademlia is not sans-IO, so it cannot run here.
//! - Every mailbox holder runs roost's holder machine
//!   (`node::mailbox::holder::Holder`: admission, quotas, expiry, the
//!   hand-off after a deposit and every poll, release once outranked, and
//!   its own timers), and a returning recipient runs roost's fetcher
//!   machines (`node::mailbox::fetcher::{Fetcher, HolderFetch}`), fed on
//!   the simulated clock; only their I/O is modelled (a map per holder for
//!   its sled tree, requests answered in the same simulated instant).
//!   Senders pick holders and count the quorum with roost's
//!   `node::mailbox::{holders, quorum}` and retry per its
//!   `node::outbox::Outbox`; presence traffic comes from roost's
//!   `node::presence::{Publisher, Watcher}` driven by the simulated clock.
//! - Every node of the locator experiment runs roost's own locator machine
//!   (`net::locator::Machine`): publication and its `Republisher`, the seq,
//!   keep/replace of records put to it, the hand-over to newcomers and the
//!   pass-on of `net::record_handoff`, the retry of a failed hand-over, and
//!   the answer rule of lookups. The model carries out its outputs.
//!
//! Locators in a growing network: `--grow-from` nodes (40) publish, then
//! the network grows to `--grow-to` (`--nodes`, at most 10 000) in waves
//! of 5 %, routing tables refreshed after each wave (a node meets a
//! newcomer once the refresh puts it in its table, and knows none that
//! joined after the newcomer it is meeting). Every 25th joining node
//! publishes its own locator; whether lookups at the end (through the
//! looking node's machine) find the locators is measured with and without
//! telling the machines of the peers they meet. Growth takes 5 simulated
//! seconds a wave, well within half a locator's lifetime, so no owner's
//! republisher fires in between (the 1000-node run grows in 12 minutes).
//!
//! Churn runs over `--hours` simulated hours (10) in steps of
//! `--handoff-s` seconds (300, roost's mailbox poll, which is also each
//! holder machine's periodic pass): 30 % of the nodes leave for good and
//! as many new ones join. In each step senders retry per their outbox and
//! every holder machine runs the timers it set (its poll, the pass after
//! a deposit brought something new, its purge); every hour routing tables
//! are refreshed. A holder's pass looks its mailbox up again only when one
//! of the R + 1 closest peers its last lookup found has left or the tables
//! were refreshed (otherwise the lookup would find the same). The
//! recipients come back one step after the last departures and fetch. A
//! message is lost only if every copy's holder leaves within one step
//! while its sender is gone too, or if copies drift out of the recipient's
//! lookup result.
//!
//! Per node and hour: presence, mailbox, hand-off, locator and bucket
//! refresh traffic of one node of the network, counted as the simulated
//! node sends it.
//!
//! Same seed, same output: the simulation itself is in [`model`], which
//! `tests/sim_determinism.rs` runs twice per seed. Prints one JSON line per
//! experiment; the `s` fields, wall-clock seconds, are added here.

use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
#[path = "sim/model.rs"]
mod model;
use common::{Rng, arg, pct};

/// Prints `v` as one JSON line, with the wall-clock seconds since `started`
/// under `s`.
fn print(mut v: Value, started: Instant) {
    v["s"] = ((started.elapsed().as_secs_f64() * 10.0).round() / 10.0).into();
    println!("{v}");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let nodes = arg("--nodes", 10_000) as usize;
    let seed = arg("--seed", 1);
    let messages = arg("--messages", 10_000) as usize;
    let hours = arg("--hours", 10) as usize;
    // roost's periodic hand-off pass (the mailbox poll); 3600 = hourly only.
    let every = Duration::from_secs(arg("--handoff-s", 300));
    // The growth experiment tracks ~N/25 locators over every join; past
    // 10 000 nodes it would dominate the run, so it stops there by default.
    let grow_from = arg("--grow-from", 40) as usize;
    let grow_to = arg("--grow-to", nodes.min(10_000) as u64) as usize;
    for hand_over in [false, true] {
        let t = Instant::now();
        print(
            model::locator_spread(grow_from, grow_to, seed, hand_over),
            t,
        );
    }
    let started = Instant::now();
    let mut net = model::Net::new(nodes, seed);
    let built = started.elapsed();
    let t = Instant::now();
    print(model::lookups(&mut net, 2000), t);
    let t = Instant::now();
    print(
        model::offline_delivery(&mut net, messages, 0.30, hours, every),
        t,
    );
    // Every user with mail waiting puts R = 3 mailboxes on others: 3 per
    // node if everyone has some.
    let t = Instant::now();
    print(model::per_node_traffic(&mut net, 20, 4, 3), t);
    println!(
        "{}",
        serde_json::json!({
            "experiment": "run",
            "nodes": nodes,
            "seed": seed,
            "build_s": (built.as_secs_f64() * 10.0).round() / 10.0,
            "total_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    );
}
