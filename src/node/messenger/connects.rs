//! How many links the service sets up at once, and in which order: a
//! sans-IO rule, tested without sockets.
//!
//! Setting up a link to a peer we have no connection to costs a locator
//! lookup in the DHT and a dial. One change can make hundreds of peers due
//! at the same moment — a group invitation to a thousand members, an
//! outbox reloaded after days offline. Started all at once, they put that
//! many lookups on the DHT together, with no bound; and past
//! [`crate::net::dials::MAX_PEERS`] peers the network task's dial table
//! refuses the rest, whose messages then fail over to the mailboxes at
//! once. So at most [`MAX_CONNECTS`] such set-ups run at a time, and the
//! others wait in turn.
//!
//! A peer we are connected to needs neither lookup nor dial (an online
//! buddy's connection is kept open), so its link starts at once whatever
//! is queued: a message to a buddy does not wait behind a thousand
//! strangers' lookups. A waiting peer that connects to us in the meantime
//! starts at once too.

use std::collections::{HashSet, VecDeque};

use libp2p::PeerId;

/// Most link set-ups that may need a lookup and a dial, under way at once.
pub const MAX_CONNECTS: usize = 32;

/// Most peers remembered as connected. Only a hint for who goes first (the
/// set-up itself finds out whether a connection is open), so past the cap
/// a new connection is simply not remembered.
const MAX_CONNECTED: usize = 4096;

/// Where one peer's link set-up stands ([`Connects`]): what a bench reads
/// to tell a message waiting for a slot from one on its way.
#[cfg(feature = "test-util")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSetup {
    /// Looking the peer up and dialling it, or opening the link.
    UnderWay,
    /// Waiting for one of the [`MAX_CONNECTS`] slots.
    Queued,
    /// None running: a link is up, or no message is due.
    Idle,
}

/// The link set-ups under way and waiting.
#[derive(Default)]
pub(super) struct Connects {
    /// Under way, each holding one of the [`MAX_CONNECTS`] slots.
    counted: HashSet<PeerId>,
    /// Under way without a slot: connected when they started.
    free: HashSet<PeerId>,
    /// Waiting for a slot, first come first served.
    queue: VecDeque<PeerId>,
    /// Peers with a connection open, as the network last told us.
    connected: HashSet<PeerId>,
}

impl Connects {
    /// A link to `peer` is wanted (none is up or being set up): whether
    /// its set-up starts now; if not, it is queued and comes back from
    /// [`Connects::ended`] or [`Connects::connected`].
    pub(super) fn want(&mut self, peer: PeerId) -> bool {
        if self.counted.contains(&peer) || self.free.contains(&peer) || self.queue.contains(&peer) {
            return false;
        }
        if self.connected.contains(&peer) {
            self.free.insert(peer);
        } else if self.counted.len() < MAX_CONNECTS {
            self.counted.insert(peer);
        } else {
            self.queue.push_back(peer);
            return false;
        }
        true
    }

    /// The set-up of `peer`'s link ended, up or `failed`: the waiting
    /// peers whose set-ups start now, in their turn. A set-up that started
    /// as connected and failed forgets the connection: the network's word
    /// of its closing may have been lost, and the next set-up must not
    /// pass the cap on it.
    pub(super) fn ended(&mut self, peer: &PeerId, failed: bool) -> Vec<PeerId> {
        if self.free.remove(peer) && failed {
            self.connected.remove(peer);
        }
        let mut start = Vec::new();
        if self.counted.remove(peer) {
            while self.counted.len() < MAX_CONNECTS {
                let Some(next) = self.queue.pop_front() else {
                    break;
                };
                self.counted.insert(next);
                start.push(next);
            }
        }
        start
    }

    /// A connection to `peer` opened: whether its set-up, waiting until
    /// now, starts at once.
    pub(super) fn connected(&mut self, peer: PeerId) -> bool {
        if self.connected.len() < MAX_CONNECTED {
            self.connected.insert(peer);
        }
        let Some(at) = self.queue.iter().position(|p| *p == peer) else {
            return false;
        };
        self.queue.remove(at);
        self.free.insert(peer);
        true
    }

