//! Mailbox items this node holds for offline recipients.
//!
//! `held`: `recipient ‖ seq` → row (envelope, depositor, expiry), so one
//! recipient's items are one ordered prefix scan and `seq` is the fetch
//! cursor. `held_ids`: `recipient ‖ id ‖ hash` → `seq`, where `hash` is the
//! envelope's [`ItemHash`]: dedupe is on the exact bytes (a peer planting
//! other bytes under a real id does not make the real item "already held"),
//! and an ack by id finds every item with that id as one prefix scan.
//!
//! A row that cannot be read back (corrupt, or larger than any envelope a
//! holder accepts) is logged and deleted by whichever reader meets it, so
//! one bad row never stops a page, a purge, a hand-off or the quota ledger.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Store, StoreError};
use crate::wire::mailbox::{Encoding, ItemHash, MAX_HELD_ENVELOPE};
use crate::wire::message::{Envelope, MessageId};

pub(super) const HELD: &str = "held";
pub(super) const HELD_IDS: &str = "held_ids";

/// Largest held row read back: an envelope of [`MAX_HELD_ENVELOPE`] plus
/// the depositor and expiry fit well within it.
const MAX_ROW: usize = 256 * 1024;
const _: () = assert!(MAX_HELD_ENVELOPE + 1024 <= MAX_ROW);

/// One held item, as the mailbox ledger needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldItem {
    /// Whose mailbox.
    pub recipient: PeerId,
    /// Who deposited it.
    pub depositor: PeerId,
    /// Size of the sealed envelope in bytes.
    pub size: usize,
    /// Unix ms after which it is purged.
    pub expires_at: u64,
}

/// An envelope a holder admitted, ready to be held: what the ledger
/// counts, and its [`Encoding`], made once before admission (which checked
/// its size on it): the row embeds those bytes and keeps their hash, so
/// neither the write nor a hand-off pass encodes or hashes it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The ledger's view of the item.
    pub item: HeldItem,
    /// The envelope's encoding and its hash.
    pub encoding: Encoding,
    /// The envelope itself.
    pub envelope: Envelope,
}

#[derive(Serialize, Deserialize)]
struct Row {
    envelope: Envelope,
    #[serde(with = "serde_bytes")]
    depositor: Vec<u8>,
    expires_at: u64,
    /// The envelope's [`ItemHash`] as computed at admission; rows of
    /// stores written without it have none, and it is computed on read.
    #[serde(default, with = "serde_bytes")]
    hash: Option<[u8; 32]>,
}

/// The fields of a [`Row`] after its envelope, in its order: a row is
/// written as the envelope's [`Encoding`] spliced before these.
#[derive(Serialize)]
struct RowTail<'a> {
    #[serde(with = "serde_bytes")]
    depositor: &'a [u8],
    expires_at: u64,
    #[serde(with = "serde_bytes")]
    hash: Option<&'a [u8; 32]>,
}

/// The encoding of a [`Row`] whose envelope is already encoded as
/// `envelope`: a map of four entries, `envelope` first with those bytes as
/// they are, then the entries of [`RowTail`] (a map of three, whose
/// one-byte header is dropped). The same bytes as encoding the row whole.
fn row_bytes(envelope: &[u8], tail: &RowTail) -> Option<Vec<u8>> {
    const MAP_OF_3: u8 = 0xa3;
    const MAP_OF_4: u8 = 0xa4;
    let tail = crate::wire::encode(tail).ok()?;
    let key = crate::wire::encode(&"envelope").ok()?;
    let (&MAP_OF_3, entries) = tail.split_first()? else {
        return None;
    };
    let mut row = Vec::with_capacity(1 + key.len() + envelope.len() + entries.len());
    row.push(MAP_OF_4);
    row.extend_from_slice(&key);
    row.extend_from_slice(envelope);
    row.extend_from_slice(entries);
    Some(row)
}

impl Row {
    /// The item's hash: the one kept in the row, else computed.
    fn hash(&self) -> Option<ItemHash> {
        self.hash
            .map(ItemHash)
            .or_else(|| ItemHash::of(&self.envelope))
    }

    /// The ledger's view of the row; `None` if its peer ids do not parse.
    fn item(&self) -> Option<HeldItem> {
        Some(HeldItem {
            recipient: PeerId::from_bytes(&self.envelope.to).ok()?,
            depositor: PeerId::from_bytes(&self.depositor).ok()?,
            size: self.envelope.sealed.len(),
            expires_at: self.expires_at,
        })
    }
}

