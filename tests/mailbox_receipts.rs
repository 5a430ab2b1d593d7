//! [mbox] A read receipt through a mailbox: the reader marks a message
//! read while its sender is offline, then goes offline too; the sender,
//! started afterwards, can only learn "read" from the receipt its
//! mailbox holders kept.

mod common;

use common::{TestNode, arrives, eventually, init_tracing};
use roost::store::MessageState;
use roost::{Content, NodeHandle};

async fn held_for(holders: &[TestNode], who: libp2p::PeerId) -> usize {
    let mut n = 0;
    for h in holders {
        n += h.handle.held_for(who).await.unwrap();
    }
    n
}

async fn state(
    node: &NodeHandle,
    peer: libp2p::PeerId,
    id: roost::wire::message::MessageId,
) -> Option<MessageState> {
    let conv = node.conversation(peer, 10).await.unwrap();
    conv.into_iter().find(|m| m.id == id).map(|m| m.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_receipt_waits_in_the_senders_mailbox_and_reaches_her_later() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let b = std::slice::from_ref(&boot);
    let mut holders = vec![seed];
    for _ in 0..2 {
        holders.push(TestNode::start(b).await);
    }
    let mut alice = TestNode::start(b).await;
    let bob = TestNode::start(b).await;
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());

    // Alice → Bob directly, while both are up: delivered, not read. Sent
    // once Alice can find Bob, so no copy of it goes to Bob's mailboxes:
    // one fetched from there would owe Alice a delivery receipt, and the
    // holders' count below would count that one instead of the read
    // receipt.
    eventually("Alice finds Bob", || async {
        alice.handle.find(idb).await.ok().flatten()
    })
    .await;
    let id = alice
        .handle
        .send(idb, Content::text("read me"))
        .await
        .unwrap();
    arrives(&bob.handle, ida, id).await;
    eventually("Alice sees her message delivered", || async {
        (state(&alice.handle, idb, id).await == Some(MessageState::Delivered)).then_some(())
    })
    .await;
    eventually("Bob owes Alice nothing", || async {
        (bob.handle.outbox_len().await.unwrap() == 0).then_some(())
    })
    .await;
    eventually("Bob knows the holders", || async {
        (bob.handle.connected_peers().await.unwrap().len() >= 3).then_some(())
    })
    .await;
    assert_eq!(
        held_for(&holders, ida).await,
        0,
        "nothing waits for Alice yet"
    );

    // Alice leaves; Bob reads. The receipt goes into Alice's mailboxes.
    alice.handle.shutdown().await.unwrap();
    assert_eq!(bob.handle.mark_read(ida).await.unwrap(), 1);
    eventually(
        "holders keep Bob's receipt for Alice (a quorum of copies)",
        || async { (held_for(&holders, ida).await >= 2).then_some(()) },
    )
    .await;
    // Bob leaves before Alice comes back: only a holder can tell her.
    bob.handle.shutdown().await.unwrap();

    alice.restart(b).await;
    eventually("Alice sees her message read", || async {
        (state(&alice.handle, idb, id).await == Some(MessageState::Read)).then_some(())
    })
    .await;
    for h in &holders {
        eventually("holders let go of the receipt", || async {
            (h.handle.held_for(ida).await.unwrap() == 0).then_some(())
        })
        .await;
    }
    for n in holders.iter().chain([&alice]) {
        n.handle.shutdown().await.unwrap();
    }
}
