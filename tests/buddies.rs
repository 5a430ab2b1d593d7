//! [presence] Buddy-list changes through real nodes: a rename is what the
//! name resolves to, a removed buddy stops seeing our presence and becomes a
//! stranger whose messages are requests, an unblocked key's messages arrive
//! again. Each refusal is checked against a sentinel that got through.

mod common;

use common::presence::{befriend, seen, sees};
use common::{TestNode, arrives, init_tracing, reaches_state};
use roost::Content;
use roost::node::{BuddyChange, Own, OwnStatus};
use roost::store::{MessageState, StoredMessage};
use roost::wire::message::MessageId;
use roost::wire::presence::{PresenceInfo, Status};

/// Whether `messages` hold the message `id`.
fn holds(messages: &[StoredMessage], id: MessageId) -> bool {
    messages.iter().any(|m| m.id == id)
}

/// Alice and Bob on fresh nodes (Bob joined through Alice), buddies of
/// each other, each seeing the other online.
async fn alice_and_bob() -> (TestNode, TestNode) {
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    befriend(&alice.handle, "alice", &bob.handle, "bob").await;
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_resolves_the_new_name_and_survives_a_restart() {
    init_tracing();
    let (mut alice, bob) = alice_and_bob().await;
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());

    alice
        .handle
        .change_buddy(idb, BuddyChange::Rename("robert".into()))
        .await
        .unwrap();
    assert_eq!(alice.handle.resolve("robert").await.unwrap(), idb);
    assert!(
        alice.handle.resolve("bob").await.is_err(),
        "the old name no longer resolves"
    );
    // The name is a label: Bob is still a buddy Alice watches, online.
    let row = alice.handle.buddies().await.unwrap();
    assert_eq!(row.len(), 1);
    assert_eq!((row[0].peer, row[0].name.as_str()), (idb, "robert"));
    assert_eq!(row[0].presence.status, Status::Online);

    // A message sent to the new name reaches Bob.
    let to = alice.handle.resolve("robert").await.unwrap();
    let id = alice
        .handle
        .send(to, Content::text("hi robert"))
        .await
        .unwrap();
    arrives(&bob.handle, ida, id).await;

    alice.restart(&[bob.addr().await]).await;
    assert_eq!(alice.handle.resolve("robert").await.unwrap(), idb);
    assert!(alice.handle.resolve("bob").await.is_err());
    for n in [&alice, &bob] {
        n.handle.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_buddy_stops_seeing_us_and_its_messages_become_requests() {
    init_tracing();
    let (alice, bob) = alice_and_bob().await;
    let carol = TestNode::start(&[alice.addr().await]).await;
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());
    befriend(&alice.handle, "alice", &carol.handle, "carol").await;
    let before = bob
        .handle
        .send(ida, Content::text("as a buddy"))
        .await
        .unwrap();
    arrives(&alice.handle, idb, before).await;

    removal_stops_our_presence_reaching_bob(&alice, &bob, &carol).await;
    bobs_messages_become_requests(&alice, &bob, &carol).await;
    for n in [&alice, &bob, &carol] {
        n.handle.shutdown().await.unwrap();
    }
}

/// Alice removes Bob: he sees her offline, and her next state reaches Carol
/// (the sentinel) but not him.
async fn removal_stops_our_presence_reaching_bob(
    alice: &TestNode,
    bob: &TestNode,
    carol: &TestNode,
) {
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());
    alice
        .handle
        .change_buddy(idb, BuddyChange::Remove)
        .await
        .unwrap();
    assert!(
        alice
            .handle
            .buddies()
            .await
            .unwrap()
            .iter()
            .all(|b| b.peer != idb)
    );
    sees(
        &bob.handle,
        ida,
        Status::Offline,
        "Bob sees Alice offline once she removed him",
    )
    .await;

    // Alice's next state reaches Carol (the sentinel) but not Bob.
    let busy = Own {
        status: OwnStatus::Busy,
        note: Some("only for buddies".into()),
        ..Own::default()
    };
    alice.handle.set_presence(busy).await.unwrap();
    sees(&carol.handle, ida, Status::Busy, "Carol sees Alice busy").await;
    assert_eq!(
        seen(&bob.handle, ida).await,
        PresenceInfo::offline(),
        "Bob gets no real state any more"
    );
}

