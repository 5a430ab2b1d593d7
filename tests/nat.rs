//! [reach] Buddies behind home NATs, on real NAT topologies built from
//! network namespaces (see `common/netns.rs`): real `roost daemon`
//! processes in the namespaces, driven only through the CLI. Needs root,
//! `ip` and `nft`; fails saying so without them.

mod common;

use common::netns::{Connect, Net, Options, Transport};
use common::{Daemon, eventually};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde_json::Value;

/// The TCP port of the first TCP address `daemon` listens on.
async fn tcp_port(daemon: &Daemon) -> u16 {
    let status = daemon.status().await;
    status["addrs"]
        .as_array()
        .expect("status shows addrs")
        .iter()
        .filter_map(|a| a.as_str()?.parse::<Multiaddr>().ok())
        .find_map(|a| {
            a.iter().find_map(|p| match p {
                Protocol::Tcp(port) => Some(port),
                _ => None,
            })
        })
        .expect("the daemon listens on TCP")
}

/// `daemon`'s addresses as `--bootstrap` arguments.
async fn addrs(daemon: &Daemon) -> Vec<String> {
    daemon.status().await["addrs"]
        .as_array()
        .expect("status shows addrs")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// The presence row `me` shows for buddy `of`.
fn presence_of(me: &Daemon, of: &Daemon) -> Option<Value> {
    let id = of.id.to_string();
    me.rows(&["presence"]).into_iter().find(|r| r["id"] == id)
}

/// Makes `a` and `b` buddies of each other.
fn befriend(a: &Daemon, b: &Daemon) {
    a.rows(&["buddy", "add", &b.id.to_string(), "--name", "b"]);
    b.rows(&["buddy", "add", &a.id.to_string(), "--name", "a"]);
}

/// Waits until `a` and `b` see each other `online`.
async fn see_each_other_online(a: &Daemon, b: &Daemon) {
    eventually("the NATed buddies see each other online", || async {
        let ab = presence_of(a, b)?;
        let ba = presence_of(b, a)?;
        (ab["status"] == "online" && ba["status"] == "online").then_some(())
    })
    .await;
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_natted_buddies_bootstrapped_from_a_public_node_see_each_other_online() {
    let net = Net::build(Options {
        public: 1,
        homes: 2,
        ..Options::default()
    });
    let tcp = [Transport::Tcp];
    let seed = Daemon::start_with(net.public[0].launch(&tcp, &[])).await;
    let boot = addrs(&seed).await;
    let a = Daemon::start_with(net.homes[0].host.launch(&tcp, &boot)).await;
    let b = Daemon::start_with(net.homes[1].host.launch(&tcp, &boot)).await;
    befriend(&a, &b);
    see_each_other_online(&a, &b).await;
}
