//! The mailbox holder: answers `/roost/mailbox/1` requests for the
//! mailboxes this node keeps for others, hands them on to closer peers and
//! purges expired items.
//!
//! It runs as a task of its own with its own store queue (thread), fed by
//! the messaging service through a bounded channel that the service never
//! waits on. Every deposit waits for an `fdatasync` before it is answered,
//! so a peer sending a burst of mailbox requests queues work here only: the
//! service's sends, acks and incoming messages go on meanwhile. When the
//! channel is full, a deposit is answered `Unavailable` at once (its sender
//! retries) and other requests are dropped (their requester's call fails).
//!
//! The holder's rules ([`Rules`]) are plain state with no I/O: what a
//! deposit may add, what each peer is known to hold, when to forget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

mod rules;

pub(crate) use rules::Rules;

use super::mailbox::deposit_all;
use crate::clock::unix_ms;
use crate::config::MailboxConfig;
use crate::net::NetClient;
use crate::node::mailbox::handoff;
use crate::store::{Queue, Store, StoreError};
use crate::wire::mailbox::{
    DEPOSIT_BATCH, DepositReject, ItemHash, MAX_ACK_IDS, MailboxRequest, MailboxResponse,
    PAGE_BYTES, PAGE_ITEMS, mailbox_key,
};
use crate::wire::message::{Envelope, MessageId};

/// Requests waiting for the holder; beyond this, deposits are answered
/// `Unavailable` at once and other requests dropped. Above one peer's
/// burst of mailbox requests (200, the network layer's rate limit), so a
/// single peer within its limit meets that limit, not this one.
pub const QUEUE: usize = 256;
/// Delay that coalesces a burst of routing-table changes or deposits.
const SETTLE: Duration = Duration::from_millis(100);
/// Least time between two hand-off passes started by routing changes.
const REACT_EVERY: Duration = Duration::from_secs(10);
/// How often expired items are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Work for the holder.
pub(crate) enum Job {
    /// A mailbox request to answer on `channel`.
    Serve {
        peer: PeerId,
        request: MailboxRequest,
        channel: ResponseChannel<MailboxResponse>,
    },
    /// `peer` entered our routing table: it may outrank a holder.
    NewPeer(PeerId),
    /// Holds the store queue until the returned guard is dropped (tests).
    #[cfg(feature = "test-util")]
    Pause(oneshot::Sender<MailboxPause>),
    /// Stops; answered once the store queue is drained and released.
    Stop(oneshot::Sender<()>),
}

/// While alive, the holder's store queue runs nothing: requests the holder
/// takes in wait. Lets a test show that mailbox work stuck behind the disk
/// does not hold up messaging.
#[cfg(feature = "test-util")]
pub struct MailboxPause {
    _release: std::sync::mpsc::Sender<()>,
    /// Deposits routed to the holder, and how many of them before the pause.
    routed: Arc<AtomicU64>,
    before: u64,
}

#[cfg(feature = "test-util")]
impl MailboxPause {
    /// Deposits routed to the holder since the pause: each is waiting in
    /// its channel or behind its paused store.
    pub fn deposits_routed(&self) -> u64 {
        self.routed.load(Ordering::SeqCst) - self.before
    }
}

/// The messaging service's way to the holder: nothing here waits.
pub(super) struct Handle {
    tx: mpsc::Sender<Job>,
    /// Deposits put in the channel (read through [`MailboxPause`]).
    routed: Arc<AtomicU64>,
}

impl Handle {
    /// Hands a mailbox request to the holder without waiting: when its
    /// channel is full, a deposit is refused `Unavailable` at once.
    pub(super) fn route(
        &self,
        net: &NetClient,
        peer: PeerId,
        request: MailboxRequest,
        channel: ResponseChannel<MailboxResponse>,
    ) {
        let deposit = matches!(request, MailboxRequest::Deposit(_));
        let job = Job::Serve {
            peer,
            request,
            channel,
        };
        match self.tx.try_send(job) {
            Ok(()) if deposit => {
                self.routed.fetch_add(1, Ordering::SeqCst);
            }
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Job::Serve {
                request: MailboxRequest::Deposit(envs),
                channel,
                ..
            })) => {
                debug!(%peer, "mailbox holder busy; refusing a deposit");
                let busy = vec![Some(DepositReject::Unavailable); envs.len().min(DEPOSIT_BATCH)];
                let net = net.clone();
                tokio::spawn(async move {
                    net.mailbox_respond(channel, MailboxResponse::Deposited(busy))
                        .await
                });
            }
            Err(_) => debug!(%peer, "mailbox holder busy or stopped; dropping a request"),
        }
    }

    /// Passes `job` on if there is room (a new peer, a test's pause).
    pub(super) fn offer(&self, job: Job) {
        let _ = self.tx.try_send(job);
    }

    /// Stops the holder; returns once it has released the store.
    pub(super) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts the holder over its own store queue.
