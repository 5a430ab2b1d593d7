//! [durability] What the user changes — buddies, hiding, blocking, their own
//! presence, reading —
//! is on disk (sled's flush *and* an `fdatasync` of its log) before the
//! call returns, as a message is before `send` returns: a block or a hide
//! that a power cut undoes would let through what the user shut out, and a
//! read receipt must not tell the sender "read" for a state a crash undoes.

mod common;

use common::{TestNode, arrives, init_tracing};
use libp2p::PeerId;
use roost::Content;
use roost::node::{BuddyChange, Own, OwnStatus};

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
