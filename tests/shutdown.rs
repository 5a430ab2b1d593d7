//! [house] A node stops when every handle to it is dropped, as
//! `NodeHandle::shutdown` would stop it: its services end, it leaves the
//! network, and its database is drained, flushed and released, so the same
//! data dir opens again.

mod common;

use std::time::Duration;

use common::{TestNode, eventually_within, init_tracing, start_in};
use roost::{Config, Content, Identity, Node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_stops_the_node_and_releases_its_data_dir() {
    init_tracing();
    // A peer that is never online: the message stays in the outbox.
    let absent = Identity::generate().expect("identity").peer_id();
    let alice = TestNode::start(&[]).await;
    let TestNode { dir, handle } = alice;
    let id = handle
        .send(absent, Content::text("kept across the drop"))
        .await
        .expect("send");
    let clones = [handle.clone(), handle.clone()];
    let events = handle.events();
    drop(clones);
    drop(handle);
    // The node is gone: reopening its data dir succeeds once it has
    // released the database (each failed try waits on sled's lock a while).
    let again = eventually_within(Duration::from_secs(120), "the data dir opens again", || {
        let config = Config::local(dir.path().to_path_buf());
        async move { Node::start(config).await.ok() }
    })
    .await;
    drop(events);
    // What the dropped node had accepted is there.
    let history = again.conversation(absent, 10).await.expect("history");
    assert!(
        history.iter().any(|m| m.id == id),
        "the sent message is kept"
    );
    assert_eq!(again.outbox_len().await.expect("outbox"), 1);
    again.shutdown().await.expect("shutdown");
    // And a shut-down node releases it at once.
    let third = start_in(&dir, &[]).await;
    third.shutdown().await.expect("shutdown");
}

/// `add_buddy` answers once its buddy request is queued with the messaging
/// service, not once it is in the outbox: a shutdown right after must
/// still put it there, or the request is never sent (nothing re-sends it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buddy_request_made_just_before_shutdown_is_still_queued() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let TestNode { dir, handle } = alice;
    handle.shutdown().await.expect("shutdown");
    // Each round: a buddy request, then at once the stop. The service
    // sees both ready together; the request must win every time.
    const ROUNDS: usize = 8;
    for i in 0..ROUNDS {
        let node = start_in(&dir, &[]).await;
        let absent = Identity::generate().expect("identity").peer_id();
        node.add_buddy(absent, format!("absent {i}"))
            .await
            .expect("add buddy");
        node.shutdown().await.expect("shutdown");
    }
    let node = start_in(&dir, &[]).await;
    assert_eq!(
        node.outbox_len().await.expect("outbox"),
        ROUNDS,
        "every buddy request is in the outbox"
    );
    node.shutdown().await.expect("shutdown");
}
