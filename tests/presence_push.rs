//! [speed] A presence change reaches a watcher as one frame on the push
//! stream its publisher opened when the subscription was taken: no request,
//! no new stream per change. The whole binary is this one test, so the
//! process-wide counts it reads are its nodes' alone.

mod common;

use common::presence::{befriend, sees};
use common::{TestNode, eventually, init_tracing};
use roost::node::{Own, OwnStatus};
use roost::wire::presence::Status;

/// What the nodes of this process have counted of `name` so far.
fn counted(name: &str) -> u64 {
    roost::net::stats::snapshot()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("no count named {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_ride_the_stream_opened_at_subscription() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    let ida = alice.handle.peer_id();
    befriend(&alice.handle, "alice", &bob.handle, "bob").await;
    // Each took the other's subscription and opened its push stream then.
    eventually("both push streams are open", || async {
        (counted("presence_push_stream") >= 2).then_some(())
    })
    .await;

    let streams = counted("presence_push_stream");
    // Requests *sent* (a NOTIFY is one): the events of the subscriptions
    // just answered may still be counted after this point.
    let requests = counted("cmd_presence");
    let notifies = counted("cmd_notify");
    let pushed = counted("presence_push_received");
    for (status, own, seen) in [
        (OwnStatus::Away, Status::Away, "Bob sees Alice away"),
        (OwnStatus::Busy, Status::Busy, "Bob sees Alice busy"),
    ] {
        let change = Own {
            status,
            ..Own::default()
        };
        alice.handle.set_presence(change).await.unwrap();
        sees(&bob.handle, ida, own, seen).await;
    }
    assert_eq!(
        counted("cmd_presence") - requests,
        0,
        "a change went as a request"
    );
    assert_eq!(
        counted("cmd_notify") - notifies,
        0,
        "a change was handed to the network task"
    );
    assert_eq!(
        counted("presence_push_stream") - streams,
        0,
        "a change opened a stream of its own"
    );
    assert!(
        counted("presence_push_received") - pushed >= 2,
        "both changes were read off the push stream"
    );

    alice.handle.shutdown().await.unwrap();
    bob.handle.shutdown().await.unwrap();
}
