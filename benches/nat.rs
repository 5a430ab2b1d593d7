//! NAT traversal on real NAT topologies (network namespaces, see
//! tests/common/netns.rs; needs root, `ip` and `nft`): over `ROOST_NAT_TRIES`
//! tries (default 20) each on TCP and on QUIC, two buddies in two homes
//! behind masquerading routers, with two public nodes.
//!
//! Prints per transport the hole-punch success rate (a direct connection
//! between the homes within 60 s; target ≥ 95 %), the time from starting
//! both home daemons to the first message delivered over a direct
//! connection (target < 3 s), and the round trip of a message (send →
//! `delivered`) over a relayed and over a direct connection.
//!
//! `cargo bench --bench nat`

#[path = "../tests/common/mod.rs"]
mod testing;

use std::time::{Duration, Instant};

use testing::nat::{befriend, connections_to, network, reachability, send_and_follow};
use testing::netns::{Options, Transport};
use testing::{Daemon, poll_within};

/// How long a try may take to punch through before it counts as failed.
const PUNCH_DEADLINE: Duration = Duration::from_secs(60);

/// Messages per round-trip measurement.
const ROUND_TRIPS: usize = 10;

fn main() {
    let tries: usize = std::env::var("ROOST_NAT_TRIES")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        for transport in [Transport::Tcp, Transport::Quic] {
            punch_tries(transport, tries).await;
        }
        round_trips().await;
    });
}

/// Whether `me` has a connection to `peer` and none of them is relayed.
async fn direct(me: &Daemon, peer: &Daemon) -> bool {
    let rows = connections_to(me, peer).await;
    !rows.is_empty() && rows.iter().all(|r| r["relayed"] == false)
}

/// One topology per try: once the public nodes are `public` (AutoNAT
/// confirmed them, so they relay and serve the DHT, as long-running public
/// nodes do), the buddies are made (daemons started, buddies added,
/// stopped), then both restarted at once and timed until a message is
/// delivered over the direct connection. A fresh public node needs one or
/// two AutoNAT probes (5 s apart) to become `public`; that start-up of the
/// infrastructure is not part of the homes' time.
async fn punch_tries(transport: Transport, tries: usize) {
    let mut times = Vec::new();
    for _ in 0..tries {
        let opts = Options {
            public: 2,
            homes: 2,
            ..Options::default()
        };
        let (_net, public, mut homes) = network(opts, &[transport]).await;
        for p in &public {
            reachability(p, "public").await;
        }
        befriend(&homes[0], &homes[1]);
        for h in &mut homes {
            h.kill();
        }
        let start = Instant::now();
        let (first, rest) = homes.split_at_mut(1);
        let (a, b) = (&mut first[0], &mut rest[0]);
        tokio::join!(a.restart(), b.restart());
        let (a, b) = (&*a, &*b);
        if poll_within(PUNCH_DEADLINE, || async {
            (direct(a, b).await && direct(b, a).await).then_some(())
        })
        .await
        .is_some()
        {
            send_and_follow(a, b, "first direct message").await;
            times.push(start.elapsed());
        }
    }
    times.sort();
    let pct = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    println!(
        "nat/{transport:?}: hole punch {}/{tries} ({:.0} %); start to first direct message: median {}, p90 {}, max {}",
        times.len(),
        100.0 * times.len() as f64 / tries.max(1) as f64,
        pct(0.5),
        pct(0.9),
        pct(1.0),
    );
}

/// Median send → `delivered` time of [`ROUND_TRIPS`] messages from `a` to
/// `b`.
async fn median_round_trip(a: &Daemon, b: &Daemon) -> Duration {
    let mut rtts = Vec::new();
    for i in 0..ROUND_TRIPS {
        let start = Instant::now();
        send_and_follow(a, b, &format!("ping {i}")).await;
        rtts.push(start.elapsed());
    }
    rtts.sort();
    rtts[rtts.len() / 2]
}

/// A message's round trip over a relay (the direct path blocked) and over
/// a hole-punched connection, both over TCP.
async fn round_trips() {
    let mut results = Vec::new();
    for block_direct in [true, false] {
        let opts = Options {
            public: 2,
            homes: 2,
            block_direct,
        };
        let (_net, _public, homes) = network(opts, &[Transport::Tcp]).await;
        let (a, b) = (&homes[0], &homes[1]);
        befriend(a, b);
        let settled = poll_within(PUNCH_DEADLINE, || async {
            let rows = connections_to(a, b).await;
            (!rows.is_empty() && rows.iter().all(|r| r["relayed"] == block_direct)).then_some(())
        })
        .await
        .is_some();
        assert!(settled, "no settled connection (relayed: {block_direct})");
        results.push((block_direct, median_round_trip(a, b).await));
    }
    for (relayed, rtt) in results {
        let path = if relayed { "relayed" } else { "direct" };
        println!(
            "nat/rtt {path}: median send → delivered {:.1} ms (TCP, {ROUND_TRIPS} messages; includes the CLI and both fdatasyncs)",
            rtt.as_secs_f64() * 1000.0
        );
    }
}
