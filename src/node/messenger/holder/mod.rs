//! The mailbox holder task: answers `/roost/mailbox/1` requests for the
//! mailboxes this node keeps for others, hands them on to closer peers and
//! purges expired items — by running what the holder machine
//! ([`crate::node::mailbox::holder`]) decides: every rule (admission,
//! quotas, expiry, hand-off, release) and timer is the machine's; this task
//! turns requests, routing changes and store results into its inputs and
//! runs its outputs (encoding on the blocking pool, store jobs, lookups,
//! deposits, answers).
//!
//! It runs as a task of its own with its own store worker (thread), fed by
//! the messaging service through a bounded channel that the service never
//! waits on. Every deposit waits for an `fdatasync` before it is answered,
//! so a peer sending a burst of mailbox requests queues work here only: the
//! service's sends, acks and incoming messages go on meanwhile. When the
//! channel is full, a deposit is answered `Unavailable` at once (its sender
//! retries) and other requests are dropped (their requester's call fails).
//! When the node's services are told to stop, it ends and closes its
//! worker (drained, flushed, released).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::mpsc;
#[cfg(feature = "test-util")]
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::deposit::deposit_all;
use crate::clock::unix_ms;
use crate::config::MailboxConfig;
use crate::net::NetClient;
use crate::node::lifecycle::Tasks;
use crate::node::mailbox::holder::{Holder as Machine, Input, Output, encode_deposit};
use crate::store::{Store, StoreError, Worker};
use crate::wire::mailbox::{
    DEPOSIT_BATCH, DepositReject, MailboxRequest, MailboxResponse, PAGE_BYTES, PAGE_ITEMS,
};

/// Requests waiting for the holder; beyond this, deposits are answered
/// `Unavailable` at once and other requests dropped. Above one peer's
/// burst of mailbox requests (200, the network layer's rate limit), so a
/// single peer within its limit meets that limit, not this one.
pub const QUEUE: usize = 256;

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
    /// Holds the store worker until the returned guard is dropped (tests).
    #[cfg(feature = "test-util")]
    Pause(oneshot::Sender<MailboxPause>),
}

/// While alive, the holder's store worker runs nothing: requests the holder
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
}

/// Starts the holder over its own store worker.
pub(super) fn spawn(
    store: Worker,
    net: NetClient,
    me: PeerId,
    cfg: MailboxConfig,
    tasks: &Tasks,
) -> Handle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let routed = Arc::<AtomicU64>::default();
    let (int_tx, int_rx) = mpsc::channel(256);
    let machine = Machine::new(
        me,
        cfg.quotas,
        cfg.replicas,
        cfg.ttl,
        cfg.poll,
        Instant::now(),
    );
    let holder = Holder {
        queue: store,
        net,
        machine,
        int_tx,
        #[cfg(feature = "test-util")]
        routed: routed.clone(),
    };
    tasks.spawn(holder.run(rx, int_rx, tasks.clone()));
    Handle { tx, routed }
}

/// The holder task's state: the machine, and what runs its outputs.
struct Holder {
    /// The holder's own store worker: its flushes never delay the
    /// messaging service's.
    queue: Worker,
    net: NetClient,
    machine: Machine,
    /// Results of the lookups and deposits of hand-off passes.
    int_tx: mpsc::Sender<Input>,
    /// Deposits routed to us (read through [`MailboxPause`]).
    #[cfg(feature = "test-util")]
    routed: Arc<AtomicU64>,
}

