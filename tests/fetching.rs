//! [mbox] Fetching our own mailbox within bounds, against holders that
//! misbehave: one that never lets a fetch end, one with more than a fetch
//! takes, a store too slow for the fetch deadline; and a message fetched
//! again after a crash still tells its sender it arrived. (What a fetch
//! refuses: `fetching_refusals.rs`.)

mod common;

use std::collections::HashSet;

use common::fake_holder::{
    FakeHolder, SLOW, Seen, alice_leaves_one_for, fetches, honest_fake, honest_fake_gated,
    plain_answer, start_fetching,
};
use common::{TestNode, arrives, dir_for, eventually, eventually_within, init_tracing, start_in};
use libp2p::PeerId;
use roost::Identity;
use roost::crypto::{NONCE_LEN, Sealer};
use roost::node::messenger::fetch::FETCH_ITEMS;
use roost::store::{Direction, MessageState, Store, StoredMessage};
use roost::wire::mailbox::{MailboxResponse, PAGE_ITEMS};
use roost::wire::message::{Envelope, Inner, MessageId, seal};

/// A holder that answers every page with the same cursor again cannot keep
/// Jack's fetch running: the fetch from it ends after the cursor fails to
/// advance (and the next one starts over), while Jack gets his message
/// from the honest holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_cursor_never_advances_cannot_hold_the_fetch() {
    init_tracing();
    let honest = TestNode::start(&[]).await;
    let jack_id = Identity::generate().unwrap();
    let jack = jack_id.peer_id();
    let (alice, sent) = alice_leaves_one_for(jack, &honest).await;

    // Every page: one junk item for Jack, and "continue at 7".
    let junk = Envelope {
        id: MessageId::random(),
        to: jack.to_bytes(),
        from: PeerId::random().to_bytes(),
        nonce: [0; NONCE_LEN],
        sealed: vec![0; 64],
    };
    let hostile = FakeHolder::start(move |r| {
        plain_answer(r).unwrap_or(MailboxResponse::Page {
            items: vec![junk.clone()],
            next: Some(7),
        })
    })
    .await;
    let jack_dir = dir_for(&jack_id);
    let boot = [honest.addr().await, hostile.addr.clone()];
    let jack_node = start_fetching(&jack_dir, &boot).await;
    arrives(&jack_node, alice.handle.peer_id(), sent.id).await;
    let log = eventually(
        "a second fetch of Jack's reaches the hostile holder",
        || async {
            let log = hostile.log_of(jack);
            (fetches(&log).len() >= 2).then_some(log)
        },
    )
    .await;
    assert_eq!(
        fetches(&log)[0],
        vec![0, 7],
        "the first fetch from it stopped when the cursor did not advance"
    );
    jack_node.shutdown().await.unwrap();
    honest.handle.shutdown().await.unwrap();
}

/// A holder with more for Jack than one fetch takes from it: the fetch stops
/// at the item cap, and because that holder gave new messages the next
/// fetch follows at once rather than at the next poll (5 min), so nothing
/// waits behind the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_beyond_the_fetch_cap_drains_without_waiting_for_the_poll() {
    init_tracing();
    let (alice_id, jack_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (alice, jack) = (alice_id.peer_id(), jack_id.peer_id());
    let total = FETCH_ITEMS + 52;
    let sealer = Sealer::new(&alice_id);
    let envs: Vec<Envelope> = (0..total)
        .map(|i| {
            let inner = Inner::text(&alice, 1_000_000 + i as u64, &format!("m{i}"));
            seal(&sealer, MessageId::random(), &jack, &inner).unwrap()
        })
        .collect();
    let ids: HashSet<MessageId> = envs.iter().map(|e| e.id).collect();
    let (holder, _) = honest_fake(envs).await;
    let jack_dir = dir_for(&jack_id);
    {
        // Alice is Jack's buddy: a stranger's messages are capped far below.
        let store = Store::open(&jack_dir.path().join(roost::node::DB_DIR), 1 << 20).unwrap();
        store.add_buddy(&alice, "alice").unwrap();
    }
    let jack_node = start_in(&jack_dir, std::slice::from_ref(&holder.addr)).await;
    // Storing 2100 items on a loaded machine may take a while: the wait is
    // a deadline, not the measure (the pages of the first fetch are).
    eventually_within(SLOW, "Jack has every message", || async {
        let conv = jack_node.conversation(alice, 10_000).await.unwrap();
        let got: HashSet<MessageId> = conv.iter().map(|m| m.id).collect();
        (conv.len() == total && got == ids).then_some(())
    })
    .await;
    let first = fetches(&holder.log_of(jack)).remove(0);
    assert_eq!(
        first.len(),
        FETCH_ITEMS / PAGE_ITEMS,
        "pages of the first fetch"
    );
    jack_node.shutdown().await.unwrap();
}

