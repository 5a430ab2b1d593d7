//! The messaging service: one task that owns the outbox schedule and every
//! store write of the message path, plus small tasks per stream.
//!
//! - Outbound, one *link* task per peer ([`link`]) holds a long-lived
//!   `/roost/msg/1` stream, writes envelopes back to back (at most
//!   [`WINDOW`] unacked) and reports each ack for a message it carries;
//!   acks for anything else are dropped, and an ack without an id (a frame
//!   the peer could not read) closes the link. Acks and receipts end a
//!   message only when they come from its recipient.
//! - Inbound ([`inbound`]), a *session* task per stream reads frames, opens
//!   the seals (on the blocking pool, one batch per core at a time) and
//!   hands each batch to the store worker, which
//!   makes it durable before the session acknowledges it; which messages
//!   are taken is decided by [`accept`]. The queue flushes once for
//!   everything waiting (group commit), so under load one flush covers
//!   many batches from many peers.
//!
//! - Mailboxes: when direct delivery fails, the envelope is deposited with
//!   the peers closest to the recipient's mailbox key ([`deposit`]), and
//!   this node fetches its own, within bounds a holder cannot stretch
//!   ([`fetch`], run as the fetcher machine of
//!   [`crate::node::mailbox::fetcher`] decides). It also holds, hands on
//!   and serves others' mailboxes, on a task and store worker of its own
//!   ([`holder`], driving [`crate::node::mailbox::holder`]): the service
//!   only routes requests there, never waiting on them.
//!
//! What the service does with its tasks' reports (links, acks, deposits,
//! fetches) is in [`internal`].
//!
//! The service never blocks on disk itself: every store call runs on the
//! node's store [`Worker`] (in order, with group commit), and the hot paths
//! (send, receive, acks) do not even wait for it — results come back as
//! [`Internal`] events. The service stops when the node's services are
//! told to ([`Tasks`]); the node closes the worker after that.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

mod accept;
mod connects;
mod deposit;
pub mod fetch;
mod groups;
mod holder;
mod inbound;
mod interface;
mod internal;
mod link;
mod window;

#[cfg(feature = "test-util")]
pub use holder::MailboxPause;

use super::lifecycle::Tasks;
use super::mailbox::fetcher::{self, Fetcher};
use super::outbox::Outbox;
use crate::clock::unix_ms;
use crate::config::MailboxConfig;
use crate::crypto::Sealer;
use crate::net::{NetClient, NetEvent};
use crate::store::{Flush, Store, StoreError, StoredMessage, Worker};
use crate::wire::mailbox::mailbox_key;
use crate::wire::message::{self, Ack, Body, Envelope, Inner, MessageId, ReceiptKind};
#[cfg(feature = "test-util")]
pub use connects::LinkSetup;
pub use connects::MAX_CONNECTS;
use inbound::{Inbound, Received};
#[cfg(feature = "test-util")]
pub use interface::Attempts;
pub use interface::Event;
use interface::Reply;
pub(crate) use interface::Request;
use internal::Op;
pub use link::ACK_TIMEOUT;
use link::{LinkTx, hand_to_link};

/// The message protocol.
pub const MSG_PROTOCOL: StreamProtocol = StreamProtocol::new("/roost/msg/1");
/// Most unacknowledged messages on one link.
pub const WINDOW: usize = 64;
/// Most message streams one peer may have open to us at once.
pub const MAX_STREAMS_PER_PEER: usize = 4;
/// An inbound stream must carry its first frame within this time: a sender
/// opens one only when it has something to send.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream with no traffic for this long is closed (and reopened when
/// needed), so idle links do not pin connections and tasks forever.
pub const STREAM_IDLE: Duration = Duration::from_secs(300);
/// Most frames one inbound batch (one flush) covers.
const BATCH: usize = 256;
/// Batches of one inbound stream queued for the store at once.
const BATCHES_IN_FLIGHT: usize = 4;
/// Most bytes of frames a link gathers into one write: one Yamux frame
/// (16 KiB at most), one Noise encryption and one system call carry many
/// messages instead of one each.
const WRITE_BYTES: usize = 16 * 1024;
/// Read buffer of a message stream: one read from Yamux yields many
/// frames (acks are ~30 bytes, messages a few hundred).
const READ_BUFFER: usize = 16 * 1024;

