//! [rooms] A message for a direct link only — how a large group's
//! catch-up question and answer travel — reaches a peer that is up, and
//! is dropped, neither retried nor deposited, when the peer is away:
//! its mailbox holders keep only what was sent the ordinary way.

mod common;

use common::groups::network;
use common::{TestNode, arrives, buddy_request_arrives, eventually, init_tracing};
use roost::Content;
use roost::wire::message::Body;

/// Mailbox items `nodes` hold for `who`, all told.
async fn held_for(nodes: &[&TestNode], who: libp2p::PeerId) -> usize {
    let mut n = 0;
    for node in nodes {
        n += node.handle.held_for(who).await.unwrap();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_only_message_reaches_a_peer_that_is_up_and_no_mailbox_when_it_is_away() {
    init_tracing();
    let (holders, boot) = network(2).await;
    let b = std::slice::from_ref(&boot);
    let alice = TestNode::start(b).await;
    let bob = TestNode::start(b).await;
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());

    // Up, and connected as members seen on a group's topic are (an
    // ordinary message first, once Bob's locator is out, so that it goes
    // directly): it arrives over the link.
    eventually("Alice finds Bob's locator", || async {
        alice.handle.find(idb).await.unwrap().map(|_| ())
    })
    .await;
    let id = alice
        .handle
        .send(idb, Content::text("hello"))
        .await
        .unwrap();
    arrives(&bob.handle, ida, id).await;
    alice
        .handle
        .send_direct(idb, Body::BuddyRequest)
        .await
        .unwrap();
    // The direct message reaches Bob.
    buddy_request_arrives(&bob.handle, ida).await;
    eventually("Bob knows the holders", || async {
        (bob.handle.connected_peers().await.unwrap().len() >= 3).then_some(())
    })
    .await;
    // Nothing waits for Bob in a mailbox yet: all that is held for him
    // later was sent while he was away.
    let all: Vec<&TestNode> = holders.iter().chain([&alice]).collect();
    eventually("nothing waits for Bob in a mailbox", || async {
        (held_for(&all, idb).await == 0).then_some(())
    })
    .await;

    // Away: the direct one ends at its failed attempt, while the
    // ordinary request after it goes to Bob's mailboxes.
    bob.handle.shutdown().await.unwrap();
    alice
        .handle
        .send_direct(idb, Body::BuddyRequest)
        .await
        .unwrap();
    alice.handle.add_buddy(idb, "bob".into()).await.unwrap();
    eventually(
        "holders keep the ordinary request (a quorum of copies)",
        || async { (held_for(&all, idb).await >= 2).then_some(()) },
    )
    .await;
    // Only the request is still tried (parked until Bob is back): the
    // direct one is not waiting for a retry, nor parked in a mailbox.
    eventually("Alice tries only the request", || async {
        (alice.handle.pending_messages().await.unwrap() == 1).then_some(())
    })
    .await;
    for n in &all {
        assert!(
            n.handle.held_for(idb).await.unwrap() <= 1,
            "a holder keeps the direct-only message for Bob"
        );
    }
    assert_eq!(
        alice.handle.outbox_len().await.unwrap(),
        1,
        "the direct-only message has an outbox row"
    );
    for n in holders.iter().chain([&alice]) {
        n.handle.shutdown().await.unwrap();
    }
}
