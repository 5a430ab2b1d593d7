//! [reach] Proxied delivery through a circuit relay, on loopback: two nodes
//! with no listener of their own (nobody can dial them directly, and hole
//! punching has nothing to punch to) reserve on a relay, publish their
//! `/p2p-circuit` addresses, and reach each other through it; a relay
//! refuses circuits beyond its limit and keeps serving.

mod common;

use std::time::Duration;

use common::presence::sees;
use common::{TestNode, eventually, init_tracing, start_with};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use roost::config::DhtMode;
use roost::store::MessageState;
use roost::wire::presence::Status;
use roost::{Content, Identity, NodeHandle};
use tempfile::TempDir;

/// A node that only a relay can reach: no listen address, a DHT client,
/// reserving on `relay`; its mailbox poll a day away, so nothing it gets
/// comes from a mailbox.
async fn behind_relay(relay: &Multiaddr, adjust: impl FnOnce(&mut roost::Config)) -> TestNode {
    let dir = TempDir::new().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let relay_addr = relay.clone();
    let handle = start_with(&dir, std::slice::from_ref(relay), move |c| {
        c.listen = Vec::new();
        c.dht_mode = DhtMode::Client;
        c.relays = vec![relay_addr];
        c.mailbox.poll = Duration::from_secs(24 * 3600);
        adjust(c);
    })
    .await;
    TestNode { dir, handle }
}

fn is_circuit(a: &Multiaddr) -> bool {
    a.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Waits until `who` can find `whom`'s record holding circuit addresses
/// only (its reservation is up and published).
async fn circuit_record(who: &NodeHandle, whom: PeerId) -> Vec<Multiaddr> {
    eventually("the record holds a circuit address", || async {
        let loc = who.find(whom).await.unwrap()?;
        (!loc.addrs.is_empty()).then_some(loc.addrs)
    })
    .await
}

/// The connections `who` has to `peer`: (address, relayed).
async fn connections_to(who: &NodeHandle, peer: PeerId) -> Vec<(Multiaddr, bool)> {
    who.reach_status()
        .await
        .unwrap()
        .connections
        .into_iter()
        .filter(|c| c.peer == peer)
        .map(|c| (c.addr, c.relayed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_presence_travel_over_a_relay_when_no_direct_path_exists() {
    init_tracing();
    let relay = TestNode::start(&[]).await;
    let r = relay.addr().await;
    let alice = behind_relay(&r, |_| {}).await;
    let bob = behind_relay(&r, |_| {}).await;
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());

    // Bob's record, found by Alice, names only a way through the relay.
    let addrs = circuit_record(&alice.handle, idb).await;
    assert!(addrs.iter().all(is_circuit), "{addrs:?}");
    let status = bob.handle.reach_status().await.unwrap();
    assert_eq!(status.relays.len(), 1, "{:?}", status.relays);
    assert!(is_circuit(&status.relays[0]));
    circuit_record(&bob.handle, ida).await;
    // Handed out (`roost id`), the circuit address names Bob once.
    let own = bob.handle.dial_addrs().await.unwrap();
    let circuit = own
        .iter()
        .find(|a| is_circuit(a))
        .expect("a circuit address");
    let ids = circuit.iter().filter(|p| *p == Protocol::P2p(idb)).count();
    assert_eq!(ids, 1, "{circuit}");

    alice.handle.add_buddy(idb, "bob".into()).await.unwrap();
    bob.handle.add_buddy(ida, "alice".into()).await.unwrap();
    sees(&alice.handle, idb, Status::Online, "Alice sees Bob online").await;
    sees(&bob.handle, ida, Status::Online, "Bob sees Alice online").await;

    let id = alice
        .handle
        .send(idb, Content::text("through the relay"))
        .await
        .unwrap();
    common::arrives(&bob.handle, ida, id).await;
    eventually("Alice sees the message delivered", || async {
        let conv = alice.handle.conversation(idb, 10).await.unwrap();
        conv.iter()
            .any(|m| m.id == id && m.state == MessageState::Delivered)
            .then_some(())
    })
    .await;

    // The path was the relayed connection: no direct one exists, and the
    // relay (the only mailbox holder there is) holds nothing.
    let rows = connections_to(&alice.handle, idb).await;
    assert!(!rows.is_empty(), "Alice is connected to Bob");
    assert!(
        rows.iter().all(|(a, relayed)| *relayed && is_circuit(a)),
        "{rows:?}"
    );
    assert_eq!(relay.handle.held_len().await.unwrap(), 0);
    let reach = bob.handle.reach_status().await.unwrap().reachability;
    assert_ne!(
        reach.as_str(),
        "public",
        "no address of Bob's can be dialled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refuses_a_circuit_beyond_its_limit_and_serves_the_next() {
    init_tracing();
    let dir = TempDir::new().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let relay = start_with(&dir, &[], |c| c.relay_limits.max_circuits = 1).await;
    let r = relay.dial_addrs().await.unwrap().remove(0);
    let bob = behind_relay(&r, |_| {}).await;
    let carol = behind_relay(&r, |c| c.relays.clear()).await;
    let dave = behind_relay(&r, |c| c.relays.clear()).await;
    let idb = bob.handle.peer_id();
    circuit_record(&carol.handle, idb).await;
    circuit_record(&dave.handle, idb).await;

    carol.handle.dial(idb).await.expect("the first circuit");
    // Refused by the relay for its limit, not failing for any other reason.
    let refused = dave
        .handle
        .dial(idb)
        .await
        .expect_err("a second circuit is beyond the limit");
    assert!(
        refused
            .to_string()
            .contains("Remote reported resource limit exceeded"),
        "the relay's refusal for its limit: {refused}"
    );
    assert!(connections_to(&dave.handle, idb).await.is_empty());

    // Carol leaves: her circuit ends and the relay serves Dave's.
    carol.handle.shutdown().await.unwrap();
    eventually(
        "Dave's circuit is accepted once Carol's is gone",
        || async { dave.handle.dial(idb).await.ok() },
    )
    .await;
    let rows = connections_to(&dave.handle, idb).await;
    assert!(
        !rows.is_empty() && rows.iter().all(|(_, relayed)| *relayed),
        "{rows:?}"
    );
}
