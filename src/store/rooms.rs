//! Public rooms this node is in, and each room's log of messages.
//!
//! A room's log keeps at most [`MAX_ROOM_LOG`] messages (the oldest go
//! first), ordered by the sender's `sent_at` then id; a message is stored
//! once whatever paths bring it (gossip, several members' history).

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{Store, StoreError};
use crate::wire::room::RoomId;

const ROOMS: &str = "rooms";
const LOG: &str = "room_log";
const IDS: &str = "room_ids";
/// Largest stored row (a message with its signed form).
const MAX_ROW: usize = 3 * crate::wire::room::MAX_MSG_BYTES;
/// Most messages kept per room.
pub const MAX_ROOM_LOG: usize = 2000;
/// Most rooms one node is in: each costs a gossipsub topic, a provider
/// record and a maintenance lookup.
pub const MAX_ROOMS: usize = 64;

/// A room this node has joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedRoom {
    /// Its id.
    pub id: RoomId,
    /// Its normalised name.
    pub name: String,
    /// The newest valid record seen, signed bytes.
    pub record: Option<Vec<u8>>,
}

/// One message of a room's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLogEntry {
    /// Hex id ([`crate::wire::room::message_id`]).
    pub id: String,
    /// The room.
    pub room: RoomId,
    /// Its signer.
    pub from: PeerId,
    /// Unix ms, as the sender says.
    pub sent_at: u64,
    /// The text.
    pub text: String,
    /// The signed bytes, handed to joiners.
    pub raw: Vec<u8>,
}

