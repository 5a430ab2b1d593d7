//! [mbox] What a fetch of our own mailbox refuses, served by holders that
//! misbehave: junk from the far future ahead of real mail, a buddy request
//! from the future, an old buddy request replayed on every fetch.

mod common;

use std::sync::{Arc, Mutex};

use common::fake_holder::{FakeHolder, SLOW, Seen, honest_fake, plain_answer, start_fetching};
use common::{TestNode, dir_for, eventually, eventually_within, init_tracing};
use libp2p::PeerId;
use roost::crypto::Sealer;
use roost::node::messenger::fetch::FETCH_ITEMS;
use roost::node::presence_service::BuddyChange;
use roost::wire::mailbox::MailboxResponse;
use roost::wire::message::{Body, Envelope, Inner, MessageId, seal};
use roost::{Identity, NodeHandle};

/// Ten years ahead of our clock.
const FAR_FUTURE_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// A stranger deposited more far-future messages for Jack at his holder
/// than one fetch takes, ahead of Alice's real one. Refused for good as
/// they come (not "for now", which would leave them at the front of every
/// fetch), they are acked and let go, and Alice's message gets through;
/// none of the junk is in Jack's history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_mail_at_a_holder_does_not_keep_real_mail_out() {
    init_tracing();
    let ids = [(); 3].map(|_| Identity::generate().unwrap());
    let [alice_id, mallory_id, jack_id] = &ids;
    let (alice, mallory, jack) = (alice_id.peer_id(), mallory_id.peer_id(), jack_id.peer_id());
    let now = roost::clock::unix_ms();
    let junk_sealer = Sealer::new(mallory_id);
    let mut envs: Vec<Envelope> = (0..FETCH_ITEMS + 10)
        .map(|i| {
            let inner = Inner::text(&mallory, now + FAR_FUTURE_MS + i as u64, "pinned");
            seal(&junk_sealer, MessageId::random(), &jack, &inner).unwrap()
        })
        .collect();
    let real = seal(
        &Sealer::new(alice_id),
        MessageId::random(),
        &jack,
        &Inner::text(&alice, now, "real mail"),
    )
    .unwrap();
    let real_id = real.id;
    envs.push(real);
    let (holder, held) = honest_fake(envs).await;
    let jack_dir = dir_for(jack_id);
    let jack_node = start_fetching(&jack_dir, std::slice::from_ref(&holder.addr)).await;
    eventually_within(SLOW, "Alice's message gets through", || async {
        let conv = jack_node.conversation(alice, 10).await.unwrap();
        conv.iter().any(|m| m.id == real_id).then_some(())
    })
    .await;
    eventually("the holder let go of everything", || async {
        held.lock().unwrap().is_empty().then_some(())
    })
    .await;
    assert!(
        jack_node
            .conversation(mallory, 10)
            .await
            .unwrap()
            .is_empty(),
        "no message from the future was stored"
    );
    jack_node.shutdown().await.unwrap();
}

/// A buddy request sealed far ahead of Jack's clock (a peer whose clock
/// was wrong for a while, or a replay of such a request) is refused and
/// not remembered: it is not listed, and Bob's next request, sealed at the
/// right time, is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buddy_request_from_the_future_is_refused_and_locks_nobody_out() {
    init_tracing();
    let (bob_id, jack_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (bob, jack) = (bob_id.peer_id(), jack_id.peer_id());
    let ahead = {
        let inner = Inner {
            from: bob.to_bytes(),
            sent_at: roost::clock::unix_ms() + FAR_FUTURE_MS,
            body: Body::BuddyRequest,
        };
        seal(&Sealer::new(&bob_id), MessageId::random(), &jack, &inner).unwrap()
    };
    let ahead_id = ahead.id;
    let served = Arc::new(Mutex::new(vec![ahead]));
    let serving = served.clone();
    let holder = FakeHolder::start(move |r| {
        plain_answer(r).unwrap_or(MailboxResponse::Page {
            items: serving.lock().unwrap().clone(),
            next: None,
        })
    })
    .await;
    let jack_dir = dir_for(&jack_id);
    let jack_node = start_fetching(&jack_dir, std::slice::from_ref(&holder.addr)).await;
    eventually("Jack fetched and acked the early request", || async {
        holder
            .log_of(jack)
            .iter()
            .any(|s| matches!(s, Seen::Ack(ids) if ids.contains(&ahead_id)))
            .then_some(())
    })
    .await;
    assert!(
        !has_request(&jack_node, bob).await,
        "a buddy request from the future is not taken"
    );

    // Sentinel: Bob's request sealed now is taken.
    *served.lock().unwrap() = vec![buddy_request(&bob_id, &jack)];
    eventually("Bob's request sealed now is listed", || async {
        has_request(&jack_node, bob).await.then_some(())
    })
    .await;
    jack_node.shutdown().await.unwrap();
}

