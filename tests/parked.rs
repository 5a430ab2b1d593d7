//! [mbox] A message left in the mailboxes after a failed direct attempt
//! is still tried directly soon after (`outbox::PARKED_RECHECKS`), so a
//! recipient that comes online just after the failure has it in seconds,
//! not at its next mailbox poll (5 min, backing off to 20 min) or the
//! sender's next half-hourly retry. Real nodes on 127.0.0.1.
//!
//! Every other way is closed: no holder keeps a copy, the one Jack can
//! reach takes nothing in, and nothing makes Jack's node connect to
//! Alice's (which would make her retry at once).

mod common;

use std::time::Duration;

use common::{TestNode, arrives_within, dir_for, eventually, init_tracing, new_dir, reaches_state};
use roost::store::MessageState;
use roost::{Content, Identity};

/// Alice's message to Jack fails directly (his node is off) and is
/// stored with three holders, which then all leave: no copy is left for
/// Jack's start-up fetch or his polls to find. Jack then comes online
/// through a new server. Both are DHT clients, so neither node has a
/// reason to contact the other (which would make Alice retry at once):
/// only her recheck can bring the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_message_reaches_a_recipient_that_came_online_through_a_recheck() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let mut holders = vec![seed];
    for _ in 0..2 {
        holders.push(TestNode::start(std::slice::from_ref(&boot)).await);
    }
    let alice = TestNode::start_client(new_dir(), std::slice::from_ref(&boot)).await;
    eventually("Alice knows the three holders", || async {
        (alice.handle.connected_peers().await.unwrap().len() >= 3).then_some(())
    })
    .await;

    let jack_id = Identity::generate().unwrap();
    let jack = jack_id.peer_id();
    let id = alice
        .handle
        .send(jack, Content::text("are you there?"))
        .await
        .unwrap();
    reaches_state(
        &alice.handle,
        jack,
        id,
        MessageState::Stored,
        "the message is stored in Jack's mailboxes",
    )
    .await;
    for h in holders {
        h.handle.shutdown().await.unwrap();
    }

    // A new server, which Alice meets (Alice's address must not reach
    // its routing table: from there Jack's lookups would connect to her).
    let server = TestNode::start(&[]).await;
    // Its holder takes nothing in: a deposit made again, or a fetch,
    // waits behind the pause instead of bringing the message.
    let pause = server.handle.pause_mailbox_holder().await.unwrap();
    let server_id = server.handle.peer_id();
    let contact = (server_id, server.addr().await);
    alice
        .handle
        .net()
        .meet(server_id, vec![contact])
        .await
        .unwrap();
    eventually("Alice knows the new server", || async {
        let peers = alice.handle.connected_peers().await.unwrap();
        peers.contains(&server_id).then_some(())
    })
    .await;
    // Jack is a DHT client too: as a server he would be in the server's
    // routing table, and Alice's own lookups would connect to him.
    let jack_node = TestNode::start_client(dir_for(&jack_id), &[server.addr().await]).await;

    // Two rechecks (15 s and 1 min apart, ±20 %) fit in the deadline; the
    // half-hourly retry and Jack's poll do not.
    let from = alice.handle.peer_id();
    arrives_within(Duration::from_secs(150), &jack_node.handle, from, id).await;
    reaches_state(
        &alice.handle,
        jack,
        id,
        MessageState::Delivered,
        "Alice sees it delivered",
    )
    .await;
    // It came over the direct link, and the missed rechecks deposited
    // nothing again.
    assert_eq!(pause.deposits_routed(), 0, "no deposit after the first");
    drop(pause);
    for n in [&alice, &server, &jack_node] {
        n.handle.shutdown().await.unwrap();
    }
}
