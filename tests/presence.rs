//! [presence] The lecture's figure: Alex, Alice, Bob, Oscar and Jack with a
//! few plain nodes. Presence is pushed (SUBSCRIBE/NOTIFY), permissions are
//! checked by the publisher on every notify, and everything survives a
//! restart.

mod common;

use std::time::Duration;

use common::presence::{seen, sees};
use common::{
    TestNode, buddy_request_arrives, eventually, has_buddy_request, init_tracing, reaches_state,
};
use libp2p::{Multiaddr, PeerId};
use roost::node::{BuddyChange, Own, OwnStatus};
use roost::store::MessageState;
use roost::wire::presence::{PresenceInfo, Status};
use roost::{Content, Event, Identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lecture_figure_presence_permissions_push_and_restart() {
    init_tracing();
    let mut figure = Figure::start().await;
    figure.exchange_buddy_keys().await;
    figure.buddy_list_hiding_and_state().await;
    figure.alice_messages_bob_directly().await;
    let jack = figure.alice_reaches_offline_jack().await;
    figure.bobs_pushed_change_survives_his_restart().await;
    figure.bob_blocks_alice().await;
    figure.oscar_leaves_and_all_shut_down(jack).await;
}

/// The figure's nodes (Jack only as an identity: he starts offline) and
/// their peer ids, shared by every phase of the scenario.
struct Figure {
    boot: Vec<Multiaddr>,
    seed: TestNode,
    plain: TestNode,
    alex: TestNode,
    alice: TestNode,
    bob: TestNode,
    oscar: TestNode,
    jack_id: Identity,
    idx: PeerId,
    ida: PeerId,
    idb: PeerId,
    ido: PeerId,
    idj: PeerId,
}

impl Figure {
    async fn start() -> Self {
        let seed = TestNode::start(&[]).await;
        let boot = seed.addr().await;
        let b = std::slice::from_ref(&boot);
        let plain = TestNode::start(b).await;
        let alex = TestNode::start(b).await;
        let alice = TestNode::start(b).await;
        let bob = TestNode::start(b).await;
        let oscar = TestNode::start(b).await;
        let jack_id = Identity::generate().unwrap();
        let (idx, ida, idb, ido, idj) = (
            alex.handle.peer_id(),
            alice.handle.peer_id(),
            bob.handle.peer_id(),
            oscar.handle.peer_id(),
            jack_id.peer_id(),
        );
        Self {
            boot: vec![boot],
            seed,
            plain,
            alex,
            alice,
            bob,
            oscar,
            jack_id,
            idx,
            ida,
            idb,
            ido,
            idj,
        }
    }

    async fn exchange_buddy_keys(&self) {
        let (alex, alice, bob, oscar) = (&self.alex, &self.alice, &self.bob, &self.oscar);
        let (idx, ida, idb, ido, idj) = (self.idx, self.ida, self.idb, self.ido, self.idj);
        // Adding a key is the permission to see my presence.
        alice.handle.add_buddy(idb, "bob".into()).await.unwrap();
        alice.handle.add_buddy(ido, "oscar".into()).await.unwrap();
        alice.handle.add_buddy(idj, "jack".into()).await.unwrap();
        alice.handle.add_buddy(idx, "alex".into()).await.unwrap();
        // Bob sees Alice's request and accepts it by adding her back.
        buddy_request_arrives(&bob.handle, ida).await;
        bob.handle.add_buddy(ida, "alice".into()).await.unwrap();
        assert!(bob.handle.buddy_requests().await.unwrap().is_empty());
        oscar.handle.add_buddy(ida, "alice".into()).await.unwrap();
        oscar.handle.add_buddy(idx, "alex".into()).await.unwrap();
        alex.handle.add_buddy(ido, "oscar".into()).await.unwrap();
        // Alex leaves Alice's request pending.
    }

    async fn buddy_list_hiding_and_state(&self) {
        let (alex, alice, oscar) = (&self.alex, &self.alice, &self.oscar);
        let (idx, idb, ido, idj) = (self.idx, self.idb, self.ido, self.idj);
        // Alice's buddy list: Bob and Oscar online, Jack offline.
        sees(&alice.handle, idb, Status::Online, "Alice sees Bob online").await;
        sees(
            &alice.handle,
            ido,
            Status::Online,
            "Alice sees Oscar online",
        )
        .await;
        assert_eq!(seen(&alice.handle, idj).await.status, Status::Offline);
        // Alex never added Alice: Alice may not see Alex.
        assert_eq!(seen(&alice.handle, idx).await.status, Status::Offline);
        sees(&alex.handle, ido, Status::Online, "Alex sees Oscar online").await;

        // Oscar hides from Alex: Alex sees him offline, Alice still online.
        oscar
            .handle
            .change_buddy(idx, BuddyChange::Hide(true))
            .await
            .unwrap();
        sees(
            &alex.handle,
            ido,
            Status::Offline,
            "Alex sees Oscar offline",
        )
        .await;
        assert_eq!(seen(&alice.handle, ido).await.status, Status::Online);
        // Oscar changes his state: Alice sees it, Alex still gets no real state.
        let busy = Own {
            status: OwnStatus::Busy,
            note: Some("exam".into()),
            ..Own::default()
        };
        oscar.handle.set_presence(busy).await.unwrap();
        sees(&alice.handle, ido, Status::Busy, "Alice sees Oscar busy").await;
        assert_eq!(seen(&alex.handle, ido).await, PresenceInfo::offline());
        // Shown again: Alex sees the real state.
        oscar
            .handle
            .change_buddy(idx, BuddyChange::Hide(false))
            .await
            .unwrap();
        sees(
            &alex.handle,
            ido,
            Status::Busy,
            "Alex sees Oscar busy again",
        )
        .await;
    }

    async fn alice_messages_bob_directly(&self) {
        let (alice, bob, idb) = (&self.alice, &self.bob, self.idb);
        // Alice → Bob: direct.
        let to_bob = alice
            .handle
            .send(idb, Content::text("Bob, come here!"))
            .await
            .unwrap();
        reaches_state(
            &alice.handle,
            idb,
            to_bob,
            MessageState::Delivered,
            "Bob has Alice's message, delivered directly",
        )
        .await;
        assert_eq!(
            bob.handle.inbox().await.unwrap()[0].data,
            b"Bob, come here!"
        );
    }

    /// Returns Jack, started once his message is stored in his mailboxes.
    async fn alice_reaches_offline_jack(&self) -> TestNode {
        let (alice, jack_id, b) = (&self.alice, &self.jack_id, &self.boot[..]);
        let (ida, idj) = (self.ida, self.idj);
        // Alice → Jack: Jack is offline, so it goes to his mailboxes...
        let to_jack = alice
            .handle
            .send(idj, Content::text("Jack, call me"))
            .await
            .unwrap();
        reaches_state(
            &alice.handle,
            idj,
            to_jack,
            MessageState::Stored,
            "Alice's message to Jack is stored",
        )
        .await;
        // ...and arrives when Jack starts. Alice's buddy request reaches him too.
        let jack = TestNode::start_as(jack_id, b).await;
        eventually("Jack gets the message", || async {
            let conv = jack.handle.conversation(ida, 10).await.unwrap();
            conv.iter().any(|m| m.id == to_jack).then_some(())
        })
        .await;
        eventually("Jack gets Alice's buddy request", || async {
            (!jack.handle.buddy_requests().await.unwrap().is_empty()).then_some(())
        })
        .await;
        jack.handle.add_buddy(ida, "alice".into()).await.unwrap();
        sees(&alice.handle, idj, Status::Online, "Alice sees Jack online").await;
        jack
    }

    async fn bobs_pushed_change_survives_his_restart(&mut self) {
        let (alex, alice, bob) = (&self.alex, &self.alice, &mut self.bob);
        let (ida, idb, b) = (self.ida, self.idb, &self.boot[..]);
        // Bob sets away with a note: Alice is told (pushed, no polling).
        let mut events = alice.handle.events();
        let lunch = Own {
            status: OwnStatus::Away,
            note: Some("lunch, back at 14:00".into()),
            until: Some("14:00".into()),
            ..Own::default()
        };
        bob.handle.set_presence(lunch.clone()).await.unwrap();
        let pushed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Ok(Event::Presence { peer, info }) = events.recv().await
                    && peer == idb
                {
                    return info;
                }
            }
        })
        .await
        .expect("Bob's change is pushed to Alice");
        assert_eq!(pushed.status, Status::Away);
        assert_eq!(pushed.note.as_deref(), Some("lunch, back at 14:00"));
        assert_eq!(pushed.until.as_deref(), Some("14:00"));

        // Restart keeps buddies, explicit state and note; and pending requests.
        bob.restart(b).await;
        assert_eq!(bob.handle.presence().await.unwrap(), lunch);
        assert!(
            bob.handle
                .buddies()
                .await
                .unwrap()
                .iter()
                .any(|x| x.peer == ida && x.name == "alice")
        );
        sees(
            &alice.handle,
            idb,
            Status::Away,
            "Alice sees Bob away after his restart",
        )
        .await;
        assert!(has_buddy_request(&alex.handle, ida).await);
    }

    async fn bob_blocks_alice(&self) {
        let (alice, bob, ida, idb) = (&self.alice, &self.bob, self.ida, self.idb);
        // Bob blocks Alice: she sees him offline and her messages are refused.
        bob.handle.block(ida).await.unwrap();
        sees(
            &alice.handle,
            idb,
            Status::Offline,
            "Alice sees blocked Bob offline",
        )
        .await;
        let refused = alice
            .handle
            .send(idb, Content::text("hello?"))
            .await
            .unwrap();
        reaches_state(
            &alice.handle,
            idb,
            refused,
            MessageState::Failed,
            "Alice's message to Bob fails",
        )
        .await;
        assert_eq!(bob.handle.conversation(ida, 10).await.unwrap().len(), 1);
    }

    async fn oscar_leaves_and_all_shut_down(self, jack: TestNode) {
        let Figure {
            seed,
            plain,
            alex,
            alice,
            bob,
            oscar,
            ido,
            ..
        } = self;
        // A clean shutdown is pushed as offline.
        oscar.handle.shutdown().await.unwrap();
        sees(
            &alice.handle,
            ido,
            Status::Offline,
            "Alice sees Oscar leave",
        )
        .await;
        for n in [&seed, &plain, &alex, &alice, &bob, &jack] {
            n.handle.shutdown().await.unwrap();
        }
    }
}
