//! A bare libp2p peer posing as a mailbox holder, for the tests of
//! fetching our own mailbox against holders that misbehave; and the
//! scenes those tests share (Alice leaving a message with a real holder,
//! the fetches a holder saw).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::store::MemoryStore;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, kad, request_response};
use roost::store::{MessageState, StoredMessage};
use roost::wire::frame::CborCodec;
use roost::wire::mailbox::{self, MailboxRequest, MailboxResponse, PAGE_ITEMS};
use roost::wire::message::{Envelope, MessageId};
use roost::{Content, NodeHandle};
use tempfile::TempDir;

use super::{TestNode, eventually, start_with};

/// What a fake holder speaks: our Kademlia (so lookups find it) and the
/// mailbox protocol, answered by the test.
#[derive(NetworkBehaviour)]
pub struct HolderBehaviour {
    pub kad: kad::Behaviour<MemoryStore>,
    pub mailbox: request_response::Behaviour<CborCodec<MailboxRequest, MailboxResponse>>,
}

/// A request a fake holder received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Fetch(u64),
    Ack(Vec<MessageId>),
    Deposit,
}

/// A bare libp2p peer posing as a mailbox holder: every request is logged
/// with who sent it, and answered by `answer`.
pub struct FakeHolder {
    /// Where to bootstrap from, `/p2p/` included.
    pub addr: Multiaddr,
    log: Arc<Mutex<Vec<(PeerId, Seen)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHolder {
    pub async fn start(
        answer: impl Fn(&MailboxRequest) -> MailboxResponse + Send + 'static,
    ) -> Self {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm = super::raw::tcp_swarm(keypair, |key| {
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
    pub fn log_of(&self, peer: PeerId) -> Vec<Seen> {
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
pub fn plain_answer(request: &MailboxRequest) -> Option<MailboxResponse> {
    match request {
        MailboxRequest::Ack { .. } => Some(MailboxResponse::Acked { removed: 0 }),
        MailboxRequest::Deposit(envs) => Some(MailboxResponse::Deposited(vec![None; envs.len()])),
        MailboxRequest::Fetch { .. } => None,
    }
}

/// What an honest holder still holds, in the order it was deposited
/// (each with its sequence number, which is also its cursor).
pub type Held = Arc<Mutex<Vec<(Envelope, u64)>>>;

/// A fake holder that behaves as an honest one with `envs` for Jack:
/// pages of what it still has from the cursor on, oldest first (cursors
/// are sequence numbers), acked items deleted.
pub async fn honest_fake(envs: Vec<Envelope>) -> (FakeHolder, Held) {
    honest_fake_gated(envs, None).await
}

/// [`honest_fake`], whose first answer to a fetch waits for `gate`.
pub async fn honest_fake_gated(
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
pub const SLOW: Duration = Duration::from_secs(120);

/// Alice, online with `holder`, sends Jack (whose node is off) a message
/// and waits until it is `stored` with the holder; then Alice goes offline.
/// Returns her node and the message as her history has it.
pub async fn alice_leaves_one_for(jack: PeerId, holder: &TestNode) -> (TestNode, StoredMessage) {
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
pub fn fetches(log: &[Seen]) -> Vec<Vec<u64>> {
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

/// A node on `dir` bootstrapped from `boot` that fetches its mailbox
/// every second, so a test sees each fetch a holder answers soon.
pub async fn start_fetching(dir: &TempDir, boot: &[Multiaddr]) -> NodeHandle {
    start_with(dir, boot, |c| {
        c.mailbox.poll = Duration::from_secs(1);
    })
    .await
}
