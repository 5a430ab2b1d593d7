//! The mailbox side of the messaging service: depositing for offline
//! recipients, serving the mailboxes we hold, handing them on to closer
//! peers, and starting the fetches of our own ([`super::fetch`]). Policy
//! comes from [`crate::node::mailbox`].

use std::time::{Duration, Instant};

use futures::future::join_all;
use libp2p::PeerId;
use tracing::{debug, info, warn};

use super::fetch::fetch_own;
use super::{Internal, Service};
use crate::clock::unix_ms;
use crate::net::NetClient;
use crate::node::mailbox::{handoff, holders, outranks, quorum};
use crate::store::HeldItem;
use crate::wire::mailbox::{
    DEPOSIT_BATCH, DepositReject, MailboxRequest, MailboxResponse, PAGE_BYTES, PAGE_ITEMS,
    mailbox_key,
};
use crate::wire::message::{Envelope, MessageId};

/// Delay that coalesces a burst of routing-table changes.
const SETTLE: Duration = Duration::from_millis(100);
/// Least time between two reactions to routing-table changes; for our own
/// mailbox it doubles after every fetch, up to the poll interval.
const REACT_EVERY: Duration = Duration::from_secs(10);
/// How often expired items are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

impl Service {
    pub(super) async fn load_ledger(&mut self) -> Result<(), crate::store::StoreError> {
        for item in self.blocking(|s| s.held_items()).await? {
            self.ledger.added(&item);
        }
        Ok(())
    }

    /// `peer` entered our routing table. If it may hold mail our last fetch
    /// did not ask for, look into our mailbox; if it is closer than we are
    /// to a mailbox we hold, see who should hold that now. Each after a
    /// short settle and at most every [`REACT_EVERY`]; the first fetch
    /// (start-up: the first peer is known) is at once.
    ///
    /// A fetch costs a lookup plus up to K requests, and in a growing
    /// network every node's table changes all the time: reacting to every
    /// change had 200 idle nodes open 85 connections a second between
    /// them. See [`crate::node::mailbox::Reach`] for why nothing is missed.
    pub(super) fn neighbourhood_changed(&mut self, peer: PeerId) {
        let now = Instant::now();
        if self.reach.may_hold(&peer) {
            let at = self.last_reaction.map_or(now, |t| t + REACT_EVERY).max(now) + SETTLE;
            self.fetch_due.get_or_insert(at);
        }
        let me = self.inbound.sealer.me();
        let closer = |r: &PeerId| outranks(&mailbox_key(r), &peer, &me);
        if self.ledger.recipients().iter().any(closer) {
            let at = self.last_handoff.map_or(now, |t| t + REACT_EVERY).max(now) + SETTLE;
            self.handoff_due.get_or_insert(at);
        }
    }

