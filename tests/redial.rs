//! [reach] A dial through a stale locator record that hangs gives way to
//! the peer's newer record: real nodes on 127.0.0.1. The stale record (the
//! peer's previous run) names a QUIC address that swallows every packet,
//! as a NATed node's LAN address does for a buddy elsewhere: that dial
//! waits out QUIC's handshake timeout, and every other dial of the peer
//! would wait for it.

mod common;

use std::time::Duration;

use common::{TestNode, init_tracing, new_dir};
use libp2p::Multiaddr;
use roost::Identity;
use roost::clock::unix_ms;
use roost::wire::locator;

/// Alice (a DHT client: Bob's node, joining, has no reason to contact
/// hers — only her dial can connect them), a server holding Bob's stale
/// record, and Alice's dial of Bob hanging on it: the record names a QUIC
/// address whose socket takes every packet and answers none.
struct Hanging {
    server: TestNode,
    alice: TestNode,
    bob: Identity,
    expires_at: u64,
    silent: std::net::UdpSocket,
    dial: tokio::task::JoinHandle<Result<(), roost::net::RequestError>>,
}

impl Hanging {
    /// Returns once Alice's dial of the stale address is under way (its
    /// first packet arrived).
    async fn start() -> Self {
        let server = TestNode::start(&[]).await;
        let alice = TestNode::start_client(new_dir(), &[server.addr().await]).await;
        let bob = Identity::generate().unwrap();
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let dead: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
            .parse()
            .unwrap();
        let expires_at = unix_ms() + 30 * 60 * 1000;
        let stale = locator::sign(&bob, 1, &[dead], expires_at, true).unwrap();
        put(
            &alice,
            &server,
            &bob,
            stale,
            "the server takes Bob's stale record",
        )
        .await;
        let net = alice.handle.net().clone();
        let bob_id = bob.peer_id();
        let dial = tokio::spawn(async move { net.dial(bob_id).await });
        let silent = tokio::task::spawn_blocking(move || {
            silent
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let mut buf = [0u8; 2048];
            silent
                .recv_from(&mut buf)
                .expect("Alice's QUIC dial arrives");
            silent
        })
        .await
        .unwrap();
        Self {
            server,
            alice,
            bob,
            expires_at,
            silent,
            dial,
        }
    }

    /// Puts a newer record of Bob's at the server.
    async fn put(&self, record: Vec<u8>, what: &str) {
        put(&self.alice, &self.server, &self.bob, record, what).await;
    }
}

/// Puts Bob's `record` at `server`, sent from Alice's node.
async fn put(alice: &TestNode, server: &TestNode, bob: &Identity, record: Vec<u8>, what: &str) {
    alice
        .handle
        .net()
        .put_record_to(
            locator::record_key(&bob.peer_id()),
            record,
            server.handle.peer_id(),
        )
        .await
        .expect(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_hanging_on_a_stale_record_gives_way_to_the_peers_newer_record() {
    init_tracing();
    let scene = Hanging::start().await;
    let bob_id = scene.bob.peer_id();
    // Only now does Bob's node start and publish its record.
    let bob_node = TestNode::start_as(&scene.bob, &[scene.server.addr().await]).await;

    let res = scene.dial.await.unwrap();
    assert!(
        res.is_ok(),
        "the dial gave way to Bob's newer record: {res:?}"
    );
    let connected = scene.alice.handle.connected_peers().await.unwrap();
    assert!(connected.contains(&bob_id), "{connected:?}");
    drop((scene.silent, bob_node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_hanging_on_a_stale_record_ends_when_a_newer_record_says_the_peer_left() {
    init_tracing();
    let scene = Hanging::start().await;
    let bob_id = scene.bob.peer_id();
    // Only now does Bob's newer record, saying he left, reach the DHT.
    let left = locator::sign(&scene.bob, 2, &[], scene.expires_at, false).unwrap();
    scene.put(left, "the server takes Bob's newer record").await;

    let res = scene.dial.await.unwrap();
    assert!(
        matches!(res, Err(roost::net::RequestError::Offline(p)) if p == bob_id),
        "the dial ends on the newer record saying Bob left: {res:?}"
    );
    drop(scene.silent);
}
