//! [durability] What the user changes — buddies, hiding, blocking, their own
//! presence, reading —
//! is on disk (sled's flush *and* an `fdatasync` of its log) before the
//! call returns, as a message is before `send` returns: a block or a hide
//! that a power cut undoes would let through what the user shut out, and a
//! read receipt must not tell the sender "read" for a state a crash undoes.

mod common;

use common::{TestNode, arrives, eventually, init_tracing};
use libp2p::PeerId;
use roost::Content;
use roost::api::client::ApiClient;
use roost::crypto::Sealer;
use roost::identity::Identity;
use roost::node::{BuddyChange, DB_DIR, Own, OwnStatus};
use roost::store::{MessageState, Store};
use roost::wire::message::{self, Body, ReceiptKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buddy_hide_block_and_read_are_synced_before_the_call_returns() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    let a = alice.handle.peer_id();
    // Something for Bob to read.
    let id = alice
        .handle
        .send(bob.handle.peer_id(), Content::text("hi"))
        .await;
    arrives(&bob.handle, a, id.unwrap()).await;

    // Each kind of write, on a key nobody else writes to: `add_buddy`'s
    // write is `change_buddy(Add)` (add_buddy then also queues a buddy
    // request, whose own flush would hide a missing one here).
    let carol = PeerId::random();
    let node = &bob.handle;
    for kind in [
        "add",
        "rename",
        "hide",
        "show",
        "block",
        "unblock",
        "remove",
        "invisible",
        "mark_read",
    ] {
        let before = node.sync_count().await.unwrap();
        match kind {
            "add" => assert!(
                node.change_buddy(carol, BuddyChange::Add("carol".into()))
                    .await
                    .unwrap()
            ),
            "rename" => {
                node.change_buddy(carol, BuddyChange::Rename("caz".into()))
                    .await
                    .unwrap();
            }
            "hide" | "show" => {
                node.change_buddy(carol, BuddyChange::Hide(kind == "hide"))
                    .await
                    .unwrap();
            }
            "block" => node.block(carol).await.unwrap(),
            "unblock" => {
                node.change_buddy(carol, BuddyChange::Block(false))
                    .await
                    .unwrap();
            }
            "remove" => {
                node.change_buddy(carol, BuddyChange::Remove).await.unwrap();
            }
            "invisible" => {
                let own = Own {
                    status: OwnStatus::Invisible,
                    ..Own::default()
                };
                node.set_presence(own).await.unwrap();
            }
            _ => assert_eq!(node.mark_read(a).await.unwrap(), 1),
        }
        let after = node.sync_count().await.unwrap();
        assert!(
            after > before,
            "{kind} returned before an fdatasync ({before} syncs before, {after} after)"
        );
    }
    // The writes took effect (the loop did not pass on no-ops).
    assert!(node.buddies().await.unwrap().is_empty());
    assert_eq!(node.presence().await.unwrap().status, OwnStatus::Invisible);
    let conv = node.conversation(a, 10).await.unwrap();
    assert_eq!(conv[0].state, roost::store::MessageState::Read);
    bob.handle.shutdown().await.unwrap();
    alice.handle.shutdown().await.unwrap();
}

/// A `roost daemon` child, killed if the test ends early.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mark_read` writes the read state and the read receipt's outbox entry
/// before it returns: the reader is a real `roost daemon`, killed with
/// SIGKILL the moment the API answers, and its database, opened again,
/// has both. (SIGKILL keeps the page cache, so this shows the writes left
/// the process — sled's flush — before the answer; the fdatasync on top
/// is what `sync_count` shows in the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_and_its_receipt_survive_sigkill_right_after_mark_read() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let a = alice.handle.peer_id();
    let dir = tempfile::tempdir().unwrap();
    let bob = Identity::create_in(dir.path()).unwrap().peer_id();
    let mut daemon = Daemon(common::spawn_daemon(
        dir.path(),
        Some(&alice.addr().await.to_string()),
    ));
    let api = eventually("the daemon answers", || async {
        let api = ApiClient::open(dir.path()).ok()?;
        api.get::<serde_json::Value>("status").await.ok()?;
        Some(api)
    })
    .await;
    let id = alice
        .handle
        .send(bob, Content::text("read me"))
        .await
        .unwrap();
    eventually("bob has stored alice's message", || async {
        let conv = alice.handle.conversation(bob, 10).await.unwrap();
        (conv.first()?.state == MessageState::Delivered).then_some(())
    })
    .await;
    // Alice goes away: Bob's read receipt stays in his outbox.
    alice.handle.shutdown().await.unwrap();

    let read: serde_json::Value = api
        .post(&format!("read/{a}"), &serde_json::json!({}))
        .await
        .unwrap();
    daemon.0.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
    daemon.0.wait().unwrap();
    assert_eq!(read["read"], 1, "{read}");

    let store = Store::open(&dir.path().join(DB_DIR), 16 << 20).unwrap();
    let conv = store.conversation(&a, 10).unwrap();
    assert_eq!(conv.len(), 1);
    assert_eq!(
        (conv[0].id, conv[0].state),
        (id, MessageState::Read),
        "the read state was lost with the daemon"
    );
    // The receipt, sealed to Alice: she can open it.
    let sealer = Sealer::new(&Identity::load_from(alice.dir.path()).unwrap());
    let receipts: Vec<_> = store
        .outbox()
        .unwrap()
        .into_iter()
        .filter(|(to, _, _)| *to == a)
        .map(|(_, env, _)| message::open(&sealer, &env).unwrap().1.body)
        .collect();
    assert_eq!(
        receipts,
        [Body::Receipt {
            kind: ReceiptKind::Read,
            ids: vec![id],
        }],
        "the read receipt was lost with the daemon"
    );
}
