//! [presence] Invisible and auto-away as a buddy sees them, through real
//! nodes: invisible shows plain `offline` (no note leaks) while messages
//! still arrive; auto-away turns an idle `online` into `away` and user
//! activity turns it back.

mod common;

use std::time::Duration;

use common::presence::{seen, sees};
use common::{TestNode, arrives, dir_for, eventually, init_tracing, start_with};
use libp2p::PeerId;
use roost::node::{Own, OwnStatus};
use roost::store::MessageState;
use roost::wire::presence::{PresenceInfo, Status};
use roost::{Content, Event, Identity};

/// The next presence `events` reports for `peer`.
async fn next_pushed(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    peer: PeerId,
    what: &str,
) -> PresenceInfo {
    tokio::time::timeout(common::DEADLINE, async {
        loop {
            match events.recv().await {
                Ok(Event::Presence { peer: p, info }) if p == peer => return info,
                Ok(_) => {}
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_looks_offline_to_buddies_while_messages_still_arrive() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    let (ida, idb) = (alice.handle.peer_id(), bob.handle.peer_id());
    alice.handle.add_buddy(idb, "bob".into()).await.unwrap();
    bob.handle.add_buddy(ida, "alice".into()).await.unwrap();
    let here = Own {
        status: OwnStatus::Online,
        note: Some("at my desk".into()),
        ..Own::default()
    };
    bob.handle.set_presence(here).await.unwrap();
    eventually("Alice sees Bob online with his note", || async {
        let p = seen(&alice.handle, idb).await;
        (p.status == Status::Online && p.note.as_deref() == Some("at my desk")).then_some(())
    })
    .await;

    let hidden = Own {
        status: OwnStatus::Invisible,
        note: Some("secret plans".into()),
        location: Some("the lab".into()),
        ..Own::default()
    };
    bob.handle.set_presence(hidden.clone()).await.unwrap();
    sees(
        &alice.handle,
        idb,
        Status::Offline,
        "Alice sees invisible Bob offline",
    )
    .await;
    assert_eq!(
        seen(&alice.handle, idb).await,
        PresenceInfo::offline(),
        "nothing of Bob's state leaks"
    );
    assert_eq!(bob.handle.presence().await.unwrap(), hidden);

    // Invisible Bob still receives, directly (his node is up and reachable).
    let id = alice
        .handle
        .send(idb, Content::text("are you there?"))
        .await
        .unwrap();
    arrives(&bob.handle, ida, id).await;
    eventually("Alice's message is delivered to invisible Bob", || async {
        let conv = alice.handle.conversation(idb, 10).await.unwrap();
        conv.iter()
            .any(|m| m.id == id && m.state == MessageState::Delivered)
            .then_some(())
    })
    .await;
    assert_eq!(seen(&alice.handle, idb).await, PresenceInfo::offline());

    // Visible again: the real state is pushed.
    bob.handle.set_presence(Own::default()).await.unwrap();
    sees(
        &alice.handle,
        idb,
        Status::Online,
        "Alice sees Bob online again",
    )
    .await;
    for n in [&alice, &bob] {
        n.handle.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_away_shows_away_when_idle_and_online_again_on_activity() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob_id = Identity::generate().unwrap();
    let bob_dir = dir_for(&bob_id);
    // Idle after 1 s here (15 min by default, `auto_away_mins`).
    let bob = start_with(&bob_dir, &[alice.addr().await], |c| {
        c.auto_away = Some(Duration::from_secs(1));
    })
    .await;
    let (ida, idb) = (alice.handle.peer_id(), bob.peer_id());
    alice.handle.add_buddy(idb, "bob".into()).await.unwrap();
    bob.add_buddy(ida, "alice".into()).await.unwrap();
    assert_eq!(bob.presence().await.unwrap().status, OwnStatus::Online);

    // Bob does nothing: Alice sees him away, though he chose `online`.
    sees(&alice.handle, idb, Status::Away, "Alice sees idle Bob away").await;
    assert_eq!(bob.presence().await.unwrap().status, OwnStatus::Online);

    // Activity (what every local API request records) ends it at once and
    // is pushed; idleness begins it again.
    let mut events = alice.handle.events();
    bob.touch().await;
    assert_eq!(
        next_pushed(&mut events, idb, "Bob's activity is pushed")
            .await
            .status,
        Status::Online
    );
    assert_eq!(
        next_pushed(&mut events, idb, "Bob's idleness is pushed again")
            .await
            .status,
        Status::Away
    );

    // An explicit state other than `online` is shown as chosen.
    let busy = Own {
        status: OwnStatus::Busy,
        ..Own::default()
    };
    bob.set_presence(busy).await.unwrap();
    assert_eq!(
        next_pushed(&mut events, idb, "Bob's busy is pushed")
            .await
            .status,
        Status::Busy
    );
    alice.handle.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}
