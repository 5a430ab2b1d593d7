//! [trust] Acks and receipts count only from a message's recipient. Message
//! ids are no secret — a mailbox holder sees the ids it holds — so a third
//! peer that names one in an ack or a receipt must not make the sender drop
//! a message the recipient never got.

mod common;

use common::{TestNode, arrives, dir_for, eventually, init_tracing, start_in};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use libp2p_stream::{Control, IncomingStreams};
use roost::crypto::Sealer;
use roost::node::messenger::MSG_PROTOCOL;
use roost::store::MessageState;
use roost::wire::message::{
    self, Ack, AckResult, Body, Frame, Inner, MAX_FRAME, MessageId, ReadFrame, ReceiptKind,
};
use roost::{Content, Identity, NodeHandle};

/// The state of our message `id` to `peer` in `node`'s history.
async fn state(node: &NodeHandle, peer: PeerId, id: MessageId) -> Option<MessageState> {
    let conv = node.conversation(peer, 1000).await.expect("node running");
    conv.iter().find(|m| m.id == id).map(|m| m.state)
}

/// Waits until our message `id` to `peer` has reached `want`.
async fn reaches(node: &NodeHandle, peer: PeerId, id: MessageId, want: MessageState) {
    eventually(&format!("message {id} becomes {want:?}"), || async {
        (state(node, peer, id).await == Some(want)).then_some(())
    })
    .await
}

/// Alice's message to Bob has not been finished: still queued, still in
/// her outbox.
async fn still_queued(alice: &NodeHandle, bob: PeerId, id: MessageId, after: &str) {
    assert_eq!(
        state(alice, bob, id).await,
        Some(MessageState::Queued),
        "{after} moved alice's message to bob on"
    );
    assert_eq!(
        alice.outbox_len().await.unwrap(),
        1,
        "{after} took alice's message to bob out of her outbox"
    );
}

