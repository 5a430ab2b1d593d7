//! [rooms] Private groups end to end, with real nodes on 127.0.0.1: a
//! member offline during three messages gets them from its mailboxes,
//! once each and in order; a removed member cannot read what follows its
//! removal; mailbox holders and non-members learn nothing of the group;
//! a member cannot speak as another.

mod common;

use common::groups::{accept, at_epoch, has, mailboxes_hold, network, one_message_each, texts};
use common::{TestNode, eventually, init_tracing, new_dir};
use libp2p::PeerId;
use roost::NodeHandle;
use roost::node::groups::GroupError;

/// A group of `members.len() + 1` made by `creator`, every member in.
async fn group_of(creator: &NodeHandle, name: &str, members: &[&NodeHandle]) -> String {
    let (gid, _) = creator.group_create(name).await.unwrap();
    let gid = gid.to_string();
    let ids: Vec<PeerId> = members.iter().map(|m| m.peer_id()).collect();
    creator.group_invite(&gid, ids).await.unwrap();
    for m in members {
        accept(m, &gid).await;
        at_epoch(m, &gid, 1, "the new state arrives").await;
    }
    gid
}

/// Alice, Bob and Carol (joined through Alice) in Alice's group `three`,
/// each of them in: the nodes and the group's id.
async fn three() -> (TestNode, TestNode, TestNode, String) {
    let alice = TestNode::start(&[]).await;
    let boot = alice.addr().await;
    let bob = TestNode::start(std::slice::from_ref(&boot)).await;
    let carol = TestNode::start(std::slice::from_ref(&boot)).await;
    let gid = group_of(&alice.handle, "three", &[&bob.handle, &carol.handle]).await;
    (alice, bob, carol, gid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_gets_all_three_from_its_mailbox_once_and_in_order() {
    init_tracing();
    let (plain, boot) = network(5).await;
    let b = std::slice::from_ref(&boot);
    let mut m = Vec::new();
    for i in 0..5 {
        // The three senders (m[0..3]) are DHT clients, so none of them can
        // be among the holders of Eve's mailbox: they all leave before she
        // is back, and would take their copies with them.
        m.push(if i < 3 {
            TestNode::start_client(new_dir(), b).await
        } else {
            TestNode::start(b).await
        });
    }
    let others: Vec<&NodeHandle> = m[1..].iter().map(|n| &n.handle).collect();
    let gid = group_of(&m[0].handle, "five", &others).await;
    // Eve (m[4]) goes offline before anything is sent.
    let eve = m[4].handle.peer_id();
    m[4].handle.shutdown().await.unwrap();
    for p in &m[..4] {
        eventually("senders know the network", || async {
            (p.handle.connected_peers().await.unwrap().len() >= 3).then_some(())
        })
        .await;
    }
    // Three senders, one message each, in turn.
    one_message_each(&m[..3], &gid).await;
    // The holders are among the nodes that stay up: the plain ones and
    // Dave (m[3]), who sends nothing.
    let staying: Vec<&TestNode> = plain.iter().chain([&m[3]]).collect();
    mailboxes_hold(&staying, eve, 3, "all three are in Eve's mailboxes").await;
    // The senders leave: only the mailboxes can bring them now.
    for sender in &m[..3] {
        sender.handle.shutdown().await.unwrap();
    }
    m[4].restart(std::slice::from_ref(&plain[2].addr().await))
        .await;
    let want = ["message 0", "message 1", "message 2"];
    eventually("Eve has the three", || async {
        (texts(&m[4].handle, &gid).await.len() >= 3).then_some(())
    })
    .await;
    // A sentinel from Dave, sent now and delivered directly: once it is
    // in, anything else that was coming has come.
    m[3].handle.group_send(&gid, "sentinel").await.unwrap();
    has(&m[4].handle, &gid, "sentinel").await;
    let got = texts(&m[4].handle, &gid).await;
    assert_eq!(
        got,
        [&want[..], &["sentinel"]].concat(),
        "once each, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_open_what_is_sent_after_its_removal() {
    init_tracing();
    let (alice, bob, carol, gid) = three().await;
    alice.handle.group_send(&gid, "before").await.unwrap();
    has(&bob.handle, &gid, "before").await;
    has(&carol.handle, &gid, "before").await;

    alice
        .handle
        .group_remove(&gid, carol.handle.peer_id())
        .await
        .unwrap();
    at_epoch(&bob.handle, &gid, 2, "the new state arrives").await;
    eventually("Carol learns she was removed", || async {
        let log = carol.handle.group_log(&gid, 100).await.unwrap();
        log.iter()
            .any(|l| l.system && l.text.starts_with("removed"))
            .then_some(())
    })
    .await;
    alice.handle.group_send(&gid, "after").await.unwrap();
    has(&bob.handle, &gid, "after").await;

    // The bytes Bob received, as they travelled, handed to Carol's keys.
    let wire = |text: &'static str| {
        let bob = bob.handle.clone();
        let gid = gid.clone();
        async move {
            bob.group_log(&gid, 100)
                .await
                .unwrap()
                .into_iter()
                .find(|l| l.text == text)
                .and_then(|l| l.wire)
                .expect("Bob's copy")
        }
    };
    let a = alice.handle.peer_id();
    assert_eq!(
        carol
            .handle
            .group_try_open(a, wire("before").await)
            .await
            .unwrap(),
        Ok("before".to_string()),
        "her keys open what was sent while she was a member"
    );
    assert_eq!(
        carol
            .handle
            .group_try_open(a, wire("after").await)
            .await
            .unwrap(),
        Err(GroupError::Key(roost::node::groups::keys::KeyError::Open)),
        "no secret she holds opens what was sent after"
    );
    assert!(
        !texts(&carol.handle, &gid)
            .await
            .contains(&"after".to_string())
    );
    assert!(carol.handle.group_send(&gid, "still here?").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_and_non_members_learn_nothing_but_sizes() {
    init_tracing();
    let (plain, boot) = network(4).await;
    let b = std::slice::from_ref(&boot);
    let alice = TestNode::start(b).await;
    let mut bob = TestNode::start(b).await;
    let name = "Secret Circle";
    let gid = group_of(&alice.handle, name, &[&bob.handle]).await;
    let bob_id = bob.handle.peer_id();
    bob.handle.shutdown().await.unwrap();
    let text = "the treasure is under the oak";
    alice.handle.group_send(&gid, text).await.unwrap();
    let held = eventually("the message is in Bob's mailboxes", || async {
        let mut held = Vec::new();
        for p in &plain {
            held.extend(p.handle.held_envelopes(bob_id).await.unwrap());
        }
        (!held.is_empty()).then_some(held)
    })
    .await;
    let gid_bytes: Vec<u8> = hex::decode(&gid).unwrap();
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for env in &held {
        let bytes = roost::wire::encode(env).unwrap();
        for needle in [
            &gid_bytes[..],
            &gid_bytes[..16],
            gid.as_bytes(),
            text.as_bytes(),
            name.as_bytes(),
        ] {
            assert!(!find(&bytes, needle), "a holder's item shows group data");
        }
        assert_eq!(env.to, bob_id.to_bytes());
        assert_eq!(env.from, alice.handle.peer_id().to_bytes());
    }
    // No node but the members has the group.
    for p in &plain {
        assert!(p.handle.group_list().await.unwrap().is_empty());
    }
    // And Bob, back, reads it.
    bob.restart(std::slice::from_ref(&plain[1].addr().await))
        .await;
    has(&bob.handle, &gid, text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_speak_as_another() {
    init_tracing();
    let (alice, bob, carol, gid) = three().await;
    // Bob writes as Alice (he holds the epoch secret, so he can seal under
    // her chain; only her signature he cannot make).
    bob.handle
        .group_send_forged(&gid, alice.handle.peer_id(), "forged: I am Alice")
        .await
        .unwrap();
    bob.handle.group_send(&gid, "sentinel").await.unwrap();
    has(&carol.handle, &gid, "sentinel").await;
    has(&alice.handle, &gid, "sentinel").await;
    for n in [&alice.handle, &carol.handle] {
        let log = texts(n, &gid).await;
        assert!(
            log.iter().all(|t| !t.contains("forged")),
            "the forged message is in a log: {log:?}"
        );
    }
}