/// Bob, removed, is a stranger: his message is a request; Carol's (the
/// sentinel) is still an ordinary inbox message.
async fn bobs_messages_become_requests(alice: &TestNode, bob: &TestNode, carol: &TestNode) {
    let (ida, idb, idc) = (
        alice.handle.peer_id(),
        bob.handle.peer_id(),
        carol.handle.peer_id(),
    );
    // Bob is a stranger to Alice now: his message is a request, not inbox.
    let after = bob
        .handle
        .send(ida, Content::text("still there?"))
        .await
        .unwrap();
    arrives(&alice.handle, idb, after).await;
    let got = alice.handle.conversation(idb, 10).await.unwrap();
    let msg = got.iter().find(|m| m.id == after).unwrap();
    assert!(msg.request, "a message from a removed buddy is a request");
    assert!(holds(&alice.handle.requests().await.unwrap(), after));
    assert!(!holds(&alice.handle.inbox().await.unwrap(), after));
    // Carol's message (sentinel) is still an ordinary inbox message.
    let from_carol = carol
        .handle
        .send(ida, Content::text("hello"))
        .await
        .unwrap();
    arrives(&alice.handle, idc, from_carol).await;
    assert!(holds(&alice.handle.inbox().await.unwrap(), from_carol));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_unblock_their_messages_arrive_and_their_presence_shows_again() {
    init_tracing();
    let (alice, bob) = alice_and_bob().await;
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());

    alice.handle.block(idb).await.unwrap();
    sees(
        &bob.handle,
        ida,
        Status::Offline,
        "Bob sees blocking Alice offline",
    )
    .await;
    let refused = bob
        .handle
        .send(ida, Content::text("blocked"))
        .await
        .unwrap();
    reaches_state(
        &bob.handle,
        ida,
        refused,
        MessageState::Failed,
        "Bob's message to blocking Alice fails",
    )
    .await;
    assert!(
        alice.handle.conversation(idb, 10).await.unwrap().is_empty(),
        "nothing from Bob is kept while he is blocked"
    );

    alice
        .handle
        .change_buddy(idb, BuddyChange::Block(false))
        .await
        .unwrap();
    let row = alice.handle.buddies().await.unwrap();
    assert!(
        row.iter()
            .any(|b| b.peer == idb && !b.blocked && b.name == "bob")
    );
    let welcome = bob
        .handle
        .send(ida, Content::text("unblocked"))
        .await
        .unwrap();
    arrives(&alice.handle, idb, welcome).await;
    reaches_state(
        &bob.handle,
        ida,
        welcome,
        MessageState::Delivered,
        "Bob's message after the unblock is delivered",
    )
    .await;
    let got = alice.handle.conversation(idb, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![welcome],
        "the message refused while blocked did not come back"
    );
    assert!(!got[0].request, "Bob is a buddy again, not a stranger");
    sees(
        &alice.handle,
        idb,
        Status::Online,
        "Alice watches Bob again after the unblock",
    )
    .await;
    for n in [&alice, &bob] {
        n.handle.shutdown().await.unwrap();
    }
}

/// The `roost` binary against a running daemon: JSON rows, or the one
/// stderr line of a refusal.
fn cli_ok(dir: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = common::roost(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cli_refused(dir: &std::path::Path, args: &[&str]) -> String {
    let out = common::roost(dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_names_a_buddy_by_its_new_name_only_and_forgets_a_removed_one() {
    let daemon = common::Daemon::start(None).await;
    let path = daemon.dir.path();
    let bob = roost::Identity::generate().unwrap().peer_id().to_string();
    cli_ok(path, &["--json", "buddy", "add", &bob, "--name", "bob"]);

    let done = cli_ok(path, &["--json", "buddy", "rename", "bob", "robert"]);
    assert_eq!(done[0]["id"], bob.as_str());
    let list = cli_ok(path, &["--json", "buddy", "list"]);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["id"].as_str(), list[0]["name"].as_str()),
        (Some(bob.as_str()), Some("robert"))
    );
    let sent = cli_ok(path, &["--json", "send", "robert", "hi robert"]);
    let log = cli_ok(path, &["--json", "log", "robert"]);
    assert_eq!(log.len(), 1);
    assert_eq!(
        (&log[0]["id"], log[0]["peer"].as_str()),
        (&sent[0]["id"], Some(bob.as_str()))
    );
    let err = cli_refused(path, &["--json", "send", "bob", "the old name"]);
    assert!(err.contains("no buddy is called \"bob\""), "{err}");
    assert_eq!(
        cli_ok(path, &["--json", "log", "robert"]).len(),
        1,
        "nothing sent to the old name"
    );

    cli_ok(path, &["--json", "buddy", "block", "robert"]);
    assert_eq!(
        cli_ok(path, &["--json", "buddy", "list"])[0]["blocked"],
        true
    );
    cli_ok(path, &["--json", "buddy", "unblock", "robert"]);
    assert_eq!(
        cli_ok(path, &["--json", "buddy", "list"])[0]["blocked"],
        false
    );

    cli_ok(path, &["--json", "buddy", "remove", "robert"]);
    assert!(cli_ok(path, &["--json", "buddy", "list"]).is_empty());
    let err = cli_refused(path, &["--json", "buddy", "rename", "robert", "bobby"]);
    assert!(err.contains("no buddy is called \"robert\""), "{err}");
}
