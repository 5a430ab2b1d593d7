//! [mbox] The mailbox holder's side against what a depositor can send it:
//! oversized envelopes, one identity filling a mailbox, a burst of
//! requests — and that "stored" is only said once the item is on disk.
//! Real nodes on 127.0.0.1; deposits are raw `/roost/mailbox/1` requests,
//! so the test controls exactly what the holder is given.

mod common;

use common::{DEADLINE, TestNode, arrives, dir_for, eventually, init_tracing, start_with};
use libp2p::PeerId;
use roost::crypto::Sealer;
use roost::store::MessageState;
use roost::wire::mailbox::{DepositReject, MAX_HELD_ENVELOPE, MailboxRequest, MailboxResponse};
use roost::wire::message::{Body, Envelope, Inner, MessageId, seal};
use roost::{Content, Identity, NodeHandle};

/// An envelope for `to` as a sender `from` would deposit it (the holder
/// cannot open it, so its contents do not matter).
fn envelope(to: PeerId, from: PeerId, sealed: usize) -> Envelope {
    Envelope {
        id: MessageId::random(),
        to: to.to_bytes(),
        from: from.to_bytes(),
        nonce: [0; 24],
        sealed: vec![7; sealed],
    }
}

/// A holder started with `adjust`, and a depositor that can reach it.
async fn holder_and_depositor(
    adjust: impl FnOnce(&mut roost::Config),
) -> (tempfile::TempDir, NodeHandle, TestNode) {
    let id = Identity::generate().unwrap();
    let dir = dir_for(&id);
    let holder = start_with(&dir, &[], adjust).await;
    let boot = holder.dial_addrs().await.unwrap().remove(0);
    let depositor = TestNode::start(&[boot]).await;
    eventually("the depositor finds the holder", || async {
        depositor.handle.find(holder.peer_id()).await.unwrap()
    })
    .await;
    (dir, holder, depositor)
}