/// Bob's buddy request as his node seals it.
fn buddy_request(bob: &Identity, jack: &PeerId) -> Envelope {
    let inner = Inner {
        from: bob.peer_id().to_bytes(),
        sent_at: roost::clock::unix_ms(),
        body: Body::BuddyRequest,
    };
    seal(&Sealer::new(bob), MessageId::random(), jack, &inner).unwrap()
}

/// Whether Jack lists a request from `peer`.
async fn has_request(jack: &NodeHandle, peer: PeerId) -> bool {
    let requests = jack.buddy_requests().await.unwrap();
    requests.iter().any(|r| r.peer == peer.to_bytes())
}

/// A holder keeps Bob's old buddy request and serves it on every fetch.
/// Jack took it, accepted Bob and removed him again: the replayed copy does
/// not bring the request back, while a new one from Bob does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_buddy_request_does_not_come_back_after_removal() {
    init_tracing();
    let (bob_id, jack_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (bob, jack) = (bob_id.peer_id(), jack_id.peer_id());
    let old = buddy_request(&bob_id, &jack);
    let old_id = old.id;
    let holder = FakeHolder::start(move |r| {
        plain_answer(r).unwrap_or(MailboxResponse::Page {
            items: vec![old.clone()],
            next: None,
        })
    })
    .await;
    let jack_dir = dir_for(&jack_id);
    let jack_node = start_fetching(&jack_dir, std::slice::from_ref(&holder.addr)).await;
    eventually("Bob's request arrives through the holder", || async {
        has_request(&jack_node, bob).await.then_some(())
    })
    .await;
    jack_node.add_buddy(bob, "bob".into()).await.unwrap();
    assert!(
        !has_request(&jack_node, bob).await,
        "accepting takes it off"
    );
    jack_node
        .change_buddy(bob, BuddyChange::Remove)
        .await
        .unwrap();

    // A fetch that starts after the removal gets the old request and acks it.
    let mark = holder.log_of(jack).len();
    eventually(
        "Jack fetches the old request again after the removal",
        || async {
            let log = holder.log_of(jack);
            let fetched = log[mark..]
                .iter()
                .position(|s| matches!(s, Seen::Fetch(_)))?;
            log[mark + fetched..]
                .iter()
                .any(|s| matches!(s, Seen::Ack(ids) if ids.contains(&old_id)))
                .then_some(())
        },
    )
    .await;
    assert!(
        !has_request(&jack_node, bob).await,
        "the replayed request does not come back"
    );

    // Sentinel: a request Bob really sends now is taken.
    let bob_node =
        TestNode::start_as(&bob_id, &[jack_node.dial_addrs().await.unwrap().remove(0)]).await;
    bob_node
        .handle
        .add_buddy(jack, "jack".into())
        .await
        .unwrap();
    eventually("Bob's new request arrives", || async {
        has_request(&jack_node, bob).await.then_some(())
    })
    .await;
    bob_node.handle.shutdown().await.unwrap();
    jack_node.shutdown().await.unwrap();
}
