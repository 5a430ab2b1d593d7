//! libp2p's relay server, shielded from relayed connections.
//!
//! `relay::Behaviour` (libp2p-relay 0.22) gives a relayed connection a
//! dummy handler, yet records it among its connections; when its HOP
//! status changes ([`relay::Behaviour::set_status`], which `net::reach`
//! calls whenever our reachability changes) it sends the new status to
//! every recorded connection, and the dummy handler's side of the `Either`
//! hits `unreachable!()` — a panic in that connection's task. This wrapper
//! never tells it about relayed connections, so it never records them; it
//! has nothing to serve on them anyway (it refuses every stream there).
//! Its connection handlers are wrapped in [`super::relay_wake::Handler`],
//! so a connection it stops keeping on the clock is looked at again.

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, relay};

/// [`relay::Behaviour`] that only learns of direct connections.
pub struct RelayServer(relay::Behaviour);

impl RelayServer {
    /// Wraps a relay server.
    pub fn new(inner: relay::Behaviour) -> Self {
        Self(inner)
    }

    /// See [`relay::Behaviour::set_status`].
    pub fn set_status(&mut self, status: Option<relay::Status>) {
        self.0.set_status(status);
    }
}

/// The relay server's handler, woken when its keep-alive runs out.
type Wrapped = super::relay_wake::Handler<THandler<relay::Behaviour>>;

fn wrap(inner: THandler<relay::Behaviour>) -> Wrapped {
    super::relay_wake::Handler::new(inner, super::relay_wake::GRACE)
}

impl NetworkBehaviour for RelayServer {
    type ConnectionHandler = Wrapped;
    type ToSwarm = relay::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.0.handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(id, peer, local, remote)
            .map(wrap)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addrs: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.0
            .handle_pending_outbound_connection(id, peer, addrs, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
            .map(wrap)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionEstablished(e) if e.endpoint.is_relayed() => {}
            FromSwarm::ConnectionClosed(e) if e.endpoint.is_relayed() => {}
            _ => self.0.on_swarm_event(event),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0.on_connection_handler_event(peer, id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::ConnectedPoint;
    use libp2p::swarm::NotifyHandler;
    use libp2p::swarm::behaviour::ConnectionEstablished;

    fn established(server: &mut RelayServer, peer: PeerId, id: usize, local: &str) {
        let endpoint = ConnectedPoint::Listener {
            local_addr: local.parse().unwrap(),
            send_back_addr: "/ip4/127.0.0.1/tcp/2".parse().unwrap(),
        };
        server.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(id),
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
    }

    /// A status change is sent to direct connections only: a relayed one
    /// has the dummy handler, which panics on it.
    #[test]
    fn status_changes_reach_direct_connections_only() {
        let me = PeerId::random();
        let mut server = RelayServer::new(relay::Behaviour::new(me, relay::Config::default()));
        server.set_status(Some(relay::Status::Disable));
        let relay = PeerId::random();
        let circuit = format!("/ip4/127.0.0.1/tcp/1/p2p/{relay}/p2p-circuit");
        established(&mut server, PeerId::random(), 1, &circuit);
        established(&mut server, PeerId::random(), 2, "/ip4/127.0.0.1/tcp/1");

        server.set_status(Some(relay::Status::Enable));
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut notified = Vec::new();
        while let Poll::Ready(action) = server.poll(&mut cx) {
            if let ToSwarm::NotifyHandler {
                handler: NotifyHandler::One(id),
                ..
            } = action
            {
                notified.push(id);
            }
        }
        assert_eq!(notified, vec![ConnectionId::new_unchecked(2)]);
    }
}
