//! The libp2p protocols a roost node speaks, and how they are configured.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, autonat, connection_limits, dcutr, identify, kad, mdns, relay,
    request_response, upnp,
};

use super::record_store::{MAX_RECORDS, SourceCappedStore};
use crate::config::Config;
use crate::identity::Identity;
use crate::wire::frame::CborCodec;
use crate::wire::mailbox::{self, MailboxRequest, MailboxResponse};
use crate::wire::presence::{self, PresenceRequest, PresenceResponse};
use crate::wire::room;

/// The mailbox protocol's request-response behaviour.
pub type MailboxBehaviour = request_response::Behaviour<CborCodec<MailboxRequest, MailboxResponse>>;
/// The presence protocol's request-response behaviour.
pub type PresenceBehaviour =
    request_response::Behaviour<CborCodec<PresenceRequest, PresenceResponse>>;

/// The room history protocol's request-response behaviour.
pub type RoomHistoryBehaviour = request_response::Behaviour<
    CborCodec<crate::wire::room::HistoryRequest, crate::wire::room::HistoryResponse>,
>;

/// Our private Kademlia protocol: roost nodes form their own DHT rather than
/// joining (and validating records for) the public IPFS one.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/roost/kad/1.0.0");
/// Identify protocol version string.
pub const ID_PROTOCOL: &str = "/roost/id/1.0.0";
/// Most connections one peer may hold with us. Honest nodes use one (two
/// for a moment when both dial at once, more if both speak TCP and QUIC);
/// anything beyond is a peer trying to use up our sockets.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 8;
/// How often identify asks a connected peer again: what it tells changes
/// only with its addresses or protocols, which it pushes itself.
pub const IDENTIFY_INTERVAL: Duration = Duration::from_secs(3600);
/// Most incoming connections still in their handshake: each costs a socket
/// and a Noise handshake until it completes or times out, so a flood of
/// half-open connections must not grow without bound.
pub const MAX_PENDING_INCOMING: u32 = 128;

/// The combined behaviour; the event loop owns the only instance.
///
/// No libp2p ping: it pinged every connection every 15 s, and since
/// libp2p-ping 0.44 a failed ping closes nothing (nor did anything here act
/// on its events), so it only cost. In the fan-out bench, 301 nodes in one
/// process never went quiet with it (half a core busy, its handler and the
/// timer thread it kept busy on top of every profile); without it they
/// settle two seconds after start-up. Connections end on close, error or
/// the idle timeout.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection limits; first, so a refused connection reaches no other
    /// protocol.
    pub limits: connection_limits::Behaviour,
    /// Discovery and locator records, held capped per source.
    pub kad: kad::Behaviour<SourceCappedStore>,
    /// Learns peers' listen addresses and protocols.
    pub identify: identify::Behaviour,
    /// LAN discovery, off in tests.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Long-lived streams for messages (`/roost/msg/1`).
    pub stream: libp2p_stream::Behaviour,
    /// Store-and-forward (`/roost/mailbox/1`).
    pub mailbox: MailboxBehaviour,
    /// SUBSCRIBE / NOTIFY (`/roost/presence/1`).
    pub presence: PresenceBehaviour,
    /// Circuit relay v2 server for NATed peers; HOP is advertised only
    /// while we are public ([`crate::net::reach`] decides).
    pub relay: super::relay_server::RelayServer,
    /// Circuit relay v2 client: reservations on relays while we are not
    /// reachable, and dials to `/p2p-circuit` addresses.
    pub relay_client: relay::client::Behaviour,
    /// Hole punching: upgrades a relayed connection to a direct one.
    pub dcutr: dcutr::Behaviour,
    /// AutoNAT v2 client: asks peers to dial our candidate addresses back.
    /// Off under `dht_mode = "server"`, which declares us reachable: its
    /// probes (and the dial-back connections they cause) would tell us
    /// nothing we act on. Its probe timer sleeps while every candidate
    /// address has its answer ([`super::quiet::Untested`]).
    pub autonat: super::quiet::Quiet<super::quiet::AutonatClient, super::quiet::Untested>,
    /// AutoNAT v2 server: dials back the peers that ask. It only ever dials
    /// the IP the request came from (or makes the asker pay in bytes for
    /// another), so it is no amplifier; it runs on every node, a NATed one
    /// can dial out too.
    pub autonat_server: autonat::v2::server::Behaviour,
    /// Port mapping on the home router (UPnP IGD), off by config.
    pub upnp: Toggle<upnp::tokio::Behaviour>,
    /// Public rooms' messages (gossipsub, see [`super::pubsub`]).
    pub pubsub: super::pubsub::Pubsub,
    /// A joiner's request for a room's last messages
    /// (`/roost/room-history/1`).
    pub room_history: RoomHistoryBehaviour,
    /// Keeps the connections to our buddies open past the idle timeout.
    pub keep: super::keep::Behaviour,
}