enum Internal {
    LinkUp(PeerId, LinkTx),
    LinkFailed(PeerId, String),
    LinkDown(PeerId),
    Acked(PeerId, Ack),
    /// A deposit round ended: these made their quorum, these did not.
    Deposited {
        peer: PeerId,
        stored: Vec<MessageId>,
        failed: Vec<MessageId>,
    },
    /// A fetch of our own mailbox ended: the fetcher's
    /// [`fetcher::Input::Done`].
    FetchDone(fetcher::Input),
    /// A batch of incoming messages is on disk; what is left to do.
    Received(Received),
    /// These could not be written to the outbox: stop sending them.
    Unsent(Vec<MessageId>),
}

enum Link {
    Connecting(Vec<MessageId>),
    Up {
        tx: LinkTx,
        in_flight: HashSet<MessageId>,
    },
}

/// Starts the service over the node's store worker (`holder_store`: the
/// mailbox holder's own); returns its request channel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn(
    store: Worker,
    holder_store: Worker,
    sealer: Arc<Sealer>,
    net: NetClient,
    mut control: libp2p_stream::Control,
    events: broadcast::Sender<Event>,
    mailbox: MailboxConfig,
    presence: mpsc::Sender<super::presence_service::Request>,
    tasks: &Tasks,
    groups: Arc<crate::node::groups::Ctx>,
) -> Result<mpsc::Sender<Request>, libp2p_stream::AlreadyRegistered> {
    let (req_tx, req_rx) = mpsc::channel(1024);
    let (int_tx, int_rx) = mpsc::channel(4096);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let incoming = control.accept(MSG_PROTOCOL)?;
    let holder = holder::spawn(
        holder_store,
        net.clone(),
        sealer.me(),
        mailbox.clone(),
        tasks,
    );
    let inbound = Arc::new(Inbound {
        sealer,
        queue: store.clone(),
        events,
        done: done_tx,
        groups,
        openers: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
        sessions: Default::default(),
    });
    let accept_inbound = inbound.clone();
    tokio::spawn(inbound::accept_streams(incoming, accept_inbound));
    let fetcher = Fetcher::new(
        &mailbox_key(&inbound.sealer.me()),
        mailbox.poll,
        mailbox.replicas,
        Instant::now(),
    );
    let service = Service {
        store,
        inbound,
        net,
        control,
        outbox: Outbox::new(),
        envelopes: HashMap::new(),
        links: HashMap::new(),
        connects: connects::Connects::default(),
        int_tx,
        holder,
        presence,
        mcfg: mailbox,
        fetcher,
    };
    tasks.spawn(service.run(req_rx, int_rx, done_rx, tasks.clone()));
    Ok(req_tx)
}

struct Service {
    /// Every store call of the message path, in order, on one thread.
    store: Worker,
    /// What sessions share with us: our keys, the store worker, events.
    inbound: Arc<Inbound>,
    net: NetClient,
    control: libp2p_stream::Control,
    outbox: Outbox,
    /// Every message in the outbox.
    envelopes: HashMap<MessageId, Outgoing>,
    links: HashMap<PeerId, Link>,
    /// Which links are being set up, and which wait for their turn.
    connects: connects::Connects,
    int_tx: mpsc::Sender<Internal>,
    /// The mailbox holder, which serves the mailboxes we keep for others.
    holder: holder::Handle,
    /// The presence service, told when a buddy grants us its presence.
    presence: mpsc::Sender<super::presence_service::Request>,
    mcfg: MailboxConfig,
    /// When to fetch our own mailbox, and which receipts fetches owe.
    fetcher: Fetcher,
}

/// A message in the outbox as the service keeps it. Its history row comes
/// along (none for receipts and buddy requests), so the row's final state
/// is written without reading it back: at ten thousands of messages a
/// second, the two reads and the decode were a fifth of the sender's store
/// thread.
struct Outgoing {
    envelope: Envelope,
    message: Option<StoredMessage>,
}

