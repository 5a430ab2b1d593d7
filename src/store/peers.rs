//! Peers met before, so a restarted node can rejoin without `--bootstrap`.

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{Store, StoreError};

pub(super) const TREE: &str = "peers";
/// Addresses kept per peer.
const MAX_ADDRS: usize = 8;

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
    /// Remembers (or refreshes) a peer.
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
        self.peers.insert(peer.to_bytes(), bytes)?;
        Ok(())
    }

    /// Removes a peer that turned out to be gone for good.
    pub fn forget_peer(&self, peer: &PeerId) -> Result<(), StoreError> {
        self.peers.remove(peer.to_bytes())?;
        Ok(())
    }

    /// The `limit` most recently seen peers, newest first.
    pub fn known_peers(&self, limit: usize) -> Result<Vec<KnownPeer>, StoreError> {
        let mut out = Vec::new();
        for item in self.peers.iter() {
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
}
