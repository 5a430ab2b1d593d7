//! Mailbox items this node holds for offline recipients.
//!
//! `held`: `recipient ‖ seq` → row (envelope, depositor, expiry), so one
//! recipient's items are one ordered prefix scan and `seq` is the fetch
//! cursor. `held_ids`: `recipient ‖ id` → `seq`, for dedupe and acks.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::wire::message::{Envelope, MessageId};

pub(super) const HELD: &str = "held";
pub(super) const HELD_IDS: &str = "held_ids";

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

#[derive(Serialize, Deserialize)]
struct Row {
    envelope: Envelope,
    #[serde(with = "serde_bytes")]
    depositor: Vec<u8>,
    expires_at: u64,
}

fn prefix(recipient: &PeerId) -> Vec<u8> {
    let b = recipient.to_bytes();
    let mut k = Vec::with_capacity(b.len() + 1);
    k.push(b.len() as u8);
    k.extend_from_slice(&b);
    k
}

fn row_of(v: &[u8]) -> Result<Row, StoreError> {
    crate::wire::decode(v, 256 * 1024).map_err(|_| StoreError::Corrupt(HELD))
}

impl Store {
    /// Keeps each envelope for its recipient until `expires_at`, with one
    /// flush for the batch before returning. Returns, per item, whether it
    /// is new (false: already held).
    pub fn hold(
        &self,
        items: &[HeldItem],
        envelopes: &[Envelope],
    ) -> Result<Vec<bool>, StoreError> {
        let mut fresh = Vec::with_capacity(items.len());
        for (item, envelope) in items.iter().zip(envelopes) {
            let mut id_key = prefix(&item.recipient);
            id_key.extend_from_slice(&envelope.id.0);
            if self.held_ids.contains_key(&id_key)? {
                fresh.push(false);
                continue;
            }
            let seq = self.db.generate_id()?;
            let mut key = prefix(&item.recipient);
            key.extend_from_slice(&seq.to_be_bytes());
            let row = Row {
                envelope: envelope.clone(),
                depositor: item.depositor.to_bytes(),
                expires_at: item.expires_at,
            };
            let bytes = crate::wire::encode(&row).map_err(|_| StoreError::Corrupt(HELD))?;
            self.held.insert(key, bytes)?;
            self.held_ids.insert(id_key, &seq.to_be_bytes())?;
            fresh.push(true);
        }
        self.db.flush()?;
        Ok(fresh)
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
        for item in self.held.range(start..=end) {
            let (k, v) = item?;
            let row = row_of(&v)?;
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

    /// Deletes `recipient`'s items with these ids; returns what went.
    pub fn release(
        &self,
        recipient: &PeerId,
        ids: &[MessageId],
    ) -> Result<Vec<HeldItem>, StoreError> {
        let mut removed = Vec::new();
        for id in ids {
            let mut id_key = prefix(recipient);
            id_key.extend_from_slice(&id.0);
            if let Some(seq) = self.held_ids.remove(&id_key)? {
                let mut key = prefix(recipient);
                key.extend_from_slice(&seq);
                if let Some(v) = self.held.remove(key)? {
                    let row = row_of(&v)?;
                    let depositor = PeerId::from_bytes(&row.depositor)
                        .map_err(|_| StoreError::Corrupt(HELD))?;
                    removed.push(HeldItem {
                        recipient: *recipient,
                        depositor,
                        size: row.envelope.sealed.len(),
                        expires_at: row.expires_at,
                    });
                }
            }
        }
        self.db.flush()?;
        Ok(removed)
    }

    /// Every item of `recipient`, for handing on to closer peers.
    pub fn held_for(&self, recipient: &PeerId) -> Result<Vec<Envelope>, StoreError> {
        self.held
            .scan_prefix(prefix(recipient))
            .map(|item| Ok(row_of(&item?.1)?.envelope))
            .collect()
    }

    /// A summary of everything held (to rebuild quota counts at start).
    pub fn held_items(&self) -> Result<Vec<HeldItem>, StoreError> {
        let mut out = Vec::new();
        for item in self.held.iter() {
            let (_, v) = item?;
            let row = row_of(&v)?;
            let (Ok(recipient), Ok(depositor)) = (
                PeerId::from_bytes(&row.envelope.to),
                PeerId::from_bytes(&row.depositor),
            ) else {
                continue;
            };
            out.push(HeldItem {
                recipient,
                depositor,
                size: row.envelope.sealed.len(),
                expires_at: row.expires_at,
            });
        }
        Ok(out)
    }

    /// Deletes items expired at `now_ms`; returns them.
    pub fn purge_expired(&self, now_ms: u64) -> Result<Vec<HeldItem>, StoreError> {
        let mut gone = Vec::new();
        for item in self.held.iter() {
            let (k, v) = item?;
            let row = row_of(&v)?;
            if row.expires_at > now_ms {
                continue;
            }
            if let (Ok(recipient), Ok(depositor)) = (
                PeerId::from_bytes(&row.envelope.to),
                PeerId::from_bytes(&row.depositor),
            ) {
                let mut id_key = prefix(&recipient);
                id_key.extend_from_slice(&row.envelope.id.0);
                self.held_ids.remove(id_key)?;
                gone.push(HeldItem {
                    recipient,
                    depositor,
                    size: row.envelope.sealed.len(),
                    expires_at: row.expires_at,
                });
            }
            self.held.remove(k)?;
        }
        if !gone.is_empty() {
            self.db.flush()?;
        }
        Ok(gone)
    }

    /// Number of items held for others.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(to: &PeerId, n: u8) -> Envelope {
        Envelope {
            id: MessageId([n; 16]),
            to: to.to_bytes(),
            from: PeerId::random().to_bytes(),
            nonce: [0; 24],
            sealed: vec![n; 100],
        }
    }

    #[test]
    fn hold_page_release_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let (jack, other, dep) = (PeerId::random(), PeerId::random(), PeerId::random());
        let item = |r: PeerId, exp| HeldItem {
            recipient: r,
            depositor: dep,
            size: 100,
            expires_at: exp,
        };
        let items: Vec<HeldItem> = (0..5).map(|n| item(jack, 1000 + n)).collect();
        let envs: Vec<Envelope> = (0..5).map(|n| env(&jack, n as u8)).collect();
        assert_eq!(s.hold(&items, &envs).unwrap(), vec![true; 5]);
        assert_eq!(
            s.hold(&[item(jack, 2000)], &[env(&jack, 0)]).unwrap(),
            vec![false],
            "dedupe"
        );
        s.hold(&[item(other, 5000)], &[env(&other, 9)]).unwrap();

        let (page, next) = s.held_page(&jack, 0, 2, 1 << 20).unwrap();
        assert_eq!(page.len(), 2);
        let (page2, next2) = s.held_page(&jack, next.unwrap(), 10, 1 << 20).unwrap();
        assert_eq!(page2.len(), 3);
        assert_eq!(next2, None);
        assert_ne!(page[0].id, page2[0].id);

        assert_eq!(
            s.release(&jack, &[page[0].id, page[1].id]).unwrap().len(),
            2
        );
        // Someone else's ids do not release Jack's items.
        assert!(s.release(&other, &[page2[0].id]).unwrap().is_empty());
        assert_eq!(s.held_for(&jack).unwrap().len(), 3);

        let gone = s.purge_expired(1003).unwrap();
        assert_eq!(gone.len(), 2); // items 2 and 3 (0, 1 were released)
        assert_eq!(s.held_len(), 2);
        assert_eq!(s.held_items().unwrap().len(), 2);
    }
}
