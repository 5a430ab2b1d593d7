//! Message history, the durable outbox and the buddy relation hook.
//!
//! Layout: `msgs` holds every message under `peer ‖ sent_at ‖ id ‖ dir`, so a
//! conversation is one ordered prefix scan (by sent_at, then id); `msg_index`
//! maps `dir ‖ peer ‖ id` of an outgoing message to that key, for the state
//! changes its receipts bring; `outbox` holds the sealed envelope of every
//! outgoing message not yet delivered. An incoming message needs no index
//! entry: its key is known from the message itself, so one compare-and-swap
//! both deduplicates and stores it (databases written before this still
//! hold index entries for incoming messages; nothing reads them).
//!
//! No write here uses a sled transaction or batch: in sled 0.34 each of
//! those seals the log buffer and writes it out on its own, which made one
//! transaction per sent message cost more than everything else on the send
//! path together (throughput 7.8 k → 16–19 k msgs/s without it). Atomicity
//! comes from write order instead: sled recovers its log up to the first
//! torn entry, i.e. a prefix of each thread's writes, and an outgoing
//! message's outbox row is written first and carries the history row, so
//! whatever prefix survives a crash, [`Store::outbox`] can restore the rest.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::wire::message::{Envelope, MessageId};

pub(super) const MSGS: &str = "msgs";
pub(super) const INDEX: &str = "msg_index";
pub(super) const OUTBOX: &str = "outbox";
const MAX_ROW: usize = 256 * 1024;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Received.
    In,
    /// Sent by us.
    Out,
}

/// Where a message stands. Outgoing: queued → stored → delivered → read,
/// or failed (refused by the recipient). Incoming: unread → read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageState {
    /// In our outbox, not yet accepted anywhere.
    Queued,
    /// Deposited in the recipient's mailboxes (replicated), not yet fetched.
    Stored,
    /// The recipient's node has it.
    Delivered,
    /// The recipient (or we, for incoming) has read it.
    Read,
    /// Incoming, not yet read.
    Unread,
    /// Refused by the recipient's node; will not be retried.
    Failed,
}

impl MessageState {
    /// Lower-case name used by the API and CLI.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Stored => "stored",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Unread => "unread",
            Self::Failed => "failed",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Queued | Self::Unread => 0,
            Self::Stored => 1,
            Self::Delivered => 2,
            Self::Read | Self::Failed => 3,
        }
    }
}

/// A message as kept in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Its id.
    pub id: MessageId,
    /// The other party (PeerId bytes).
    #[serde(with = "serde_bytes")]
    pub peer: Vec<u8>,
    /// Which way.
    pub direction: Direction,
    /// Sender's clock, Unix ms.
    pub sent_at: u64,
    /// Our clock when stored, Unix ms.
    pub stored_at: u64,
    /// MIME type.
    pub content_type: String,
    /// Optional subject.
    pub subject: Option<String>,
    /// Body.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Where it stands.
    pub state: MessageState,
    /// Incoming from someone who is not a buddy: listed under requests.
    pub request: bool,
}

impl StoredMessage {
    /// The other party.
    pub fn peer_id(&self) -> Option<PeerId> {
        PeerId::from_bytes(&self.peer).ok()
    }
}

/// What [`Store::insert_incoming`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filed {
    /// Stored: not seen before.
    New,
    /// Already stored (a resent or refetched copy): nothing written.
    Duplicate,
    /// Not stored: from a stranger over its cap or the cap for all
    /// strangers. Its sender keeps it.
    Full,
}

#[derive(Serialize, Deserialize)]
struct OutboxRow {
    #[serde(with = "serde_bytes")]
    to: Vec<u8>,
    envelope: Envelope,
    /// The history row of the message (none for receipts), so a crash
    /// between the outbox write and the history write loses nothing.
    #[serde(default)]
    message: Option<StoredMessage>,
}