fn frame<T: serde::Serialize>(buf: &mut Vec<u8>, value: &T) {
    message::push_frame(buf, &roost::wire::encode(value).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_receipts_from_a_third_peer_leave_the_message_queued() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    // Bob exists but is not online: the message waits in Alice's outbox.
    let bob_identity = Identity::generate().unwrap();
    let bob = bob_identity.peer_id();
    let for_bob = alice
        .handle
        .send(bob, Content::text("for bob"))
        .await
        .unwrap();
    assert_eq!(alice.handle.outbox_len().await.unwrap(), 1);

    // Mallory learnt the id (a holder of Bob's mailbox would see it) and
    // talks to Alice by hand.
    let common::raw::Speaker {
        identity: mallory_identity,
        id: mallory,
        mut control,
        mut incoming,
        driver,
    } = common::raw::Speaker::connect(&alice).await;

    let for_mallory = forged_acks(&alice, &mut incoming, mallory, bob, for_bob).await;
    forged_receipts(
        &alice,
        &mut control,
        &mallory_identity,
        bob,
        for_bob,
        for_mallory,
    )
    .await;
    driver.abort();
    bob_comes_online_and_finishes_it(&alice, &bob_identity, for_bob).await;
}

/// Returns Alice's message to Mallory, acked by Mallory after the forged
/// acks for Alice's message to Bob.
async fn forged_acks(
    alice: &TestNode,
    incoming: &mut IncomingStreams,
    mallory: PeerId,
    bob: PeerId,
    for_bob: MessageId,
) -> MessageId {
    let a = alice.handle.peer_id();
    // 1. Forged acks. Alice writes to Mallory, so she opens a link to her;
    // on it Mallory acks Alice's message to Bob (every way an ack can end
    // a message), then the one Alice did send her.
    let for_mallory = alice
        .handle
        .send(mallory, Content::text("for mallory"))
        .await
        .unwrap();
    let (from, mut link) = tokio::time::timeout(common::DEADLINE, incoming.next())
        .await
        .expect("alice opens a link")
        .unwrap();
    assert_eq!(from, a);
    let ReadFrame::Frame(bytes) = message::read_frame(&mut link, MAX_FRAME).await.unwrap() else {
        panic!("alice's message to mallory")
    };
    let Frame::Deliver(env) = roost::wire::decode::<Frame>(&bytes, MAX_FRAME).unwrap();
    assert_eq!(env.id, for_mallory);
    let mut buf = Vec::new();
    for result in [
        AckResult::Accepted,
        AckResult::Duplicate,
        AckResult::Rejected(message::RejectReason::Blocked),
    ] {
        let id = Some(for_bob);
        frame(&mut buf, &Ack { id, result });
    }
    let real = Ack {
        id: Some(for_mallory),
        result: AckResult::Accepted,
    };
    frame(&mut buf, &real);
    link.write_all(&buf).await.unwrap();
    link.flush().await.unwrap();
    // Acks on one link are handled in order: once the real one is, so
    // were the forged ones.
    reaches(&alice.handle, mallory, for_mallory, MessageState::Delivered).await;
    still_queued(&alice.handle, bob, for_bob, "a forged ack").await;
    for_mallory
}

async fn forged_receipts(
    alice: &TestNode,
    control: &mut Control,
    mallory_identity: &Identity,
    bob: PeerId,
    for_bob: MessageId,
    for_mallory: MessageId,
) {
    let (a, mallory) = (alice.handle.peer_id(), mallory_identity.peer_id());
    // 2. Forged receipts, sealed by Mallory as any peer can: "delivered",
    // then "read" for Bob's message and for her own.
    let sealer = Sealer::new(mallory_identity);
    let mut buf = Vec::new();
    for (kind, ids) in [
        (ReceiptKind::Delivered, vec![for_bob]),
        (ReceiptKind::Read, vec![for_bob, for_mallory]),
    ] {
        let inner = Inner {
            from: mallory.to_bytes(),
            sent_at: roost::clock::unix_ms(),
            body: Body::Receipt { kind, ids },
        };
        let env = message::seal(&sealer, MessageId::random(), &a, &inner).unwrap();
        frame(&mut buf, &Frame::Deliver(env));
    }
    let mut s = control.open_stream(a, MSG_PROTOCOL).await.unwrap();
    s.write_all(&buf).await.unwrap();
    s.flush().await.unwrap();
    for _ in 0..2 {
        let ReadFrame::Frame(bytes) = message::read_frame(&mut s, MAX_FRAME).await.unwrap() else {
            panic!("alice acks each receipt")
        };
        let ack: Ack = roost::wire::decode(&bytes, MAX_FRAME).unwrap();
        assert_eq!(ack.result, AckResult::Accepted);
    }
    // The receipt counted for Mallory's own message, so it was handled.
    reaches(&alice.handle, mallory, for_mallory, MessageState::Read).await;
    still_queued(&alice.handle, bob, for_bob, "a forged receipt").await;
}

async fn bob_comes_online_and_finishes_it(
    alice: &TestNode,
    bob_identity: &Identity,
    for_bob: MessageId,
) {
    let (a, bob) = (alice.handle.peer_id(), bob_identity.peer_id());
    // Bob comes online: Alice still has the message and sends it, and his
    // own read receipt finishes it.
    let bob_dir = dir_for(bob_identity);
    let bob_node = start_in(&bob_dir, &[alice.addr().await]).await;
    arrives(&bob_node, a, for_bob).await;
    assert_eq!(bob_node.mark_read(a).await.unwrap(), 1);
    reaches(&alice.handle, bob, for_bob, MessageState::Read).await;
    eventually("alice's outbox empties", || async {
        (alice.handle.outbox_len().await.unwrap() == 0).then_some(())
    })
    .await;
    bob_node.shutdown().await.unwrap();
    alice.handle.shutdown().await.unwrap();
}
