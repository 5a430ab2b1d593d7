//! [rooms] The large-group fast path with real nodes on 127.0.0.1: online
//! members get a message over gossip and their confirmations take its 1:1
//! copies out of the sender's outbox unsent; a member offline during the
//! sends gets them from its mailboxes once each and in order; gossip
//! whose author is not the sender it names, or from a non-member, is
//! dropped.

mod common;

use std::time::Duration;

use common::groups::{at_epoch, has, mailboxes_hold, network, one_message_each, texts};
use common::{TestNode, eventually, init_tracing, start_with};
use libp2p::{Multiaddr, PeerId};
use roost::node::groups::fast::FastConfig;
use roost::wire::group::{GroupBody, sign_message};
use roost::{Identity, NodeHandle};

/// Every group of three or more takes the fast path; its copies wait
/// `window` for confirmations.
fn fast(window: Duration) -> FastConfig {
    FastConfig {
        threshold: 3,
        window,
        confirm_every: Duration::from_millis(200),
    }
}

/// A node with the fast path set to `window`.
async fn member(boot: &Multiaddr, window: Duration) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let handle = start_with(&dir, std::slice::from_ref(boot), |c| {
        c.group_fast = fast(window)
    })
    .await;
    TestNode { dir, handle }
}

/// A group made by `creator` with `members`, every member in and each
/// seeing all the others on the group's topic.
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
    }
    gid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_members_get_it_by_gossip_and_their_confirmations_cancel_the_copies() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    // An hour's window: no 1:1 copy can go within the test.
    let mut m = Vec::new();
    for _ in 0..5 {
        m.push(member(&boot, Duration::from_secs(3600)).await);
    }
    let others: Vec<&NodeHandle> = m[1..].iter().map(|n| &n.handle).collect();
    let gid = group_of(&m[0].handle, &others).await;
    let sender = &m[1].handle;
    sender.group_send(&gid, "over gossip").await.unwrap();
    for (i, n) in m.iter().enumerate() {
        if i != 1 {
            has(&n.handle, &gid, "over gossip").await;
        }
    }
    // Each member confirmed its copy: none is left in the sender's outbox.
    eventually("the confirmations take every copy out", || async {
        (sender.outbox_len().await.unwrap() == 0).then_some(())
    })
    .await;
    // And none went 1:1: the sender opened no message stream to anyone.
    for (i, n) in m.iter().enumerate() {
        if i != 1 {
            assert_eq!(
                n.handle.message_streams(sender.peer_id()).await.unwrap(),
                0,
                "member {i} got a 1:1 copy"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_gets_all_three_from_its_mailboxes_once_and_in_order() {
    init_tracing();
    let (plain, boot) = network(4).await;
    let window = Duration::from_secs(2);
    let mut m = Vec::new();
    for _ in 0..5 {
        m.push(member(&boot, window).await);
    }
    let others: Vec<&NodeHandle> = m[1..].iter().map(|n| &n.handle).collect();
    let gid = group_of(&m[0].handle, &others).await;
    // Eve (m[4]) goes offline before anything is sent.
    let eve = m[4].handle.peer_id();
    m[4].handle.shutdown().await.unwrap();
    one_message_each(&m[..3], &gid).await;
    // The online members have them (by gossip, or 1:1 once the window
    // ends: this test proves the mailbox path, not the gossip one).
    for (j, n) in m[..4].iter().enumerate() {
        for i in (0..3).filter(|&i| i != j) {
            has(&n.handle, &gid, &format!("message {i}")).await;
        }
    }
    // Eve's copies, unconfirmed, go to her mailboxes once their window ends.
    mailboxes_hold(&plain, eve, 3, "all three are in Eve's mailboxes").await;
    // The senders leave: only the mailboxes can bring them now.
    for sender in &m[..3] {
        sender.handle.shutdown().await.unwrap();
    }
    let dir = std::mem::replace(&mut m[4].dir, tempfile::tempdir().unwrap());
    let back = start_with(&dir, &[plain[2].addr().await], |c| {
        c.group_fast = fast(window)
    })
    .await;
    eventually("Eve has the three", || async {
        (texts(&back, &gid).await.len() >= 3).then_some(())
    })
    .await;
    // A sentinel from Dave: once it is in, whatever else was coming has come.
    m[3].handle.group_send(&gid, "sentinel").await.unwrap();
    has(&back, &gid, "sentinel").await;
    assert_eq!(
        texts(&back, &gid).await,
        ["message 0", "message 1", "message 2", "sentinel"],
        "once each, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_not_from_its_sender_or_from_a_non_member_is_dropped() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let window = Duration::from_secs(3600);
    let alice = member(&boot, window).await;
    let bob = member(&boot, window).await;
    let mallory = member(&boot, window).await;
    let gid = group_of(&alice.handle, &[&bob.handle, &mallory.handle]).await;
    let topic = mallory.handle.group_topic(&gid).await.unwrap();

    // Mallory publishes, as herself, a message Alice signed and never sent.
    let alices = alice
        .handle
        .group_seal_unsent(&gid, "re-published by Mallory")
        .await
        .unwrap();
    assert!(
        mallory
            .handle
            .gossip_publish(topic.clone(), alices)
            .await
            .unwrap(),
        "Mallory's publication went out"
    );

    // Nora, no member, learnt the topic and publishes a message of her own.
    let nora_id = Identity::generate().unwrap();
    let nora = TestNode::start_as(&nora_id, &[bob.addr().await]).await;
    eventually("Nora sees Bob on the topic", || async {
        (nora.handle.gossip_topic_peers(topic.clone()).await.unwrap() >= 1).then_some(())
    })
    .await;
    // Her message is sealed under her own chain of the epoch's secret
    // (which she learnt with the topic), as a member's would be: it
    // decrypts, and only the roster check can drop it.
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
            log.iter().all(|l| l.text != "re-published by Mallory"
                && l.text != "from Nora"
                && l.from != nora_b),
            "a dropped message is in a log: {:?}",
            log.iter().map(|l| &l.text).collect::<Vec<_>>()
        );
    }
}