/// [`OutboxRow`] as written: borrows, so nothing is cloned to store it.
#[derive(Serialize)]
struct OutboxRowRef<'a> {
    #[serde(with = "serde_bytes")]
    to: &'a [u8],
    envelope: &'a Envelope,
    message: Option<&'a StoredMessage>,
}

fn peer_prefix(peer: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(peer.len() + 1);
    k.push(peer.len() as u8);
    k.extend_from_slice(peer);
    k
}

fn msg_key(m: &StoredMessage) -> Vec<u8> {
    let mut k = peer_prefix(&m.peer);
    k.extend_from_slice(&m.sent_at.to_be_bytes());
    k.extend_from_slice(&m.id.0);
    k.push(m.direction as u8);
    k
}

fn index_key(dir: Direction, peer: &[u8], id: &MessageId) -> Vec<u8> {
    let mut k = vec![dir as u8];
    k.extend_from_slice(peer);
    k.extend_from_slice(&id.0);
    k
}

pub(super) fn enc<T: Serialize>(v: &T, tree: &'static str) -> Result<Vec<u8>, StoreError> {
    crate::wire::encode(v).map_err(|_| StoreError::Corrupt(tree))
}

pub(super) fn dec<T: serde::de::DeserializeOwned>(
    b: &[u8],
    tree: &'static str,
) -> Result<T, StoreError> {
    crate::wire::decode(b, MAX_ROW).map_err(|_| StoreError::Corrupt(tree))
}

impl Store {
    /// Records outgoing messages and their sealed envelopes in the outbox
    /// and the history. Not flushed: the caller makes it durable (the
    /// messaging service's queue flushes once for many such writes).
    pub fn insert_outgoing(&self, items: &[(StoredMessage, Envelope)]) -> Result<(), StoreError> {
        for (msg, envelope) in items {
            // Outbox row first: it carries the history row (module doc).
            self.put_outbox(&msg.peer, envelope, Some(msg))?;
            self.insert_history(msg)?;
        }
        Ok(())
    }

    fn put_outbox(
        &self,
        to: &[u8],
        envelope: &Envelope,
        message: Option<&StoredMessage>,
    ) -> Result<(), StoreError> {
        let row = OutboxRowRef {
            to,
            envelope,
            message,
        };
        self.outbox.put(envelope.id.0, enc(&row, OUTBOX)?)?;
        Ok(())
    }

    /// Rewrites the history row of a message whose row the caller holds,
    /// without reading it back (the messaging service keeps an outgoing
    /// message's row until it leaves the outbox). The caller knows that
    /// the state moves forward.
    pub fn put_history(&self, msg: &StoredMessage) -> Result<(), StoreError> {
        self.msgs.put(msg_key(msg), enc(msg, MSGS)?)?;
        Ok(())
    }

    /// The row and its index entry (for the state changes receipts bring).
    fn insert_history(&self, msg: &StoredMessage) -> Result<(), StoreError> {
        self.put_history(msg)?;
        self.index
            .put(index_key(msg.direction, &msg.peer, &msg.id), msg_key(msg))?;
        Ok(())
    }

    /// Stores incoming messages not seen before. Returns, per message,
    /// whether it was new, a copy of one stored, or refused: a stranger's
    /// message (a request) over the caps of
    /// [`strangers`](super::strangers). Not flushed: the caller makes the
    /// batch durable before acknowledging it.
    pub fn insert_incoming(&self, msgs: &[StoredMessage]) -> Result<Vec<Filed>, StoreError> {
        let mut filed = Vec::with_capacity(msgs.len());
        for m in msgs {
            let key = msg_key(m);
            // A copy is a duplicate, whatever the caps say.
            if m.request
                && !self.msgs.contains_key(&key)?
                && !self.count_request_message(&m.peer)?
            {
                filed.push(Filed::Full);
                continue;
            }
            // One operation checks and writes: a copy of a message (resent,
            // or fetched from a mailbox too) is the same sealed envelope,
            // so it has the same sender clock and lands on the same key.
            let new = self
                .msgs
                .compare_and_swap(key, None::<&[u8]>, Some(enc(m, MSGS)?))?
                .is_ok();
            filed.push(if new { Filed::New } else { Filed::Duplicate });
        }
        Ok(filed)
    }

