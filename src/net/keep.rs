//! Keeps the connections to a chosen set of peers (our buddies) open past
//! the idle timeout.
//!
//! Why: presence lives on a connection. A publisher drops a subscriber
//! whose last connection closes, and a watcher whose connection to a buddy
//! closes subscribes again, which dials again. Left to the idle timeout,
//! every buddy connection closed once per timeout and both sides
//! re-dialled, handshook, identified and re-subscribed — a settled network
//! paid for every buddy pair at every idle timeout. An open connection with
//! nothing on it costs nothing (no ping runs), and a buddy that vanishes is
//! still noticed: a clean stop closes the connection, and a dead peer fails
//! the next renewal. The set is bounded by the buddy list.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    NotifyHandler, StreamUpgradeError, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

/// Which connections to keep; the event loop sets the peers.
#[derive(Default)]
pub struct Behaviour {
    keep: HashSet<PeerId>,
    /// Open connections per peer, to tell their handlers of a change.
    conns: HashMap<PeerId, HashSet<ConnectionId>>,
    events: VecDeque<ToSwarm<Infallible, bool>>,
}

impl Behaviour {
    /// Keeps exactly the connections to `peers` open from now on.
    pub fn set(&mut self, peers: HashSet<PeerId>) {
        for (peer, conns) in &self.conns {
            let keep = peers.contains(peer);
            if keep != self.keep.contains(peer) {
                for &conn in conns {
                    self.events.push_back(ToSwarm::NotifyHandler {
                        peer_id: *peer,
                        handler: NotifyHandler::One(conn),
                        event: keep,
                    });
                }
            }
        }
        self.keep = peers;
    }

    /// Whether connections to `peer` are kept open.
    pub fn keeps(&self, peer: &PeerId) -> bool {
        self.keep.contains(peer)
    }

    fn handler(&mut self, peer: PeerId, conn: ConnectionId) -> Handler {
        self.conns.entry(peer).or_default().insert(conn);
        Handler {
            keep: self.keep.contains(&peer),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer, conn))
    }

    fn handle_established_outbound_connection(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer, conn))
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        e: THandlerOutEvent<Self>,
    ) {
        libp2p::core::util::unreachable(e)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(c) = event
            && let Some(conns) = self.conns.get_mut(&c.peer_id)
        {
            conns.remove(&c.connection_id);
            if conns.is_empty() {
                self.conns.remove(&c.peer_id);
            }
        }
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        self.events.pop_front().map_or(Poll::Pending, Poll::Ready)
    }
}

/// One connection's handler: speaks no protocol, only says whether the
/// connection is to be kept.
pub struct Handler {
    keep: bool,
}

impl libp2p::swarm::ConnectionHandler for Handler {
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep
    }

    fn on_behaviour_event(&mut self, keep: bool) {
        self.keep = keep;
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<DeniedUpgrade, DeniedUpgrade>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol, ..
            }) => libp2p::core::util::unreachable(protocol),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol, ..
            }) => libp2p::core::util::unreachable(protocol),
            ConnectionEvent::DialUpgradeError(DialUpgradeError {
                error: StreamUpgradeError::Apply(e),
                ..
            }) => libp2p::core::util::unreachable(e),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::swarm::ConnectionHandler as _;

    fn open(b: &mut Behaviour, peer: PeerId, conn: ConnectionId) -> Handler {
        let addr: Multiaddr = "/memory/1".parse().expect("addr");
        b.handle_established_inbound_connection(conn, peer, &addr, &addr)
            .expect("accepted")
    }

    fn notified(b: &mut Behaviour) -> Vec<(PeerId, ConnectionId, bool)> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        while let Poll::Ready(ToSwarm::NotifyHandler {
            peer_id,
            handler: NotifyHandler::One(conn),
            event,
        }) = b.poll(&mut cx)
        {
            out.push((peer_id, conn, event));
        }
        out
    }

    #[test]
    fn connections_to_kept_peers_are_kept_and_a_change_reaches_the_open_ones() {
        let (buddy, other) = (PeerId::random(), PeerId::random());
        let (c1, c2, c3) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        let mut b = Behaviour::default();
        let h1 = open(&mut b, buddy, c1);
        assert!(!h1.connection_keep_alive(), "nobody kept yet");
        open(&mut b, other, c2);

        b.set(HashSet::from([buddy]));
        assert_eq!(
            notified(&mut b),
            vec![(buddy, c1, true)],
            "the buddy's open connection is told, the other's not"
        );
        assert!(
            open(&mut b, buddy, c3).connection_keep_alive(),
            "a new one starts kept"
        );
        assert!(!open(&mut b, other, ConnectionId::new_unchecked(4)).connection_keep_alive());

        b.set(HashSet::new());
        let mut off = notified(&mut b);
        off.sort_by_key(|(_, c, _)| format!("{c:?}"));
        assert_eq!(
            off,
            vec![(buddy, c1, false), (buddy, c3, false)],
            "no longer kept"
        );
        b.set(HashSet::new());
        assert!(notified(&mut b).is_empty(), "no change, nothing told");
    }
}
