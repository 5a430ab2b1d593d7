//! [mbox] Fetching our own mailbox against holders that misbehave: one that
//! never lets a fetch end, one that replays an old buddy request; junk
//! from the far future ahead of real mail, a buddy request from the
//! future, a store too slow for the fetch deadline; and a message fetched
//! again after a crash still tells its sender it arrived.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    TestNode, arrives, dir_for, eventually, eventually_within, init_tracing, start_in, start_with,
};
use futures::StreamExt;
use libp2p::kad::store::MemoryStore;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, kad, request_response};
use roost::crypto::{NONCE_LEN, Sealer};
use roost::node::messenger::fetch::FETCH_ITEMS;
use roost::node::presence_service::BuddyChange;
use roost::store::{Direction, MessageState, Store, StoredMessage};
use roost::wire::frame::CborCodec;
use roost::wire::mailbox::{self, MailboxRequest, MailboxResponse, PAGE_ITEMS};
use roost::wire::message::{Body, Envelope, Inner, MessageId, seal};
use roost::{Content, Identity, NodeHandle};

/// What a fake holder speaks: our Kademlia (so lookups find it) and the
/// mailbox protocol, answered by the test.
#[derive(NetworkBehaviour)]
struct HolderBehaviour {
    kad: kad::Behaviour<MemoryStore>,
    mailbox: request_response::Behaviour<CborCodec<MailboxRequest, MailboxResponse>>,
}

/// A request a fake holder received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Fetch(u64),
    Ack(Vec<MessageId>),
    Deposit,
}

/// A bare libp2p peer posing as a mailbox holder: every request is logged
/// with who sent it, and answered by `answer`.
struct FakeHolder {
    /// Where to bootstrap from, `/p2p/` included.
    addr: Multiaddr,
    log: Arc<Mutex<Vec<(PeerId, Seen)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHolder {
    async fn start(answer: impl Fn(&MailboxRequest) -> MailboxResponse + Send + 'static) -> Self {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm = common::raw::tcp_swarm(keypair, |key| {
            let me = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                me,
                MemoryStore::new(me),
                kad::Config::new(StreamProtocol::new("/roost/kad/1.0.0")),
            );
            kad.set_mode(Some(kad::Mode::Server));
            let mailbox = request_response::Behaviour::with_codec(
                CborCodec::new(mailbox::MAX_REQUEST, mailbox::MAX_RESPONSE),
                [(
                    mailbox::MAILBOX_PROTOCOL,
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            );
            HolderBehaviour { kad, mailbox }
        });
        assert_eq!(roost::net::KAD_PROTOCOL.as_ref(), "/roost/kad/1.0.0");
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address.with(Protocol::P2p(*swarm.local_peer_id()));
            }
        };
        let log: Arc<Mutex<Vec<(PeerId, Seen)>>> = Default::default();
        let seen = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let SwarmEvent::Behaviour(HolderBehaviourEvent::Mailbox(
                    request_response::Event::Message {
                        peer,
                        message:
                            request_response::Message::Request {
                                request, channel, ..
                            },
                        ..
                    },
                )) = swarm.select_next_some().await
                else {
                    continue;
                };
                let what = match &request {
                    MailboxRequest::Fetch { cursor, .. } => Seen::Fetch(*cursor),
                    MailboxRequest::Ack { ids, .. } => Seen::Ack(ids.clone()),
                    MailboxRequest::Deposit(_) => Seen::Deposit,
                };
                seen.lock().unwrap().push((peer, what));
                let response = answer(&request);
                let _ = swarm
                    .behaviour_mut()
                    .mailbox
                    .send_response(channel, response);
            }
        });
        Self { addr, log, task }
    }

    /// The requests `peer` sent, in order. (Other nodes fetch their own
    /// mailboxes from it too.)
    fn log_of(&self, peer: PeerId) -> Vec<Seen> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

impl Drop for FakeHolder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers acks and deposits as an honest holder would.
fn plain_answer(request: &MailboxRequest) -> Option<MailboxResponse> {
    match request {
        MailboxRequest::Ack { .. } => Some(MailboxResponse::Acked { removed: 0 }),
        MailboxRequest::Deposit(envs) => Some(MailboxResponse::Deposited(vec![None; envs.len()])),
        MailboxRequest::Fetch { .. } => None,
    }
}