    /// Moves a message exchanged with `peer` forward to `state` (never
    /// backwards, so a late "delivered" cannot undo "read"). Returns the
    /// message if it changed; a message with anyone else is left alone.
    pub fn advance(
        &self,
        dir: Direction,
        peer: &PeerId,
        id: &MessageId,
        state: MessageState,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let Some(key) = self.index.get(index_key(dir, &peer.to_bytes(), id))? else {
            return Ok(None);
        };
        let Some(row) = self.msgs.get(&key)? else {
            return Ok(None);
        };
        let mut m: StoredMessage = dec(&row, MSGS)?;
        // The index is keyed by the peer already; the row is checked too,
        // as the rule must not rest on how a key happens to be laid out.
        if m.peer != peer.to_bytes() || m.direction != dir || m.state.rank() >= state.rank() {
            return Ok(None);
        }
        m.state = state;
        self.msgs.put(key, enc(&m, MSGS)?)?;
        Ok(Some(m))
    }

    /// A receipt from `from` for our message `id`: takes it out of the
    /// outbox and moves it forward to `state` — only if `from` is the
    /// message's recipient. Ids are no secret (a mailbox holder sees the
    /// ones it holds), so a receipt from anyone else changes nothing and
    /// the message stays queued. Returns the message if its state changed.
    pub fn receipt(
        &self,
        from: &PeerId,
        id: &MessageId,
        state: MessageState,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let from_b = from.to_bytes();
        if let Some(v) = self.outbox.get(id.0)? {
            let row: OutboxRow = dec(&v, OUTBOX)?;
            if row.to != from_b {
                return Ok(None);
            }
            self.outbox.delete(id.0)?;
        }
        self.advance(Direction::Out, from, id, state)
    }

    /// Queues an envelope that is not part of the visible history (a
    /// receipt). Not flushed: the caller makes it durable.
    pub fn insert_outbox_only(&self, to: &PeerId, envelope: &Envelope) -> Result<(), StoreError> {
        self.put_outbox(&to.to_bytes(), envelope, None)
    }

    /// Takes a message out of the outbox (delivered, or given up).
    pub fn remove_from_outbox(&self, id: &MessageId) -> Result<(), StoreError> {
        self.outbox.delete(id.0)?;
        Ok(())
    }

    /// Everything still in the outbox, to resume after a restart: recipient,
    /// envelope and history row (none for receipts and requests). Puts back
    /// any history row of an outgoing message that a crash cut off.
    #[allow(clippy::type_complexity)]
    pub fn outbox(&self) -> Result<Vec<(PeerId, Envelope, Option<StoredMessage>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.outbox.iter()? {
            let (_, v) = item?;
            let row: OutboxRow = dec(&v, OUTBOX)?;
            let peer = PeerId::from_bytes(&row.to).map_err(|_| StoreError::Corrupt(OUTBOX))?;
            if let Some(m) = &row.message
                && !self
                    .index
                    .contains_key(index_key(m.direction, &m.peer, &m.id))?
            {
                tracing::info!("restoring the history row of message {}", m.id);
                self.insert_history(m)?;
            }
            out.push((peer, row.envelope, row.message));
        }
        Ok(out)
    }

    /// Number of messages waiting in the outbox.
    pub fn outbox_len(&self) -> Result<usize, StoreError> {
        Ok(self.outbox.len()?)
    }

