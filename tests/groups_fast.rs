//! [rooms] The large-group fast path with real nodes on 127.0.0.1: online
//! members get a message over gossip alone, the sender writing no 1:1
//! copy; a member offline during the sends catches them up from a member
//! once it is back, once each and in order, with nothing in any mailbox
//! and every sender gone; gossip not signed by the sender it names, or
//! from a non-member, is dropped; after a removal the members follow the
//! new epoch's topic from the change itself and get the next message over
//! gossip.

mod common;

use std::time::Duration;

use common::groups::{at_epoch, has, network, one_message_each, texts};
use common::{TestNode, eventually, init_tracing, start_with};
use libp2p::{Multiaddr, PeerId};
use roost::node::groups::fast::FastConfig;
use roost::wire::group::{GroupBody, sign_message};
use roost::{Identity, NodeHandle};

/// Every group of three or more takes the fast path; members catch up
/// when they start following an epoch, then every `sync_every`.
fn fast(sync_every: Duration) -> FastConfig {
    FastConfig {
        threshold: 3,
        sync_every,
    }
}

/// No catch-up within a test but the one when an epoch is first followed.
const HOUR: Duration = Duration::from_secs(3600);

/// A node with the fast path set to catch up every `sync_every`.
async fn member(boot: &Multiaddr, sync_every: Duration) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let handle = start_with(&dir, std::slice::from_ref(boot), |c| {
        c.group_fast = fast(sync_every)
    })
    .await;
    TestNode { dir, handle }
}

/// A group made by `creator` with `members`, every member in, each
/// seeing all the others on the group's topic and done with its first
/// catch-up.
async fn group_of(creator: &NodeHandle, members: &[&NodeHandle]) -> String {
    let (gid, _) = creator.group_create("large").await.unwrap();
    let gid = gid.to_string();
    let ids: Vec<PeerId> = members.iter().map(|m| m.peer_id()).collect();
    creator.group_invite(&gid, ids).await.unwrap();
    for m in members {
        at_epoch(m, &gid, 1, "the invitation arrives").await;
        m.group_join(&gid).await.unwrap();
    }
    // Every member sees every other on the topic: a message published
    // before the members' dials have joined the mesh into one piece would
    // not reach the other piece by gossip.
    for m in members.iter().chain([&creator]) {
        eventually("members meet on the group's topic", || async {
            (m.group_gossip_peers(&gid).await.unwrap() >= members.len()).then_some(())
        })
        .await;
        eventually("the member's first catch-up", || async {
            (m.group_catch_ups() >= 1).then_some(())
        })
        .await;
    }
    // And every roster message delivered (invitations, joins, the
    // creator's new states): none is left to go to a mailbox.
    let all: Vec<&NodeHandle> = members.iter().copied().chain([creator]).collect();
    delivered(&all).await;
    gid
}

/// Waits until `nodes`' outboxes, and what their messaging services still
/// try to deliver, are empty three passes running. Catch-up questions
/// and answers are pending there (no outbox row) until delivered or
/// dropped (they go over a direct link or not at all, never to a
/// mailbox), and a question is acknowledged only once its answer was
/// read: after this, no answer can carry a message sent later. A state
/// is written to the creator's outbox before the join that causes it is
/// acknowledged, so one pass over the outboxes may miss one written
/// behind it: hence three.
async fn delivered(nodes: &[&NodeHandle]) {
    let empty_passes = std::cell::Cell::new(0);
    eventually("the questions and answers are delivered", || async {
        let mut queued = 0;
        for m in nodes {
            queued += m.outbox_len().await.unwrap() + m.pending_messages().await.unwrap();
        }
        empty_passes.set(if queued == 0 {
            empty_passes.get() + 1
        } else {
            0
        });
        (empty_passes.get() >= 3).then_some(())
    })
    .await;
}

