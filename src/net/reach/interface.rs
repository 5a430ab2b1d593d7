//! What the reachability machine is told, and what it asks of the swarm.

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// What the machine is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// A listen address came up (a circuit one when a relay accepted our
    /// reservation).
    ListenAddr(Multiaddr),
    /// A listen address went away.
    ListenAddrExpired,
    /// AutoNAT tested one of our addresses.
    AutoNat {
        /// The address tested.
        addr: Multiaddr,
        /// Whether the server could dial us back on it.
        reachable: bool,
    },
    /// Peers observe us on this address: a candidate for AutoNAT to test.
    Candidate(Multiaddr),
    /// The swarm confirmed an external address (any source).
    ExternalConfirmed(Multiaddr),
    /// An external address expired.
    ExternalExpired(Multiaddr),
    /// A connection was established.
    Connected {
        /// Its id.
        conn: ConnectionId,
        /// The remote peer.
        peer: PeerId,
        /// The remote address if we dialled, else the address it came on.
        addr: Multiaddr,
        /// Through a relay.
        relayed: bool,
        /// We dialled it (so `addr` is a dialable address of the peer).
        dialer: bool,
    },
    /// A connection closed.
    Disconnected {
        /// Its id.
        conn: ConnectionId,
    },
    /// A peer identified itself.
    Identified {
        /// Who.
        peer: PeerId,
        /// It speaks the relay HOP protocol (serves as a relay).
        hop: bool,
        /// Its listen addresses.
        listen: Vec<Multiaddr>,
    },
    /// A relay accepted our reservation.
    ReservationAccepted {
        /// The relay.
        relay: PeerId,
    },
    /// Our circuit listener on a relay closed (reservation refused, relay
    /// gone, connection lost).
    RelayClosed {
        /// The relay.
        relay: PeerId,
    },
    /// Time passed.
    Tick,
}

/// What the machine asks of the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Set Kademlia's mode (true: server).
    KadServer(bool),
    /// Advertise the relay HOP protocol or not.
    RelayServer(bool),
    /// Dial this relay (a configured one we are not connected to): the
    /// relay client's own dial gives up when another dial to the same
    /// peer is under way, so the reservation waits for a connection.
    Dial {
        /// The relay.
        relay: PeerId,
        /// Its address.
        addr: Multiaddr,
    },
    /// Listen via this relay on this `…/p2p/R/p2p-circuit` address.
    Reserve {
        /// The relay.
        relay: PeerId,
        /// The circuit listen address.
        addr: Multiaddr,
    },
    /// Stop listening via this relay.
    Release {
        /// The relay.
        relay: PeerId,
    },
    /// Close this (relayed) connection.
    Close(ConnectionId),
    /// Add this address to the swarm's confirmed external addresses: an
    /// address declared reachable. The relay server hands these out in its
    /// reservations (a client refuses a reservation without any).
    Declare(Multiaddr),
    /// Remove this address from the swarm's confirmed external addresses:
    /// one declared earlier that a wider one now supersedes.
    Retract(Multiaddr),
    /// The addresses we publish changed: republish our locator.
    AddressesChanged,
    /// Whether our locator may be published now (`false`: hold it back
    /// until a relay reservation gives it a way in; see `reach::hold`).
    Publishable(bool),
}
