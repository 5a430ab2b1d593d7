//! The inbound side of the messaging service: accepting message streams
//! (a few per peer), one *session* per stream that reads frames, opens
//! them and acknowledges each batch once the store has it, and the store
//! job that files a batch — from a session or from a mailbox fetch —
//! under the rules of [`super::accept`].

#[path = "inbound_items.rs"]
mod items;

use std::collections::HashMap;
use std::sync::Arc;

use futures::io::BufReader;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, warn};

use super::accept::{self, Kind, Path, Verdict};
use super::{
    BATCH, BATCHES_IN_FLIGHT, Event, FIRST_FRAME_TIMEOUT, Internal, MAX_STREAMS_PER_PEER,
    READ_BUFFER, STREAM_IDLE, WINDOW,
};
use crate::clock::unix_ms;
use crate::crypto::Sealer;
use crate::store::{
    Direction, Filed, Flush, MessageState, Relation, Store, StoreError, StoredMessage, Worker,
};
use crate::wire::message::{
    self, Ack, AckResult, Body, Envelope, Frame, Inner, MAX_FRAME, MessageId, ReadFrame,
    ReceiptKind, RejectReason,
};

/// One inbound frame after opening: the message, or why it was refused.
pub(super) type Opened = Result<(MessageId, PeerId, Inner), (Option<MessageId>, RejectReason)>;

/// Follow-ups of a stored incoming batch that need the service's state.
pub(super) struct Received {
    /// Buddies who accepted us: retry their presence subscription.
    pub(super) accepted: Vec<PeerId>,
    /// Messages fetched from a mailbox, new or already in our history:
    /// their senders get a receipt.
    pub(super) delivered: HashMap<PeerId, Vec<MessageId>>,
    /// Receipts for our own messages.
    pub(super) receipts: Vec<(PeerId, ReceiptKind, Vec<MessageId>)>,
    /// 1:1 messages a group item left (a creator's new state), already
    /// in the outbox: the service queues them.
    pub(super) out: Vec<(PeerId, Envelope)>,
    /// 1:1 messages for a direct link only (catch-up answers), in no
    /// outbox.
    pub(super) direct: Vec<(PeerId, Envelope)>,
}

/// What storing incoming messages needs, shared by the service and every
/// session, so a session's batch goes straight to the store worker.
pub(super) struct Inbound {
    pub(super) sealer: Arc<Sealer>,
    pub(super) queue: Worker,
    pub(super) events: broadcast::Sender<Event>,
    /// Store completions back to the service (unbounded: the store thread
    /// must never wait for the service).
    pub(super) done: mpsc::UnboundedSender<Internal>,
    /// What group items need: our identity and sealer.
    pub(super) groups: Arc<crate::node::groups::Ctx>,
    /// Batches being opened at once, across every session: one per core,
    /// so a flood of streams queues here instead of filling the blocking
    /// pool that the store and the other services share.
    pub(super) openers: Arc<tokio::sync::Semaphore>,
    /// Message streams open per peer: a peer gets a few, not as many as it
    /// asks ([`MAX_STREAMS_PER_PEER`]).
    pub(super) sessions: std::sync::Mutex<HashMap<PeerId, usize>>,
}

impl Inbound {
    /// How many message streams `peer` has open to us now.
    #[cfg(feature = "test-util")]
    pub(super) fn sessions_of(&self, peer: &PeerId) -> usize {
        self.sessions
            .lock()
            .map_or(0, |o| o.get(peer).copied().unwrap_or(0))
    }
}