async fn deposit(from: &NodeHandle, holder: PeerId, envs: Vec<Envelope>) -> MailboxResponse {
    from.net()
        .mailbox(holder, MailboxRequest::Deposit(envs))
        .await
        .expect("the holder answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_envelope_is_refused_and_the_holder_keeps_working() {
    init_tracing();
    let (_dir, holder, mallory) = holder_and_depositor(|_| {}).await;
    let (h, m) = (holder.peer_id(), mallory.handle.peer_id());
    let jack = PeerId::random();

    // Well under the request limit, over what a holder keeps.
    let big = envelope(jack, m, MAX_HELD_ENVELOPE + 1);
    assert_eq!(
        deposit(&mallory.handle, h, vec![big]).await,
        MailboxResponse::Deposited(vec![Some(DepositReject::TooLarge)])
    );
    // Sentinel: an ordinary deposit after it is stored, and only it is held.
    let good = envelope(jack, m, 300);
    assert_eq!(
        deposit(&mallory.handle, h, vec![good]).await,
        MailboxResponse::Deposited(vec![None])
    );
    assert_eq!(
        holder.held_len().await.unwrap(),
        1,
        "the big one is not held"
    );
    assert_eq!(holder.held_for(jack).await.unwrap(), 1);

    mallory.handle.shutdown().await.unwrap();
    holder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_depositor_cannot_fill_a_mailbox_others_still_deposit() {
    init_tracing();
    const CAP: usize = 3;
    let (dir, holder, mallory) = holder_and_depositor(|c| {
        c.mailbox.quotas.pair_items = CAP;
    })
    .await;
    let h = holder.peer_id();
    let boot = holder.dial_addrs().await.unwrap().remove(0);
    let alice = TestNode::start(&[boot]).await;
    eventually("Alice finds the holder", || async {
        alice.handle.find(h).await.unwrap()
    })
    .await;
    let (jack, jill) = (PeerId::random(), PeerId::random());
    let m = mallory.handle.peer_id();

    let flood: Vec<Envelope> = (0..CAP + 2).map(|_| envelope(jack, m, 100)).collect();
    let mut want = vec![None; CAP];
    want.extend([Some(DepositReject::DepositorQuota); 2]);
    assert_eq!(
        deposit(&mallory.handle, h, flood).await,
        MailboxResponse::Deposited(want)
    );
    // Alice still reaches Jack, and Mallory still reaches Jill.
    let a = alice.handle.peer_id();
    assert_eq!(
        deposit(&alice.handle, h, vec![envelope(jack, a, 100)]).await,
        MailboxResponse::Deposited(vec![None])
    );
    assert_eq!(
        deposit(&mallory.handle, h, vec![envelope(jill, m, 100)]).await,
        MailboxResponse::Deposited(vec![None])
    );
    assert_eq!(holder.held_for(jack).await.unwrap(), CAP + 1);
    assert_eq!(holder.held_len().await.unwrap(), CAP + 2);

    // The counts are rebuilt from the store: after a restart (on the same
    // address) Mallory is still at the cap for Jack, Alice is not.
    let listen = holder.listen_addrs().await.unwrap();
    holder.shutdown().await.unwrap();
    let holder = start_with(&dir, &[], |c| {
        c.mailbox.quotas.pair_items = CAP;
        c.listen = listen;
    })
    .await;
    assert_eq!(
        deposit(&mallory.handle, h, vec![envelope(jack, m, 100)]).await,
        MailboxResponse::Deposited(vec![Some(DepositReject::DepositorQuota)])
    );
    assert_eq!(
        deposit(&alice.handle, h, vec![envelope(jack, a, 100)]).await,
        MailboxResponse::Deposited(vec![None])
    );
    assert_eq!(holder.held_len().await.unwrap(), CAP + 3);

    for n in [&alice, &mallory] {
        n.handle.shutdown().await.unwrap();
    }
    holder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_is_answered_only_after_an_fdatasync() {
    init_tracing();
    let (_dir, holder, alice) = holder_and_depositor(|_| {}).await;
    let (h, a) = (holder.peer_id(), alice.handle.peer_id());
    let jack = PeerId::random();
    // The connection is up and settled before counting.
    deposit(&alice.handle, h, vec![envelope(jack, a, 100)]).await;
    for round in 0..5 {
        let before = holder.sync_count().await.unwrap();
        assert_eq!(
            deposit(&alice.handle, h, vec![envelope(jack, a, 100)]).await,
            MailboxResponse::Deposited(vec![None])
        );
        let after = holder.sync_count().await.unwrap();
        assert!(
            after > before,
            "round {round}: Stored answered with no fdatasync ({before} → {after})"
        );
    }
    assert_eq!(holder.held_len().await.unwrap(), 6);
    alice.handle.shutdown().await.unwrap();
    holder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_mailbox_requests_does_not_stall_sends_and_acks() {
    init_tracing();
    const BURST: usize = 20;
    let (_dir, holder, mallory) = holder_and_depositor(|_| {}).await;
    let h = holder.peer_id();
    let boot = holder.dial_addrs().await.unwrap().remove(0);
    let alice = TestNode::start(&[boot]).await;
    let a = alice.handle.peer_id();
    eventually("the holder finds Alice", || async {
        holder.find(a).await.unwrap()
    })
    .await;

    // The holder's store is stuck: every mailbox request it takes waits.
    let pause = holder.pause_mailbox_holder().await.unwrap();
    let jack = PeerId::random();
    let m = mallory.handle.peer_id();
    let burst: Vec<_> = (0..BURST)
        .map(|_| {
            let net = mallory.handle.net().clone();
            let env = envelope(jack, m, 100);
            tokio::spawn(async move { net.mailbox(h, MailboxRequest::Deposit(vec![env])).await })
        })
        .collect();
    eventually("the whole burst reached the holder", || async {
        (pause.deposits_routed() == BURST as u64).then_some(())
    })
    .await;

    // Meanwhile the holder's node sends a message and processes its ack.
    let id = tokio::time::timeout(DEADLINE, holder.send(a, Content::text("still here")))
        .await
        .expect("the send is answered while mailbox work is stuck")
        .unwrap();
    arrives(&alice.handle, h, id).await;
    eventually("the holder sees its message delivered", || async {
        let conv = holder.conversation(a, 10).await.unwrap();
        conv.iter()
            .any(|msg| msg.id == id && msg.state == MessageState::Delivered)
            .then_some(())
    })
    .await;
    assert_eq!(
        holder.held_len().await.unwrap(),
        0,
        "the burst was still stuck behind the holder's store"
    );

    // Released, the burst is served: it was real.
    drop(pause);
    eventually("the burst is held", || async {
        (holder.held_len().await.unwrap() == BURST).then_some(())
    })
    .await;
    for b in burst {
        let _ = b.await;
    }
    for n in [&alice, &mallory] {
        n.handle.shutdown().await.unwrap();
    }
    holder.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_under_a_real_id_does_not_stand_in_for_the_real_item() {
    init_tracing();
    // The honest holder under test, Mallory, and a co-holder handing on.
    let (_dir, holder, mallory) = holder_and_depositor(|_| {}).await;
    let h = holder.peer_id();
    let boot = holder.dial_addrs().await.unwrap().remove(0);
    let coholder = TestNode::start(std::slice::from_ref(&boot)).await;
    eventually("the co-holder finds the holder", || async {
        coholder.handle.find(h).await.unwrap()
    })
    .await;
    // Alice's real message to Jack (Alice never runs a node here).
    let (alice, jack) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let inner = Inner {
        from: alice.peer_id().to_bytes(),
        sent_at: roost::clock::unix_ms(),
        body: Body::Content {
            content_type: "text/plain".into(),
            subject: None,
            data: b"the real one".to_vec(),
        },
    };
    let real = seal(
        &Sealer::new(&alice),
        MessageId::random(),
        &jack.peer_id(),
        &inner,
    )
    .unwrap();
    let mut junk = real.clone();
    junk.sealed = vec![0xEE; real.sealed.len()];

    // Mallory plants junk under the real id first; the real item handed
    // on after it is stored, not taken as "already held".
    assert_eq!(
        deposit(&mallory.handle, h, vec![junk]).await,
        MailboxResponse::Deposited(vec![None])
    );
    assert_eq!(
        deposit(&coholder.handle, h, vec![real.clone()]).await,
        MailboxResponse::Deposited(vec![None])
    );
    assert_eq!(
        holder.held_for(jack.peer_id()).await.unwrap(),
        2,
        "the real item is held beside the junk"
    );

    // Everyone but the holder is gone before Jack starts: only its
    // mailbox can deliver.
    for n in [&mallory, &coholder] {
        n.handle.shutdown().await.unwrap();
    }
    let jack_node = TestNode::start_as(&jack, &[boot]).await;
    arrives(&jack_node.handle, alice.peer_id(), real.id).await;
    // (Jack's delivery receipt to Alice may be held here now: count Jack's.)
    eventually("Jack's ack clears both", || async {
        (holder.held_for(jack.peer_id()).await.unwrap() == 0).then_some(())
    })
    .await;
    jack_node.handle.shutdown().await.unwrap();
    holder.shutdown().await.unwrap();
}
