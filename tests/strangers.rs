//! [hardening] A stranger's messages are capped: beyond
//! `MAX_REQUEST_MESSAGES_PER_STRANGER` it is refused `Unavailable` (its
//! sender keeps the message), while a buddy's message and another
//! stranger's still get through.

mod common;

use common::{TestNode, arrives, eventually, init_tracing};
use futures::AsyncWriteExt;
use libp2p::PeerId;
use roost::Identity;
use roost::clock::unix_ms;
use roost::crypto::Sealer;
use roost::node::messenger::MSG_PROTOCOL;
use roost::store::MAX_REQUEST_MESSAGES_PER_STRANGER;
use roost::wire::message::{self, Ack, AckResult, MAX_FRAME, MessageId, ReadFrame, RejectReason};
use roost::{Content, NodeHandle};

/// Delivers one message from `from` to `to` on a raw message stream `s`,
/// as a sender's link would, and returns the node's ack of it.
async fn deliver_on(
    s: &mut libp2p::Stream,
    sealer: &Sealer,
    from: PeerId,
    to: PeerId,
) -> (MessageId, Ack) {
    let id = MessageId::random();
    let inner = message::Inner::text(&from, unix_ms(), "hello from a stranger");
    let env = message::seal(sealer, id, &to, &inner).unwrap();
    let frame = message::encode_deliver(&env).unwrap();
    message::write_frame(s, &frame).await.unwrap();
    s.flush().await.unwrap();
    let read = tokio::time::timeout(common::DEADLINE, message::read_frame(s, MAX_FRAME));
    match read.await.expect("the node answers in time") {
        Ok(ReadFrame::Frame(bytes)) => (id, roost::wire::decode::<Ack>(&bytes, MAX_FRAME).unwrap()),
        other => panic!("no ack: {other:?}"),
    }
}

/// A node that joined through `boot` and can reach `target`.
async fn joined(boot: &TestNode, target: PeerId) -> TestNode {
    let n = TestNode::start(&[boot.addr().await]).await;
    eventually("the new node finds its target", || async {
        n.handle.find(target).await.expect("node running")
    })
    .await;
    n
}

async fn requests_from(node: &NodeHandle, from: PeerId) -> Vec<MessageId> {
    node.requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.peer == from.to_bytes())
        .map(|m| m.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_beyond_its_cap_and_others_get_through() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let target = alice.handle.peer_id();
    let mallory = joined(&alice, target).await;
    let bob = joined(&alice, target).await;
    let carol = joined(&alice, target).await;
    let (m, b, c) = (
        mallory.handle.peer_id(),
        bob.handle.peer_id(),
        carol.handle.peer_id(),
    );
    alice.handle.add_buddy(b, "bob".into()).await.unwrap();

    let sealer = Sealer::new(&Identity::load_from(mallory.dir.path()).unwrap());
    let mut s = mallory
        .handle
        .open_raw_stream(target, MSG_PROTOCOL)
        .await
        .unwrap();
    let mut accepted = Vec::new();
    for _ in 0..MAX_REQUEST_MESSAGES_PER_STRANGER {
        let (id, ack) = deliver_on(&mut s, &sealer, m, target).await;
        assert_eq!(ack.id, Some(id));
        if ack.result == AckResult::Accepted {
            accepted.push(id);
        }
    }
    assert_eq!(
        accepted.len() as u64,
        MAX_REQUEST_MESSAGES_PER_STRANGER,
        "every message up to the cap is taken"
    );
    let (over, ack) = deliver_on(&mut s, &sealer, m, target).await;
    assert_eq!(
        ack,
        Ack {
            id: Some(over),
            result: AckResult::Rejected(RejectReason::Unavailable)
        },
        "the message over the cap is refused, for now"
    );
    drop(s);

    // Sentinels: a buddy's message and another stranger's still land.
    let from_bob = bob
        .handle
        .send(target, Content::text("from a buddy"))
        .await
        .unwrap();
    arrives(&alice.handle, b, from_bob).await;
    let from_carol = carol
        .handle
        .send(target, Content::text("from another stranger"))
        .await
        .unwrap();
    arrives(&alice.handle, c, from_carol).await;
    assert_eq!(requests_from(&alice.handle, c).await, vec![from_carol]);

    // Mallory's stored messages are the ones accepted, not the one over.
    let mut kept = requests_from(&alice.handle, m).await;
    kept.sort();
    accepted.sort();
    assert_eq!(kept, accepted);
    assert!(!kept.contains(&over));

    for n in [alice, mallory, bob, carol] {
        n.handle.shutdown().await.unwrap();
    }
}