/// Takes the message streams peers open to us, each to a session of its
/// own; a peer gets a few at once, not as many as it asks.
///
/// This task does nothing else, so it takes each stream as soon as it is
/// woken. libp2p-stream hands streams over through a channel with a single
/// slot and drops a stream that finds the slot taken: two negotiations
/// that complete in one poll of a connection lose the second whatever we
/// do here. An honest sender holds one stream per peer (its link), so
/// that costs it at most a link retry; only bursts of streams from one
/// peer, which honest senders never open, meet it often.
pub(super) async fn accept_streams(
    mut incoming: libp2p_stream::IncomingStreams,
    inbound: Arc<Inbound>,
) {
    while let Some((peer, stream)) = incoming.next().await {
        {
            let Ok(mut o) = inbound.sessions.lock() else {
                break;
            };
            let n = o.entry(peer).or_default();
            if *n >= MAX_STREAMS_PER_PEER {
                debug!(%peer, "too many message streams; refusing one");
                continue;
            }
            *n += 1;
        }
        let inbound = inbound.clone();
        tokio::spawn(async move {
            session(peer, stream, inbound.clone()).await;
            if let Ok(mut o) = inbound.sessions.lock()
                && let Some(n) = o.get_mut(&peer)
            {
                *n -= 1;
                if *n == 0 {
                    o.remove(&peer);
                }
            }
        });
    }
}

/// Stores a batch of opened envelopes; once it is on disk (one flush for
/// whatever else is waiting too), tells listeners, answers `reply` with the
/// acks (none if it could not be stored) and hands the follow-ups to the
/// service.
pub(super) fn store_incoming(
    inbound: &Inbound,
    items: Vec<Opened>,
    path: Path,
    reply: oneshot::Sender<Vec<Ack>>,
) {
    let (events, done) = (inbound.events.clone(), inbound.done.clone());
    let groups = inbound.groups.clone();
    inbound.queue.then(
        Flush::Now,
        move |s| file_batch(s, &groups, items, path),
        move |res| match res {
            Ok(filed) => report(filed, path, &events, &done, reply),
            Err(e) => {
                warn!("cannot store incoming messages: {e}");
                let _ = reply.send(Vec::new()); // answered Unavailable
            }
        },
    );
}

/// A batch being filed on the store's thread: the acks so far, and what
/// its messages leave to do.
#[derive(Default)]
struct Batch {
    acks: Vec<Ack>,
    /// Messages to store.
    msgs: Vec<StoredMessage>,
    /// The index in `acks` of each message to store.
    slots: Vec<usize>,
    receipts: Vec<(PeerId, ReceiptKind, Vec<MessageId>)>,
    /// Strangers whose buddy request is new.
    requests: Vec<PeerId>,
    /// Buddies whose buddy request says they accepted us.
    accepted: Vec<PeerId>,
    /// Group items taken (new or seen), by 1:1 message: mailbox receipts.
    group_ids: Vec<(PeerId, MessageId)>,
    /// What group items left for listeners.
    group_events: Vec<crate::node::groups::GroupEvent>,
    /// 1:1 messages group items left, in the outbox already.
    group_out: Vec<(PeerId, Envelope)>,
    /// 1:1 messages group items left for a direct link only.
    group_direct: Vec<(PeerId, Envelope)>,
}

/// What a filed batch leaves: the acks, the messages stored anew and those
/// we had already, and the follow-ups.
struct Outcome {
    acks: Vec<Ack>,
    new_msgs: Vec<StoredMessage>,
    seen: Vec<StoredMessage>,
    receipts: Vec<(PeerId, ReceiptKind, Vec<MessageId>)>,
    requests: Vec<PeerId>,
    accepted: Vec<PeerId>,
    group_ids: Vec<(PeerId, MessageId)>,
    group_events: Vec<crate::node::groups::GroupEvent>,
    group_out: Vec<(PeerId, Envelope)>,
    group_direct: Vec<(PeerId, Envelope)>,
}

