//! [reach] Buddies behind home NATs, on real NAT topologies built from
//! network namespaces (see `common/netns.rs`): real `roost daemon`
//! processes in the namespaces, driven only through the CLI. Needs root,
//! `ip` and `nft`; fails saying so without them.

mod common;

use std::time::Duration;

use common::nat::{
    befriend, network, presence_of, reachability, relay_ids, see_each_other_online,
    send_and_follow, settle_on, tcp_port,
};
use common::netns::{Connect, Net, Options, Transport};
use common::{Daemon, eventually, eventually_within};
use libp2p::multiaddr::Protocol;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_lets_homes_out_and_nothing_in() {
    let net = Net::build(Options {
        public: 1,
        homes: 2,
        ..Options::default()
    });
    let public = &net.public[0];
    let (home0, home1) = (&net.homes[0], &net.homes[1]);
    let server = Daemon::start_with(public.launch(&[Transport::Tcp], &[])).await;
    let inside = Daemon::start_with(home0.host.launch(&[Transport::Tcp], &[])).await;
    let (server_port, inside_port) = (tcp_port(&server).await, tcp_port(&inside).await);

    // Out: both homes open connections to the public host.
    assert_eq!(
        home0.host.tcp_connect(public.ip, server_port),
        Connect::Opened
    );
    assert_eq!(
        home1.host.tcp_connect(public.ip, server_port),
        Connect::Opened
    );
    // The daemon behind the NAT listens: its own router reaches it.
    assert_eq!(
        home0.router.tcp_connect(home0.host.ip, inside_port),
        Connect::Opened
    );

    // In: nothing unsolicited passes the router, whether aimed at the
    // router itself (input hook) or routed through it to the host (forward
    // hook, as a neighbour on the WAN could route): no answer at all.
    assert_eq!(
        public.tcp_connect(home0.router.ip, inside_port),
        Connect::Dropped
    );
    assert_eq!(
        home1.host.tcp_connect(home0.router.ip, inside_port),
        Connect::Dropped
    );
    let route = |host: &common::netns::Host| {
        let out = host.exec(&[
            "ip",
            "route",
            "add",
            "10.0.0.0/24",
            "via",
            &home0.router.ip.to_string(),
        ]);
        assert!(out.status.success(), "add a route to home 0's LAN");
    };
    route(public);
    route(&home1.router);
    assert_eq!(
        public.tcp_connect(home0.host.ip, inside_port),
        Connect::Dropped
    );
    assert_eq!(
        home1.host.tcp_connect(home0.host.ip, inside_port),
        Connect::Dropped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_direct_path_blocked_homes_reach_only_the_internet() {
    let net = Net::build(Options {
        public: 1,
        homes: 2,
        block_direct: true,
    });
    let public = &net.public[0];
    let server = Daemon::start_with(public.launch(&[Transport::Tcp], &[])).await;
    let port = tcp_port(&server).await;
    for (me, other) in [(0, 1), (1, 0)] {
        let home = &net.homes[me].host;
        assert_eq!(home.tcp_connect(public.ip, port), Connect::Opened);
        // Refused by its own router at once; without the block the packet
        // would travel to the other router and be dropped there.
        assert_eq!(
            home.tcp_connect(net.homes[other].router.ip, port),
            Connect::Refused
        );
    }
}

/// The observation: two homes and two public nodes, the buddies
/// bootstrapped from a public node. They see each other online and a
/// message arrives at once, not through mailboxes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_natted_buddies_bootstrapped_from_a_public_node_see_each_other_online() {
    let opts = Options {
        public: 2,
        homes: 2,
        ..Options::default()
    };
    let (_net, _public, homes) = network(opts, &[Transport::Tcp]).await;
    let (a, b) = (&homes[0], &homes[1]);
    befriend(a, b);
    see_each_other_online(a, b).await;
    let states = send_and_follow(a, b, "are you there?").await;
    assert!(
        !states.iter().any(|s| s == "stored"),
        "the message went through mailboxes: {states:?}"
    );
}

/// Two buddies, each behind its own NAT, listening only on `transport`:
/// they see each other online, end on a direct connection through both
/// routers (the relayed one dropped), and a message takes it.
async fn natted_buddies_punch_through(transport: Transport) {
    let opts = Options {
        public: 2,
        homes: 2,
        ..Options::default()
    };
    let (net, public, homes) = network(opts, &[transport]).await;
    let (a, b) = (&homes[0], &homes[1]);
    for p in &public {
        reachability(p, "public").await;
    }
    reachability(a, "private").await;
    reachability(b, "private").await;
    befriend(a, b);
    see_each_other_online(a, b).await;

    let marker = match transport {
        Transport::Tcp => "/tcp/",
        Transport::Quic => "/quic-v1",
    };
    for (me, other, router) in [(a, b, &net.homes[1].router), (b, a, &net.homes[0].router)] {
        let rows = settle_on(me, other, false).await;
        // Through the other home's router: its public address, and the
        // transport we listen on.
        let router_ip = format!("/ip4/{}/", router.ip);
        assert!(
            rows.iter().all(|r| {
                let addr = r["addr"].as_str().unwrap_or_default();
                addr.contains(&router_ip) && addr.contains(marker)
            }),
            "direct connections go to {router_ip} over {marker}: {rows:?}"
        );
    }
    let states = send_and_follow(a, b, "straight through both NATs").await;
    assert!(
        !states.iter().any(|s| s == "stored"),
        "the message went through mailboxes: {states:?}"
    );
    // Still direct after the message: it did not bring a relayed path back.
    settle_on(a, b, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natted_buddies_end_on_a_direct_tcp_connection() {
    natted_buddies_punch_through(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natted_buddies_end_on_a_direct_quic_connection() {
    natted_buddies_punch_through(Transport::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_direct_path_blocked_presence_and_messages_go_over_a_relay() {
    let opts = Options {
        public: 2,
        homes: 2,
        block_direct: true,
    };
    let (_net, _public, homes) = network(opts, &[Transport::Tcp]).await;
    let (a, b) = (&homes[0], &homes[1]);
    befriend(a, b);
    see_each_other_online(a, b).await;
    for (me, other) in [(a, b), (b, a)] {
        let rows = settle_on(me, other, true).await;
        assert!(
            rows.iter().all(|r| r["addr"]
                .as_str()
                .unwrap_or_default()
                .contains("/p2p-circuit")),
            "relayed connections have circuit addresses: {rows:?}"
        );
    }
    // Both ways, neither through a mailbox: the sender's copy goes from
    // `queued` to `delivered` without ever being `stored`.
    for (from, to) in [(a, b), (b, a)] {
        let states = send_and_follow(from, to, "through the relay").await;
        assert!(
            !states.iter().any(|s| s == "stored"),
            "the message went through mailboxes: {states:?}"
        );
        assert_eq!(states.last().map(String::as_str), Some("delivered"));
    }
    // Presence goes the same way: a change shows on the other side.
    a.rows(&["presence", "set", "away", "--note", "relayed"]);
    eventually("b sees a's new presence over the relay", || async {
        let row = presence_of(b, a)?;
        (row["status"] == "away" && row["note"] == "relayed").then_some(())
    })
    .await;
    settle_on(a, b, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_leaves_is_replaced() {
    let opts = Options {
        public: 3,
        homes: 1,
        ..Options::default()
    };
    let (_net, mut public, homes) = network(opts, &[Transport::Tcp]).await;
    let home = &homes[0];
    let before = eventually("the NATed node holds two relay reservations", || async {
        let ids = relay_ids(home).await;
        (ids.len() >= 2).then_some(ids)
    })
    .await;
    let gone = before[0].clone();
    let leaving = public
        .iter_mut()
        .find(|p| p.id.to_string() == gone)
        .expect("the relay is one of the public daemons");
    leaving.kill();
    let after = eventually_within(
        Duration::from_secs(60),
        "another relay replaces the one that left",
        || async {
            let ids = relay_ids(home).await;
            (ids.len() >= before.len() && !ids.contains(&gone)).then_some(ids)
        },
    )
    .await;
    // What the node hands out (its invite, i.e. what its locator record
    // carries) follows: a circuit through the new relay, none through
    // the one that left (its listener is closed, not only forgotten).
    eventually(
        "the home's invite names the new relay's circuit and not the gone one's",
        || async {
            let via = invite_relays(home);
            let new = via
                .iter()
                .any(|id| after.contains(id) && !before.contains(id));
            (new && !via.contains(&gone)).then_some(())
        },
    )
    .await;
}

/// The relays of the circuit addresses in `daemon`'s invite.
fn invite_relays(daemon: &Daemon) -> Vec<String> {
    let rows = daemon.rows(&["invite", "--no-qr"]);
    let uri = rows[0]["uri"].as_str().expect("the invite's URI");
    let now = roost::clock::unix_ms();
    let invite = roost::wire::invite::parse(uri, now).expect("a valid invite");
    invite
        .addrs
        .iter()
        .filter(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
        .filter_map(|a| {
            a.iter().find_map(|p| match p {
                Protocol::P2p(id) => Some(id.to_string()),
                _ => None,
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_natted_node_holds_no_mailbox_item() {
    let opts = Options {
        public: 2,
        homes: 3,
        ..Options::default()
    };
    let (_net, public, homes) = network(opts, &[Transport::Tcp]).await;
    for home in &homes {
        reachability(home, "private").await;
    }
    // A recipient who never comes online: everything goes to mailboxes.
    let away = tempfile::tempdir().expect("temp dir");
    let init = common::roost(away.path(), &["--json", "init"]);
    let away_id: Value = serde_json::from_slice(&init.stdout).expect("init prints JSON");
    let away_id = away_id["id"].as_str().expect("an ID").to_string();
    let sender = &homes[0];
    sender.rows(&["buddy", "add", &away_id, "--name", "away"]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let sent = sender.rows(&["send", "away", &format!("held for later {i}")]);
        ids.push(sent[0]["id"].as_str().expect("an id").to_string());
    }
    eventually("every message is stored in mailboxes", || async {
        let log = sender.rows(&["log", "away"]);
        ids.iter()
            .all(|id| {
                log.iter()
                    .any(|r| r["id"] == id.as_str() && r["state"] == "stored")
            })
            .then_some(())
    })
    .await;
    let mut public_held = 0;
    for p in &public {
        public_held += p.held().await;
    }
    assert!(
        public_held >= 3,
        "the public nodes hold the items: {public_held}"
    );
    for home in &homes {
        assert_eq!(home.held().await, 0, "a NATed node holds mailbox items");
    }
}