/// The relay server's libp2p configuration from ours.
fn relay_config(l: &crate::config::RelayLimits) -> relay::Config {
    relay::Config {
        max_reservations: l.max_reservations,
        max_reservations_per_peer: l.max_reservations_per_peer,
        reservation_duration: l.reservation_duration,
        max_circuits: l.max_circuits,
        max_circuits_per_peer: l.max_circuits_per_peer,
        max_circuit_duration: l.max_circuit_duration,
        max_circuit_bytes: l.max_circuit_bytes,
        ..relay::Config::default()
    }
}

impl Behaviour {
    /// Builds the behaviour for `identity` under `config`, with the relay
    /// client half the swarm builder made with its transport.
    pub fn new(
        identity: &Identity,
        config: &Config,
        relay_client: relay::client::Behaviour,
    ) -> std::io::Result<Self> {
        let peer_id = identity.peer_id();
        let kad = kademlia(peer_id, config);
        let identify = identify::Behaviour::new(
            identify::Config::new(ID_PROTOCOL.into(), identity.keypair().public())
                .with_agent_version(format!("roost/{}", env!("CARGO_PKG_VERSION")))
                // Peers learn our circuit addresses as soon as we have them.
                .with_push_listen_addr_updates(true)
                // Identify runs when a connection opens and is pushed when
                // our listen addresses or protocols change (a new DHT mode,
                // a relay's HOP); asking again every 5 minutes (libp2p's
                // default) on every connection kept an idle network busy.
                .with_interval(IDENTIFY_INTERVAL),
        );
        let mut relay = relay::Behaviour::new(peer_id, relay_config(&config.relay_limits));
        relay.set_status(Some(relay::Status::Disable));
        let mdns = if config.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_established_incoming(Some(config.max_incoming_connections));
        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            kad,
            identify,
            mdns: mdns.into(),
            stream: libp2p_stream::Behaviour::new(),
            mailbox: rpc(
                CborCodec::new(mailbox::MAX_REQUEST, mailbox::MAX_RESPONSE),
                mailbox::MAILBOX_PROTOCOL,
                Duration::from_secs(15),
                128,
            ),
            presence: rpc(
                CborCodec::new(presence::MAX_PRESENCE_FRAME, presence::MAX_PRESENCE_FRAME),
                presence::PRESENCE_PROTOCOL,
                Duration::from_secs(10),
                256,
            ),
            relay: super::relay_server::RelayServer::new(relay),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat: super::quiet::Quiet::new(
                (config.dht_mode != crate::config::DhtMode::Server)
                    .then(autonat::v2::client::Behaviour::default)
                    .into(),
                super::quiet::Untested::default(),
            ),
            autonat_server: autonat::v2::server::Behaviour::default(),
            upnp: config.upnp.then(upnp::tokio::Behaviour::default).into(),
            pubsub: super::pubsub::pubsub().map_err(std::io::Error::other)?,
            room_history: rpc(
                CborCodec::new(room::MAX_HISTORY_REQUEST, room::MAX_HISTORY_RESPONSE),
                room::HISTORY_PROTOCOL,
                Duration::from_secs(10),
                32,
            ),
            keep: super::keep::Behaviour::default(),
        })
    }
}

/// Kademlia on our private protocol, validating every record before it is
/// stored, with the publication rules that are ours (`net::locator`), not
/// libp2p's.
fn kademlia(peer_id: libp2p::PeerId, config: &Config) -> kad::Behaviour<SourceCappedStore> {
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_query_timeout(config.query_timeout)
        // We republish our own record at half its lifetime, to the
        // peers closest to it then; nobody else's is ours to publish.
        // Holders re-putting what they hold (libp2p's replication)
        // would add a lookup and K puts per record held every interval
        // — ~5 000 requests an hour per node at 10 minutes — to keep
        // alive records whose owner refreshes them anyway.
        .set_publication_interval(None)
        .set_replication_interval(None)
        // Bucket refresh (a lookup per non-empty bucket) hourly, as in
        // the Kademlia paper, not libp2p's 5 minutes: at 1000 nodes the
        // 5-minute refreshes alone kept both cores busy, and queries
        // keep the buckets fresh in between.
        .set_periodic_bootstrap_interval(Some(Duration::from_secs(3600)))
        .set_max_packet_size(16 * 1024)
        // The event loop inserts peers itself, checking a full bucket's
        // oldest entry at most every 10 minutes (`net::kad_probe`).
        .set_kbucket_inserts(kad::BucketInserts::Manual);
    let store =
        SourceCappedStore::new(peer_id, MAX_RECORDS, crate::wire::locator::MAX_RECORD_BYTES);
    let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
    // Client until `net::reach` decides: libp2p's own choice would
    // count a relay circuit or a UPnP mapping as reachability.
    kad.set_mode(Some(kad::Mode::Client));
    kad
}

/// A request-response protocol of ours, with its frame limits (the codec),
/// its timeout and the most streams one connection may have open in it.
fn rpc<Req, Resp>(
    codec: CborCodec<Req, Resp>,
    protocol: StreamProtocol,
    timeout: Duration,
    streams: usize,
) -> request_response::Behaviour<CborCodec<Req, Resp>>
where
    CborCodec<Req, Resp>:
        request_response::Codec<Protocol = StreamProtocol> + Clone + Send + 'static,
{
    request_response::Behaviour::with_codec(
        codec,
        [(protocol, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(streams),
    )
}