/// Files a batch (the store worker's job): reads the facts each message's
/// fate depends on and applies the verdicts of [`accept`].
fn file_batch(
    s: &Store,
    groups: &crate::node::groups::Ctx,
    items: Vec<Opened>,
    path: Path,
) -> Result<Outcome, StoreError> {
    let now = unix_ms();
    let mut b = Batch {
        acks: Vec::with_capacity(items.len()),
        ..Batch::default()
    };
    let mut last: Option<(PeerId, Relation)> = None;
    for item in items {
        let (id, from, inner) = match item {
            Ok(x) => x,
            Err((id, reason)) => {
                b.acks.push(Ack {
                    id,
                    result: AckResult::Rejected(reason),
                });
                continue;
            }
        };
        // A batch usually comes from one peer: look it up once.
        let relation = match last {
            Some((p, r)) if p == from => r,
            _ => s.relation(&from)?,
        };
        last = Some((from, relation));
        let result = b.take(s, groups, (id, from, inner), relation, now, path)?;
        b.acks.push(Ack {
            id: Some(id),
            result,
        });
    }
    let filed = s.insert_incoming(&b.msgs)?;
    let (mut new_msgs, mut seen) = (Vec::new(), Vec::new());
    for ((slot, m), f) in b.slots.into_iter().zip(b.msgs).zip(filed) {
        b.acks[slot].result = accept::settle(f, path);
        match f {
            Filed::New => new_msgs.push(m),
            Filed::Duplicate => seen.push(m),
            Filed::Full => {}
        }
    }
    Ok(Outcome {
        acks: b.acks,
        new_msgs,
        seen,
        receipts: b.receipts,
        requests: b.requests,
        accepted: b.accepted,
        group_ids: b.group_ids,
        group_events: b.group_events,
        group_out: b.group_out,
        group_direct: b.group_direct,
    })
}

impl Batch {
    /// Applies the verdict on one message from `from`; returns its ack
    /// (a stored message's is settled once the store has filed it).
    fn take(
        &mut self,
        s: &Store,
        groups: &crate::node::groups::Ctx,
        (id, from, inner): (MessageId, PeerId, Inner),
        relation: Relation,
        now: u64,
        path: Path,
    ) -> Result<AckResult, StoreError> {
        let verdict = accept::decide(relation, Kind::of(&inner.body), inner.sent_at, now, path);
        Ok(match (verdict, inner.body) {
            (Verdict::Refuse(reason), _) => AckResult::Rejected(reason),
            (
                Verdict::Store { request },
                Body::Content {
                    content_type,
                    subject,
                    data,
                },
            ) => {
                self.slots.push(self.acks.len());
                self.msgs.push(StoredMessage {
                    id,
                    peer: from.to_bytes(),
                    direction: Direction::In,
                    sent_at: inner.sent_at,
                    stored_at: now,
                    content_type,
                    subject,
                    data,
                    state: MessageState::Unread,
                    request,
                });
                AckResult::Accepted
            }
            (Verdict::ApplyReceipt, Body::Receipt { kind, ids }) => {
                self.receipts.push((from, kind, ids));
                AckResult::Accepted
            }
            (Verdict::BuddyRequest(requester), _) => {
                self.take_request(s, from, requester, inner.sent_at, now)?
            }
            (Verdict::Group, Body::Group(bytes)) => {
                self.take_group(s, groups, (id, from), &bytes, now, path)?
            }
            // `decide` stores only content, applies only receipts and
            // hands only group items on: no other pair comes.
            (Verdict::Store { .. } | Verdict::ApplyReceipt | Verdict::Group, _) => {
                AckResult::Rejected(RejectReason::Malformed)
            }
        })
    }
}

