//! The network task's interface: the [`Command`]s the rest of the program
//! sends it through [`super::NetClient`], and the [`NetEvent`]s it reports.

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::wire::locator::Locator;
use crate::wire::mailbox::{MailboxRequest, MailboxResponse};
use crate::wire::presence::{PresenceInfo, PresenceRequest, PresenceResponse};

/// What the rest of the program may ask of the network task.
#[derive(Debug)]
pub enum Command {
    /// Our current listen addresses.
    ListenAddrs {
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Peers with an open connection.
    ConnectedPeers {
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// The addresses our locator record would carry now (listeners,
    /// confirmed external and relay circuit addresses): what an invite
    /// hands out.
    PublicAddrs {
        /// Where the answer goes.
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Learn peers' addresses from outside the DHT (an invite): Kademlia
    /// gets every contact, as it gets bootstrap peers, and `peer` is dialled
    /// at its own. Not waited for: the dial's outcome reaches the services
    /// as `Connected`, and a later [`Command::Dial`] finds the addresses.
    Meet {
        /// The peer to dial.
        peer: PeerId,
        /// Peers and where each is reached (`peer`'s among them).
        contacts: Vec<(PeerId, Multiaddr)>,
    },
    /// Our reachability, relay reservations and open connections.
    Reach {
        /// Where the answer goes.
        reply: oneshot::Sender<ReachStatus>,
    },
    /// Look up a peer's locator record in the DHT.
    Find {
        /// Whose record.
        peer: PeerId,
        /// The first valid record found, or `None`.
        reply: oneshot::Sender<Option<Locator>>,
    },
    /// Connect to a peer at the given addresses.
    Dial {
        /// Whom.
        peer: PeerId,
        /// Where (from its locator).
        addrs: Vec<Multiaddr>,
        /// Dial even while another dial of the peer is under way: these
        /// addresses come from a newer record than those being dialled.
        alongside: bool,
        /// `Ok` once a connection is established.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Put raw bytes as a DHT record at one peer, bypassing our own checks:
    /// lets tests play a hostile node against an honest one.
    #[cfg(feature = "test-util")]
    PutRecordTo {
        /// Record key.
        key: libp2p::kad::RecordKey,
        /// Record value.
        value: Vec<u8>,
        /// The peer asked to store it.
        peer: PeerId,
        /// `Ok` when the peer answered.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The record we hold locally under a key, if any (tests).
    #[cfg(feature = "test-util")]
    HeldRecord {
        /// Record key.
        key: libp2p::kad::RecordKey,
        /// The value held.
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// The peers closest to a key, found by an iterative DHT lookup.
    ClosestPeers {
        /// The key (e.g. a mailbox key).
        key: Vec<u8>,
        /// The peers found, closest first.
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    /// Send a mailbox request and wait for the answer.
    Mailbox {
        /// To whom.
        peer: PeerId,
        /// What.
        request: MailboxRequest,
        /// The answer, or why there is none.
        reply: oneshot::Sender<Result<MailboxResponse, String>>,
    },
    /// Answer a mailbox request received earlier.
    MailboxRespond {
        /// The request's channel.
        channel: ResponseChannel<MailboxResponse>,
        /// The answer.
        response: MailboxResponse,
    },
    /// Send a presence request and wait for the answer.
    Presence {
        /// To whom.
        peer: PeerId,
        /// What.
        request: PresenceRequest,
        /// The answer, or why there is none.
        reply: oneshot::Sender<Result<PresenceResponse, String>>,
    },
    /// Send NOTIFYs to many subscribers, not waiting for their answers.
    Notify {
        /// Each subscriber and what it is told.
        to: Vec<(PeerId, PresenceInfo)>,
    },
    /// Answer a presence request received earlier.
    PresenceRespond {
        /// The request's channel.
        channel: ResponseChannel<PresenceResponse>,
        /// The answer.
        response: PresenceResponse,
    },
    /// Public rooms: gossipsub, the room's DHT record and providers, and
    /// the history protocol (`net::event_loop::pubsub`).
    Rooms(super::pubsub::RoomCommand),
    /// Keep the connections to exactly these peers (our buddies) open past
    /// the idle timeout ([`crate::net::keep`]).
    KeepAlive {
        /// The peers.
        peers: std::collections::HashSet<PeerId>,
    },
}

/// What [`Command::Reach`] answers: how others can reach us, for the
/// status views.
#[derive(Debug, Clone)]
pub struct ReachStatus {
    /// Public, private or unknown.
    pub reachability: crate::net::reach::Reachability,
    /// The circuit addresses of the relay reservations we hold.
    pub relays: Vec<Multiaddr>,
    /// One row per open connection.
    pub connections: Vec<crate::net::reach::Conn>,
}

/// What the network tells the services beside it.
#[derive(Debug)]
pub enum NetEvent {
    /// A connection to this peer was established.
    Connected(PeerId),
    /// The last connection to this peer closed.
    Disconnected(PeerId),
    /// This peer entered our routing table: our DHT neighbourhood changed.
    NewPeer(PeerId),
    /// A peer asks something of the mailboxes we hold.
    MailboxRequest {
        /// Authenticated by the connection.
        peer: PeerId,
        /// What it asks.
        request: MailboxRequest,
        /// Where the answer goes ([`Command::MailboxRespond`]).
        channel: ResponseChannel<MailboxResponse>,
    },
    /// A peer subscribes to or notifies us of presence.
    PresenceRequest {
        /// Authenticated by the connection.
        peer: PeerId,
        /// What it asks.
        request: PresenceRequest,
        /// Where the answer goes ([`Command::PresenceRespond`]).
        channel: ResponseChannel<PresenceResponse>,
    },
    /// Public rooms: a gossip message to validate, or a history request.
    Rooms(super::pubsub::RoomEvent),
}