impl From<&crate::wire::room::RoomMessage> for RoomLogEntry {
    fn from(m: &crate::wire::room::RoomMessage) -> Self {
        Self {
            id: m.id.clone(),
            room: m.room,
            from: m.sender,
            sent_at: m.sent_at,
            text: m.text.clone(),
            raw: m.raw.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RoomRow {
    name: String,
    record: Option<ByteBuf>,
}

#[derive(Serialize, Deserialize)]
struct LogRow {
    #[serde(with = "serde_bytes")]
    from: Vec<u8>,
    sent_at: u64,
    text: String,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
}

fn enc<T: Serialize>(v: &T, tree: &'static str) -> Result<Vec<u8>, StoreError> {
    crate::wire::encode(v).map_err(|_| StoreError::Corrupt(tree))
}

fn dec<T: serde::de::DeserializeOwned>(b: &[u8], tree: &'static str) -> Result<T, StoreError> {
    crate::wire::decode(b, MAX_ROW).map_err(|_| StoreError::Corrupt(tree))
}

fn log_key(room: &RoomId, sent_at: u64, id: &str) -> Vec<u8> {
    let mut k = room.0.to_vec();
    k.extend_from_slice(&sent_at.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn id_key(room: &RoomId, id: &str) -> Vec<u8> {
    let mut k = room.0.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

impl Store {
    /// Records that we are in `room` (keeping its log if we were already).
    pub fn room_join(
        &self,
        room: &RoomId,
        name: &str,
        record: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let t = self.tree(ROOMS)?;
        if !t.contains_key(room.0)? && t.len()? >= MAX_ROOMS {
            return Err(StoreError::Failed(format!("already in {MAX_ROOMS} rooms")));
        }
        let row = RoomRow {
            name: name.to_string(),
            record: record.map(|r| ByteBuf::from(r.to_vec())),
        };
        t.put(room.0, enc(&row, ROOMS)?)?;
        Ok(())
    }

    /// Replaces the record kept for a room we are in.
    pub fn room_set_record(&self, room: &RoomId, record: &[u8]) -> Result<(), StoreError> {
        let t = self.tree(ROOMS)?;
        let Some(v) = t.get(room.0)? else {
            return Ok(());
        };
        let mut row: RoomRow = dec(&v, ROOMS)?;
        row.record = Some(ByteBuf::from(record.to_vec()));
        t.put(room.0, enc(&row, ROOMS)?)?;
        Ok(())
    }

    /// Leaves a room: forgets it and its log.
    pub fn room_leave(&self, room: &RoomId) -> Result<(), StoreError> {
        self.tree(ROOMS)?.remove(room.0)?;
        for tree in [LOG, IDS] {
            let t = self.tree(tree)?;
            for k in t.scan_prefix(room.0)?.keys() {
                t.delete(k?)?;
            }
        }
        Ok(())
    }

    /// The rooms we are in.
    pub fn rooms(&self) -> Result<Vec<JoinedRoom>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree(ROOMS)?.iter()? {
            let (k, v) = kv?;
            let id = RoomId::from_slice(&k).ok_or(StoreError::Corrupt(ROOMS))?;
            let row: RoomRow = dec(&v, ROOMS)?;
            out.push(JoinedRoom {
                id,
                name: row.name,
                record: row.record.map(|r| r.into_vec()),
            });
        }
        Ok(out)
    }

    /// Adds a message to its room's log; `false` if it was there already.
    pub fn room_add(&self, m: &RoomLogEntry) -> Result<bool, StoreError> {
        let ids = self.tree(IDS)?;
        let idk = id_key(&m.room, &m.id);
        if ids.contains_key(&idk)? {
            return Ok(false);
        }
        let log = self.tree(LOG)?;
        let key = log_key(&m.room, m.sent_at, &m.id);
        let row = LogRow {
            from: m.from.to_bytes(),
            sent_at: m.sent_at,
            text: m.text.clone(),
            raw: m.raw.clone(),
        };
        log.put(&key, enc(&row, LOG)?)?;
        ids.put(idk, key)?;
        // Trim now and then (one in 16 ids): counting a room's log on
        // every message would cost a scan each.
        if m.id.starts_with('0') {
            self.room_trim(&m.room, MAX_ROOM_LOG)?;
        }
        Ok(true)
    }

    /// Drops a room's oldest messages beyond `keep`.
    fn room_trim(&self, room: &RoomId, keep: usize) -> Result<(), StoreError> {
        let log = self.tree(LOG)?;
        let ids = self.tree(IDS)?;
        let n = log.scan_prefix(room.0)?.count();
        for kv in log.scan_prefix(room.0)?.take(n.saturating_sub(keep)) {
            let (k, _) = kv?;
            let id = std::str::from_utf8(&k[40..]).map_err(|_| StoreError::Corrupt(LOG))?;
            ids.delete(id_key(room, id))?;
            log.delete(&k)?;
        }
        Ok(())
    }

    /// The last `limit` messages of a room, oldest first.
    pub fn room_log(&self, room: &RoomId, limit: usize) -> Result<Vec<RoomLogEntry>, StoreError> {
        let log = self.tree(LOG)?;
        let mut out = Vec::new();
        for kv in log.scan_prefix(room.0)?.rev().take(limit) {
            let (k, v) = kv?;
            let row: LogRow = dec(&v, LOG)?;
            let id = std::str::from_utf8(&k[40..]).map_err(|_| StoreError::Corrupt(LOG))?;
            out.push(RoomLogEntry {
                id: id.to_string(),
                room: *room,
                from: PeerId::from_bytes(&row.from).map_err(|_| StoreError::Corrupt(LOG))?,
                sent_at: row.sent_at,
                text: row.text,
                raw: row.raw,
            });
        }
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(room: RoomId, n: u64) -> RoomLogEntry {
        RoomLogEntry {
            id: format!("{n:032x}"),
            room,
            from: PeerId::random(),
            sent_at: 1000 + n,
            text: format!("m{n}"),
            raw: vec![n as u8],
        }
    }

    #[test]
    fn a_log_dedupes_orders_trims_and_is_left_whole() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let (a, b) = (RoomId([1; 32]), RoomId([2; 32]));
        s.room_join(&a, "a", None).unwrap();
        for n in (0..10).rev() {
            assert!(s.room_add(&entry(a, n)).unwrap());
        }
        assert!(!s.room_add(&entry(a, 3)).unwrap(), "a duplicate");
        s.room_add(&entry(b, 1)).unwrap();
        let last: Vec<u64> = s
            .room_log(&a, 3)
            .unwrap()
            .iter()
            .map(|e| e.sent_at)
            .collect();
        assert_eq!(last, vec![1007, 1008, 1009]);
        s.room_trim(&a, 4).unwrap();
        assert_eq!(s.room_log(&a, 100).unwrap().len(), 4);
        // A trimmed id may come again (it is no longer known).
        assert!(s.room_add(&entry(a, 0)).unwrap());
        s.room_leave(&a).unwrap();
        assert!(s.room_log(&a, 100).unwrap().is_empty());
        assert_eq!(s.room_log(&b, 100).unwrap().len(), 1);
        assert!(s.rooms().unwrap().is_empty());
    }
}