/// Tells listeners about a filed batch, answers its acks and hands the
/// follow-ups to the service.
fn report(
    filed: Outcome,
    path: Path,
    events: &broadcast::Sender<Event>,
    done: &mpsc::UnboundedSender<Internal>,
    reply: oneshot::Sender<Vec<Ack>>,
) {
    let Outcome {
        acks,
        new_msgs,
        seen,
        receipts,
        requests,
        accepted,
        group_ids,
        group_events,
        group_out,
        group_direct,
    } = filed;
    for e in group_events {
        let _ = events.send(Event::Group(e));
    }
    for peer in requests {
        let _ = events.send(Event::BuddyRequest { peer });
    }
    // A message fetched from a mailbox tells its sender nothing by
    // itself: it gets an automatic delivery receipt. (On the direct
    // path the ack already did.) One fetched again that we already
    // have gets one too: a crash after storing it may have lost the
    // first, and its sender would otherwise deposit it forever.
    let mut delivered: HashMap<PeerId, Vec<MessageId>> = HashMap::new();
    if path == Path::Mailbox {
        for m in new_msgs.iter().chain(&seen) {
            if let Some(p) = m.peer_id() {
                delivered.entry(p).or_default().push(m.id);
            }
        }
        for (p, id) in group_ids {
            delivered.entry(p).or_default().push(id);
        }
    }
    for m in new_msgs {
        let _ = events.send(Event::Message(m));
    }
    let _ = reply.send(acks);
    if !(accepted.is_empty()
        && delivered.is_empty()
        && receipts.is_empty()
        && group_out.is_empty()
        && group_direct.is_empty())
    {
        let _ = done.send(Internal::Received(Received {
            accepted,
            delivered,
            receipts,
            out: group_out,
            direct: group_direct,
        }));
    }
}

/// One inbound stream: frames are read by one task ([`read_frames`]) and
/// processed in batches by another ([`file_frames`]), so a batch is stored
/// with a single flush; acks are written in order by a third
/// ([`write_acks`]), so the next batch is opened and queued for the store
/// while this one is being flushed.
async fn session(peer: PeerId, stream: Stream, inbound: Arc<Inbound>) {
    let (r, w) = futures::AsyncReadExt::split(stream);
    let (frame_tx, frame_rx) = mpsc::channel::<ReadFrame>(WINDOW);
    let reader = tokio::spawn(read_frames(peer, r, frame_tx));
    // Bounded: a peer that ignores its window cannot queue store work
    // without limit.
    let (ack_tx, ack_rx) = mpsc::channel::<QueuedBatch>(BATCHES_IN_FLIGHT);
    // When the ack writer stops (the stream broke), `file_frames` stops at
    // its next send; when that stops, the writer drains what is queued.
    tokio::join!(
        file_frames(peer, frame_rx, &inbound, ack_tx),
        write_acks(ack_rx, w)
    );
    reader.abort();
}

/// Reads frames until the stream ends or falls silent (the first frame
/// within [`FIRST_FRAME_TIMEOUT`], the next ones within [`STREAM_IDLE`]).
async fn read_frames(
    peer: PeerId,
    r: futures::io::ReadHalf<Stream>,
    frame_tx: mpsc::Sender<ReadFrame>,
) {
    let mut r = BufReader::with_capacity(READ_BUFFER, r);
    let mut limit = FIRST_FRAME_TIMEOUT;
    loop {
        let f = match tokio::time::timeout(limit, message::read_frame(&mut r, MAX_FRAME)).await {
            Ok(Ok(f)) => f,
            Ok(Err(_)) => ReadFrame::Eof,
            Err(_) => {
                debug!(%peer, "message stream silent; closing it");
                ReadFrame::Eof
            }
        };
        limit = STREAM_IDLE;
        let end = !matches!(f, ReadFrame::Frame(_));
        if frame_tx.send(f).await.is_err() || end {
            return;
        }
    }
}

/// Most frames a batch may hold to be opened on the session's own task:
/// opening a few frames takes microseconds, less than waking a thread of
/// the blocking pool and coming back, which a lone message's round trip
/// would otherwise pay on each side.
const OPEN_HERE: usize = 4;

