//! Gossipsub that costs a connection nothing until this node uses it.
//!
//! Why, twice over:
//!
//! - **Keep-alive.** The swarm keeps a connection while any of its streams
//!   is alive, and gossipsub keeps one stream each way on every connection
//!   whose peer speaks it, for as long as the connection lasts. So every
//!   connection ever made (a DHT lookup, a 1:1 message, a group
//!   confirmation to its sender) stayed open for good: in a network of N
//!   nodes each ended up connected to nearly every other. Here gossipsub's
//!   streams are left out of that rule
//!   ([`libp2p::Stream::ignore_for_keep_alive`]), so gossipsub keeps a
//!   connection only by its own verdict — while the peer is in one of our
//!   meshes — and any other connection closes after the idle timeout once
//!   no other protocol uses it.
//! - **Streams.** Gossipsub opens its outbound stream on every new
//!   connection to send its hello (its extensions, then our topics), so
//!   every connection carried two gossipsub streams, each with its own
//!   Yamux state and 8 KiB read and write buffers, on a node that never
//!   joined a room or a large group. Here a connection's handler holds that
//!   request back until the node first subscribes or publishes
//!   ([`GossipIdle::subscribe`], [`GossipIdle::publish`]); then every
//!   connection's held request goes out, and later connections open theirs
//!   at once. A peer that uses gossipsub still opens its stream to us, so
//!   we learn its topics either way; nothing is lost by waiting, since a
//!   node that follows nothing and publishes nothing has nothing to send.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub::{self, IdentTopic, IdentityTransform, MessageId, PublishError};
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound, FullyNegotiatedOutbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

/// The gossipsub behaviour roost runs.
pub type Inner = gossipsub::Behaviour<
    IdentityTransform,
    gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
>;
type InnerHandler = <Inner as NetworkBehaviour>::ConnectionHandler;

/// Gossipsub, every call passed on; its connection handlers wrapped in
/// [`Handler`]. Derefs to the inner behaviour for the rest of its API;
/// subscribing and publishing go through [`GossipIdle::subscribe`] and
/// [`GossipIdle::publish`], which mark the node as using gossipsub.
pub struct GossipIdle {
    inner: Inner,
    /// Whether this node has subscribed or published: until then its
    /// handlers hold their outbound stream back.
    in_use: bool,
    /// Every open connection, so each held stream can be released (bounded
    /// by the swarm's connection limits).
    connections: HashMap<ConnectionId, PeerId>,
    /// Release notices not yet handed to the swarm.
    releases: VecDeque<(PeerId, ConnectionId)>,
}

impl GossipIdle {
    /// Wraps `inner`; no stream of ours is opened until the first
    /// subscribe or publish.
    pub fn new(inner: Inner) -> Self {
        Self {
            inner,
            in_use: false,
            connections: HashMap::new(),
            releases: VecDeque::new(),
        }
    }

    /// Follows `topic` (gossipsub's `subscribe`), releasing every held
    /// stream first so the subscription reaches every connected peer.
    pub fn subscribe(&mut self, topic: &IdentTopic) -> Result<bool, gossipsub::SubscriptionError> {
        self.use_gossip();
        self.inner.subscribe(topic)
    }

    /// Publishes on `topic` (gossipsub's `publish`), releasing every held
    /// stream first.
    pub fn publish(&mut self, topic: IdentTopic, data: Vec<u8>) -> Result<MessageId, PublishError> {
        self.use_gossip();
        self.inner.publish(topic, data)
    }

    /// Whether this node has used gossipsub (and so opens its streams).
    #[cfg(test)]
    fn in_use(&self) -> bool {
        self.in_use
    }

    fn use_gossip(&mut self) {
        if !self.in_use {
            self.in_use = true;
            self.releases
                .extend(self.connections.iter().map(|(id, peer)| (*peer, *id)));
        }
    }

    fn handler(&self, inner: InnerHandler) -> Handler {
        Handler {
            inner,
            released: self.in_use,
            held: None,
        }
    }
}

