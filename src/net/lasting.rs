//! Which peers are worth remembering for the next start: those we kept a
//! *lasting* connection with. Pure (time is passed in), driven by the event
//! loop.
//!
//! Remembering every peer that identifies itself lets any stranger who
//! connects for a moment enter the `peers` table, and with it the peers a
//! restarted node reseeds from. A connection is lasting when *we* dialled
//! it and it has stayed open for the threshold (`Config::lasting_connection`,
//! 5 s by default, half the idle timeout). Both are cheap to check (the connection's
//! direction, a timer; no protocol of our own) and both matter:
//!
//! - Dialled by us: a stranger cannot get in by connecting to us, however
//!   long it stays. We dial our bootstrap peers, the peers our own lookups,
//!   publications and bucket refreshes lead to, buddies and mailbox
//!   holders — and each such connection has shown that the peer is
//!   reachable, which is what a restart needs of it.
//! - Open for the threshold: a peer that answers and hangs up, or whose
//!   connection fails at once, does not count.
//!
//! The event loop hands only the connections we dialled to [`Lasting`]. A
//! peer is remembered (with the listen addresses it told identify, for
//! peers that speak our DHT) once per connected spell: when its first
//! tracked connection becomes lasting; again when its last one closes, if
//! that was [`RESAVE`] or more later, and as the node stops, so the time
//! stored is when we last saw it, give or take [`RESAVE`].

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// Listen addresses kept per peer (the `peers` table keeps no more).
pub const MAX_ADDRS: usize = 8;

/// How old a remembered peer's stored time must be for the end of its
/// connected spell to store it again. The table only orders peers by when
/// they were last seen; a write at every close cost a database write per
/// DHT connection closing at the idle timeout, thousands a minute while a
/// network of a few hundred nodes settles after starting.
pub const RESAVE: Duration = Duration::from_secs(600);

/// A peer to remember, with where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remember {
    /// The peer.
    pub peer: PeerId,
    /// Its listen addresses, as it told identify.
    pub addrs: Vec<Multiaddr>,
}

#[derive(Debug, Default)]
struct Peer {
    /// Open connections and when each opened.
    conns: HashMap<ConnectionId, Instant>,
    /// Its listen addresses, once identify told us (DHT peers only).
    addrs: Option<Vec<Multiaddr>>,
    /// When this connected spell was remembered, if it was.
    remembered: Option<Instant>,
}

/// Open connections per peer, and which have become lasting. Holds only
/// connected peers, so it is bounded by the connection limits.
#[derive(Debug)]
pub struct Lasting {
    threshold: Duration,
    peers: HashMap<PeerId, Peer>,
    owner: HashMap<ConnectionId, PeerId>,
    /// When each connection becomes lasting, earliest first.
    waiting: BTreeSet<(Instant, ConnectionId)>,
}

impl Lasting {
    /// A connection is lasting once open for `threshold`.
    pub fn new(threshold: Duration) -> Self {
        Self {
            threshold,
            peers: HashMap::new(),
            owner: HashMap::new(),
            waiting: BTreeSet::new(),
        }
    }

    /// A connection we dialled to `peer` opened at `now`.
    pub fn opened(&mut self, conn: ConnectionId, peer: PeerId, now: Instant) {
        self.peers.entry(peer).or_default().conns.insert(conn, now);
        self.owner.insert(conn, peer);
        self.waiting.insert((now + self.threshold, conn));
    }

    /// `peer` told identify it listens at `addrs` and speaks our DHT; if a
    /// connection to it has already lasted, it is to be remembered now.
    pub fn identified(
        &mut self,
        peer: PeerId,
        mut addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Option<Remember> {
        let threshold = self.threshold;
        let p = self.peers.get_mut(&peer)?;
        addrs.truncate(MAX_ADDRS);
        p.addrs = Some(addrs);
        let lasted = p.conns.values().any(|&t| now >= t + threshold);
        Self::remember(peer, p, lasted, now)
    }

    /// A connection closed at `now`. When it was the peer's last and the
    /// peer was remembered [`RESAVE`] or more ago, remember it again (it
    /// was seen until now).
    pub fn closed(&mut self, conn: ConnectionId, now: Instant) -> Option<Remember> {
        let peer = self.owner.remove(&conn)?;
        let p = self.peers.get_mut(&peer)?;
        if let Some(opened) = p.conns.remove(&conn) {
            self.waiting.remove(&(opened + self.threshold, conn));
        }
        if !p.conns.is_empty() {
            return None;
        }
        let p = self.peers.remove(&peer)?;
        let stale = p.remembered.is_some_and(|at| now >= at + RESAVE);
        stale.then(|| Remember {
            peer,
            addrs: p.addrs.unwrap_or_default(),
        })
    }

    /// When the next connection becomes lasting.
    pub fn due(&self) -> Option<Instant> {
        self.waiting.first().map(|&(t, _)| t)
    }

    /// The peers to remember because a connection became lasting by `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Remember> {
        let mut out = Vec::new();
        while let Some(&(t, conn)) = self.waiting.first() {
            if t > now {
                break;
            }
            self.waiting.pop_first();
            let Some(peer) = self.owner.get(&conn).copied() else {
                continue;
            };
            if let Some(p) = self.peers.get_mut(&peer) {
                out.extend(Self::remember(peer, p, true, now));
            }
        }
        out
    }

