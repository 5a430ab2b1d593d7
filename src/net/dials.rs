//! The dials under way to each peer and who waits for them: sans-IO, so
//! the rule that answers a waiting caller is tested without sockets.
//!
//! A peer may be dialled more than once at a time — a dial of a newer
//! locator record's addresses beside one of a stale record's that hangs
//! — and one dial failing says nothing of the others: the callers waiting
//! on the peer hear of a failure only once no dial of it is left under way
//! (and it is not connected); the first connection answers them all.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;

/// Peers with dials under way that we track at once: the dials are ours
/// (asked for by this node's own callers), but the table must not grow
/// without bound whatever asks.
pub const MAX_PEERS: usize = 1024;

/// Callers waiting on one peer at once; more would be refused.
pub const MAX_WAITING: usize = 256;

/// Why a caller was not added to the table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialsFull {
    /// [`MAX_PEERS`] peers are being dialled already.
    #[error("too many peers being dialled")]
    Peers,
    /// [`MAX_WAITING`] callers wait on this peer already.
    #[error("too many callers waiting on this peer")]
    Waiting,
}

/// One peer's dials under way and the callers waiting on them.
struct Entry<R> {
    under_way: HashSet<ConnectionId>,
    waiting: Vec<R>,
}

/// The dials under way per peer, and for each peer the replies (`R`)
/// waiting on them.
pub struct Dials<R> {
    peers: HashMap<PeerId, Entry<R>>,
}

impl<R> Default for Dials<R> {
    fn default() -> Self {
        Self {
            peers: HashMap::new(),
        }
    }
}

impl<R> Dials<R> {
    /// `reply` waits on `peer`: on the dial `conn` this node has just
    /// started, or (`None`) on a dial already under way. Gives `reply`
    /// back when the table is full, for the caller to answer.
    pub fn started(
        &mut self,
        peer: PeerId,
        conn: Option<ConnectionId>,
        reply: R,
    ) -> Result<(), (DialsFull, R)> {
        let full = self.peers.len() >= MAX_PEERS;
        let entry = match self.peers.get_mut(&peer) {
            Some(e) => e,
            None if full => return Err((DialsFull::Peers, reply)),
            None => self.peers.entry(peer).or_insert_with(|| Entry {
                under_way: HashSet::new(),
                waiting: Vec::new(),
            }),
        };
        if entry.waiting.len() >= MAX_WAITING {
            return Err((DialsFull::Waiting, reply));
        }
        if let Some(conn) = conn {
            entry.under_way.insert(conn);
        }
        entry.waiting.push(reply);
        Ok(())
    }

    /// The dial `conn` of `peer` failed (one this node started or not).
    /// Returns the replies to answer with the failure: all those waiting
    /// on `peer` if no dial of it is left under way and it is not
    /// `connected`, else none.
    pub fn failed(&mut self, peer: PeerId, conn: ConnectionId, connected: bool) -> Vec<R> {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return Vec::new();
        };
        entry.under_way.remove(&conn);
        if !entry.under_way.is_empty() || connected {
            return Vec::new();
        }
        self.peers
            .remove(&peer)
            .map(|e| e.waiting)
            .unwrap_or_default()
    }

    /// `peer` is connected (by any connection): returns every reply
    /// waiting on it, to answer with success. Its other dials may still
    /// end later; their ends find nobody waiting.
    pub fn connected(&mut self, peer: PeerId) -> Vec<R> {
        self.peers
            .remove(&peer)
            .map(|e| e.waiting)
            .unwrap_or_default()
    }

    /// Peers with callers waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether nobody waits on any dial.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    #[test]
    fn a_failed_dial_answers_nobody_while_another_dial_of_the_peer_is_under_way() {
        let mut d = Dials::default();
        let peer = PeerId::random();
        d.started(peer, Some(conn(1)), "first").unwrap();
        d.started(peer, Some(conn(2)), "second").unwrap();
        assert_eq!(
            d.failed(peer, conn(1), false),
            Vec::<&str>::new(),
            "the stale dial's failure must not answer while the second dial is under way"
        );
        assert_eq!(d.connected(peer), vec!["first", "second"]);
        assert!(d.is_empty());
    }

    #[test]
    fn the_last_dial_failing_answers_every_caller() {
        let mut d = Dials::default();
        let peer = PeerId::random();
        d.started(peer, Some(conn(1)), "first").unwrap();
        d.started(peer, Some(conn(2)), "second").unwrap();
        // A caller joining the dial under way (the swarm refused a second).
        d.started(peer, None, "joined").unwrap();
        assert!(d.failed(peer, conn(2), false).is_empty());
        assert_eq!(
            d.failed(peer, conn(1), false),
            vec!["first", "second", "joined"]
        );
        assert!(d.is_empty());
        // A later end of a dial nobody waits on answers nothing.
        assert!(d.failed(peer, conn(3), false).is_empty());
    }

    #[test]
    fn a_failure_of_a_dial_not_ours_answers_callers_with_no_dial_of_their_own() {
        // A caller that joined a dial a behaviour started (its id unknown
        // to us) hears of that dial's failure.
        let mut d = Dials::default();
        let peer = PeerId::random();
        d.started(peer, None, "joined").unwrap();
        assert_eq!(d.failed(peer, conn(7), false), vec!["joined"]);
    }

    #[test]
    fn a_failure_while_connected_answers_nobody() {
        let mut d = Dials::default();
        let peer = PeerId::random();
        d.started(peer, Some(conn(1)), "first").unwrap();
        assert!(d.failed(peer, conn(1), true).is_empty());
        assert_eq!(d.connected(peer), vec!["first"]);
    }

    #[test]
    fn the_table_is_capped() {
        let mut d = Dials::default();
        for n in 0..MAX_PEERS {
            d.started(PeerId::random(), Some(conn(n)), n).unwrap();
        }
        let refused = d.started(PeerId::random(), Some(conn(MAX_PEERS)), MAX_PEERS);
        assert_eq!(refused, Err((DialsFull::Peers, MAX_PEERS)));
        assert_eq!(d.len(), MAX_PEERS);

        let mut d = Dials::default();
        let peer = PeerId::random();
        for n in 0..MAX_WAITING {
            d.started(peer, None, n).unwrap();
        }
        assert_eq!(
            d.started(peer, None, MAX_WAITING),
            Err((DialsFull::Waiting, MAX_WAITING))
        );
        assert_eq!(d.connected(peer).len(), MAX_WAITING);
    }
}