impl std::ops::Deref for GossipIdle {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::DerefMut for GossipIdle {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
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
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self
            .inner
            .handle_established_inbound_connection(id, peer, local, remote)?;
        Ok(self.handler(inner))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addrs: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
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
        let inner = self
            .inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)?;
        Ok(self.handler(inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            }) => {
                self.connections.insert(connection_id, peer_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.connections.remove(&connection_id);
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        // Releases first: whatever gossipsub queued for a peer goes out on
        // the stream a release opens.
        while let Some((peer_id, id)) = self.releases.pop_front() {
            if self.connections.contains_key(&id) {
                return Poll::Ready(ToSwarm::NotifyHandler {
                    peer_id,
                    handler: NotifyHandler::One(id),
                    event: In::Release,
                });
            }
        }
        self.inner.poll(cx).map(|e| e.map_in(In::Gossip))
    }
}

/// What [`GossipIdle`] tells a connection's [`Handler`].
#[derive(Debug)]
pub enum In {
    /// For gossipsub's own handler.
    Gossip(<InnerHandler as ConnectionHandler>::FromBehaviour),
    /// The node now uses gossipsub: open the held stream.
    Release,
}

/// Gossipsub's connection handler, its negotiated streams marked as not
/// keeping the connection (whether it does is its own
/// `connection_keep_alive`: true while the peer is in a mesh), its
/// outbound stream held back until [`In::Release`] while the node has not
/// used gossipsub.
pub struct Handler {
    inner: InnerHandler,
    /// Whether outbound streams may open.
    released: bool,
    /// Gossipsub's request for its outbound stream, held while not released.
    held: Option<SubstreamProtocol<<InnerHandler as ConnectionHandler>::OutboundProtocol, ()>>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = In;
    type ToBehaviour = <InnerHandler as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <InnerHandler as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <InnerHandler as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <InnerHandler as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <InnerHandler as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if self.released
            && let Some(protocol) = self.held.take()
        {
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { protocol });
        }
        loop {
            match self.inner.poll(cx) {
                // Gossipsub asks once and waits for the stream; the request
                // is kept until the node uses gossipsub.
                Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { protocol })
                    if !self.released =>
                {
                    self.held = Some(protocol);
                }
                other => return other,
            }
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: In) {
        match event {
            In::Gossip(event) => self.inner.on_behaviour_event(event),
            In::Release => self.released = true,
        }
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
        self.inner.on_connection_event(event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::core::transport::{MemoryTransport, Transport, upgrade::Version};
    use libp2p::gossipsub::IdentTopic;
    use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
    use libp2p::{PeerId, Swarm, identify, noise, yamux};

    use crate::net::pubsub::{Pubsub, pubsub};

    #[derive(NetworkBehaviour)]
    struct Node {
        gossip: Pubsub,
        identify: identify::Behaviour,
    }

    fn node() -> Swarm<Node> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| {
                Ok(MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            })
            .expect("transport")
            .with_behaviour(|key| Node {
                gossip: pubsub().expect("gossipsub"),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/test/1".into(),
                    key.public(),
                )),
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    }

    /// Runs both swarms until `done` holds after an event of either,
    /// which it sees; panics after a generous deadline.
    async fn until(
        a: &mut Swarm<Node>,
        b: &mut Swarm<Node>,
        what: &str,
        mut done: impl FnMut(&mut Swarm<Node>, &mut Swarm<Node>, Option<NodeEvent>) -> bool,
    ) {
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        if done(a, b, None) {
            return;
        }
        loop {
            let event = tokio::select! {
                e = a.select_next_some() => e,
                e = b.select_next_some() => e,
                _ = &mut deadline => panic!("not reached: {what}"),
            };
            let event = match event {
                SwarmEvent::Behaviour(e) => Some(e),
                _ => None,
            };
            if done(a, b, event) {
                return;
            }
        }
    }

    /// The protocol gossipsub knows `peer` speaks: `Floodsub` (its
    /// default) until a gossipsub stream with the peer is negotiated.
    fn kind_of(swarm: &Swarm<Node>, peer: &PeerId) -> Option<String> {
        swarm
            .behaviour()
            .gossip
            .peer_protocol()
            .find(|(p, _)| *p == peer)
            .map(|(_, k)| format!("{k:?}"))
    }

    #[tokio::test]
    async fn no_gossipsub_stream_opens_until_a_node_uses_gossipsub() {
        let (mut a, mut b) = (node(), node());
        let (ida, idb) = (*a.local_peer_id(), *b.local_peer_id());
        a.listen_on("/memory/0".parse().expect("address"))
            .expect("listen");
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = a.select_next_some().await {
                break address;
            }
        };
        b.dial(addr).expect("dial");
        let (mut a_heard, mut b_heard) = (false, false);
        until(&mut a, &mut b, "identify both ways", |_, _, e| {
            if let Some(NodeEvent::Identify(identify::Event::Received { peer_id, .. })) = e {
                a_heard |= peer_id == idb;
                b_heard |= peer_id == ida;
            }
            a_heard && b_heard
        })
        .await;
        // A sentinel after the connection's first streams: B's push, on a
        // stream opened after identify's, sent by B and taken by A.
        // Gossipsub's hello is asked for when the connection opens, long
        // before.
        b.behaviour_mut().identify.push([ida]);
        let (mut sent, mut taken) = (false, false);
        until(&mut a, &mut b, "B's identify push, both ends", |_, _, e| {
            match e {
                Some(NodeEvent::Identify(identify::Event::Pushed { peer_id, .. })) => {
                    sent |= peer_id == ida
                }
                // A's second identify of B: the push.
                Some(NodeEvent::Identify(identify::Event::Received { peer_id, .. })) => {
                    taken |= peer_id == idb
                }
                _ => {}
            }
            sent && taken
        })
        .await;
        assert_eq!(
            kind_of(&a, &idb),
            Some("Floodsub".into()),
            "A: a gossipsub stream opened"
        );
        assert_eq!(
            kind_of(&b, &ida),
            Some("Floodsub".into()),
            "B: a gossipsub stream opened"
        );
        assert!(!a.behaviour().gossip.in_use());

        // A joins a topic: the held stream opens and B learns of it.
        let topic = IdentTopic::new("t");
        a.behaviour_mut()
            .gossip
            .subscribe(&topic)
            .expect("subscribe");
        until(&mut a, &mut b, "B hears A's topic", |_, b, _| {
            let hash = topic.hash();
            b.behaviour()
                .gossip
                .all_peers()
                .any(|(p, topics)| *p == ida && topics.contains(&&hash))
        })
        .await;

        // B joins too and a message from A reaches it over the mesh.
        b.behaviour_mut()
            .gossip
            .subscribe(&topic)
            .expect("subscribe");
        until(&mut a, &mut b, "A meshes with B", |a, _, _| {
            a.behaviour()
                .gossip
                .mesh_peers(&topic.hash())
                .any(|p| *p == idb)
        })
        .await;
        a.behaviour_mut()
            .gossip
            .publish(topic.clone(), b"hello".to_vec())
            .expect("publish");
        until(&mut a, &mut b, "B gets A's message", |_, _, e| {
            matches!(e, Some(NodeEvent::Gossip(libp2p::gossipsub::Event::Message { message, .. })) if message.data == b"hello")
        })
        .await;
    }
}
