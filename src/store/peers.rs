//! Peers met before, so a restarted node can rejoin without `--bootstrap`.
//!
//! Only peers we kept a lasting connection with are remembered (see
//! `net::lasting`), and the table is capped at [`MAX_KNOWN_PEERS`]: a new
//! peer beyond it replaces the one seen longest ago.

use std::sync::atomic::Ordering;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{Store, StoreError};

pub(super) const TREE: &str = "peers";
/// Addresses kept per peer.
const MAX_ADDRS: usize = 8;
/// Most peers remembered. A restart dials a few and reads 64; a few
/// thousand is ample, and bounds what strangers can make us store.
pub const MAX_KNOWN_PEERS: usize = 2048;

/// A peer we have been connected to, with where it listened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPeer {
    /// Its ID.
    pub peer: PeerId,
    /// Its listen addresses as it told us (identify).
    pub addrs: Vec<Multiaddr>,
    /// Unix milliseconds when we last saw it.
    pub last_seen: u64,
}

#[derive(Serialize, Deserialize)]
struct Row {
    addrs: Vec<ByteBuf>,
    last_seen: u64,
}

impl Store {
    /// Remembers (or refreshes) a peer; a new one beyond
    /// [`MAX_KNOWN_PEERS`] replaces the peer seen longest ago.
    pub fn remember_peer(
        &self,
        peer: &PeerId,
        addrs: &[Multiaddr],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let row = Row {
            addrs: addrs
                .iter()
                .take(MAX_ADDRS)
                .map(|a| ByteBuf::from(a.to_vec()))
                .collect(),
            last_seen: now_ms,
        };
        let bytes = crate::wire::encode(&row).map_err(|_| StoreError::Corrupt(TREE))?;
        let key = peer.to_bytes();
        if !self.peers.contains_key(&key)? {
            self.make_room_for_a_peer()?;
        }
        if self.peers.insert(key, bytes)?.is_none() {
            self.peer_rows.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes the peers seen longest ago (and unreadable rows) until one
    /// more fits under [`MAX_KNOWN_PEERS`]. A scan of at most the cap, run
    /// only when a new peer is remembered into a full table; below the cap
    /// it reads only the count kept beside the tree.
    fn make_room_for_a_peer(&self) -> Result<(), StoreError> {
        if self.peer_rows.load(Ordering::Relaxed) < MAX_KNOWN_PEERS {
            return Ok(());
        }
        let mut rows: Vec<(u64, sled::IVec)> = Vec::new();
        for item in self.peers.iter()? {
            let (k, v) = item?;
            // An unreadable row sorts first and goes first.
            let seen = crate::wire::decode::<Row>(&v, 4096).map_or(0, |r| r.last_seen);
            rows.push((seen, k));
        }
        let mut left = rows.len();
        if left >= MAX_KNOWN_PEERS {
            rows.sort_by_key(|(seen, _)| *seen);
            let surplus = left + 1 - MAX_KNOWN_PEERS;
            for (_, key) in rows.into_iter().take(surplus) {
                self.peers.delete(key)?;
                left -= 1;
            }
        }
        self.peer_rows.store(left, Ordering::Relaxed);
        Ok(())
    }

    /// Removes a peer that turned out to be gone for good.
    #[cfg(test)]
    pub fn forget_peer(&self, peer: &PeerId) -> Result<(), StoreError> {
        if self.peers.remove(peer.to_bytes())?.is_some() {
            self.peer_rows.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The `limit` most recently seen peers, newest first.
    pub fn known_peers(&self, limit: usize) -> Result<Vec<KnownPeer>, StoreError> {
        let mut out = Vec::new();
        for item in self.peers.iter()? {
            let (k, v) = item?;
            let Ok(peer) = PeerId::from_bytes(&k) else {
                continue;
            };
            let Ok(row) = crate::wire::decode::<Row>(&v, 4096) else {
                continue;
            };
            let addrs = row
                .addrs
                .into_iter()
                .filter_map(|a| Multiaddr::try_from(a.into_vec()).ok())
                .collect();
            out.push(KnownPeer {
                peer,
                addrs,
                last_seen: row.last_seen,
            });
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.last_seen));
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_survive_reopen_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let a = PeerId::random();
        let b = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        {
            let s = Store::open(dir.path(), 1 << 20).unwrap();
            s.remember_peer(&a, std::slice::from_ref(&addr), 10)
                .unwrap();
            s.remember_peer(&b, &[], 20).unwrap();
            s.set_locator_seq(42).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let peers = s.known_peers(10).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].peer, b);
        assert_eq!(peers[1].addrs, vec![addr]);
        assert_eq!(s.locator_seq().unwrap(), 42);
        assert_eq!(s.known_peers(1).unwrap().len(), 1);
        s.forget_peer(&a).unwrap();
        assert_eq!(s.known_peers(10).unwrap().len(), 1);
    }

    #[test]
    fn the_table_is_capped_and_the_oldest_goes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        // Seen at 1000, 999, ... so the first remembered is the newest, and
        // the oldest sits in the middle of the key order.
        let peers: Vec<PeerId> = (0..MAX_KNOWN_PEERS).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            let seen = 1_000_000 - i as u64;
            s.remember_peer(p, std::slice::from_ref(&addr), seen)
                .unwrap();
        }
        assert_eq!(rows(&s), MAX_KNOWN_PEERS);
        let oldest = peers[MAX_KNOWN_PEERS - 1];
        let second_oldest = peers[MAX_KNOWN_PEERS - 2];

        // Refreshing a peer already known evicts nobody.
        s.remember_peer(&oldest, &[], 5).unwrap();
        assert_eq!(rows(&s), MAX_KNOWN_PEERS);

        // A new peer evicts the one seen longest ago, and only it.
        let newcomer = PeerId::random();
        s.remember_peer(&newcomer, &[], 2_000_000).unwrap();
        assert_eq!(rows(&s), MAX_KNOWN_PEERS);
        let all = book(&s);
        assert!(!all.contains(&oldest));
        assert!(all.contains(&second_oldest));
        assert_eq!(all[0], newcomer);

        // A row forgotten makes room: the next newcomer evicts nobody.
        s.forget_peer(&newcomer).unwrap();
        s.remember_peer(&PeerId::random(), &[], 2_500_000).unwrap();
        assert!(all_kept_but(&s, &all, &newcomer));
        // Forgetting a peer not in the book changes no count.
        s.forget_peer(&newcomer).unwrap();
        s.forget_peer(&peers[0]).unwrap();
        assert_eq!(rows(&s), MAX_KNOWN_PEERS - 1);

        // An unreadable row (found on disk at the next start) is the first
        // to go.
        let junk = PeerId::random();
        s.peers.insert(junk.to_bytes(), &b"\xff"[..]).unwrap();
        drop(s);
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rows(&s), MAX_KNOWN_PEERS);
        s.remember_peer(&PeerId::random(), &[], 3_000_000).unwrap();
        assert!(!s.peers.contains_key(junk.to_bytes()).unwrap());
        assert!(book(&s).contains(&second_oldest));
        assert_eq!(rows(&s), MAX_KNOWN_PEERS);
    }

    /// The rows of the peer book, after checking the count kept beside
    /// the tree against a walk of it.
    fn rows(s: &Store) -> usize {
        let walked = s.peers.len().unwrap();
        assert_eq!(s.peer_rows.load(Ordering::Relaxed), walked, "kept count");
        walked
    }

    /// Every peer in the book, newest first.
    fn book(s: &Store) -> Vec<PeerId> {
        s.known_peers(usize::MAX)
            .unwrap()
            .into_iter()
            .map(|k| k.peer)
            .collect()
    }

    /// Whether every peer of `before` but `gone` is still in the book.
    fn all_kept_but(s: &Store, before: &[PeerId], gone: &PeerId) -> bool {
        let now = book(s);
        before
            .iter()
            .filter(|p| *p != gone)
            .all(|p| now.contains(p))
    }
}
