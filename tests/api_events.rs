//! [house] The local API's event stream filtered by the daemon: `GET
//! /api/v1/events?from=` resolves the name by the daemon's own rule and
//! passes only that peer's events, which is what `roost inbox --follow
//! --from` prints. Real nodes on 127.0.0.1, the real API on its socket.

mod common;

use common::api::serve_local;
use common::presence::befriend;
use common::{DEADLINE, TestNode, arrives, init_tracing};
use roost::Content;
use roost::api::EventView;
use roost::api::client::ApiClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_a_name_pass_only_that_buddys_events() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    let carol = TestNode::start(&[alice.addr().await]).await;
    befriend(&alice.handle, "alice", &bob.handle, "bob").await;
    befriend(&alice.handle, "alice", &carol.handle, "carol").await;
    let a = &alice.handle;
    let api = serve_local(a, alice.dir.path()).await;
    let client = ApiClient::open(alice.dir.path()).unwrap();

    let err = client.events(Some("nobody")).await.err().unwrap();
    assert!(err.to_string().contains("no buddy is called"), "{err}");

    let mut events = client.events(Some("bob")).await.unwrap();
    // Carol's message arrives first, then Bob's: the stream must show
    // Bob's and nothing of Carol's before it.
    let from_carol = carol
        .handle
        .send(a.peer_id(), Content::text("from carol"))
        .await
        .unwrap();
    arrives(a, carol.handle.peer_id(), from_carol).await;
    let from_bob = bob
        .handle
        .send(a.peer_id(), Content::text("from bob"))
        .await
        .unwrap();
    let bob_id = bob.handle.peer_id().to_string();
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("Bob's message on the stream")
            .unwrap()
            .expect("the stream stays open");
        seen.push(ev.peer().to_string());
        if let EventView::Message(m) = &ev
            && m.id == from_bob.to_string()
        {
            break;
        }
    }
    assert!(
        seen.iter().all(|p| *p == bob_id),
        "only Bob's events pass the filter; saw events about {seen:?}, Bob is {bob_id}"
    );
    api.stop();
}
