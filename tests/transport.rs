//! [core] QUIC: two nodes that listen and dial only on
//! `/ip4/127.0.0.1/udp/…/quic-v1` (no TCP listener anywhere) find each
//! other through the DHT and exchange messages both ways.

mod common;

use common::{arrives, eventually, init_tracing, start_with};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use roost::store::MessageState;
use roost::{Content, Identity, NodeHandle};

/// A node listening on QUIC over loopback only.
async fn quic_node(bootstrap: &[Multiaddr]) -> (tempfile::TempDir, NodeHandle) {
    let dir = tempfile::tempdir().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let node = start_with(&dir, bootstrap, |c| {
        c.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
    })
    .await;
    (dir, node)
}

/// Every address is UDP + QUIC: nothing else could carry a connection.
async fn only_quic(node: &NodeHandle) -> Multiaddr {
    let addrs = node.dial_addrs().await.unwrap();
    assert!(!addrs.is_empty());
    for a in &addrs {
        let protos: Vec<Protocol> = a.iter().collect();
        assert!(
            matches!(
                protos[..],
                [
                    Protocol::Ip4(_),
                    Protocol::Udp(_),
                    Protocol::QuicV1,
                    Protocol::P2p(_)
                ]
            ),
            "{a}"
        );
    }
    addrs[0].clone()
}

async fn delivered(node: &NodeHandle, to: PeerId, id: roost::wire::message::MessageId) {
    eventually("the message is delivered", || async {
        let conv = node.conversation(to, 10).await.unwrap();
        conv.iter()
            .any(|m| m.id == id && m.state == MessageState::Delivered)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quic_only_nodes_find_each_other_and_exchange_messages() {
    init_tracing();
    let (_da, alice) = quic_node(&[]).await;
    let boot = only_quic(&alice).await;
    let (_db, bob) = quic_node(&[boot]).await;
    only_quic(&bob).await;
    let (ida, idb) = (alice.peer_id(), bob.peer_id());

    let found = eventually("Alice finds Bob's locator", || async {
        alice.find(idb).await.unwrap()
    })
    .await;
    assert!(!found.addrs.is_empty());
    for a in &found.addrs {
        assert!(a.iter().any(|p| p == Protocol::QuicV1), "Bob's record: {a}");
    }

    let hello = alice.send(idb, Content::text("over quic")).await.unwrap();
    arrives(&bob, ida, hello).await;
    delivered(&alice, idb, hello).await;
    let back = bob.send(ida, Content::text("and back")).await.unwrap();
    arrives(&alice, idb, back).await;
    delivered(&bob, ida, back).await;
    assert_eq!(
        bob.conversation(ida, 10).await.unwrap()[0].data,
        b"over quic"
    );
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}
