//! Driving `roost daemon`s on a NAT topology (see `netns.rs`) as their
//! users would, through the CLI and the local API: shared by tests/nat.rs
//! and benches/nat.rs.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use roost::api::EventView;
use roost::api::client::ApiClient;
use serde_json::Value;

use super::netns::{Net, Options, Transport};
use super::{DEADLINE, Daemon, eventually};

/// The TCP port of the first TCP address `daemon` listens on.
pub async fn tcp_port(daemon: &Daemon) -> u16 {
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
pub async fn addrs(daemon: &Daemon) -> Vec<String> {
    daemon.status().await["addrs"]
        .as_array()
        .expect("status shows addrs")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// The presence row `me` shows for buddy `of`.
pub fn presence_of(me: &Daemon, of: &Daemon) -> Option<Value> {
    let id = of.id.to_string();
    me.rows(&["presence"]).into_iter().find(|r| r["id"] == id)
}

/// Makes `a` and `b` buddies of each other.
pub fn befriend(a: &Daemon, b: &Daemon) {
    a.befriend("a", b, "b");
}

/// Waits until `a` and `b` see each other `online`.
pub async fn see_each_other_online(a: &Daemon, b: &Daemon) {
    eventually("the NATed buddies see each other online", || async {
        let ab = presence_of(a, b)?;
        let ba = presence_of(b, a)?;
        (ab["status"] == "online" && ba["status"] == "online").then_some(())
    })
    .await;
}

/// A network of `opts` with daemons listening on `transports`: one on
/// every public host (the first is everyone's bootstrap) and one in every
/// home. Returns the net and the public and home daemons.
pub async fn network(opts: Options, transports: &[Transport]) -> (Net, Vec<Daemon>, Vec<Daemon>) {
    let net = Net::build(opts);
    let mut public = Vec::new();
    let mut boot = Vec::new();
    for host in &net.public {
        let d = Daemon::start_with(host.launch(transports, &boot)).await;
        if boot.is_empty() {
            boot = addrs(&d).await;
        }
        public.push(d);
    }
    let mut homes = Vec::new();
    for home in &net.homes {
        homes.push(Daemon::start_with(home.host.launch(transports, &boot)).await);
    }
    (net, public, homes)
}

/// The rows of `me`'s open connections to `peer`, as `roost status` shows.
pub async fn connections_to(me: &Daemon, peer: &Daemon) -> Vec<Value> {
    let id = peer.id.to_string();
    me.status().await["connections"]
        .as_array()
        .expect("status shows connections")
        .iter()
        .filter(|r| r["peer"] == id)
        .cloned()
        .collect()
}

/// Waits until `me` has connections to `peer`, all of them `relayed` or
/// all direct as asked; returns them.
pub async fn settle_on(me: &Daemon, peer: &Daemon, relayed: bool) -> Vec<Value> {
    let what = if relayed { "relayed" } else { "direct" };
    eventually(&format!("only {what} connections to the buddy"), || async {
        let rows = connections_to(me, peer).await;
        (!rows.is_empty() && rows.iter().all(|r| r["relayed"] == relayed)).then_some(rows)
    })
    .await
}

/// Waits until `daemon` says its reachability is `want`.
pub async fn reachability(daemon: &Daemon, want: &str) {
    eventually(&format!("reachability {want}"), || async {
        (daemon.status().await["reachability"] == want).then_some(())
    })
    .await;
}

/// Sends `text` from `from` to buddy `to` with the CLI and waits until it
/// is in `to`'s log. Returns the states the sender's copy went through, as
/// its event stream (opened before the send) told them, up to `delivered`.
pub async fn send_and_follow(from: &Daemon, to: &Daemon, text: &str) -> Vec<String> {
    let api = ApiClient::open(from.dir.path()).expect("the sender's API");
    let mut events = api
        .events(Some(&to.id.to_string()))
        .await
        .expect("the sender's event stream");
    let sent = from.rows(&["send", &to.id.to_string(), text]);
    let id = sent[0]["id"]
        .as_str()
        .expect("send shows the id")
        .to_string();
    let mut states = Vec::new();
    let follow = async {
        while let Some(event) = events.next().await.expect("an event") {
            if let EventView::State { id: of, state, .. } = event
                && of == id
            {
                states.push(state.clone());
                if state == "delivered" || state == "read" {
                    return;
                }
            }
        }
    };
    if tokio::time::timeout(DEADLINE, follow).await.is_err() {
        panic!("the message was not delivered within {DEADLINE:?}; states seen: {states:?}");
    }
    let from_id = from.id.to_string();
    eventually("the message is in the recipient's log", || async {
        to.rows(&["log", &from_id])
            .iter()
            .any(|r| r["id"] == id.as_str() && r["text"] == text)
            .then_some(())
    })
    .await;
    states
}

/// The relay peer IDs in `daemon`'s status (`…/p2p/<relay>/p2p-circuit`).
pub async fn relay_ids(daemon: &Daemon) -> Vec<String> {
    daemon.status().await["relays"]
        .as_array()
        .expect("status shows relays")
        .iter()
        .filter_map(|a| {
            let addr: Multiaddr = a.as_str()?.parse().ok()?;
            let mut relay = None;
            for p in addr.iter() {
                match p {
                    Protocol::P2p(id) => relay = Some(id.to_string()),
                    Protocol::P2pCircuit => break,
                    _ => {}
                }
            }
            relay
        })
        .collect()
}