impl Service {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut internal: mpsc::Receiver<Internal>,
        mut done: mpsc::UnboundedReceiver<Internal>,
        tasks: Tasks,
    ) {
        if let Err(e) = self.load_outbox().await {
            warn!("cannot load the outbox: {e}");
        }
        loop {
            self.dispatch();
            if self.fetcher.poll_timeout() <= Instant::now() {
                self.drive_fetcher(fetcher::Input::Tick);
            }
            let wake = [self.outbox.next_due(), Some(self.fetcher.poll_timeout())]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let mut ops = Vec::new();
            tokio::select! {
                // In order; concurrent sends still share a flush, as the
                // store worker commits every job waiting as a group.
                Some(req) = requests.recv() => self.on_request(req).await,
                Some(ev) = internal.recv() => {
                    self.on_internal(ev, &mut ops).await;
                    // Drain what else is ready, so acks are written in batches.
                    while ops.len() < BATCH {
                        let Ok(ev) = internal.try_recv() else { break };
                        self.on_internal(ev, &mut ops).await;
                    }
                }
                Some(ev) = done.recv() => self.on_internal(ev, &mut ops).await,
                _ = tokio::time::sleep_until(wake.into()) => {
                    crate::net::stats::count(crate::net::stats::Kind::TimerMessenger);
                }
                // Whatever was submitted to the store so far is drained by
                // the worker's close, after every service has ended.
                _ = tasks.stopping() => {
                    self.finish_requests(&mut requests).await;
                    break;
                }
            }
            if !ops.is_empty() {
                self.apply(ops);
            }
        }
    }

    /// Takes what callers queued before the stop: a buddy request is
    /// answered once queued here, so it must still reach the outbox (the
    /// store worker closes only after this service ends); sends and reads
    /// get their answers. Network events no longer matter.
    async fn finish_requests(&mut self, requests: &mut mpsc::Receiver<Request>) {
        while let Ok(req) = requests.try_recv() {
            if !matches!(req, Request::Net(_)) {
                self.on_request(req).await;
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.store.run(f).await
    }

    async fn load_outbox(&mut self) -> Result<(), StoreError> {
        let items = self.blocking(|s| s.outbox()).await?;
        let now = Instant::now();
        for (peer, env, message) in items {
            self.queue(peer, env, message, now);
        }
        Ok(())
    }

    fn queue(
        &mut self,
        peer: PeerId,
        envelope: Envelope,
        message: Option<StoredMessage>,
        now: Instant,
    ) {
        self.outbox.enqueue(envelope.id, peer, now);
        let out = Outgoing { envelope, message };
        self.envelopes.insert(out.envelope.id, out);
    }

    /// Puts a message on its way over a direct link only, with no outbox
    /// row: if that one attempt fails, it is dropped, neither retried nor
    /// deposited ([`Outbox::enqueue_direct`]).
    fn queue_direct(&mut self, peer: PeerId, envelope: Envelope, now: Instant) {
        self.outbox.enqueue_direct(envelope.id, peer, now);
        let out = Outgoing {
            envelope,
            message: None,
        };
        self.envelopes.insert(out.envelope.id, out);
    }

    /// An attempt at `id` failed: it waits for a retry, or, direct-only,
    /// is dropped.
    fn attempt_failed(&mut self, id: &MessageId, now: Instant) {
        if !self.outbox.failed(id, now) {
            self.envelopes.remove(id);
        }
    }

    /// Takes a message out of the outbox schedule for good; `None` if it
    /// was not there (already finished).
    fn finish(&mut self, id: &MessageId) -> Option<Outgoing> {
        let out = self.envelopes.remove(id);
        if self.outbox.finished(id) { out } else { None }
    }

    /// Queues the outbox write and puts the messages on the wire at once,
    /// without waiting for it: the caller is answered once it is on
    /// disk, so "nothing is lost" holds, and the store worker's order
    /// guarantees that any later state change finds the rows written. The
    /// write waits for the next flush ([`Flush::Soon`]) rather than
    /// starting one: the message's way does not depend on it, and a flush
    /// now would compete with the recipient's for the disk they may share.
    fn send(&mut self, items: Vec<(StoredMessage, Envelope)>, reply: Reply) {
        let ids: Vec<MessageId> = items.iter().map(|(m, _)| m.id).collect();
        let now = Instant::now();
        for (m, env) in &items {
            if let Some(peer) = m.peer_id() {
                self.queue(peer, env.clone(), Some(m.clone()), now);
            }
        }
        let done = self.inbound.done.clone();
        let events = self.inbound.events.clone();
        let sent: Vec<StoredMessage> = items.iter().map(|(m, _)| m.clone()).collect();
        self.inbound.queue.then(
            Flush::Soon,
            move |s| s.insert_outgoing(&items),
            move |res| {
                if res.is_err() {
                    // Not durable, so not sent: take them back.
                    let _ = done.send(Internal::Unsent(ids));
                } else {
                    // Every window learns of it, whoever asked for it.
                    for e in sent.into_iter().filter_map(Event::sent) {
                        let _ = events.send(e);
                    }
                }
                let _ = reply.send(res);
            },
        );
    }

    async fn on_request(&mut self, req: Request) {
        match req {
            Request::Send { items, reply } => self.send(items, reply),
            Request::MarkRead { peer, reply } => {
                let res = self.mark_read(peer).await;
                let _ = reply.send(res);
            }
            Request::Control { to, body } => self.send_control(to, body),
            Request::Direct { to, body } => match seal_control(&self.inbound.sealer, to, body) {
                Ok(env) => self.queue_direct(to, env, Instant::now()),
                Err(e) => warn!("cannot seal a direct message: {e}"),
            },
            Request::Group { job, reply } => {
                let res = self.group(job).await;
                let _ = reply.send(res);
            }
            Request::Read(f) => {
                // After every write queued before it; no need to wait here.
                drop(self.store.submit(move |s| {
                    f(s);
                    Ok(())
                }));
            }
            Request::Net(NetEvent::Connected(peer)) => {
                self.outbox.peer_seen(&peer, Instant::now());
                if self.connects.connected(peer) {
                    self.connect(peer);
                }
            }
            Request::Net(NetEvent::Disconnected(peer)) => self.connects.disconnected(&peer),
            #[cfg(feature = "test-util")]
            Request::PauseHolder(reply) => {
                self.holder.offer(holder::Job::Pause(reply));
            }
            #[cfg(feature = "test-util")]
            Request::MessageStreams(peer, reply) => {
                let _ = reply.send(self.inbound.sessions_of(&peer));
            }
            #[cfg(feature = "test-util")]
            Request::Pending(reply) => {
                let _ = reply.send(self.outbox.len());
            }
            #[cfg(feature = "test-util")]
            Request::Attempts(peer, reply) => {
                let _ = reply.send(Attempts {
                    messages: self.outbox.attempts(&peer, Instant::now()),
                    link: self.connects.state(&peer),
                });
            }
            #[cfg(feature = "test-util")]
            Request::NextFetch(reply) => {
                let next = self.fetcher.poll_timeout();
                let _ = reply.send((
                    next.saturating_duration_since(Instant::now()),
                    self.fetcher.interval(),
                ));
            }
            Request::Net(NetEvent::NewPeer(peer)) => {
                self.drive_fetcher(fetcher::Input::NewPeer(peer));
                // Dropped when the holder is busy: its periodic pass covers it.
                self.holder.offer(holder::Job::NewPeer(peer));
            }
            Request::Net(NetEvent::MailboxRequest {
                peer,
                request,
                channel,
            }) => self.holder.route(&self.net, peer, request, channel),
            Request::Net(_) => {}
        }
    }

    /// Marks the conversation with `peer` read and queues the read
    /// receipts, in one store job that is on disk (`fdatasync`) before the
    /// caller is answered and before any receipt goes on the wire: the
    /// sender never learns "read" for a state a crash could still undo.
    /// Returns how many messages were newly read.
    async fn mark_read(&mut self, peer: PeerId) -> Result<usize, StoreError> {
        let sealer = self.inbound.sealer.clone();
        let job = self.inbound.queue.reply(Flush::Now, move |s| {
            let ids = s.mark_read(&peer)?;
            let mut receipts = Vec::new();
            for chunk in ids.chunks(message::MAX_RECEIPT_IDS) {
                let body = Body::Receipt {
                    kind: ReceiptKind::Read,
                    ids: chunk.to_vec(),
                };
                match seal_control(&sealer, peer, body) {
                    Ok(env) => {
                        s.insert_outbox_only(&peer, &env)?;
                        receipts.push(env);
                    }
                    Err(e) => warn!("cannot seal a read receipt: {e}"),
                }
            }
            Ok((ids.len(), receipts))
        });
        let (read, receipts) = job
            .await
            .map_err(|_| StoreError::Failed("store thread stopped".into()))??;
        let now = Instant::now();
        for env in receipts {
            self.queue(peer, env, None, now);
        }
        Ok(read)
    }

    /// Receipts travel as messages of their own, through the outbox, but are
    /// not part of the visible conversation.
    fn send_receipt(&mut self, peer: PeerId, kind: ReceiptKind, ids: Vec<MessageId>) {
        for chunk in ids.chunks(message::MAX_RECEIPT_IDS) {
            let body = Body::Receipt {
                kind,
                ids: chunk.to_vec(),
            };
            self.send_control(peer, body);
        }
    }

    /// Seals a message that is not part of the visible history (a receipt,
    /// a buddy request) and queues it durably like any other.
    fn send_control(&mut self, peer: PeerId, body: Body) {
        let env = match seal_control(&self.inbound.sealer, peer, body) {
            Ok(e) => e,
            Err(e) => {
                warn!("cannot seal a control message: {e}");
                return;
            }
        };
        // Like a send: on the wire at once, taken back if it cannot be
        // made durable.
        let (stored, id, done) = (env.clone(), env.id, self.inbound.done.clone());
        self.queue(peer, env, None, Instant::now());
        self.inbound.queue.then(
            Flush::Soon,
            move |s| s.insert_outbox_only(&peer, &stored),
            move |res| {
                if let Err(e) = res {
                    warn!("cannot queue a control message: {e}");
                    let _ = done.send(Internal::Unsent(vec![id]));
                }
            },
        );
    }

    /// Hands due messages to their links, connecting where needed.
    fn dispatch(&mut self) {
        for (peer, ids) in self.outbox.take_due(Instant::now()) {
            match self.links.get_mut(&peer) {
                Some(Link::Up { tx, in_flight }) => {
                    hand_to_link(&self.envelopes, ids, tx, in_flight);
                }
                Some(Link::Connecting(waiting)) => waiting.extend(ids),
                None => {
                    self.links.insert(peer, Link::Connecting(ids));
                    if self.connects.want(peer) {
                        self.connect(peer);
                    }
                }
            }
        }
    }

    /// Follow-ups of a stored incoming batch: receipts to send, our own
    /// messages finished by the peer's receipts, presence to retry.
    fn received(&mut self, r: Received) {
        let now = Instant::now();
        for (peer, env) in r.out {
            self.queue(peer, env, None, now);
        }
        for (peer, env) in r.direct {
            self.queue_direct(peer, env, now);
        }
        for peer in r.accepted {
            let _ = self
                .presence
                .try_send(super::presence_service::Request::Retry(peer));
        }
        if !r.delivered.is_empty() {
            self.drive_fetcher(fetcher::Input::Delivered(r.delivered));
        }
        // A receipt ends a message only if it comes from its recipient
        // (the store op checks the same before it drops the outbox row).
        for (peer, _, ids) in &r.receipts {
            for id in ids {
                if self.outbox.receipt(id, peer) {
                    self.envelopes.remove(id);
                }
            }
        }
        let ops = r
            .receipts
            .into_iter()
            .map(|(p, k, ids)| Op::Receipt(p, k, ids))
            .collect::<Vec<_>>();
        if !ops.is_empty() {
            self.apply(ops);
        }
    }
}

/// Seals a message of ours that is not part of the visible history (a
/// receipt, a buddy request) under a fresh id.
fn seal_control(
    sealer: &Sealer,
    peer: PeerId,
    body: Body,
) -> Result<Envelope, crate::crypto::CryptoError> {
    let inner = Inner {
        from: sealer.me().to_bytes(),
        sent_at: unix_ms(),
        body,
    };
    message::seal(sealer, MessageId::random(), &peer, &inner)
}
