//! The mailbox side of the messaging service: depositing for offline
//! recipients and starting the fetches of our own ([`super::fetch`]).
//! Serving the mailboxes we hold and handing them on is the holder's
//! ([`super::holder`]). Policy comes from [`crate::node::mailbox`].

use std::time::{Duration, Instant};

use futures::future::join_all;
use libp2p::PeerId;
use tracing::debug;

use super::fetch::fetch_own;
use super::{Internal, Service};
use crate::net::NetClient;
use crate::node::mailbox::{holders, quorum};
use crate::wire::mailbox::{DEPOSIT_BATCH, MailboxRequest, MailboxResponse, mailbox_key};
use crate::wire::message::{Envelope, MessageId};

/// Delay that coalesces a burst of routing-table changes.
const SETTLE: Duration = Duration::from_millis(100);
/// Least time between two reactions to routing-table changes; for our own
/// mailbox it doubles after every fetch, up to the poll interval.
const REACT_EVERY: Duration = Duration::from_secs(10);

impl Service {
    /// `peer` entered our routing table. If it may hold mail our last fetch
    /// did not ask for, look into our mailbox, after a short settle and at
    /// most every [`REACT_EVERY`]; the first fetch (start-up: the first
    /// peer is known) is at once. (Whether it outranks a holder of a
    /// mailbox we keep is the holder's question: [`super::holder`].)
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
    }

    /// Starts whatever mailbox work is due.
    pub(super) async fn mailbox_timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_poll {
            self.next_poll = now + self.mcfg.poll;
            self.fetch_due = super::fetch::due_by(self.fetch_due, now);
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
}

/// Deposits `envs` with one holder in batches; per envelope, whether the
/// holder stored it.
pub(super) async fn deposit_all(net: &NetClient, holder: PeerId, envs: &[Envelope]) -> Vec<bool> {
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
