//! Gossipsub whose streams do not hold a connection open.
//!
//! Why: the swarm keeps a connection while any of its streams is alive,
//! and gossipsub keeps one stream each way on every connection whose peer
//! speaks it, for as long as the connection lasts. So every connection
//! ever made (a DHT lookup, a 1:1 message, a group confirmation to its
//! sender) stayed open for good: in a network of N nodes each ended up
//! connected to nearly every other, and each connection costs memory and
//! wake-ups (yamux, gossipsub's heartbeat, handler polls) whether it
//! carries anything or not. Here gossipsub's streams are left out of that
//! rule ([`libp2p::Stream::ignore_for_keep_alive`]), so gossipsub keeps a
//! connection only by its own verdict — while the peer is in one of our
//! meshes — and any other connection closes after the idle timeout once
//! no other protocol uses it.

use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub::{self, IdentityTransform};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound, FullyNegotiatedOutbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};

/// The gossipsub behaviour roost runs.
pub type Inner = gossipsub::Behaviour<
    IdentityTransform,
    gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
>;
type InnerHandler = <Inner as NetworkBehaviour>::ConnectionHandler;

/// Gossipsub, every call passed on; its connection handlers wrapped in
/// [`Handler`]. Derefs to the inner behaviour for publishing, subscribing
/// and the rest.
pub struct GossipIdle(pub Inner);

impl std::ops::Deref for GossipIdle {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::ops::DerefMut for GossipIdle {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

impl NetworkBehaviour for GossipIdle {
    type ConnectionHandler = Handler;
    type ToSwarm = gossipsub::Event;

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
            .map(Handler)
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
            .map(Handler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.0.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0.on_connection_handler_event(peer, id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

/// Gossipsub's connection handler, its negotiated streams marked as not
/// keeping the connection; whether it does is its own
/// `connection_keep_alive` (true while the peer is in a mesh).
pub struct Handler(InnerHandler);

impl ConnectionHandler for Handler {
    type FromBehaviour = <InnerHandler as ConnectionHandler>::FromBehaviour;
    type ToBehaviour = <InnerHandler as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <InnerHandler as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <InnerHandler as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <InnerHandler as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <InnerHandler as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.0.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.0.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        self.0.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.0.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.0.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        let event = match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info }) => {
                let protocol = match protocol {
                    futures::future::Either::Left((mut framed, kind)) => {
                        framed.ignore_for_keep_alive();
                        futures::future::Either::Left((framed, kind))
                    }
                    right => right,
                };
                ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info })
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (mut framed, kind),
                info,
            }) => {
                framed.ignore_for_keep_alive();
                ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                    protocol: (framed, kind),
                    info,
                })
            }
            other => other,
        };
        self.0.on_connection_event(event);
    }
}