fn prefix(recipient: &PeerId) -> Vec<u8> {
    let b = recipient.to_bytes();
    let mut k = Vec::with_capacity(b.len() + 1);
    k.push(b.len() as u8);
    k.extend_from_slice(&b);
    k
}

/// `held_ids` key of one item; without `hash`, the prefix of every item
/// of `recipient` with this id.
fn id_key(recipient: &PeerId, id: &MessageId, hash: Option<&ItemHash>) -> Vec<u8> {
    let mut k = prefix(recipient);
    k.extend_from_slice(&id.0);
    if let Some(h) = hash {
        k.extend_from_slice(&h.0);
    }
    k
}

fn row_of(v: &[u8]) -> Result<Row, StoreError> {
    crate::wire::decode(v, MAX_ROW).map_err(|_| StoreError::Corrupt(HELD))
}

impl Store {
    /// Keeps each envelope for its recipient until `expires_at`, then
    /// makes the batch durable ([`Store::flush`], with its `fdatasync`)
    /// before returning: a holder answers "stored" on this. Returns, per
    /// item, whether it is new (false: these exact bytes are already held).
    /// The caller refuses envelopes over [`MAX_HELD_ENVELOPE`] first, and
    /// each item's `encoding` must be its `envelope`'s, as
    /// [`Encoding::of`] makes it: the row stores those bytes while the
    /// index is keyed by `envelope.id`.
    pub fn hold(&self, items: &[Admitted]) -> Result<Vec<bool>, StoreError> {
        let mut fresh = Vec::with_capacity(items.len());
        for Admitted {
            item,
            encoding: Encoding { bytes, hash },
            envelope,
        } in items
        {
            let ik = id_key(&item.recipient, &envelope.id, Some(hash));
            // An index entry whose row is gone (deleted as unreadable)
            // does not count.
            if let Some(seq) = self.held_ids.get(&ik)? {
                let mut key = prefix(&item.recipient);
                key.extend_from_slice(&seq);
                if self.held.contains_key(key)? {
                    fresh.push(false);
                    continue;
                }
            }
            let seq = self.db.generate_id()?;
            let mut key = prefix(&item.recipient);
            key.extend_from_slice(&seq.to_be_bytes());
            let tail = RowTail {
                depositor: &item.depositor.to_bytes(),
                expires_at: item.expires_at,
                hash: Some(&hash.0),
            };
            let row = row_bytes(bytes, &tail).ok_or(StoreError::Corrupt(HELD))?;
            self.held.put(key, row)?;
            self.held_ids.put(ik, &seq.to_be_bytes())?;
            fresh.push(true);
        }
        self.flush()?;
        Ok(fresh)
    }

    /// Deletes a held row no reader can use, so it stops nothing.
    fn drop_unreadable(&self, key: &[u8]) -> Result<(), StoreError> {
        warn!(len = key.len(), "deleting an unreadable mailbox item");
        self.held.delete(key)?;
        Ok(())
    }

    /// Removes the index entries of a row being deleted (also the
    /// `recipient ‖ id` form of rows held before dedupe was by hash).
    fn unindex(&self, recipient: &PeerId, row: &Row) -> Result<(), StoreError> {
        let id = &row.envelope.id;
        if let Some(h) = row.hash() {
            self.held_ids.delete(id_key(recipient, id, Some(&h)))?;
        }
        self.held_ids.delete(id_key(recipient, id, None))?;
        Ok(())
    }

    /// Up to `max_items` / `max_bytes` of `recipient`'s items from `cursor`
    /// on (0 = the start); the cursor for the next page if more remain.
    pub fn held_page(
        &self,
        recipient: &PeerId,
        cursor: u64,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Envelope>, Option<u64>), StoreError> {
        let p = prefix(recipient);
        let mut start = p.clone();
        start.extend_from_slice(&cursor.to_be_bytes());
        let mut end = p.clone();
        end.extend_from_slice(&u64::MAX.to_be_bytes());
        let (mut items, mut bytes) = (Vec::new(), 0usize);
        for item in self.held.range(start..=end)? {
            let (k, v) = item?;
            let Ok(row) = row_of(&v) else {
                self.drop_unreadable(&k)?;
                continue;
            };
            let size = row.envelope.sealed.len() + 128;
            if items.len() >= max_items || (bytes + size > max_bytes && !items.is_empty()) {
                let last = k.len().checked_sub(8).map(|i| &k[i..]);
                let seq = last
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                return Ok((items, Some(seq)));
            }
            bytes += size;
            items.push(row.envelope);
        }
        Ok((items, None))
    }