    /// The last connection to `peer` closed.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.connected.remove(peer);
    }

    /// Where `peer`'s link set-up stands.
    #[cfg(feature = "test-util")]
    pub(super) fn state(&self, peer: &PeerId) -> LinkSetup {
        if self.counted.contains(peer) || self.free.contains(peer) {
            LinkSetup::UnderWay
        } else if self.queue.contains(peer) {
            LinkSetup::Queued
        } else {
            LinkSetup::Idle
        }
    }

    /// Set-ups waiting for a slot.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    /// A full set of slots taken: `MAX_CONNECTS` peers started.
    fn full() -> (Connects, Vec<PeerId>) {
        let mut c = Connects::default();
        let started = peers(MAX_CONNECTS);
        for p in &started {
            assert!(c.want(*p));
        }
        (c, started)
    }

    #[test]
    fn at_most_the_cap_start_and_the_rest_wait_in_turn() {
        let (mut c, started) = full();
        let waiting = peers(3);
        for p in &waiting {
            assert!(!c.want(*p), "a set-up past the cap must wait");
        }
        assert_eq!(c.waiting(), 3);
        // Each one that ends lets the next in line start, in order.
        assert_eq!(c.ended(&started[5], false), vec![waiting[0]]);
        assert_eq!(c.ended(&started[0], false), vec![waiting[1]]);
        assert_eq!(c.ended(&waiting[0], false), vec![waiting[2]]);
        assert_eq!(c.waiting(), 0);
        assert!(c.ended(&started[1], false).is_empty());
        // A slot freed with nobody waiting is there for the next want.
        assert!(c.want(PeerId::random()));
    }

    #[test]
    fn a_connected_peer_starts_past_a_full_queue() {
        let (mut c, started) = full();
        assert!(!c.want(PeerId::random()));
        let buddy = PeerId::random();
        assert!(!c.connected(buddy), "nothing of its was waiting");
        assert!(c.want(buddy), "a connected peer needs no slot");
        // Its end frees no slot: the one waiting still waits.
        assert!(c.ended(&buddy, false).is_empty());
        assert_eq!(c.waiting(), 1);
        // Once disconnected it queues like any other.
        c.disconnected(&buddy);
        assert!(!c.want(buddy));
        assert_eq!(c.waiting(), 2);
        assert_eq!(c.ended(&started[0], false).len(), 1);
    }

    #[test]
    fn a_waiting_peer_that_connects_starts_at_once() {
        let (mut c, started) = full();
        let (first, second) = (PeerId::random(), PeerId::random());
        assert!(!c.want(first));
        assert!(!c.want(second));
        assert!(c.connected(second));
        assert_eq!(c.waiting(), 1);
        // It took no slot: the next slot goes to the one still waiting.
        assert!(c.ended(&second, false).is_empty());
        assert_eq!(c.ended(&started[0], false), vec![first]);
    }

    #[test]
    fn a_peer_is_never_set_up_twice_at_once() {
        let (mut c, started) = full();
        let late = PeerId::random();
        assert!(!c.want(started[0]));
        assert!(!c.want(late));
        assert!(!c.want(late));
        assert_eq!(c.waiting(), 1);
    }

    #[test]
    fn a_failed_set_up_of_a_connected_peer_forgets_the_connection() {
        let (mut c, _) = full();
        let peer = PeerId::random();
        c.connected(peer);
        assert!(c.want(peer));
        assert!(c.ended(&peer, true).is_empty());
        assert!(!c.want(peer), "it waits for a slot like any other");
    }

    #[test]
    fn the_connected_set_is_capped() {
        let mut c = Connects::default();
        for p in peers(MAX_CONNECTED + 10) {
            c.connected(p);
        }
        assert_eq!(c.connected.len(), MAX_CONNECTED);
    }
}