pub(super) fn spawn(store: Store, net: NetClient, me: PeerId, cfg: MailboxConfig) -> Handle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let routed = Arc::<AtomicU64>::default();
    let (int_tx, int_rx) = mpsc::channel(256);
    let now = Instant::now();
    let holder = Holder {
        queue: Queue::new(store),
        net,
        rules: Rules::new(me, cfg.quotas),
        ttl: cfg.ttl,
        replicas: cfg.replicas,
        poll: cfg.poll,
        int_tx,
        handoff_due: None,
        last_handoff: None,
        next_poll: now + cfg.poll,
        next_purge: now,
        #[cfg(feature = "test-util")]
        routed: routed.clone(),
    };
    tokio::spawn(holder.run(rx, int_rx));
    Handle { tx, routed }
}

/// A hand-off pass's outcome for one recipient.
struct HandedOff {
    recipient: PeerId,
    /// The closest peers as the pass saw them.
    ranking: Vec<PeerId>,
    /// Those that confirmed copies of `items`.
    peers: Vec<PeerId>,
    items: Vec<ItemHash>,
    ids: Vec<MessageId>,
    /// Ours have moved on and can go.
    release: bool,
}

/// The holder task's state.
struct Holder {
    /// The holder's own store thread: its flushes never delay the
    /// messaging service's.
    queue: Queue,
    net: NetClient,
    rules: Rules,
    ttl: Duration,
    replicas: usize,
    poll: Duration,
    int_tx: mpsc::Sender<HandedOff>,
    handoff_due: Option<Instant>,
    last_handoff: Option<Instant>,
    next_poll: Instant,
    next_purge: Instant,
    /// Deposits routed to us (read through [`MailboxPause`]).
    #[cfg(feature = "test-util")]
    routed: Arc<AtomicU64>,
}

impl Holder {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>, mut internal: mpsc::Receiver<HandedOff>) {
        match self.queue.run(|s| s.held_items()).await {
            Ok(items) => self.rules.loaded(&items),
            Err(e) => warn!("cannot load the held mailbox items: {e}"),
        }
        let mut stop = None;
        while stop.is_none() {
            self.timers().await;
            let wake = [
                self.handoff_due,
                Some(self.next_poll),
                Some(self.next_purge),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(Job::Serve { peer, request, channel }) => {
                        let response = self.serve(peer, request).await;
                        self.net.mailbox_respond(channel, response).await;
                    }
                    Some(Job::NewPeer(peer)) => self.new_peer(peer),
                    #[cfg(feature = "test-util")]
                    Some(Job::Pause(reply)) => {
                        let (release, wait) = std::sync::mpsc::channel::<()>();
                        drop(self.queue.submit(move |_| {
                            let _ = wait.recv();
                            Ok(())
                        }));
                        let _ = reply.send(MailboxPause {
                            _release: release,
                            routed: self.routed.clone(),
                            before: self.routed.load(Ordering::SeqCst),
                        });
                    }
                    Some(Job::Stop(reply)) => stop = Some(Some(reply)),
                    None => stop = Some(None),
                },
                Some(done) = internal.recv() => self.handed_off(done).await,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        // Dropping the queue drains it, flushes and releases the store.
        let Self { queue, .. } = self;
        let _ = tokio::task::spawn_blocking(move || drop(queue)).await;
        if let Some(Some(reply)) = stop {
            let _ = reply.send(());
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.queue.run(f).await
    }

    /// A peer closer than we are to a mailbox we hold: look again at who
    /// should hold it, after a settle and at most every [`REACT_EVERY`].
    fn new_peer(&mut self, peer: PeerId) {
        if self.rules.outranked_by(&peer) {
            let now = Instant::now();
            let at = self.last_handoff.map_or(now, |t| t + REACT_EVERY).max(now) + SETTLE;
            self.handoff_due.get_or_insert(at);
        }
    }

    async fn timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_poll {
            self.next_poll = now + self.poll;
            // A co-holder may have left without our routing table
            // changing: its copies must be replaced before the others go.
            if !self.rules.recipients().is_empty() {
                self.handoff_due.get_or_insert(now);
            }
        }
        if self.handoff_due.is_some_and(|t| t <= now) {
            self.handoff_due = None;
            self.last_handoff = Some(now);
            self.hand_off().await;
        }
        if now >= self.next_purge {
            self.next_purge = now + PURGE_EVERY.min(self.ttl / 2);
            match self.blocking(|s| s.purge_expired(unix_ms())).await {
                Ok(gone) => {
                    self.rules.removed(&gone);
                    if !gone.is_empty() {
                        info!(count = gone.len(), "purged expired mailbox items");
                    }
                }
                Err(e) => warn!("cannot purge mailbox items: {e}"),
            }
        }
    }