/// What an honest holder still holds, in the order it was deposited
/// (each with its sequence number, which is also its cursor).
type Held = Arc<Mutex<Vec<(Envelope, u64)>>>;

/// A fake holder that behaves as an honest one with `envs` for Jack:
/// pages of what it still has from the cursor on, oldest first (cursors
/// are sequence numbers), acked items deleted.
async fn honest_fake(envs: Vec<Envelope>) -> (FakeHolder, Held) {
    honest_fake_gated(envs, None).await
}

/// [`honest_fake`], whose first answer to a fetch waits for `gate`.
async fn honest_fake_gated(
    envs: Vec<Envelope>,
    gate: Option<std::sync::mpsc::Receiver<()>>,
) -> (FakeHolder, Held) {
    let held: Held = Arc::new(Mutex::new(envs.into_iter().zip(0u64..).collect()));
    let kept = held.clone();
    let gate = Mutex::new(gate);
    let holder = FakeHolder::start(move |r| {
        if matches!(r, MailboxRequest::Fetch { .. })
            && let Some(g) = gate.lock().unwrap().take()
        {
            let _ = tokio::task::block_in_place(|| g.recv());
        }
        let mut held = kept.lock().unwrap();
        match r {
            MailboxRequest::Fetch { cursor, .. } => {
                let mut rest = held.iter().filter(|(_, seq)| seq >= cursor);
                let items: Vec<Envelope> = rest
                    .by_ref()
                    .take(PAGE_ITEMS)
                    .map(|(e, _)| e.clone())
                    .collect();
                let next = rest.next().map(|(_, seq)| *seq);
                MailboxResponse::Page { items, next }
            }
            MailboxRequest::Ack { ids, .. } => {
                held.retain(|(e, _)| !ids.contains(&e.id));
                MailboxResponse::Acked { removed: 0 }
            }
            other => plain_answer(other).unwrap(),
        }
    })
    .await;
    (holder, held)
}

/// A generous deadline for waits on a lot of store work.
const SLOW: Duration = Duration::from_secs(120);

/// Alice, online with `holder`, sends Jack (whose node is off) a message
/// and waits until it is `stored` with the holder; then Alice goes offline.
/// Returns her node and the message as her history has it.
async fn alice_leaves_one_for(jack: PeerId, holder: &TestNode) -> (TestNode, StoredMessage) {
    let alice = TestNode::start(&[holder.addr().await]).await;
    let h = holder.handle.peer_id();
    eventually("Alice knows the holder", || async {
        alice.handle.find(h).await.unwrap()
    })
    .await;
    let id = alice
        .handle
        .send(jack, Content::text("left in the mailbox"))
        .await
        .unwrap();
    let sent = eventually("the message is stored with the holder", || async {
        let conv = alice.handle.conversation(jack, 10).await.unwrap();
        conv.into_iter()
            .find(|m| m.id == id && m.state == MessageState::Stored)
    })
    .await;
    alice.handle.shutdown().await.unwrap();
    assert_eq!(holder.handle.held_for(jack).await.unwrap(), 1);
    (alice, sent)
}

/// The fetch cursors in `log`, split into fetches (each starts at 0).
fn fetches(log: &[Seen]) -> Vec<Vec<u64>> {
    let mut out: Vec<Vec<u64>> = Vec::new();
    for s in log {
        match s {
            Seen::Fetch(0) => out.push(vec![0]),
            Seen::Fetch(c) => match out.last_mut() {
                Some(f) => f.push(*c),
                None => out.push(vec![*c]),
            },
            _ => {}
        }
    }
    out
}

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
    let jack_node = start_with(&jack_dir, &boot, |c| {
        c.mailbox.poll = Duration::from_secs(1);
    })
    .await;
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
    let jack_node = start_with(&jack_dir, std::slice::from_ref(&holder.addr), |c| {
        c.mailbox.poll = Duration::from_secs(1);
    })
    .await;
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
    let jack_node = start_with(&jack_dir, std::slice::from_ref(&holder.addr), |c| {
        c.mailbox.poll = Duration::from_secs(1);
    })
    .await;
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
    let jack_node = start_with(&jack_dir, std::slice::from_ref(&holder.addr), |c| {
        c.mailbox.poll = Duration::from_secs(1);
    })
    .await;
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
    let jack_node = start_with(&jack_dir, std::slice::from_ref(&holder.addr), |c| {
        c.mailbox.poll = Duration::from_secs(1);
    })
    .await;
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