    /// The last `limit` messages exchanged with `peer`, oldest first.
    pub fn conversation(
        &self,
        peer: &PeerId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = Vec::new();
        for item in self.msgs.scan_prefix(peer_prefix(&peer.to_bytes()))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            out.push(dec(&v, MSGS)?);
        }
        out.reverse();
        Ok(out)
    }

    /// The last `limit` messages exchanged with `peer` that are not of
    /// type `hidden`, oldest first, looking through at most `scan` of the
    /// latest messages: a window's history counts the lines it shows (the
    /// parts of a small file have none) with bounded work.
    pub fn conversation_without(
        &self,
        peer: &PeerId,
        limit: usize,
        hidden: &str,
        scan: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = Vec::new();
        let rows = self.msgs.scan_prefix(peer_prefix(&peer.to_bytes()))?.rev();
        for item in rows.take(scan) {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            let m: StoredMessage = dec(&v, MSGS)?;
            if m.content_type != hidden {
                out.push(m);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Incoming messages, in conversation order: from buddies
    /// (`Some(false)`), from strangers (`Some(true)`, the requests), or all
    /// (`None`) in one scan.
    pub fn incoming(&self, requests: Option<bool>) -> Result<Vec<StoredMessage>, StoreError> {
        let mut out = Vec::new();
        for item in self.msgs.iter()? {
            let (_, v) = item?;
            let m: StoredMessage = dec(&v, MSGS)?;
            if m.direction == Direction::In && requests.is_none_or(|r| m.request == r) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Marks every unread message from `peer` read; returns their ids.
    pub fn mark_read(&self, peer: &PeerId) -> Result<Vec<MessageId>, StoreError> {
        let mut ids = Vec::new();
        for item in self.msgs.scan_prefix(peer_prefix(&peer.to_bytes()))? {
            let (k, v) = item?;
            let mut m: StoredMessage = dec(&v, MSGS)?;
            if m.direction == Direction::In && m.state == MessageState::Unread {
                m.state = MessageState::Read;
                self.msgs.put(k, enc(&m, MSGS)?)?;
                ids.push(m.id);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(peer: &PeerId, dir: Direction, sent_at: u64) -> StoredMessage {
        StoredMessage {
            id: MessageId::random(),
            peer: peer.to_bytes(),
            direction: dir,
            sent_at,
            stored_at: sent_at,
            content_type: "text/plain".into(),
            subject: None,
            data: b"hi".to_vec(),
            state: if dir == Direction::In {
                MessageState::Unread
            } else {
                MessageState::Queued
            },
            request: false,
        }
    }

    #[test]
    fn incoming_is_deduplicated_and_conversations_are_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let bob = PeerId::random();
        let (m2, m1) = (msg(&bob, Direction::In, 20), msg(&bob, Direction::In, 10));
        assert_eq!(
            s.insert_incoming(&[m2.clone(), m1.clone(), m2.clone()])
                .unwrap(),
            vec![Filed::New, Filed::New, Filed::Duplicate]
        );
        assert_eq!(
            s.insert_incoming(std::slice::from_ref(&m1)).unwrap(),
            vec![Filed::Duplicate]
        );
        let conv = s.conversation(&bob, 10).unwrap();
        assert_eq!(
            conv.iter().map(|m| m.sent_at).collect::<Vec<_>>(),
            vec![10, 20]
        );
        assert_eq!(s.conversation(&bob, 1).unwrap()[0].sent_at, 20);
        assert_eq!(s.mark_read(&bob).unwrap().len(), 2);
        assert!(s.mark_read(&bob).unwrap().is_empty());
        assert!(s.conversation(&PeerId::random(), 10).unwrap().is_empty());
    }

    #[test]
    fn a_history_without_parts_counts_only_the_lines_shown_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let bob = PeerId::random();
        let text = msg(&bob, Direction::In, 1);
        let mut parts = Vec::new();
        for at in 2..102 {
            let mut p = msg(&bob, Direction::In, at);
            p.content_type = "part".into();
            parts.push(p);
        }
        s.insert_incoming(std::slice::from_ref(&text)).unwrap();
        s.insert_incoming(&parts).unwrap();
        // The last 64 are all parts: the latest line shown is still found.
        let last = s.conversation_without(&bob, 1, "part", 1000).unwrap();
        assert_eq!(last.iter().map(|m| m.id).collect::<Vec<_>>(), vec![text.id]);
        assert_eq!(
            s.conversation_without(&bob, 200, "part", 1000)
                .unwrap()
                .len(),
            1
        );
        // No more than `scan` messages are looked through.
        assert!(
            s.conversation_without(&bob, 1, "part", 50)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_crash_after_the_outbox_write_loses_no_history() {
        let dir = tempfile::tempdir().unwrap();
        let bob = PeerId::random();
        let m = msg(&bob, Direction::Out, 5);
        let env = envelope(&m, &bob);
        {
            // What survives when the log is cut right after the first write
            // of `insert_outgoing`.
            let s = Store::open(dir.path(), 1 << 20).unwrap();
            s.put_outbox(&m.peer, &env, Some(&m)).unwrap();
            s.flush().unwrap();
            assert!(s.conversation(&bob, 10).unwrap().is_empty());
        }
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let resumed = vec![(bob, env.clone(), Some(m.clone()))];
        assert_eq!(s.outbox().unwrap(), resumed);
        assert_eq!(s.conversation(&bob, 10).unwrap(), vec![m.clone()]);
        // Restored once: a second resume finds the row and writes nothing.
        assert_eq!(s.outbox().unwrap(), resumed);
        assert_eq!(s.conversation(&bob, 10).unwrap().len(), 1);
        assert!(
            s.advance(Direction::Out, &bob, &m.id, MessageState::Delivered)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn only_the_recipients_receipt_takes_a_message_out_of_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let (bob, holder) = (PeerId::random(), PeerId::random());
        let m = msg(&bob, Direction::Out, 5);
        s.insert_outgoing(&[(m.clone(), envelope(&m, &bob))])
            .unwrap();
        for state in [MessageState::Delivered, MessageState::Read] {
            assert_eq!(s.receipt(&holder, &m.id, state).unwrap(), None);
            assert_eq!(
                s.advance(Direction::Out, &holder, &m.id, state).unwrap(),
                None
            );
        }
        assert_eq!(s.outbox_len().unwrap(), 1, "still queued for Bob");
        assert_eq!(s.conversation(&bob, 10).unwrap(), vec![m.clone()]);
        // Bob's own receipt does it.
        let read = s.receipt(&bob, &m.id, MessageState::Read).unwrap();
        assert_eq!(read.map(|r| r.state), Some(MessageState::Read));
        assert_eq!(s.outbox_len().unwrap(), 0);
    }

    fn envelope(m: &StoredMessage, to: &PeerId) -> Envelope {
        Envelope {
            id: m.id,
            to: to.to_bytes(),
            from: vec![1],
            nonce: [0; 24],
            sealed: vec![2; 10],
        }
    }

    #[test]
    fn outbox_survives_reopen_and_states_only_advance() {
        let dir = tempfile::tempdir().unwrap();
        let bob = PeerId::random();
        let m = msg(&bob, Direction::Out, 5);
        let env = envelope(&m, &bob);
        {
            let s = Store::open(dir.path(), 1 << 20).unwrap();
            s.insert_outgoing(&[(m.clone(), env.clone())]).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        // The row comes back with the envelope: finishing the message
        // rewrites it without reading it.
        let resumed = s.outbox().unwrap();
        assert_eq!(resumed, vec![(bob, env, Some(m.clone()))]);
        let mut delivered = m.clone();
        delivered.state = MessageState::Delivered;
        s.put_history(&delivered).unwrap();
        assert_eq!(s.conversation(&bob, 10).unwrap(), vec![delivered]);
        assert!(
            s.advance(Direction::Out, &bob, &m.id, MessageState::Read)
                .unwrap()
                .is_some()
        );
        assert!(
            s.advance(Direction::Out, &bob, &m.id, MessageState::Delivered)
                .unwrap()
                .is_none()
        );
        s.remove_from_outbox(&m.id).unwrap();
        assert_eq!(s.outbox_len().unwrap(), 0);
    }
}
