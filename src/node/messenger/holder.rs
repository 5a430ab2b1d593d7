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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::mailbox::deposit_all;
use crate::clock::unix_ms;
use crate::config::MailboxConfig;
use crate::net::NetClient;
use crate::node::mailbox::{Handed, Ledger, Quotas, handoff, outranks};
use crate::store::{HeldItem, Queue, Store, StoreError};
use crate::wire::mailbox::{
    DEPOSIT_BATCH, DepositReject, ItemHash, MAX_ACK_IDS, MAX_HELD_ENVELOPE, MailboxRequest,
    MailboxResponse, PAGE_BYTES, PAGE_ITEMS, mailbox_key,
};
use crate::wire::message::{Envelope, MessageId};

/// Requests waiting for the holder; beyond this, deposits are answered
/// `Unavailable` at once and other requests dropped.
pub const QUEUE: usize = 64;
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
    Pause(oneshot::Sender<MailboxPause>),
    /// Stops; answered once the store queue is drained and released.
    Stop(oneshot::Sender<()>),
}

/// While alive, the holder's store queue runs nothing: requests the holder
/// takes in wait. Lets a test show that mailbox work stuck behind the disk
/// does not hold up messaging.
#[doc(hidden)]
pub struct MailboxPause {
    _release: std::sync::mpsc::Sender<()>,
    /// Deposits the holder has taken off its channel, and how many of them
    /// before the pause.
    taken: Arc<AtomicU64>,
    before: u64,
}

impl MailboxPause {
    /// Deposits the holder has taken off its channel since the pause (each
    /// now waits for the store, and so does the holder).
    pub fn deposits_taken(&self) -> u64 {
        self.taken.load(Ordering::SeqCst) - self.before
    }
}

