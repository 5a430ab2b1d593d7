//! Fetching our own mailbox from its holders: the task that runs what the
//! fetcher machines ([`crate::node::mailbox::fetcher`]) decide. The holders
//! are the ones the machine names, or, when it asks for a lookup, the
//! mailbox key's neighbourhood (at most [`FETCH_FROM`]). Each is asked
//! concurrently, each within its own
//! [`HolderFetch`], so a slow or hostile one delays nobody's items but its
//! own. Each page is opened off the async workers, filed through the
//! normal incoming path (one flush per page) and acknowledged to the
//! holder, which deletes what we stored. What a holder still has when its
//! fetch stops is asked for again by the next fetch.

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::accept::Path;
use super::inbound::{Inbound, Opened, open_envelope, store_incoming};
use super::{Internal, Service};
use crate::net::NetClient;
use crate::node::mailbox::fetcher::{Ask, HolderFetch, Input, Output, Step, Stop, Why};
pub use crate::node::mailbox::fetcher::{FETCH_ITEMS, FETCH_PAGES, HOLDER_DEADLINE};
use crate::node::mailbox::holders;
use crate::wire::mailbox::{FETCH_FROM, MailboxRequest, MailboxResponse, mailbox_key};
use crate::wire::message::{Body, Envelope, ReceiptKind};

impl Service {
    /// Feeds the fetcher machine and runs what it asks: a fetch of our own
    /// mailbox (reported back as [`Internal::FetchDone`]), or a delivery
    /// receipt.
    pub(super) fn drive_fetcher(&mut self, input: Input) {
        for output in self.fetcher.handle(input, Instant::now()) {
            match output {
                Output::Fetch(ask) => {
                    tokio::spawn(fetch_own(
                        ask,
                        self.inbound.clone(),
                        self.net.clone(),
                        self.mcfg.replicas,
                        self.int_tx.clone(),
                    ));
                }
                Output::Receipt { peer, ids } => {
                    self.send_receipt(peer, ReceiptKind::Delivered, ids)
                }
            }
        }
    }
}

/// Fetches our own mailbox from the holders `ask` names, concurrently,
/// each within [`HolderFetch`]'s bounds, and reports
/// [`Internal::FetchDone`]: the holders asked, whether to fetch again at
/// once, and whether one did not answer.
pub(super) async fn fetch_own(
    ask: Ask,
    inbound: Arc<Inbound>,
    net: NetClient,
    r: usize,
    int_tx: mpsc::Sender<Internal>,
) {
    let me = inbound.sealer.me();
    let asked = match ask {
        Ask::Holders(asked) => asked,
        Ask::Lookup(why) => {
            let key = mailbox_key(&me);
            count_lookup(why);
            let found = net.closest_peers(key.clone()).await.unwrap_or_default();
            // Every peer of the neighbourhood, not just the R closest: a
            // copy left on a peer since outranked is found and cleared too.
            holders(&key, found, &[me], r.max(FETCH_FROM))
        }
    };
    debug!(asked = asked.len(), "fetching our mailbox");
    let ends = join_all(asked.iter().map(|h| fetch_from(*h, &inbound, &net))).await;
    count_ends(&ends);
    let done = Input::done(asked, &ends);
    debug!(?done, "fetched our mailbox");
    let _ = int_tx.send(Internal::FetchDone(done)).await;
}

/// Counts a lookup for a fetch, and why it runs (`net::stats`).
fn count_lookup(why: Why) {
    use crate::net::stats::{Kind, count};
    count(Kind::LookupFetch);
    count(match why {
        Why::Start => Kind::LookupFetchStart,
        Why::Reach => Kind::LookupFetchReach,
        Why::Unanswered => Kind::LookupFetchUnanswered,
        Why::Grown => Kind::LookupFetchGrown,
        Why::Small => Kind::LookupFetchSmall,
        Why::Aged => Kind::LookupFetchAged,
    });
}

/// Counts the fetches from one holder that ended short of the holder's
/// end for want of an answer, or on our side (`net::stats`).
fn count_ends(ends: &[(Stop, bool)]) {
    use crate::net::stats::{Kind, count};
    for (stop, _) in ends {
        match stop {
            Stop::Failed => count(Kind::FetchFailed),
            Stop::Deadline => count(Kind::FetchDeadline),
            Stop::Unfiled => count(Kind::FetchUnfiled),
            _ => {}
        }
    }
}

/// Fetches from one holder until its [`HolderFetch`] says stop; returns
/// why it stopped, and whether to fetch again at once
/// ([`HolderFetch::more`]).
async fn fetch_from(holder: PeerId, inbound: &Arc<Inbound>, net: &NetClient) -> (Stop, bool) {
    let me = inbound.sealer.me().to_bytes();
    let mut run = HolderFetch::new(Instant::now());
    let deadline = tokio::time::Instant::from_std(run.deadline());
    let mut step = run.start();
    let stop = loop {
        let cursor = match step {
            Step::Ask(c) => c,
            Step::Stop(why) => break why,
        };
        let request = MailboxRequest::Fetch {
            recipient: me.clone(),
            cursor,
        };
        let (mut items, next) =
            match tokio::time::timeout_at(deadline, net.mailbox(holder, request)).await {
                Ok(Ok(MailboxResponse::Page { items, next })) => (items, next),
                Ok(_) => break Stop::Failed,
                Err(_) => break Stop::Deadline,
            };
        debug!(%holder, items = items.len(), "a page of our mailbox");
        let verdict = run.page(Instant::now(), items.len(), next);
        items.truncate(verdict.take);
        step = verdict.then;
        if items.is_empty() {
            continue;
        }
        let Some((opened, content)) = open_page(inbound, items).await else {
            break Stop::Unfiled;
        };
        let (tx, rx) = oneshot::channel();
        store_incoming(inbound, opened, Path::Mailbox, tx);
        // The deadline bounds our own storing too (a slow disk): a batch
        // still queued when it passes is stored all the same, but not
        // acknowledged, so the holder keeps it and the next fetch acks it
        // as a duplicate.
        let acks = match tokio::time::timeout_at(deadline, rx).await {
            Ok(acks) => acks.unwrap_or_default(),
            Err(_) => break Stop::Deadline,
        };
        // Not stored: the holder keeps it all for the next fetch.
        let Some(ids) = run.filed(acks, &content) else {
            break Stop::Unfiled;
        };
        let ack = MailboxRequest::Ack {
            recipient: me.clone(),
            ids,
        };
        if tokio::time::timeout_at(deadline, net.mailbox(holder, ack))
            .await
            .is_err()
        {
            break Stop::Deadline;
        }
    };
    if stop != Stop::Drained {
        debug!(%holder, ?stop, "fetch from mailbox holder stopped early");
    }
    (stop, run.more(stop))
}

/// Opens a page's envelopes on the blocking pool (decryption is CPU work
/// that should not hold an async worker); per item, whether it is a
/// message (not a receipt or buddy request, which never count as new).
async fn open_page(
    inbound: &Arc<Inbound>,
    items: Vec<Envelope>,
) -> Option<(Vec<Opened>, Vec<bool>)> {
    let sealer = inbound.sealer.clone();
    let opened = tokio::task::spawn_blocking(move || {
        items
            .iter()
            .map(|e| open_envelope(&sealer, e))
            .collect::<Vec<_>>()
    })
    .await
    .ok()?;
    let content = opened
        .iter()
        .map(|o| matches!(o, Ok((_, _, inner)) if matches!(inner.body, Body::Content { .. })))
        .collect();
    Some((opened, content))
}