/// Gathers what frames are ready (up to [`BATCH`]), opens them (a few on
/// this task, more on the blocking pool) and hands them to the store as
/// one batch, whose acks [`write_acks`] awaits.
async fn file_frames(
    peer: PeerId,
    mut frame_rx: mpsc::Receiver<ReadFrame>,
    inbound: &Inbound,
    ack_tx: mpsc::Sender<QueuedBatch>,
) {
    while let Some(first) = frame_rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match frame_rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let (items, close) = if batch.len() <= OPEN_HERE {
            open_batch(peer, batch, &inbound.sealer)
        } else {
            // Decryption is CPU work: on the blocking pool, not this
            // worker, and no more batches at once than there are cores.
            let Ok(permit) = inbound.openers.clone().acquire_owned().await else {
                break;
            };
            let sealer = inbound.sealer.clone();
            let opened = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                open_batch(peer, batch, &sealer)
            })
            .await;
            match opened {
                Ok(opened) => opened,
                Err(e) => {
                    // Its frames go unacked: the sender offers them again.
                    warn!(%peer, "opening a message batch failed: {e}");
                    break;
                }
            }
        };
        let ids: Vec<Option<MessageId>> = items
            .iter()
            .map(|i| match i {
                Ok((id, _, _)) => Some(*id),
                Err((id, _)) => *id,
            })
            .collect();
        let (reply_tx, reply_rx) = oneshot::channel();
        store_incoming(inbound, items, Path::Direct, reply_tx);
        if ack_tx.send((ids, reply_rx, close)).await.is_err() || close {
            break;
        }
    }
}

/// Opens a batch of frames up to the first that ends the stream (its end,
/// or an oversize frame, refused `TooLarge`); whether the stream closes.
fn open_batch(peer: PeerId, batch: Vec<ReadFrame>, sealer: &Sealer) -> (Vec<Opened>, bool) {
    let mut items = Vec::with_capacity(batch.len());
    for f in batch {
        match f {
            ReadFrame::Frame(bytes) => items.push(open_frame(sealer, &bytes)),
            ReadFrame::TooLarge(len) => {
                debug!(%peer, len, "oversize frame; closing the stream");
                items.push(Err((None, RejectReason::TooLarge)));
                return (items, true);
            }
            ReadFrame::Eof => return (items, true),
        }
    }
    (items, false)
}

/// Writes each batch's acks, in order, once the store answered (all of
/// a batch's in one write); a batch the store could not take is answered
/// `Unavailable`, so its sender retries later.
async fn write_acks(
    mut ack_rx: mpsc::Receiver<QueuedBatch>,
    mut w: futures::io::WriteHalf<Stream>,
) {
    while let Some((ids, reply, close)) = ack_rx.recv().await {
        let mut acks = reply.await.unwrap_or_default();
        if acks.len() != ids.len() {
            acks = ids
                .into_iter()
                .map(|id| Ack {
                    id,
                    result: AckResult::Rejected(RejectReason::Unavailable),
                })
                .collect();
        }
        let mut buf = Vec::new();
        for ack in acks {
            if let Ok(bytes) = crate::wire::encode(&ack) {
                let _ = message::push_frame(&mut buf, &bytes);
            }
        }
        if write_out(&mut w, &mut buf).await.is_err() {
            return;
        }
        if close {
            break;
        }
    }
    let _ = w.close().await;
}

/// Writes and flushes what `buf` gathered, and empties it.
pub(super) async fn write_out<W: futures::AsyncWrite + Unpin>(
    w: &mut W,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    if !buf.is_empty() {
        w.write_all(buf).await?;
        w.flush().await?;
        buf.clear();
    }
    Ok(())
}

/// A batch handed to the store, waiting for its acks: the ids it carried,
/// the store's answer, and whether the stream closes after it.
type QueuedBatch = (Vec<Option<MessageId>>, oneshot::Receiver<Vec<Ack>>, bool);

/// Decodes and opens one frame; any failure becomes a typed rejection.
fn open_frame(sealer: &Sealer, bytes: &[u8]) -> Opened {
    let Frame::Deliver(env) = crate::wire::decode::<Frame>(bytes, MAX_FRAME)
        .map_err(|_| (None, RejectReason::Malformed))?;
    open_envelope(sealer, &env)
}

/// Opens one envelope; any failure becomes a typed rejection.
pub(super) fn open_envelope(sealer: &Sealer, env: &Envelope) -> Opened {
    let (from, inner) = message::open(sealer, env).map_err(|r| (Some(env.id), r))?;
    Ok((env.id, from, inner))
}