/// Hands a mailbox request to the holder without waiting: when its channel
/// is full, a deposit is refused `Unavailable` at once.
pub(super) fn route(
    holder: &mpsc::Sender<Job>,
    net: &NetClient,
    peer: PeerId,
    request: MailboxRequest,
    channel: ResponseChannel<MailboxResponse>,
) {
    let job = Job::Serve {
        peer,
        request,
        channel,
    };
    match holder.try_send(job) {
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

/// Starts the holder over its own store queue; returns its channel.
pub(super) fn spawn(
    store: Store,
    net: NetClient,
    me: PeerId,
    cfg: MailboxConfig,
) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(QUEUE);
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
        taken: Arc::default(),
    };
    tokio::spawn(holder.run(rx, int_rx));
    tx
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

/// What the holder knows, without I/O: the quota ledger, and per
/// recipient which peers are known to hold which items.
pub(crate) struct Rules {
    me: PeerId,
    ledger: Ledger,
    handed: HashMap<PeerId, Handed>,
}

/// A deposit batch after [`Rules::admit`]: the answer so far, and what to
/// write.
pub(crate) struct Admitted {
    /// Per envelope, in order: `None` if admitted.
    pub results: Vec<Option<DepositReject>>,
    /// The admitted items and their envelopes, already counted.
    pub items: Vec<HeldItem>,
    pub envelopes: Vec<Envelope>,
}

impl Rules {
    /// Nothing held yet, under these quotas.
    pub fn new(me: PeerId, quotas: Quotas) -> Self {
        Self {
            me,
            ledger: Ledger::new(quotas),
            handed: HashMap::new(),
        }
    }

    /// Items found in the store at start.
    pub fn loaded(&mut self, items: &[HeldItem]) {
        items.iter().for_each(|i| self.ledger.added(i));
    }

    /// Checks a deposit from `peer` item by item: addressing, size and the
    /// quotas (this batch's earlier items count too). Admitted items are
    /// counted at once; [`Rules::stored`] or [`Rules::not_stored`] settles.
    pub fn admit(&mut self, peer: PeerId, envs: Vec<Envelope>, expires_at: u64) -> Admitted {
        let mut out = Admitted {
            results: Vec::with_capacity(envs.len()),
            items: Vec::new(),
            envelopes: Vec::new(),
        };
        for env in envs.into_iter().take(DEPOSIT_BATCH) {
            let verdict = match PeerId::from_bytes(&env.to) {
                Ok(r) if r != self.me && r != peer && PeerId::from_bytes(&env.from).is_ok() => {
                    let too_large =
                        crate::wire::encode(&env).map_or(true, |b| b.len() > MAX_HELD_ENVELOPE);
                    let item = HeldItem {
                        recipient: r,
                        depositor: peer,
                        size: env.sealed.len(),
                        expires_at,
                    };
                    if too_large {
                        Err(DepositReject::TooLarge)
                    } else {
                        self.ledger.admit(&r, &peer, item.size).map(|()| {
                            self.ledger.added(&item);
                            item
                        })
                    }
                }
                _ => Err(DepositReject::NotAcceptable),
            };
            match verdict {
                Ok(item) => {
                    out.results.push(None);
                    out.items.push(item);
                    out.envelopes.push(env);
                }
                Err(why) => out.results.push(Some(why)),
            }
        }
        out
    }

    /// The store held `items` (`fresh[i]`: new, rather than these exact
    /// bytes already held). Items a co-holder hands on (not their sender,
    /// whose outbox copy serves no fetch) count as held by it: by their
    /// hash, so other bytes under a real id say nothing of the real item.
    /// Returns whether anything was new.
    pub fn stored(&mut self, peer: PeerId, admitted: &Admitted, fresh: &[bool]) -> bool {
        let from = peer.to_bytes();
        for ((item, env), new) in admitted.items.iter().zip(&admitted.envelopes).zip(fresh) {
            if !new {
                // Counted in `admit`, but held already.
                self.ledger.removed(item);
            }
            if env.from != from
                && let Some(h) = ItemHash::of(env)
            {
                self.handed
                    .entry(item.recipient)
                    .or_default()
                    .gave(&[peer], &[h]);
            }
        }
        fresh.iter().any(|n| *n)
    }

    /// The store could not hold what `admit` counted.
    pub fn not_stored(&mut self, admitted: &mut Admitted) {
        admitted.items.iter().for_each(|i| self.ledger.removed(i));
        admitted
            .results
            .iter_mut()
            .filter(|r| r.is_none())
            .for_each(|r| *r = Some(DepositReject::Unavailable));
    }

    /// Items went (acked, purged, handed on): uncount them, and forget
    /// what peers hold of a recipient of whom nothing is left here.
    pub fn removed(&mut self, gone: &[HeldItem]) {
        for item in gone {
            self.ledger.removed(item);
        }
        let ledger = &self.ledger;
        self.handed.retain(|r, _| ledger.holds_for(r));
    }

    /// Recipients with items here.
    pub fn recipients(&self) -> Vec<PeerId> {
        self.ledger.recipients()
    }

    /// Whether a new peer is closer than we are to a mailbox we hold.
    pub fn outranked_by(&self, peer: &PeerId) -> bool {
        self.recipients()
            .iter()
            .any(|r| outranks(&mailbox_key(r), peer, &self.me))
    }

    /// Before a hand-off pass over `recipient`'s `items` (every one held):
    /// forgets confirmations of items no longer held, and returns what is
    /// known of who holds what.
    pub fn known(&mut self, recipient: &PeerId, items: &[ItemHash]) -> Handed {
        let held: HashSet<ItemHash> = items.iter().copied().collect();
        let Some(h) = self.handed.get_mut(recipient) else {
            return Handed::default();
        };
        if h.keep_only(&held) {
            self.handed.remove(recipient);
            return Handed::default();
        }
        h.clone()
    }

    /// A pass ranked `ranking` the closest and `peers` confirmed `items`.
    /// Nothing is recorded for a recipient of whom nothing is held (its
    /// items went while the pass ran).
    fn handed_off(
        &mut self,
        recipient: PeerId,
        ranking: &[PeerId],
        peers: &[PeerId],
        items: &[ItemHash],
    ) {
        if !self.ledger.holds_for(&recipient) {
            return;
        }
        let handed = self.handed.entry(recipient).or_default();
        handed.ranked(ranking);
        handed.gave(peers, items);
    }

    /// Recipients whose hand-off bookkeeping is kept (tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.handed.len()
    }
}

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
    /// Deposits taken off the channel (read through [`MailboxPause`]).
    taken: Arc<AtomicU64>,
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
                        if matches!(request, MailboxRequest::Deposit(_)) {
                            self.taken.fetch_add(1, Ordering::SeqCst);
                        }
                        let response = self.serve(peer, request).await;
                        self.net.mailbox_respond(channel, response).await;
                    }
                    Some(Job::NewPeer(peer)) => self.new_peer(peer),
                    Some(Job::Pause(reply)) => {
                        let (release, wait) = std::sync::mpsc::channel::<()>();
                        drop(self.queue.submit(move |_| {
                            let _ = wait.recv();
                            Ok(())
                        }));
                        let _ = reply.send(MailboxPause {
                            _release: release,
                            taken: self.taken.clone(),
                            before: self.taken.load(Ordering::SeqCst),
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
        let me = self.rules.me;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::mailbox::holders;

    fn envelope(to: PeerId, from: PeerId, id: MessageId, fill: u8) -> Envelope {
        Envelope {
            id,
            to: to.to_bytes(),
            from: from.to_bytes(),
            nonce: [0; 24],
            sealed: vec![fill; 64],
        }
    }

    /// Admits and "stores" a batch from `peer` (every item new).
    fn deposit(rules: &mut Rules, peer: PeerId, envs: Vec<Envelope>) -> Vec<Option<DepositReject>> {
        let admitted = rules.admit(peer, envs, 1);
        let fresh = vec![true; admitted.items.len()];
        rules.stored(peer, &admitted, &fresh);
        admitted.results
    }

    #[test]
    fn junk_under_a_real_id_does_not_count_as_holding_the_real_item() {
        let (jack, alice) = (PeerId::random(), PeerId::random());
        let key = mailbox_key(&jack);
        // Mallory is the closest to Jack's mailbox; we are outranked by
        // three peers, so we hand on and would let go.
        let top = holders(&key, (0..6).map(|_| PeerId::random()), &[], 6);
        let (mallory, me) = (top[0], top[4]);
        let mut rules = Rules::new(me, Quotas::default());
        let id = MessageId::random();
        let real = envelope(jack, alice, id, 1);
        let junk = envelope(jack, alice, id, 0xEE);
        assert_eq!(deposit(&mut rules, alice, vec![real.clone()]), vec![None]);
        // Mallory "hands on" other bytes under the real id.
        assert_eq!(deposit(&mut rules, mallory, vec![junk.clone()]), vec![None]);

        let items: Vec<ItemHash> = [&real, &junk]
            .iter()
            .filter_map(|e| ItemHash::of(e))
            .collect();
        let known = rules.known(&jack, &items);
        assert!(known.has(&mallory, &items[1]), "Mallory gave us the junk");
        assert!(!known.has(&mallory, &items[0]), "not the real item");
        let plan = handoff(&key, top.clone(), me, jack, 3, &known.holding(&items));
        assert!(!plan.keep);
        assert!(
            plan.targets.contains(&mallory),
            "Mallory must confirm the real bytes itself: {:?}",
            plan.targets
        );
        // The honest co-holders confirm; Mallory does not: we keep ours.
        let honest: Vec<PeerId> = plan
            .targets
            .iter()
            .filter(|p| **p != mallory)
            .copied()
            .collect();
        assert!(!plan.lets_go(&honest), "let go of the real item on junk");
        assert!(plan.lets_go(&plan.targets));
    }

    #[test]
    fn what_peers_hold_is_forgotten_once_nothing_is_left() {
        let (jack, jill, alice, coholder) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        let mut rules = Rules::new(PeerId::random(), Quotas::default());
        let for_jack = envelope(jack, alice, MessageId::random(), 1);
        let for_jill = envelope(jill, alice, MessageId::random(), 2);
        deposit(&mut rules, coholder, vec![for_jack.clone(), for_jill]);
        assert_eq!(rules.tracked(), 2);
        let h = ItemHash::of(&for_jack).unwrap();
        let pass = [coholder, PeerId::random()];
        rules.handed_off(jack, &pass, &pass, &[h]);
        // Jack fetched and acked everything: his entry goes, Jill's stays.
        let item = |r| HeldItem {
            recipient: r,
            depositor: coholder,
            size: 64,
            expires_at: 1,
        };
        rules.removed(&[item(jack)]);
        assert_eq!(rules.tracked(), 1);
        // A pass that ends after the items went records nothing.
        rules.handed_off(jack, &pass, &pass, &[h]);
        assert_eq!(rules.tracked(), 1);
        rules.removed(&[item(jill)]);
        assert_eq!(rules.tracked(), 0);
    }

    #[test]
    fn oversized_and_misaddressed_envelopes_are_refused_by_kind() {
        let (me, jack, alice) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut rules = Rules::new(me, Quotas::default());
        let mut big = envelope(jack, alice, MessageId::random(), 1);
        big.sealed = vec![1; MAX_HELD_ENVELOPE];
        let to_me = envelope(me, alice, MessageId::random(), 2);
        let ok = envelope(jack, alice, MessageId::random(), 3);
        let admitted = rules.admit(alice, vec![big, to_me, ok.clone()], 1);
        assert_eq!(
            admitted.results,
            vec![
                Some(DepositReject::TooLarge),
                Some(DepositReject::NotAcceptable),
                None
            ]
        );
        assert_eq!(admitted.envelopes, vec![ok]);
    }
}
