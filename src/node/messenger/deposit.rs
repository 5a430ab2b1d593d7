//! Depositing for offline recipients: when direct delivery fails, the
//! messaging service leaves the envelopes with the peers closest to the
//! recipient's mailbox key ([`crate::node::mailbox::placement`]: which
//! peers, how many must answer `Stored`). [`deposit_all`] also carries the
//! holder's hand-off copies. Fetching our own mailbox is [`super::fetch`]'s;
//! serving the mailboxes we hold is [`super::holder`]'s.

use futures::future::join_all;
use libp2p::PeerId;
use tracing::debug;

use super::{Internal, Service};
use crate::net::NetClient;
use crate::node::mailbox::{holders, quorum};
use crate::wire::mailbox::{DEPOSIT_BATCH, MailboxRequest, MailboxResponse, mailbox_key};
use crate::wire::message::{Envelope, MessageId};

impl Service {
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
            crate::net::stats::count(crate::net::stats::Kind::LookupDeposit);
            let found = net.closest_peers(key.clone()).await.unwrap_or_default();
            let chosen = holders(&key, found, &[me, peer], r);
            let need = quorum(chosen.len(), want);
            let mut ok = vec![0usize; envs.len()];
            let per_holder =
                join_all(chosen.iter().map(|h| deposit_all(&net, *h, envs.clone()))).await;
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
            debug!(%peer, holders = ?chosen, need, stored = stored.len(), failed = failed.len(), "deposit round");
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

/// Deposits `envs` with one holder in batches (moved into the requests,
/// not copied); per envelope, whether the holder stored it.
pub(super) async fn deposit_all(
    net: &NetClient,
    holder: PeerId,
    mut envs: Vec<Envelope>,
) -> Vec<bool> {
    let mut stored = Vec::with_capacity(envs.len());
    while !envs.is_empty() {
        let rest = envs.split_off(envs.len().min(DEPOSIT_BATCH));
        let chunk = std::mem::replace(&mut envs, rest);
        let ids: Vec<MessageId> = chunk.iter().map(|e| e.id).collect();
        match net.mailbox(holder, MailboxRequest::Deposit(chunk)).await {
            Ok(MailboxResponse::Deposited(results)) if results.len() == ids.len() => {
                for (id, r) in ids.iter().zip(results) {
                    if let Some(why) = r {
                        debug!(%id, %holder, "deposit refused: {why}");
                    }
                    stored.push(r.is_none());
                }
            }
            _ => stored.extend(std::iter::repeat_n(false, ids.len())),
        }
    }
    stored
}
