//! Private groups in sled: the groups this node is in or invited to
//! ([`GroupRow`]), each sender's chain per epoch, the group log (messages
//! and membership changes, in order), what was seen (dedupe on sender,
//! epoch and number), and messages waiting for an epoch's secret.
//!
//! Trees are opened on use (sled caches open trees), so the store's
//! struct does not change. The rules live in `node::groups`; this is
//! only how their state is kept.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::wire::group::{GroupId, SignedState};

const GROUPS: &str = "groups";
const CHAINS: &str = "group_chains";
const LOG: &str = "group_log";
const SEEN: &str = "group_seen";
const PENDING: &str = "group_pending";

/// A message kept for its epoch: its sender (PeerId bytes) and its
/// `Body::Group` bytes.
pub type Pending = (Vec<u8>, Vec<u8>);

/// A message taken in an epoch: its sender (PeerId bytes), its number,
/// and the key of its log line (empty if it has none).
pub type Taken = (Vec<u8>, u64, Vec<u8>);

/// Most messages kept per group while their epoch's state has not come.
pub const MAX_PENDING: usize = 1024;

/// A group this node knows, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    /// The latest state, as the creator signed it.
    pub state: SignedState,
    /// The current epoch's secret (`None` once we are removed).
    pub secret: Option<[u8; 32]>,
    /// Accepted by the user (`group join`); until then an invitation.
    pub joined: bool,
    /// We are no longer a member (removed, or we left).
    pub gone: bool,
    /// The previous epoch, for messages in flight when it ended.
    pub prev: Option<PrevEpoch>,
}

/// The epoch before the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrevEpoch {
    /// Its number.
    pub epoch: u64,
    /// Its members (PeerId bytes).
    pub members: Vec<serde_bytes::ByteBuf>,
    /// Its secret.
    pub secret: Option<[u8; 32]>,
    /// When this node took the state that ended it, Unix ms.
    pub ended_at: u64,
}

/// One line of a group's log: a message or a membership change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRow {
    /// Message id (hex of 16 bytes), or `state-<epoch>` for a change.
    pub id: String,
    /// Who wrote it (PeerId bytes); the creator for a change.
    #[serde(with = "serde_bytes")]
    pub from: Vec<u8>,
    /// The writer's clock, Unix ms.
    pub sent_at: u64,
    /// The text, or the change in words.
    pub text: String,
    /// A membership change rather than a message.
    pub system: bool,
    /// The signed group message as it arrived (none for changes): the
    /// same bytes every member received.
    #[serde(with = "serde_bytes")]
    pub wire: Option<Vec<u8>>,
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn corrupt<T>(_: T) -> StoreError {
    StoreError::Corrupt(GROUPS)
}

