//! [reach] A dial through a stale locator record that hangs gives way to
//! the peer's newer record: real nodes on 127.0.0.1. The stale record (the
//! peer's previous run) names a QUIC address that swallows every packet,
//! as a NATed node's LAN address does for a buddy elsewhere: that dial
//! waits out QUIC's handshake timeout, and every other dial of the peer
//! would wait for it.

mod common;

use std::time::Duration;

use common::{TestNode, init_tracing, start_with};
use libp2p::Multiaddr;
use roost::Identity;
use roost::clock::unix_ms;
use roost::config::DhtMode;
use roost::wire::locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_hanging_on_a_stale_record_gives_way_to_the_peers_newer_record() {
    init_tracing();
    let server = TestNode::start(&[]).await;
    // Alice a DHT client: Bob's node, joining, has no reason to contact
    // hers — only her dial can connect them.
    let dir = tempfile::tempdir().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let handle = start_with(&dir, &[server.addr().await], |c| {
        c.dht_mode = DhtMode::Client;
    })
    .await;
    let alice = TestNode { dir, handle };
    let bob = Identity::generate().unwrap();
    let bob_id = bob.peer_id();

    // Bob's stale record: a QUIC address where a socket takes every packet
    // and answers none.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dead: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
        .parse()
        .unwrap();
    let expires_at = unix_ms() + 30 * 60 * 1000;
    let stale = locator::sign(&bob, 1, &[dead], expires_at, true).unwrap();
    alice
        .handle
        .net()
        .put_record_to(locator::record_key(&bob_id), stale, server.handle.peer_id())
        .await
        .expect("the server takes Bob's stale record");

    let net = alice.handle.net().clone();
    let dial = tokio::spawn(async move { net.dial(bob_id).await });
    // Alice's dial of the stale address is under way: its first packet
    // arrived. Only now does Bob's node start and publish its record.
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
    let bob_node = TestNode::start_as(&bob, &[server.addr().await]).await;

    let res = dial.await.unwrap();
    assert!(
        res.is_ok(),
        "the dial gave way to Bob's newer record: {res:?}"
    );
    let connected = alice.handle.connected_peers().await.unwrap();
    assert!(connected.contains(&bob_id), "{connected:?}");
    drop((silent, bob_node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_hanging_on_a_stale_record_ends_when_a_newer_record_says_the_peer_left() {
    init_tracing();
    let server = TestNode::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let handle = start_with(&dir, &[server.addr().await], |c| {
        c.dht_mode = DhtMode::Client;
    })
    .await;
    let alice = TestNode { dir, handle };
    let bob = Identity::generate().unwrap();
    let bob_id = bob.peer_id();

    // Bob's stale record names a QUIC address that answers nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dead: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
        .parse()
        .unwrap();
    let expires_at = unix_ms() + 30 * 60 * 1000;
    let stale = locator::sign(&bob, 1, &[dead], expires_at, true).unwrap();
    let server_id = server.handle.peer_id();
    alice
        .handle
        .net()
        .put_record_to(locator::record_key(&bob_id), stale, server_id)
        .await
        .expect("the server takes Bob's stale record");

    let net = alice.handle.net().clone();
    let dial = tokio::spawn(async move { net.dial(bob_id).await });
    // The dial of the stale address is under way; only now does Bob's
    // newer record, saying he left, reach the DHT.
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
    let left = locator::sign(&bob, 2, &[], expires_at, false).unwrap();
    alice
        .handle
        .net()
        .put_record_to(locator::record_key(&bob_id), left, server_id)
        .await
        .expect("the server takes Bob's newer record");

    let res = dial.await.unwrap();
    assert!(
        matches!(res, Err(roost::net::RequestError::Offline(p)) if p == bob_id),
        "the dial ends on the newer record saying Bob left: {res:?}"
    );
    drop(silent);
}
