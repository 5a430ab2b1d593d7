//! [mbox] Store and forward: messages for an offline recipient wait in
//! replicated mailboxes on other peers and reach it when it comes back —
//! even after the sender left and holders died or were replaced.

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::{Daemon, TestNode, dir_for, eventually, init_tracing, start_with};
use libp2p::PeerId;
use libp2p::kad::KBucketKey;
use roost::store::MessageState;
use roost::wire::mailbox::{MailboxRequest, MailboxResponse, mailbox_key};
use roost::{Content, Identity, NodeHandle};

/// The `n` peers closest to `jack`'s mailbox key among `peers`.
fn closest(jack: &PeerId, peers: &[PeerId], n: usize) -> Vec<PeerId> {
    roost::node::mailbox::holders(&mailbox_key(jack), peers.iter().copied(), &[], n)
}

/// Once Alice is connected to `peers` others, she sends Jack 50 messages
/// and waits until all are stored in his mailboxes.
async fn send_50(
    alice: &NodeHandle,
    jack: PeerId,
    peers: usize,
) -> Vec<roost::wire::message::MessageId> {
    eventually("Alice knows the network", || async {
        (alice.connected_peers().await.unwrap().len() >= peers).then_some(())
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(
            alice
                .send(jack, Content::text(format!("offline message {i:02}")))
                .await
                .unwrap(),
        );
    }
    eventually("all 50 are stored in Jack's mailboxes", || async {
        let conv = alice.conversation(jack, 100).await.unwrap();
        (conv.len() == 50 && conv.iter().all(|m| m.state == MessageState::Stored)).then_some(())
    })
    .await;
    ids
}

/// Waits until `jack` has exactly the messages `ids` from `alice`, once
/// each; returns how long that took.
async fn has_all(
    jack: &NodeHandle,
    alice: PeerId,
    ids: &[roost::wire::message::MessageId],
) -> std::time::Duration {
    let t0 = Instant::now();
    let conv = eventually("Jack has all 50", || async {
        let conv = jack.conversation(alice, 1000).await.unwrap();
        (conv.len() >= ids.len()).then_some(conv)
    })
    .await;
    let took = t0.elapsed();
    assert_eq!(conv.len(), ids.len(), "exactly once");
    let got: HashSet<_> = conv.iter().map(|m| m.id).collect();
    assert_eq!(got, ids.iter().copied().collect::<HashSet<_>>());
    for (i, m) in conv.iter().enumerate() {
        assert_eq!(
            m.data,
            format!("offline message {i:02}").as_bytes(),
            "in order, intact"
        );
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_forward_to_jack_while_both_are_away_in_turn() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let mut plain = vec![seed];
    for _ in 0..5 {
        plain.push(TestNode::start(std::slice::from_ref(&boot)).await);
    }
    let mut alice = TestNode::start(std::slice::from_ref(&boot)).await;
    let jack_id = Identity::generate().unwrap();
    let jack = jack_id.peer_id();
    // 8 nodes in all: 6 plain, Alice, and Jack, whose node is off.
    let ids = send_50(&alice.handle, jack, 3).await;
    let held: usize = {
        let mut n = 0;
        for p in &plain {
            n += p.handle.held_len().await.unwrap();
        }
        n
    };
    assert!(held >= 100, "at least a quorum of 2 copies of each: {held}");
    alice.handle.shutdown().await.unwrap();

    let via = plain[3].addr().await;
    let jack_node = TestNode::start_as(&jack_id, &[via]).await;
    let took = has_all(&jack_node.handle, alice.handle.peer_id(), &ids).await;
    println!("pickup: Jack started -> 50 messages stored locally in {took:?}");

    alice.restart(&[boot]).await;
    eventually("Alice sees all 50 delivered", || async {
        let conv = alice.handle.conversation(jack, 100).await.unwrap();
        conv.iter()
            .all(|m| m.state == MessageState::Delivered)
            .then_some(())
    })
    .await;
    assert_eq!(alice.handle.outbox_len().await.unwrap(), 0);
    // Holders let go of what Jack acknowledged.
    for p in &plain {
        eventually("holders let go of Jack's items", || async {
            (p.handle.held_for(jack).await.unwrap() == 0).then_some(())
        })
        .await;
    }
    for n in plain.iter().chain([&alice, &jack_node]) {
        n.handle.shutdown().await.unwrap();
    }
}

/// A recipient whose mailbox key has `sender` farther from it than at least
/// three of `holders`, so that the sender (which holders may pick as a
/// co-holder) is not among its mailbox's R = 3 closest peers.
fn recipient_away_from(sender: PeerId, holders: &[PeerId]) -> Identity {
    loop {
        let id = Identity::generate().unwrap();
        let mut all = holders.to_vec();
        all.push(sender);
        if !closest(&id.peer_id(), &all, 3).contains(&sender) {
            return id;
        }
    }
}

/// What each daemon holds for others, as `roost status` shows it.
async fn held_by(daemons: &[Daemon]) -> Vec<u64> {
    let mut held = Vec::new();
    for d in daemons {
        held.push(d.held().await);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jack_gets_everything_after_two_of_three_holders_are_killed() {
    init_tracing();
    // Every peer but Alice and Jack is a real `roost daemon` process, so a
    // holder dies by SIGKILL, not by a clean shutdown.
    let seed = Daemon::start(None).await;
    let boot = seed.addr().await;
    let mut daemons = vec![seed];
    for _ in 0..5 {
        daemons.push(Daemon::start(Some(&boot)).await);
    }
    let alice = TestNode::start(std::slice::from_ref(&boot)).await;
    let daemon_ids: Vec<PeerId> = daemons.iter().map(|d| d.id).collect();
    let jack_id = recipient_away_from(alice.handle.peer_id(), &daemon_ids);
    let jack = jack_id.peer_id();
    let ids = send_50(&alice.handle, jack, 4).await;
    // The sender is offline before Jack starts: only a mailbox can deliver.
    alice.handle.shutdown().await.unwrap();

    let holders: Vec<usize> = eventually("three daemons hold all 50 items", || async {
        let full: Vec<usize> = (0..)
            .zip(held_by(&daemons).await)
            .filter_map(|(i, held)| (held == 50).then_some(i))
            .collect();
        (full.len() >= 3).then_some(full)
    })
    .await;
    // Kill (SIGKILL) every daemon that holds anything, but one holder.
    let survivor = holders[holders.len() - 1];
    let held = held_by(&daemons).await;
    println!("held by each daemon before the kills: {held:?}; survivor: {survivor}");
    let mut killed = 0;
    for (i, d) in daemons.iter_mut().enumerate() {
        if i != survivor && held[i] > 0 {
            d.kill();
            killed += 1;
        }
    }
    assert!(killed >= 2, "at least two holders were killed: {killed}");
    let live: Vec<usize> = (0..daemons.len())
        .filter(|&i| i == survivor || held[i] == 0)
        .collect();
    for &i in &live {
        let want = if i == survivor { 50 } else { 0 };
        assert_eq!(
            daemons[i].held().await,
            want,
            "after the kills the survivor holds the only live copies"
        );
    }
    // Jack joins through a live daemon that holds nothing.
    let via = live
        .iter()
        .find(|&&i| i != survivor)
        .expect("a live non-holder");
    // Jack deposits nothing (no replicas for his own outgoing items): his
    // delivery receipts to the offline Alice would otherwise land in her
    // mailbox, possibly on the survivor, whose `held` counts every mailbox.
    let dir = dir_for(&jack_id);
    let jack = start_with(&dir, &[daemons[*via].addr().await], |c| {
        c.mailbox.replicas = 0
    })
    .await;
    let jack_node = TestNode { dir, handle: jack };
    has_all(&jack_node.handle, alice.handle.peer_id(), &ids).await;
    eventually("the survivor lets go of what Jack acknowledged", || async {
        (daemons[survivor].held().await == 0).then_some(())
    })
    .await;
    jack_node.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_hand_the_mailbox_on_to_closer_newcomers_before_leaving() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let mut originals = vec![];
    for _ in 0..3 {
        originals.push(TestNode::start(std::slice::from_ref(&boot)).await);
    }
    let alice = TestNode::start(std::slice::from_ref(&boot)).await;
    let jack_id = Identity::generate().unwrap();
    let jack = jack_id.peer_id();
    let ids = send_50(&alice.handle, jack, 3).await;

    // Three newcomers, each closer to Jack's mailbox key than every
    // existing node.
    let key = KBucketKey::new(mailbox_key(&jack));
    let mut existing: Vec<PeerId> = originals.iter().map(|n| n.handle.peer_id()).collect();
    existing.extend([seed.handle.peer_id(), alice.handle.peer_id()]);
    let bar = existing
        .iter()
        .map(|p| KBucketKey::from(*p).distance(&key))
        .min()
        .unwrap();
    let mut newcomers = Vec::new();
    while newcomers.len() < 3 {
        let id = Identity::generate().unwrap();
        if KBucketKey::from(id.peer_id()).distance(&key) < bar {
            newcomers.push(id);
        }
    }
    let mut fresh = Vec::new();
    for id in &newcomers {
        fresh.push(TestNode::start_as(id, std::slice::from_ref(&boot)).await);
    }
    for n in &fresh {
        eventually("a newcomer holds Jack's 50 items", || async {
            (n.handle.held_len().await.unwrap() >= 50).then_some(())
        })
        .await;
    }
    // Every original holder (and the seed, and Alice) leaves.
    for n in originals.iter().chain([&seed, &alice]) {
        n.handle.shutdown().await.unwrap();
    }
    let via = fresh[0].addr().await;
    let jack_node = TestNode::start_as(&jack_id, &[via]).await;
    has_all(&jack_node.handle, alice.handle.peer_id(), &ids).await;
    for n in fresh.iter().chain([&jack_node]) {
        n.handle.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_jack_may_fetch_or_ack_quotas_hold_and_expired_items_go() {
    init_tracing();
    // One holder with tight quotas and a short lifetime for items.
    let holder_id = Identity::generate().unwrap();
    let holder_dir = dir_for(&holder_id);
    let holder = start_with(&holder_dir, &[], |c| {
        c.mailbox.quotas.depositor_items = 3;
        c.mailbox.ttl = std::time::Duration::from_secs(3);
    })
    .await;
    let boot = holder.dial_addrs().await.unwrap().remove(0);
    let alice = TestNode::start(std::slice::from_ref(&boot)).await;
    let mallory = TestNode::start(std::slice::from_ref(&boot)).await;
    let jack = Identity::generate().unwrap().peer_id();
    eventually("Alice knows the holder", || async {
        alice.handle.find(holder_id.peer_id()).await.unwrap()
    })
    .await;

    // Mallory is also a possible holder; make Alice's only choice matter by
    // counting what the honest holder has.
    for i in 0..5 {
        alice
            .handle
            .send(jack, Content::text(format!("m{i}")))
            .await
            .unwrap();
    }
    eventually(
        "the holder keeps 3 (Alice's quota) and refuses more",
        || async { (holder.held_len().await.unwrap() == 3).then_some(()) },
    )
    .await;
    let conv = alice.handle.conversation(jack, 10).await.unwrap();
    assert_eq!(
        alice.handle.outbox_len().await.unwrap(),
        5,
        "nothing is dropped by the sender"
    );
    assert!(conv.iter().all(|m| m.state != MessageState::Delivered));

    // Mallory asks for Jack's items and tries to delete them.
    let net = mallory.handle.net();
    let fetch = MailboxRequest::Fetch {
        recipient: jack.to_bytes(),
        cursor: 0,
    };
    assert_eq!(
        net.mailbox(holder.peer_id(), fetch).await.unwrap(),
        MailboxResponse::Denied
    );
    let ack = MailboxRequest::Ack {
        recipient: jack.to_bytes(),
        ids: conv.iter().map(|m| m.id).collect(),
    };
    assert_eq!(
        net.mailbox(holder.peer_id(), ack).await.unwrap(),
        MailboxResponse::Denied
    );
    assert_eq!(holder.held_len().await.unwrap(), 3, "nothing removed");

    // Items expire and are purged (lifetime 3 s here, 7 days by default).
    eventually("expired items are purged", || async {
        (holder.held_len().await.unwrap() == 0).then_some(())
    })
    .await;
    for n in [&alice, &mallory] {
        n.handle.shutdown().await.unwrap();
    }
    holder.shutdown().await.unwrap();
}