    /// Deletes `recipient`'s items with these ids (every item under one id,
    /// whatever its bytes: the recipient acks what it stored or refused for
    /// good); returns what went.
    pub fn release(
        &self,
        recipient: &PeerId,
        ids: &[MessageId],
    ) -> Result<Vec<HeldItem>, StoreError> {
        let keys = ids.iter().map(|id| id_key(recipient, id, None));
        self.release_keys(recipient, keys)
    }

    /// Deletes exactly these items of `recipient` (a holder letting go of
    /// what it handed on, not of other bytes that arrived under an id
    /// since); returns what went.
    pub fn release_items(
        &self,
        recipient: &PeerId,
        items: &[(MessageId, ItemHash)],
    ) -> Result<Vec<HeldItem>, StoreError> {
        let keys = items.iter().map(|(id, h)| id_key(recipient, id, Some(h)));
        self.release_keys(recipient, keys)
    }

    /// Deletes the items whose index keys start with one of `prefixes`.
    fn release_keys(
        &self,
        recipient: &PeerId,
        prefixes: impl Iterator<Item = Vec<u8>>,
    ) -> Result<Vec<HeldItem>, StoreError> {
        let mut removed = Vec::new();
        for p in prefixes {
            for entry in self.held_ids.scan_prefix(p)? {
                let (ik, seq) = entry?;
                self.held_ids.delete(ik)?;
                let mut key = prefix(recipient);
                key.extend_from_slice(&seq);
                let Some(v) = self.held.remove(key)? else {
                    continue;
                };
                match row_of(&v).ok().as_ref().and_then(Row::item) {
                    Some(item) => removed.push(item),
                    None => warn!(%recipient, "deleted an unreadable mailbox item"),
                }
            }
        }
        self.write_out()?;
        Ok(removed)
    }

    /// Every item of `recipient` with its hash, for handing on to closer
    /// peers (the hash is the one kept in the row: a pass hashes nothing).
    pub fn held_for(&self, recipient: &PeerId) -> Result<Vec<(ItemHash, Envelope)>, StoreError> {
        let mut out = Vec::new();
        for item in self.held.scan_prefix(prefix(recipient))? {
            let (k, v) = item?;
            match row_of(&v).ok().and_then(|r| Some((r.hash()?, r.envelope))) {
                Some(entry) => out.push(entry),
                None => self.drop_unreadable(&k)?,
            }
        }
        Ok(out)
    }

    /// A summary of everything held (to rebuild quota counts at start).
    pub fn held_items(&self) -> Result<Vec<HeldItem>, StoreError> {
        let mut out = Vec::new();
        for item in self.held.iter()? {
            let (k, v) = item?;
            match row_of(&v).ok().as_ref().and_then(Row::item) {
                Some(item) => out.push(item),
                None => self.drop_unreadable(&k)?,
            }
        }
        Ok(out)
    }

    /// Deletes items expired at `now_ms`; returns them.
    pub fn purge_expired(&self, now_ms: u64) -> Result<Vec<HeldItem>, StoreError> {
        let mut gone = Vec::new();
        let mut dropped = false;
        for item in self.held.iter()? {
            let (k, v) = item?;
            let Ok(row) = row_of(&v) else {
                self.drop_unreadable(&k)?;
                dropped = true;
                continue;
            };
            if row.expires_at > now_ms {
                continue;
            }
            if let Some(item) = row.item() {
                self.unindex(&item.recipient, &row)?;
                gone.push(item);
            }
            self.held.delete(k)?;
        }
        if !gone.is_empty() || dropped {
            self.write_out()?;
        }
        Ok(gone)
    }

    /// Number of items held for others.
    pub fn held_len(&self) -> Result<usize, StoreError> {
        Ok(self.held.len()?)
    }
}

#[cfg(test)]
#[path = "held_tests.rs"]
mod tests;