/// Jack's store is stalled (a slow disk) while a fetch hands it a page:
/// the fetch still ends at its deadline — storing is inside it — and the
/// next one starts, rather than the first waiting on the store for as long
/// as it takes. Once the store moves again the message is stored and acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_does_not_hold_a_fetch_past_its_deadline() {
    init_tracing();
    let (alice_id, jack_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (alice, jack) = (alice_id.peer_id(), jack_id.peer_id());
    let env = seal(
        &Sealer::new(&alice_id),
        MessageId::random(),
        &jack,
        &Inner::text(&alice, roost::clock::unix_ms(), "slow disk"),
    )
    .unwrap();
    let id = env.id;
    let (open_gate, gate) = std::sync::mpsc::channel();
    let (holder, held) = honest_fake_gated(vec![env], Some(gate)).await;
    let jack_dir = dir_for(&jack_id);
    let jack_node = start_fetching(&jack_dir, std::slice::from_ref(&holder.addr)).await;
    eventually("Jack's first fetch reaches the holder", || async {
        holder.log_of(jack).contains(&Seen::Fetch(0)).then_some(())
    })
    .await;
    // The store stalls before the page is handed over.
    let (started, stalled) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel();
    let stall = tokio::spawn({
        let jack_node = jack_node.clone();
        async move { jack_node.stall_store(started, released).await }
    });
    stalled.await.unwrap();
    open_gate.send(()).unwrap();
    let log = eventually_within(SLOW, "a second fetch starts", || async {
        let log = holder.log_of(jack);
        (log.iter().filter(|s| **s == Seen::Fetch(0)).count() >= 2).then_some(log)
    })
    .await;
    assert!(
        !log.iter().any(|s| matches!(s, Seen::Ack(_))),
        "nothing was stored, so nothing acked: {log:?}"
    );
    release.send(()).unwrap();
    stall.await.unwrap().unwrap();
    arrives(&jack_node, alice, id).await;
    eventually("the holder let go of it", || async {
        held.lock().unwrap().is_empty().then_some(())
    })
    .await;
    jack_node.shutdown().await.unwrap();
}

/// Jack's node stored a fetched message and crashed before its delivery
/// receipt and its ack left: his history has the message, the holder still
/// holds it, and Alice's outbox would deposit it again forever. Fetched
/// again, it is acknowledged to the holder and receipted to Alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_fetched_again_after_a_crash_is_still_receipted() {
    init_tracing();
    let holder = TestNode::start(&[]).await;
    let boot = holder.addr().await;
    let jack_id = Identity::generate().unwrap();
    let jack = jack_id.peer_id();
    let (mut alice, sent) = alice_leaves_one_for(jack, &holder).await;
    let alice_id = alice.handle.peer_id();

    // Jack's store as the crash left it: the message is in his history.
    let jack_dir = dir_for(&jack_id);
    {
        let store = Store::open(&jack_dir.path().join(roost::node::DB_DIR), 1 << 20).unwrap();
        let had = StoredMessage {
            peer: alice_id.to_bytes(),
            direction: Direction::In,
            state: MessageState::Unread,
            request: true,
            ..sent.clone()
        };
        assert_eq!(
            store.insert_incoming(&[had]).unwrap(),
            vec![roost::store::Filed::New]
        );
        store.flush().unwrap();
    }
    let jack_node = start_in(&jack_dir, std::slice::from_ref(&boot)).await;
    eventually("the holder lets go of Jack's copy", || async {
        (holder.handle.held_for(jack).await.unwrap() == 0).then_some(())
    })
    .await;
    eventually("Jack's receipt waits for Alice at the holder", || async {
        (holder.handle.held_for(alice_id).await.unwrap() == 1).then_some(())
    })
    .await;
    let conv = jack_node.conversation(alice_id, 10).await.unwrap();
    assert_eq!(conv.iter().map(|m| m.id).collect::<Vec<_>>(), vec![sent.id]);
    jack_node.shutdown().await.unwrap();

    // Alice comes back while Jack is away: only the receipt can tell her.
    alice.handle = start_in(&alice.dir, std::slice::from_ref(&boot)).await;
    eventually("Alice sees it delivered and her outbox empty", || async {
        let conv = alice.handle.conversation(jack, 10).await.unwrap();
        let delivered = conv
            .iter()
            .any(|m| m.id == sent.id && m.state == MessageState::Delivered);
        (delivered && alice.handle.outbox_len().await.unwrap() == 0).then_some(())
    })
    .await;
    alice.handle.shutdown().await.unwrap();
    holder.handle.shutdown().await.unwrap();
}