impl Holder {
    async fn run(
        mut self,
        mut jobs: mpsc::Receiver<Job>,
        mut internal: mpsc::Receiver<Input>,
        tasks: Tasks,
    ) {
        match self.queue.run(|s| s.held_items()).await {
            Ok(items) => {
                self.step(Input::Loaded(items)).await;
            }
            Err(e) => warn!("cannot load the held mailbox items: {e}"),
        }
        loop {
            let wake = self.machine.poll_timeout();
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(Job::Serve { peer, request, channel }) => {
                        if let Some(response) = self.step(Input::Request { peer, request }).await {
                            self.net.mailbox_respond(channel, response).await;
                        }
                    }
                    Some(Job::NewPeer(peer)) => {
                        crate::net::stats::count(crate::net::stats::Kind::HolderNewPeer);
                        self.step(Input::NewPeer(peer)).await;
                    }
                    #[cfg(feature = "test-util")]
                    Some(Job::Pause(reply)) => self.pause(reply),
                    None => break,
                },
                Some(input) = internal.recv() => {
                    self.step(input).await;
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    crate::net::stats::count(crate::net::stats::Kind::TimerHolder);
                    self.step(Input::Tick).await;
                }
                _ = tasks.stopping() => break,
            }
        }
        // Drains what is queued, flushes and releases the store.
        self.queue.close().await;
    }

    /// Holds the store worker until the returned guard is dropped (tests).
    #[cfg(feature = "test-util")]
    fn pause(&self, reply: oneshot::Sender<MailboxPause>) {
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

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.queue.run(f).await
    }

    /// Feeds `input` to the machine and runs what it asks, feeding store
    /// results back at once; lookups and deposits run as tasks of their
    /// own and come back through `internal`. Returns the answer to the
    /// request being served, if the input was one.
    async fn step(&mut self, input: Input) -> Option<MailboxResponse> {
        let mut todo = VecDeque::from(self.machine.handle(input, Instant::now(), unix_ms()));
        let mut response = None;
        while let Some(output) = todo.pop_front() {
            let next = match output {
                Output::Respond(r) => {
                    response = Some(r);
                    continue;
                }
                Output::Encode { peer, envelopes } => {
                    let n = envelopes.len();
                    let encode = move || encode_deposit(envelopes);
                    match tokio::task::spawn_blocking(encode).await {
                        Ok(batch) => Input::Encoded { peer, batch },
                        Err(e) => {
                            warn!("cannot encode a deposit: {e}");
                            let busy = vec![Some(DepositReject::Unavailable); n];
                            response = Some(MailboxResponse::Deposited(busy));
                            continue;
                        }
                    }
                }
                Output::Page { recipient, cursor } => {
                    response = Some(self.page(recipient, cursor).await);
                    continue;
                }
                Output::Lookup { pass, key } => {
                    let (net, int_tx) = (self.net.clone(), self.int_tx.clone());
                    crate::net::stats::count(crate::net::stats::Kind::LookupHandoff);
                    tokio::spawn(async move {
                        let peers = net.closest_peers(key).await.unwrap_or_default();
                        let _ = int_tx.send(Input::Found { pass, peers }).await;
                    });
                    continue;
                }
                Output::Copy {
                    pass,
                    peer,
                    envelopes,
                } => {
                    let (net, int_tx) = (self.net.clone(), self.int_tx.clone());
                    tokio::spawn(async move {
                        let stored = deposit_all(&net, peer, envelopes).await;
                        let confirmed = stored.iter().all(|s| *s);
                        let copied = Input::Copied {
                            pass,
                            peer,
                            confirmed,
                        };
                        let _ = int_tx.send(copied).await;
                    });
                    continue;
                }
                store_job => match self.run_store_job(store_job).await {
                    Some(next) => next,
                    None => continue,
                },
            };
            todo.extend(self.machine.handle(next, Instant::now(), unix_ms()));
        }
        response
    }

    /// Runs one of the machine's store jobs; the input its result makes
    /// (none when a read or a purge failed: the next pass or purge retries).
    async fn run_store_job(&self, job: Output) -> Option<Input> {
        match job {
            Output::Hold { deposit, items } => {
                // `hold` syncs the log before returning: "stored" is durable.
                let fresh = self.blocking(move |s| s.hold(&items)).await;
                let fresh = fresh.inspect_err(|e| warn!("cannot hold mailbox items: {e}"));
                Some(Input::Held {
                    deposit,
                    fresh: fresh.ok(),
                })
            }
            Output::Release { recipient, ids } => {
                let gone = self.blocking(move |s| s.release(&recipient, &ids)).await;
                let gone = gone.inspect_err(|e| warn!("cannot release held items: {e}"));
                Some(Input::Acked(gone.ok()))
            }
            Output::Purge { wall_ms } => {
                match self.blocking(move |s| s.purge_expired(wall_ms)).await {
                    Ok(gone) => {
                        if !gone.is_empty() {
                            info!(count = gone.len(), "purged expired mailbox items");
                        }
                        Some(Input::Removed(gone))
                    }
                    Err(e) => {
                        warn!("cannot purge mailbox items: {e}");
                        None
                    }
                }
            }
            Output::ReadHeld(recipient) => {
                let items = self.blocking(move |s| s.held_for(&recipient)).await;
                let items = items.inspect_err(|e| warn!("cannot read held items: {e}"));
                Some(Input::HeldFor {
                    recipient,
                    items: items.ok()?,
                })
            }
            Output::ReleaseItems { recipient, items } => {
                let gone = self.blocking(move |s| s.release_items(&recipient, &items));
                match gone.await {
                    Ok(gone) => Some(Input::Removed(gone)),
                    Err(e) => {
                        warn!("cannot release handed-off items: {e}");
                        None
                    }
                }
            }
            other => {
                debug!(?other, "not a store job");
                None
            }
        }
    }

    /// The page of `recipient`'s items from `cursor` (an empty last page
    /// if the store cannot read it).
    async fn page(&self, recipient: PeerId, cursor: u64) -> MailboxResponse {
        let page = self.blocking(move |s| s.held_page(&recipient, cursor, PAGE_ITEMS, PAGE_BYTES));
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
}