    /// The remembered peers still connected, to save once more as the node
    /// stops (no close event reaches us then): a peer connected for days is
    /// then stored as seen at the end, not when it was first remembered.
    pub fn still_connected(&self) -> Vec<Remember> {
        self.peers
            .iter()
            .filter(|(_, p)| p.remembered.is_some())
            .filter_map(|(&peer, p)| {
                let addrs = p.addrs.clone()?;
                Some(Remember { peer, addrs })
            })
            .collect()
    }

    /// Peers with an open connection (tests).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    fn remember(peer: PeerId, p: &mut Peer, lasted: bool, now: Instant) -> Option<Remember> {
        if !lasted || p.remembered.is_some() {
            return None;
        }
        let addrs = p.addrs.clone()?;
        p.remembered = Some(now);
        Some(Remember { peer, addrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn conn(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    fn addrs() -> Vec<Multiaddr> {
        vec!["/ip4/127.0.0.1/tcp/7117".parse().unwrap()]
    }

    #[test]
    fn a_brief_connection_is_never_remembered() {
        let t0 = Instant::now();
        let mut l = Lasting::new(MIN);
        let stranger = PeerId::random();
        l.opened(conn(1), stranger, t0);
        assert_eq!(l.identified(stranger, addrs(), t0), None);
        assert_eq!(l.due(), Some(t0 + MIN));
        assert!(l.still_connected().is_empty());
        assert_eq!(l.closed(conn(1), t0 + MIN + RESAVE), None);
        assert_eq!(l.due(), None);
        assert!(l.poll(t0 + 2 * MIN).is_empty());
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn a_lasting_connection_is_remembered_once_then_at_its_end() {
        let t0 = Instant::now();
        let mut l = Lasting::new(MIN);
        let peer = PeerId::random();
        l.opened(conn(1), peer, t0);
        l.identified(peer, addrs(), t0);
        assert!(l.poll(t0 + MIN - Duration::from_millis(1)).is_empty());
        let want = Remember {
            peer,
            addrs: addrs(),
        };
        assert_eq!(l.poll(t0 + MIN), vec![want.clone()]);
        // A second connection becoming lasting adds nothing.
        l.opened(conn(2), peer, t0 + MIN);
        assert!(l.poll(t0 + 3 * MIN).is_empty());
        let later = t0 + MIN + RESAVE;
        assert_eq!(l.closed(conn(1), later), None);
        assert_eq!(l.still_connected(), vec![want.clone()]);
        // The last one closing, RESAVE after it was remembered, refreshes it.
        assert_eq!(l.closed(conn(2), later), Some(want));
        assert!(l.still_connected().is_empty());
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn identify_after_the_threshold_remembers_at_once() {
        let t0 = Instant::now();
        let mut l = Lasting::new(MIN);
        let peer = PeerId::random();
        l.opened(conn(7), peer, t0);
        // Lasting, but we do not know where it listens yet.
        assert!(l.poll(t0 + MIN).is_empty());
        let got = l.identified(peer, addrs(), t0 + MIN);
        assert_eq!(got.map(|r| r.peer), Some(peer));
        assert_eq!(l.identified(peer, addrs(), t0 + 2 * MIN), None);
    }

    #[test]
    fn peers_not_in_our_dht_are_never_remembered() {
        // The event loop calls `identified` only for peers speaking our
        // Kademlia protocol; without it, nothing is remembered.
        let t0 = Instant::now();
        let mut l = Lasting::new(MIN);
        let peer = PeerId::random();
        l.opened(conn(1), peer, t0);
        assert!(l.poll(t0 + MIN).is_empty());
        assert_eq!(l.closed(conn(1), t0 + MIN + RESAVE), None);
    }

    #[test]
    fn a_spell_ending_soon_after_it_was_remembered_is_not_stored_again() {
        let t0 = Instant::now();
        let mut l = Lasting::new(MIN);
        let peer = PeerId::random();
        l.opened(conn(1), peer, t0);
        l.identified(peer, addrs(), t0);
        assert_eq!(l.poll(t0 + MIN).len(), 1);
        // Closed at the idle timeout, as a lookup's connection is.
        let soon = t0 + MIN + RESAVE - Duration::from_millis(1);
        assert_eq!(l.closed(conn(1), soon), None);
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn a_zero_threshold_remembers_at_identify_and_addresses_are_bounded() {
        let t0 = Instant::now();
        let mut l = Lasting::new(Duration::ZERO);
        let peer = PeerId::random();
        l.opened(conn(1), peer, t0);
        let many: Vec<Multiaddr> = (0..100)
            .map(|p| format!("/ip4/127.0.0.1/tcp/{}", 1000 + p).parse().unwrap())
            .collect();
        let got = l.identified(peer, many, t0).expect("remembered");
        assert_eq!(got.addrs.len(), MAX_ADDRS);
        // Identify from a peer with no open connection is ignored.
        assert_eq!(l.identified(PeerId::random(), addrs(), t0), None);
        assert_eq!(l.tracked(), 1);
    }
}
