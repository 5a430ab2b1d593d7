//! [bench] The simulator of `benches/sim.rs` is deterministic: the same
//! seed gives the same figures, so a change in its output is a change in
//! the code it runs, not chance; and its mailbox holders are roost's holder
//! machines, their timers run on the simulated clock. Its model is
//! compiled here as the bench compiles it, at a size a test can afford.

#[path = "../benches/sim/model.rs"]
mod model;
#[path = "../benches/common/pure.rs"]
mod pure;

use std::time::Duration;

use pure::{Rng, pct};
use serde_json::Value;

/// Every experiment of the bench, small.
fn run(seed: u64) -> Vec<Value> {
    let mut out: Vec<Value> = [false, true]
        .into_iter()
        .map(|hand_over| model::locator_spread(20, 100, seed, hand_over))
        .collect();
    let mut net = model::Net::new(200, seed);
    out.push(model::lookups(&mut net, 50));
    out.push(model::offline_delivery(
        &mut net,
        60,
        0.3,
        1,
        Duration::from_secs(300),
    ));
    out.push(model::per_node_traffic(&mut net, 5, 4, 3));
    out
}

#[test]
fn the_same_seed_gives_the_same_output() {
    let (first, second) = (run(7), run(7));
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a, b, "two runs with seed 7 differ");
    }
    assert_eq!(first.len(), second.len());
}

#[test]
fn the_seed_is_what_varies_the_output() {
    assert_ne!(run(7), run(8), "seeds 7 and 8 give the same figures");
}

/// Under churn the holder machines' passes hand the mailboxes on, and
/// every message still reaches its recipient.
#[test]
fn holders_hand_mailboxes_on_under_churn_and_every_message_arrives() {
    let mut net = model::Net::new(300, 3);
    let v = model::offline_delivery(&mut net, 60, 0.3, 2, Duration::from_secs(300));
    // Copies are counted as the holders' passes send them to live peers.
    let copies = v["handoff_copies"].as_u64().expect("a count");
    assert!(copies > 0, "no holder handed anything on: {v}");
    // 30 % of the nodes left; the passes and the senders' re-deposits
    // leave R = 3 copies a message on average, and every message arrives.
    let left = v["copies_left_at_end_per_message"]
        .as_f64()
        .expect("a ratio");
    assert!(left >= 3.0, "{left} copies a message left: {v}");
    assert_eq!(v["delivered"], 60, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
}