impl Store {
    /// The group `id`, if known.
    pub fn group(&self, id: &GroupId) -> Result<Option<GroupRow>, StoreError> {
        match self.tree(GROUPS)?.get(id.0)? {
            Some(v) => Ok(Some(crate::wire::decode(&v, usize::MAX).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    /// Writes the group row.
    pub fn put_group(&self, id: &GroupId, row: &GroupRow) -> Result<(), StoreError> {
        let v = crate::wire::encode(row).map_err(corrupt)?;
        self.tree(GROUPS)?.insert(id.0, v)?;
        Ok(())
    }

    /// Every group known, joined or invited.
    pub fn groups(&self) -> Result<Vec<(GroupId, GroupRow)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree(GROUPS)?.iter()? {
            let (k, v) = kv?;
            let id = GroupId(k.as_ref().try_into().map_err(corrupt)?);
            out.push((id, crate::wire::decode(&v, usize::MAX).map_err(corrupt)?));
        }
        Ok(out)
    }

    /// Forgets group `id` entirely (row, chains, log, seen, kept
    /// messages): an invitation withdrawn before it was accepted leaves
    /// nothing behind, so strangers cannot grow the store by inviting and
    /// withdrawing.
    pub fn delete_group(&self, id: &GroupId) -> Result<(), StoreError> {
        for name in [CHAINS, LOG, SEEN, PENDING] {
            let t = self.tree(name)?;
            for k in t.scan_prefix(id.0)?.keys() {
                t.delete(k?)?;
            }
        }
        self.tree(GROUPS)?.remove(id.0)?;
        Ok(())
    }

    /// A sender's chain in an epoch, as CBOR (the rules decode it).
    pub fn group_chain(
        &self,
        id: &GroupId,
        epoch: u64,
        sender: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(CHAINS)?
            .get(key(&[&id.0, &epoch.to_be_bytes(), sender]))?
            .map(|v| v.to_vec()))
    }

    /// Writes a sender's chain.
    pub fn put_group_chain(
        &self,
        id: &GroupId,
        epoch: u64,
        sender: &[u8],
        chain: &[u8],
    ) -> Result<(), StoreError> {
        self.tree(CHAINS)?
            .insert(key(&[&id.0, &epoch.to_be_bytes(), sender]), chain)?;
        Ok(())
    }

    /// Whether (sender, epoch, n) of group `id` was taken before, without
    /// noting it: a receiver notes it only once the message is filed, so a
    /// failure in between leaves the retry to be taken.
    pub fn group_was_seen(
        &self,
        id: &GroupId,
        epoch: u64,
        sender: &[u8],
        n: u64,
    ) -> Result<bool, StoreError> {
        let k = key(&[&id.0, &epoch.to_be_bytes(), &n.to_be_bytes(), sender]);
        Ok(self.tree(SEEN)?.contains_key(k)?)
    }

    /// Whether (sender, epoch, n) of group `id` was taken before; notes it
    /// as taken, with the key of its log line (`at`, from
    /// [`Store::add_group_log`]) so a catch-up answer can find its bytes.
    pub fn group_seen(
        &self,
        id: &GroupId,
        epoch: u64,
        sender: &[u8],
        n: u64,
        at: &[u8],
    ) -> Result<bool, StoreError> {
        let k = key(&[&id.0, &epoch.to_be_bytes(), &n.to_be_bytes(), sender]);
        Ok(self.tree(SEEN)?.insert(k, at)?.is_some())
    }

    /// Every (sender, n) taken in `epoch` of group `id`, by number then
    /// sender, with the key of its log line (empty if it has none): what
    /// a large group's catch-up asks for and answers from.
    pub fn group_seen_in(&self, id: &GroupId, epoch: u64) -> Result<Vec<Taken>, StoreError> {
        let prefix = key(&[&id.0, &epoch.to_be_bytes()]);
        // After the prefix: the number (8 bytes), then the sender.
        let (at, sender_at) = (prefix.len(), prefix.len() + 8);
        let mut out = Vec::new();
        for kv in self.tree(SEEN)?.scan_prefix(&prefix)? {
            let (k, v) = kv?;
            let n = k
                .get(at..sender_at)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or(StoreError::Corrupt(SEEN))?;
            out.push((k[sender_at..].to_vec(), n, v.to_vec()));
        }
        Ok(out)
    }

    /// The log line stored under `at` (a key [`Store::add_group_log`]
    /// returned), if it is still there.
    pub fn group_log_at(&self, at: &[u8]) -> Result<Option<LogRow>, StoreError> {
        match self.tree(LOG)?.get(at)? {
            Some(v) => Ok(Some(crate::wire::decode(&v, usize::MAX).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    /// Adds a line to the group's log, ordered by the writer's clock, then
    /// the id (a sender's own clock never goes back, so its lines stay in
    /// the order it wrote them). Returns the line's key.
    pub fn add_group_log(&self, id: &GroupId, row: &LogRow) -> Result<Vec<u8>, StoreError> {
        let k = key(&[&id.0, &row.sent_at.to_be_bytes(), row.id.as_bytes()]);
        self.tree(LOG)?
            .insert(k.as_slice(), crate::wire::encode(row).map_err(corrupt)?)?;
        Ok(k)
    }

    /// Whether the group's log lines and the messages kept for epochs not
    /// yet here number at least `n` (reads at most `n` keys).
    pub fn group_lines_reach(&self, id: &GroupId, n: usize) -> Result<bool, StoreError> {
        let log = self.tree(LOG)?.scan_prefix(id.0)?.keys().take(n).count();
        let kept = self
            .tree(PENDING)?
            .scan_prefix(id.0)?
            .keys()
            .take(n - log.min(n))
            .count();
        Ok(log + kept >= n)
    }

    /// The last `limit` lines of the group's log, oldest first.
    pub fn group_log(&self, id: &GroupId, limit: usize) -> Result<Vec<LogRow>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree(LOG)?.scan_prefix(id.0)?.rev().take(limit) {
            let (_, v) = kv?;
            out.push(crate::wire::decode(&v, usize::MAX).map_err(corrupt)?);
        }
        out.reverse();
        Ok(out)
    }

    /// Keeps a message whose epoch's state has not come yet (from `from`,
    /// its `Body::Group` bytes); false if the group's buffer is full.
    pub fn add_group_pending(
        &self,
        id: &GroupId,
        epoch: u64,
        from: &[u8],
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let t = self.tree(PENDING)?;
        if t.scan_prefix(id.0)?.count() >= MAX_PENDING {
            return Ok(false);
        }
        let h = blake3::hash(bytes);
        let k = key(&[&id.0, &epoch.to_be_bytes(), &h.as_bytes()[..16]]);
        let v = crate::wire::encode(&(
            serde_bytes::Bytes::new(from),
            serde_bytes::Bytes::new(bytes),
        ))
        .map_err(corrupt)?;
        t.put(k, v)?;
        Ok(true)
    }

    /// Takes the kept messages of group `id` for epochs up to `epoch`.
    pub fn take_group_pending(&self, id: &GroupId, epoch: u64) -> Result<Vec<Pending>, StoreError> {
        let t = self.tree(PENDING)?;
        let mut out = Vec::new();
        for kv in t.scan_prefix(id.0)? {
            let (k, v) = kv?;
            let e = u64::from_be_bytes(
                k.get(32..40)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(StoreError::Corrupt(PENDING))?,
            );
            if e <= epoch {
                let (from, bytes): (serde_bytes::ByteBuf, serde_bytes::ByteBuf) =
                    crate::wire::decode(&v, usize::MAX).map_err(corrupt)?;
                out.push((from.into_vec(), bytes.into_vec()));
                t.delete(k)?;
            }
        }
        Ok(out)
    }
}