/// A seed node (kept by the caller for the test's length) and `n`
/// members, catching up once an hour, in one group the first made.
async fn seeded_group(n: usize) -> (TestNode, Vec<TestNode>, String) {
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let mut m = Vec::new();
    for _ in 0..n {
        m.push(member(&boot, HOUR).await);
    }
    let others: Vec<&NodeHandle> = m[1..].iter().map(|n| &n.handle).collect();
    let gid = group_of(&m[0].handle, &others).await;
    (seed, m, gid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_members_get_it_by_gossip_alone_and_the_sender_writes_no_copy() {
    init_tracing();
    let (_seed, m, gid) = seeded_group(5).await;
    // Every node has had its one catch-up of the hour: from now on no
    // question is asked, so nothing is answered, and only gossip carries.
    let asks: Vec<usize> = m.iter().map(|n| n.handle.group_catch_ups()).collect();
    let sender = &m[1].handle;
    sender.group_send(&gid, "over gossip").await.unwrap();
    assert_eq!(
        sender.outbox_len().await.unwrap(),
        0,
        "the sender wrote 1:1 copies"
    );
    for (i, n) in m.iter().enumerate() {
        if i != 1 {
            has(&n.handle, &gid, "over gossip").await;
        }
    }
    let after: Vec<usize> = m.iter().map(|n| n.handle.group_catch_ups()).collect();
    assert_eq!(
        asks, after,
        "a catch-up was asked, so gossip alone is not proven"
    );
    for n in &m {
        assert_eq!(n.handle.group_relayed(), 0, "a message came by catch-up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_catches_all_three_up_from_a_member_once_and_in_order() {
    init_tracing();
    let (plain, boot) = network(4).await;
    let mut m = Vec::new();
    for _ in 0..5 {
        m.push(member(&boot, HOUR).await);
    }
    let others: Vec<&NodeHandle> = m[1..].iter().map(|n| &n.handle).collect();
    let gid = group_of(&m[0].handle, &others).await;
    // Eve (m[4]) goes offline before anything is sent.
    let eve = m[4].handle.peer_id();
    m[4].handle.shutdown().await.unwrap();
    one_message_each(&m[..3], &gid).await;
    // Dave (m[3]), who sends nothing, has all three.
    for i in 0..3 {
        has(&m[3].handle, &gid, &format!("message {i}")).await;
    }
    // The senders leave, and nothing waits for Eve in any mailbox: only
    // Dave can bring the three now.
    for sender in &m[..3] {
        sender.handle.shutdown().await.unwrap();
    }
    let who = |from: &[u8]| m.iter().position(|n| n.handle.peer_id().to_bytes() == from);
    for n in plain.iter().chain([&m[3]]) {
        let held = n.handle.held_envelopes(eve).await.unwrap();
        let from: Vec<_> = held
            .iter()
            .map(|e| (who(&e.from), e.sealed.len()))
            .collect();
        assert!(
            held.is_empty(),
            "a mailbox holds something for Eve (member, bytes): {from:?}"
        );
    }
    let dir = std::mem::replace(&mut m[4].dir, tempfile::tempdir().unwrap());
    let back = start_with(&dir, &[plain[2].addr().await], |c| {
        c.group_fast = fast(HOUR)
    })
    .await;
    eventually("Eve has the three", || async {
        (texts(&back, &gid).await.len() >= 3).then_some(())
    })
    .await;
    // They came in catch-up answers, not by gossip's own recent history.
    assert_eq!(back.group_relayed(), 3, "not all three came by catch-up");
    // A sentinel from Dave: once it is in, whatever else was coming has come.
    m[3].handle.group_send(&gid, "sentinel").await.unwrap();
    has(&back, &gid, "sentinel").await;
    // The three senders sent one after the other without waiting, so
    // gossip may have brought them to Dave in any order: his log's order
    // is the one Eve's catch-up follows.
    let daves = texts(&m[3].handle, &gid).await;
    let mut sorted = daves.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["message 0", "message 1", "message 2", "sentinel"],
        "Dave's log"
    );
    assert_eq!(
        texts(&back, &gid).await,
        daves,
        "once each, in the order of the log they came from"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_removal_the_members_follow_the_new_epoch_and_get_its_message_by_gossip() {
    init_tracing();
    let (_seed, m, gid) = seeded_group(4).await;
    let groups = m[0].handle.group_list().await.unwrap();
    let epoch = groups
        .iter()
        .find(|g| g.id.to_string() == gid)
        .unwrap()
        .epoch;
    let asked: Vec<usize> = m[..3].iter().map(|n| n.handle.group_catch_ups()).collect();
    let dave = m[3].handle.peer_id();
    m[0].handle.group_remove(&gid, dave).await.unwrap();
    // The change is the only thing that moves the members to the new
    // epoch's topic: the fast path's upkeep does not read the groups
    // again on its own, and no catch-up is due within the hour.
    for (n, asked) in m[..3].iter().zip(asked) {
        at_epoch(&n.handle, &gid, epoch + 1, "the new state arrives").await;
        eventually("members meet on the new epoch's topic", || async {
            (n.handle.group_gossip_peers(&gid).await.unwrap() >= 2).then_some(())
        })
        .await;
        // Its first catch-up of the new epoch, before the message: what
        // comes after can only come by gossip or a later catch-up.
        eventually("the member's catch-up of the new epoch", || async {
            (n.handle.group_catch_ups() > asked).then_some(())
        })
        .await;
    }
    // Every catch-up question delivered or dropped before the message
    // exists.
    let all: Vec<&NodeHandle> = m.iter().map(|n| &n.handle).collect();
    delivered(&all).await;
    let relayed: Vec<usize> = m[..3].iter().map(|n| n.handle.group_relayed()).collect();
    m[1].handle
        .group_send(&gid, "in the new epoch")
        .await
        .unwrap();
    for i in [0, 2] {
        has(&m[i].handle, &gid, "in the new epoch").await;
    }
    let after: Vec<usize> = m[..3].iter().map(|n| n.handle.group_relayed()).collect();
    assert_eq!(relayed, after, "a message came by catch-up, not gossip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_with_a_forged_sender_or_from_a_non_member_is_dropped() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let alice = member(&boot, HOUR).await;
    let bob = member(&boot, HOUR).await;
    let mallory = member(&boot, HOUR).await;
    let gid = group_of(&alice.handle, &[&bob.handle, &mallory.handle]).await;
    let topic = mallory.handle.group_topic(&gid).await.unwrap();

    // Nora, no member, learnt the topic (and with it the epoch's secret).
    let nora_id = Identity::generate().unwrap();
    let nora = TestNode::start_as(&nora_id, &[bob.addr().await]).await;
    eventually("Nora sees Bob on the topic", || async {
        (nora.handle.gossip_topic_peers(topic.clone()).await.unwrap() >= 1).then_some(())
    })
    .await;
    // A message naming Alice as its sender, sealed under Alice's chain,
    // signed by Nora: gossip carries no author but that signature, and
    // it is not the named sender's.
    let as_alice = bob
        .handle
        .group_seal_as(&gid, alice.handle.peer_id(), "forged as Alice")
        .await
        .unwrap();
    let forged = sign_message(&nora_id, &as_alice).unwrap();
    let bytes = roost::wire::encode(&GroupBody::Message(forged)).unwrap();
    assert!(
        nora.handle
            .gossip_publish(topic.clone(), bytes)
            .await
            .unwrap(),
        "the forged publication went out"
    );
    // Her own message, sealed under her own chain of the epoch's secret
    // as a member's would be: it decrypts, and only the roster check can
    // drop it.
    let body = bob
        .handle
        .group_seal_as(&gid, nora_id.peer_id(), "from Nora")
        .await
        .unwrap();
    let signed = sign_message(&nora_id, &body).unwrap();
    let bytes = roost::wire::encode(&GroupBody::Message(signed)).unwrap();
    assert!(
        nora.handle.gossip_publish(topic, bytes).await.unwrap(),
        "Nora's publication went out"
    );

    // A sentinel from Alice, sent after both.
    alice.handle.group_send(&gid, "sentinel").await.unwrap();
    for n in [&bob.handle, &mallory.handle] {
        has(n, &gid, "sentinel").await;
    }
    let nora_b = nora_id.peer_id().to_bytes();
    for n in [&bob.handle, &mallory.handle] {
        let log = n.group_log(&gid, 1000).await.unwrap();
        assert!(
            log.iter()
                .all(|l| l.text != "forged as Alice" && l.text != "from Nora" && l.from != nora_b),
            "a dropped message is in a log: {:?}",
            log.iter().map(|l| &l.text).collect::<Vec<_>>()
        );
    }
}