    /// Answers one request. Fetch and Ack are only for the recipient
    /// itself, as authenticated by the connection.
    async fn serve(&mut self, peer: PeerId, request: MailboxRequest) -> MailboxResponse {
        match request {
            MailboxRequest::Deposit(envs) => {
                let expires_at = unix_ms() + self.ttl.as_millis() as u64;
                let mut admitted = self.rules.admit(peer, envs, expires_at);
                if admitted.items.is_empty() {
                    return MailboxResponse::Deposited(admitted.results);
                }
                let (items, envs) = (admitted.items.clone(), admitted.envelopes.clone());
                // `hold` syncs the log before returning: "stored" is durable.
                match self.blocking(move |s| s.hold(&items, &envs)).await {
                    Ok(fresh) => {
                        if self.rules.stored(peer, &admitted, &fresh) {
                            self.handoff_due.get_or_insert(Instant::now() + SETTLE);
                        }
                    }
                    Err(e) => {
                        warn!("cannot hold mailbox items: {e}");
                        self.rules.not_stored(&mut admitted);
                    }
                }
                MailboxResponse::Deposited(admitted.results)
            }
            MailboxRequest::Fetch { recipient, cursor } => {
                if recipient != peer.to_bytes() {
                    return MailboxResponse::Denied;
                }
                let page =
                    self.blocking(move |s| s.held_page(&peer, cursor, PAGE_ITEMS, PAGE_BYTES));
                match page.await {
                    Ok((items, next)) => MailboxResponse::Page { items, next },
                    Err(e) => {
                        warn!("cannot read held items: {e}");
                        MailboxResponse::Page {
                            items: Vec::new(),
                            next: None,
                        }
                    }
                }
            }
            MailboxRequest::Ack { recipient, ids } => {
                if recipient != peer.to_bytes() {
                    return MailboxResponse::Denied;
                }
                let ids: Vec<MessageId> = ids.into_iter().take(MAX_ACK_IDS).collect();
                match self.blocking(move |s| s.release(&peer, &ids)).await {
                    Ok(gone) => {
                        self.rules.removed(&gone);
                        MailboxResponse::Acked {
                            removed: gone.len() as u32,
                        }
                    }
                    Err(e) => {
                        warn!("cannot release held items: {e}");
                        MailboxResponse::Acked { removed: 0 }
                    }
                }
            }
        }
    }

    /// Copies held mailboxes to their current closest peers that are not
    /// known to hold these exact items, so R copies stay near each key as
    /// peers join and leave while the recipient is away.
    async fn hand_off(&mut self) {
        let me = self.rules.me();
        for recipient in self.rules.recipients() {
            let envs = match self.blocking(move |s| s.held_for(&recipient)).await {
                Ok(e) if !e.is_empty() => e,
                _ => continue,
            };
            let Some(items) = envs.iter().map(ItemHash::of).collect::<Option<Vec<_>>>() else {
                continue;
            };
            let ids: Vec<MessageId> = envs.iter().map(|e| e.id).collect();
            let known = self.rules.known(&recipient, &items);
            let already = known.holding(&items);
            let (net, r, int_tx) = (self.net.clone(), self.replicas, self.int_tx.clone());
            tokio::spawn(async move {
                let key = mailbox_key(&recipient);
                let found = net.closest_peers(key.clone()).await.unwrap_or_default();
                if found.is_empty() {
                    return;
                }
                let plan = handoff(&key, found, me, recipient, r, &already);
                let mut done = Vec::new();
                for t in &plan.targets {
                    // Only what it is not known to hold already.
                    let missing: Vec<Envelope> = envs
                        .iter()
                        .zip(&items)
                        .filter(|(_, h)| !known.has(t, h))
                        .map(|(e, _)| e.clone())
                        .collect();
                    if deposit_all(&net, *t, &missing).await.iter().all(|s| *s) {
                        done.push(*t);
                    }
                }
                // Outranked, and every closer holder confirmed a copy: let go.
                let release = plan.lets_go(&done);
                if !done.is_empty() || release {
                    debug!(%recipient, peers = done.len(), items = items.len(), release, "handed mailbox on");
                }
                let _ = int_tx
                    .send(HandedOff {
                        recipient,
                        ranking: plan.ranking,
                        peers: done,
                        items,
                        ids,
                        release,
                    })
                    .await;
            });
        }
    }

    async fn handed_off(&mut self, done: HandedOff) {
        self.rules
            .handed_off(done.recipient, &done.ranking, &done.peers, &done.items);
        if done.release {
            let recipient = done.recipient;
            let items: Vec<(MessageId, ItemHash)> = done.ids.into_iter().zip(done.items).collect();
            match self
                .blocking(move |s| s.release_items(&recipient, &items))
                .await
            {
                Ok(gone) => self.rules.removed(&gone),
                Err(e) => warn!("cannot release handed-off items: {e}"),
            }
        }
    }
}