    /// Starts whatever mailbox work is due.
    pub(super) async fn mailbox_timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_poll {
            self.next_poll = now + self.mcfg.poll;
            self.fetch_due = super::fetch::due_by(self.fetch_due, now);
            // Holders look again at who else holds their mailboxes: a
            // co-holder may have left without our routing table changing,
            // and its copies must be replaced before the others leave too.
            if !self.ledger.recipients().is_empty() {
                self.handoff_due.get_or_insert(now);
            }
        }
        if self.fetch_due.is_some_and(|t| t <= now) && !self.fetching {
            self.fetch_due = None;
            self.last_reaction = Some(now);
            self.fetching = true;
            self.next_poll = now + self.mcfg.poll;
            tokio::spawn(fetch_own(
                self.inbound.clone(),
                self.net.clone(),
                self.mcfg.replicas,
                self.int_tx.clone(),
            ));
        }
        if self.handoff_due.is_some_and(|t| t <= now) {
            self.handoff_due = None;
            self.last_handoff = Some(now);
            self.hand_off().await;
        }
        if now >= self.next_purge {
            self.next_purge = now + PURGE_EVERY.min(self.mcfg.ttl / 2);
            match self.blocking(|s| s.purge_expired(unix_ms())).await {
                Ok(gone) => {
                    for item in &gone {
                        self.ledger.removed(item);
                    }
                    if !gone.is_empty() {
                        info!(count = gone.len(), "purged expired mailbox items");
                    }
                }
                Err(e) => warn!("cannot purge mailbox items: {e}"),
            }
        }
    }

    /// Deposits the messages `ids` for `peer` with its mailbox holders, in
    /// the background; the outcome comes back as `Internal::Deposited`.
    pub(super) fn deposit(&mut self, peer: PeerId, ids: Vec<MessageId>) {
        let envs: Vec<Envelope> = ids
            .iter()
            .filter_map(|id| self.envelopes.get(id).map(|o| o.envelope.clone()))
            .collect();
        let net = self.net.clone();
        let me = self.inbound.sealer.me();
        let (r, want) = (self.mcfg.replicas, self.mcfg.quorum);
        let int_tx = self.int_tx.clone();
        tokio::spawn(async move {
            let key = mailbox_key(&peer);
            let found = net.closest_peers(key.clone()).await.unwrap_or_default();
            let chosen = holders(&key, found, &[me, peer], r);
            let need = quorum(chosen.len(), want);
            let mut ok = vec![0usize; envs.len()];
            let per_holder = join_all(chosen.iter().map(|h| deposit_all(&net, *h, &envs))).await;
            for stored in per_holder {
                for (n, s) in ok.iter_mut().zip(stored) {
                    *n += usize::from(s);
                }
            }
            let results: Vec<(MessageId, bool)> = envs
                .iter()
                .zip(ok)
                .map(|(e, n)| (e.id, !chosen.is_empty() && n >= need))
                .collect();
            let (stored, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, ok)| *ok);
            debug!(%peer, holders = chosen.len(), stored = stored.len(), failed = failed.len(), "deposit round");
            let _ = int_tx
                .send(Internal::Deposited {
                    peer,
                    stored: stored.into_iter().map(|(id, _)| id).collect(),
                    failed: failed.into_iter().map(|(id, _)| id).collect(),
                })
                .await;
        });
    }

    /// Answers a request to the mailboxes we hold. Fetch and Ack are only
    /// for the recipient itself, as authenticated by the connection.
    pub(super) async fn serve_mailbox(
        &mut self,
        peer: PeerId,
        request: MailboxRequest,
    ) -> MailboxResponse {
        let me = self.inbound.sealer.me();
        match request {
            MailboxRequest::Deposit(envs) => {
                let expires_at = unix_ms() + self.mcfg.ttl.as_millis() as u64;
                let mut results = Vec::with_capacity(envs.len());
                let (mut items, mut keep) = (Vec::new(), Vec::new());
                for env in envs.into_iter().take(DEPOSIT_BATCH) {
                    let verdict = match PeerId::from_bytes(&env.to) {
                        Ok(r) if r != me && r != peer && PeerId::from_bytes(&env.from).is_ok() => {
                            let item = HeldItem {
                                recipient: r,
                                depositor: peer,
                                size: env.sealed.len(),
                                expires_at,
                            };
                            // Count this batch's earlier items against the quotas too.
                            self.ledger.admit(&r, &peer, item.size).map(|()| {
                                self.ledger.added(&item);
                                item
                            })
                        }
                        _ => Err(DepositReject::NotAcceptable),
                    };
                    match verdict {
                        Ok(item) => {
                            results.push(None);
                            items.push(item);
                            keep.push(env);
                        }
                        Err(why) => results.push(Some(why)),
                    }
                }
                if items.is_empty() {
                    return MailboxResponse::Deposited(results);
                }
                // Items a co-holder hands on (not their sender, whose
                // outbox copy serves no fetch): that peer holds them.
                let from = peer.to_bytes();
                let ids: Vec<(MessageId, bool)> =
                    keep.iter().map(|e| (e.id, e.from != from)).collect();
                let (held, envs) = (items.clone(), keep);
                match self.blocking(move |s| s.hold(&held, &envs)).await {
                    Ok(fresh) => {
                        // Already-held items were counted twice above.
                        for ((item, new), (id, handed_on)) in items.iter().zip(&fresh).zip(&ids) {
                            if !new {
                                self.ledger.removed(item);
                            }
                            if *handed_on {
                                self.handed
                                    .entry(item.recipient)
                                    .or_default()
                                    .gave(&[peer], &[*id]);
                            }
                        }
                        if fresh.iter().any(|new| *new) {
                            self.handoff_due.get_or_insert(Instant::now() + SETTLE);
                        }
                    }
                    Err(e) => {
                        warn!("cannot hold mailbox items: {e}");
                        items.iter().for_each(|i| self.ledger.removed(i));
                        results
                            .iter_mut()
                            .filter(|r| r.is_none())
                            .for_each(|r| *r = Some(DepositReject::Unavailable));
                    }
                }
                MailboxResponse::Deposited(results)
            }
            MailboxRequest::Fetch { recipient, cursor } => {
                if recipient != peer.to_bytes() {
                    return MailboxResponse::Denied;
                }
                match self
                    .blocking(move |s| s.held_page(&peer, cursor, PAGE_ITEMS, PAGE_BYTES))
                    .await
                {
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
                let ids: Vec<MessageId> = ids
                    .into_iter()
                    .take(crate::wire::mailbox::MAX_ACK_IDS)
                    .collect();
                match self.blocking(move |s| s.release(&peer, &ids)).await {
                    Ok(gone) => {
                        for item in &gone {
                            self.ledger.removed(item);
                        }
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

    /// Copies held mailboxes to their current closest peers that have not
    /// had them from us yet, so R copies stay near each key as peers join
    /// and leave while the recipient is away.
    async fn hand_off(&mut self) {
        let me = self.inbound.sealer.me();
        for recipient in self.ledger.recipients() {
            let envs = match self.blocking(move |s| s.held_for(&recipient)).await {
                Ok(e) if !e.is_empty() => e,
                _ => continue,
            };
            let items: Vec<MessageId> = envs.iter().map(|e| e.id).collect();
            let known = self.handed.get(&recipient).cloned().unwrap_or_default();
            let already = known.holding(&items);
            let (net, r, int_tx) = (self.net.clone(), self.mcfg.replicas, self.int_tx.clone());
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
                        .filter(|e| !known.has(t, &e.id))
                        .cloned()
                        .collect();
                    if deposit_all(&net, *t, &missing).await.iter().all(|s| *s) {
                        done.push(*t);
                    }
                }
                // Outranked, and every closer holder confirmed a copy: let go.
                let release = !plan.keep && done.len() == plan.targets.len();
                if !done.is_empty() || release {
                    debug!(%recipient, peers = done.len(), items = items.len(), release, "handed mailbox on");
                }
                let _ = int_tx
                    .send(Internal::HandedOff {
                        recipient,
                        ranking: plan.ranking,
                        peers: done,
                        items,
                        release,
                    })
                    .await;
            });
        }
    }
}

/// Deposits `envs` with one holder in batches; per envelope, whether the
/// holder stored it.
async fn deposit_all(net: &NetClient, holder: PeerId, envs: &[Envelope]) -> Vec<bool> {
    let mut stored = Vec::with_capacity(envs.len());
    for chunk in envs.chunks(DEPOSIT_BATCH) {
        match net
            .mailbox(holder, MailboxRequest::Deposit(chunk.to_vec()))
            .await
        {
            Ok(MailboxResponse::Deposited(results)) if results.len() == chunk.len() => {
                for (env, r) in chunk.iter().zip(results) {
                    if let Some(why) = r {
                        debug!(id = %env.id, %holder, "deposit refused: {why}");
                    }
                    stored.push(r.is_none());
                }
            }
            _ => stored.extend(std::iter::repeat_n(false, chunk.len())),
        }
    }
    stored
}
