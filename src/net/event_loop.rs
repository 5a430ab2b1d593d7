//! The task that owns the Swarm. It translates between libp2p events, the
//! [`Command`]s the rest of the program sends through [`super::NetClient`],
//! and the pure locator machines beside it ([`super::republish`],
//! [`super::record_handoff`]); it never blocks (disk I/O goes to
//! `spawn_blocking`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad::store::RecordStore;
use libp2p::kad::{
    self, GetRecordOk, InboundRequest, KBucketKey, PeerRecord, QueryId, QueryResult, Quorum, Record,
};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL};
use super::lasting::{Lasting, Remember};
use super::ratelimit::{MAILBOX_BURST, MAILBOX_RATE, RateLimiter};
use super::record_handoff;
use super::record_store::PutError;
use super::republish::Republisher;
use crate::clock::unix_ms;
use crate::config::Config;
use crate::identity::Identity;
use crate::store::{KnownPeer, Store, Writer};
use crate::wire::locator::{self, Locator};
use crate::wire::mailbox::{MailboxRequest, MailboxResponse};
use crate::wire::presence::{PresenceInfo, PresenceRequest, PresenceResponse};

/// How long a clean shutdown waits for the "offline" record to be stored.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Remembered peers dialled at start.
const REDIAL_AT_START: usize = 8;

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
        /// `Ok` once a connection is established.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Put raw bytes as a DHT record at one peer, bypassing our own checks:
    /// lets tests play a hostile node against an honest one.
    #[cfg(feature = "test-util")]
    PutRecordTo {
        /// Record key.
        key: kad::RecordKey,
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
        key: kad::RecordKey,
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
    /// Leave the network cleanly: publish an "offline" record, then stop.
    Shutdown {
        /// Answered once the task is about to exit.
        reply: oneshot::Sender<()>,
    },
}

/// Answers awaited for our outbound requests of one request-response
/// protocol.
type Pending<Resp> = HashMap<OutboundRequestId, oneshot::Sender<Result<Resp, String>>>;

/// Routes one request-response event: inbound requests become a
/// [`NetEvent`] for the services — unless the peer is over its rate, or the
/// services are behind (the channel is bounded); then the request is dropped
/// and the peer sees a failure it will retry. Answers and failures go to
/// whoever is waiting for them.
fn route_rpc<Req, Resp>(
    event: request_response::Event<Req, Resp>,
    pending: &mut Pending<Resp>,
    limiter: &mut RateLimiter,
    events: &mpsc::Sender<NetEvent>,
    inbound: impl FnOnce(PeerId, Req, ResponseChannel<Resp>) -> NetEvent,
) {
    match event {
        request_response::Event::Message {
            peer,
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        } => {
            if !limiter.allow(peer, Instant::now()) {
                debug!(%peer, "over its request rate; dropping a request");
                return;
            }
            let busy = events.try_send(inbound(peer, request, channel)).is_err();
            if busy {
                debug!(%peer, "services busy; dropping a request");
            }
        }
        request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Ok(response));
            }
        }
        request_response::Event::OutboundFailure {
            peer,
            request_id,
            error,
            ..
        } => match pending.remove(&request_id) {
            Some(reply) => {
                let _ = reply.send(Err(error.to_string()));
            }
            None => debug!(%peer, "request not delivered: {error}"),
        },
        _ => {}
    }
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
}

struct Stopping {
    query: Option<QueryId>,
    deadline: Instant,
    replies: Vec<oneshot::Sender<()>>,
}

/// Owner of the Swarm.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    net_events: mpsc::Sender<NetEvent>,
    identity: Identity,
    writer: Writer,
    locator_ttl: Duration,
    republisher: Republisher,
    seq: u64,
    /// Lookups under way: whose locator each asks for, and who waits.
    pending_finds: HashMap<QueryId, (PeerId, oneshot::Sender<Option<Locator>>)>,
    /// A lookup's answer from our own record store, given only if no peer
    /// answers: a holder that missed the owner's last put would otherwise
    /// answer its own lookups with the stale copy for the record's lifetime.
    own_answers: HashMap<QueryId, Locator>,
    pending_dials: HashMap<PeerId, Vec<oneshot::Sender<Result<(), String>>>>,
    pending_puts: HashMap<QueryId, oneshot::Sender<Result<(), String>>>,
    pending_closest: HashMap<QueryId, oneshot::Sender<Vec<PeerId>>>,
    /// Puts handing a held record to a newly met peer or passing one on
    /// (their outcome is not our own publication's), with the peers to try
    /// once more should the put fail; `None` for the retry itself.
    handoffs: HashMap<QueryId, Option<Vec<PeerId>>>,
    pending_mailbox: Pending<MailboxResponse>,
    pending_presence: Pending<PresenceResponse>,
    mailbox_limit: RateLimiter,
    presence_limit: RateLimiter,
    /// Which connections have lasted: their peers are the ones remembered.
    lasting: Lasting,
    stopping: Option<Stopping>,
}

impl EventLoop {
    /// Wraps a built swarm. `seq` is the last locator seq we published.
    pub fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        net_events: mpsc::Sender<NetEvent>,
        identity: Identity,
        store: Store,
        config: &Config,
        seq: u64,
    ) -> Self {
        Self {
            swarm,
            commands,
            commands_open: true,
            net_events,
            identity,
            writer: Writer::spawn(store),
            locator_ttl: config.locator_ttl,
            republisher: Republisher::new(config.locator_ttl, config.republish_min_interval),
            seq,
            pending_finds: HashMap::new(),
            own_answers: HashMap::new(),
            pending_dials: HashMap::new(),
            pending_puts: HashMap::new(),
            pending_closest: HashMap::new(),
            handoffs: HashMap::new(),
            pending_mailbox: HashMap::new(),
            pending_presence: HashMap::new(),
            // Generous for honest peers (a mailbox fetch is a few requests,
            // presence one per change), tight enough to stop a flood.
            mailbox_limit: RateLimiter::new(MAILBOX_RATE, MAILBOX_BURST),
            presence_limit: RateLimiter::new(20.0, 100.0),
            lasting: Lasting::new(config.lasting_connection),
            stopping: None,
        }
    }

    /// Opens the listeners (waiting until each reports its address, so the
    /// caller can hand them out) and starts joining the network through the
    /// bootstrap addresses and the peers remembered from earlier runs.
    pub async fn start(
        &mut self,
        listen: &[Multiaddr],
        bootstrap: &[Multiaddr],
        known: Vec<KnownPeer>,
    ) -> Result<(), super::NetError> {
        let mut waiting = std::collections::HashSet::new();
        for addr in listen {
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| super::NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            waiting.insert(id);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !waiting.is_empty() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| super::NetError::Setup("listeners did not come up".into()))?;
            match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    waiting.remove(listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } => {
                    let reason = format!("{reason:?}");
                    if waiting.remove(listener_id) {
                        return Err(super::NetError::Setup(format!("listener closed: {reason}")));
                    }
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(super::NetError::Setup(format!("listener failed: {error}")));
                }
                _ => {}
            }
            self.on_swarm_event(event);
        }

        for addr in bootstrap {
            if let Some(Protocol::P2p(peer)) = addr.iter().last() {
                let mut plain = addr.clone();
                plain.pop();
                self.swarm.behaviour_mut().kad.add_address(&peer, plain);
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                warn!(%addr, "cannot dial bootstrap address: {e}");
            }
        }
        for (i, k) in known.into_iter().enumerate() {
            for addr in &k.addrs {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&k.peer, addr.clone());
            }
            if i < REDIAL_AT_START {
                let opts = DialOpts::peer_id(k.peer).addresses(k.addrs).build();
                let _ = self.swarm.dial(opts);
            }
        }
        Ok(())
    }

    /// Runs until shut down (by command, or when every handle is dropped).
    pub async fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv(), if self.commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.commands_open = false;
                        self.begin_shutdown(None);
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.on_timer(),
            }
            if let Some(s) = &self.stopping
                && (s.query.is_none() || Instant::now() >= s.deadline)
            {
                break;
            }
        }
        let replies = self.stopping.take().map(|s| s.replies).unwrap_or_default();
        for r in self.lasting.still_connected() {
            self.remember(r);
        }
        let Self { swarm, writer, .. } = self;
        drop(swarm);
        writer.close().await;
        for r in replies {
            let _ = r.send(());
        }
        info!("node stopped");
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let publish = self.republisher.due().unwrap_or(far);
        let stop = self.stopping.as_ref().map_or(far, |s| s.deadline);
        let lasting = self.lasting.due().unwrap_or(far);
        publish.min(stop).min(lasting)
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.stopping.is_none() && self.republisher.is_due(now) {
            self.publish(true);
        }
        for r in self.lasting.poll(now) {
            self.remember(r);
        }
    }

    /// Saves a peer we kept a lasting connection with, for the next start.
    fn remember(&self, Remember { peer, addrs }: Remember) {
        debug!(%peer, "remembering a peer of a lasting connection");
        self.writer.submit(move |s| {
            if let Err(e) = s.remember_peer(&peer, &addrs, unix_ms()) {
                warn!("cannot remember peer: {e}");
            }
        });
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Find { peer, reply } => self.find(peer, reply),
            Command::Dial { peer, addrs, reply } => self.dial(peer, addrs, reply),
            #[cfg(feature = "test-util")]
            Command::PutRecordTo {
                key,
                value,
                peer,
                reply,
            } => {
                let record = Record::new(key, value);
                let id = self.swarm.behaviour_mut().kad.put_record_to(
                    record,
                    std::iter::once(peer),
                    Quorum::One,
                );
                self.pending_puts.insert(id, reply);
            }
            #[cfg(feature = "test-util")]
            Command::HeldRecord { key, reply } => {
                let held = self.swarm.behaviour_mut().kad.store_mut().get(&key);
                let _ = reply.send(held.map(|r| r.value.clone()));
            }
            Command::ClosestPeers { key, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_closest_peers(key);
                self.pending_closest.insert(id, reply);
            }
            Command::Mailbox {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .mailbox
                    .send_request(&peer, request);
                self.pending_mailbox.insert(id, reply);
            }
            Command::MailboxRespond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .mailbox
                    .send_response(channel, response);
            }
            Command::Presence {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .presence
                    .send_request(&peer, request);
                self.pending_presence.insert(id, reply);
            }
            Command::Notify { to } => {
                let presence = &mut self.swarm.behaviour_mut().presence;
                for (peer, info) in to {
                    // No waiter: the answer is dropped, a failure logged.
                    presence.send_request(&peer, PresenceRequest::Notify(info));
                }
            }
            Command::PresenceRespond { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .presence
                    .send_response(channel, response);
            }
            Command::Shutdown { reply } => self.begin_shutdown(Some(reply)),
        }
    }

    fn find(&mut self, peer: PeerId, reply: oneshot::Sender<Option<Locator>>) {
        let key = locator::record_key(&peer);
        if peer == *self.swarm.local_peer_id() {
            let own = self.swarm.behaviour_mut().kad.store_mut().get(&key);
            let loc = own.and_then(|r| locator::validate(&key, &r.value, unix_ms(), None).ok());
            let _ = reply.send(loc);
            return;
        }
        let id = self.swarm.behaviour_mut().kad.get_record(key);
        self.pending_finds.insert(id, (peer, reply));
    }

    fn dial(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), String>>,
    ) {
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {
                self.pending_dials.entry(peer).or_default().push(reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }

    /// Signs and puts a fresh locator record.
    fn publish(&mut self, online: bool) -> Option<QueryId> {
        let now = unix_ms();
        self.seq = (self.seq + 1).max(now);
        let addrs = self.public_addrs();
        let ttl_ms = self.locator_ttl.as_millis() as u64;
        let value = match locator::sign(&self.identity, self.seq, &addrs, now + ttl_ms, online) {
            Ok(v) => v,
            Err(e) => {
                warn!("cannot sign locator: {e}");
                return None;
            }
        };
        let seq = self.seq;
        self.writer.submit(move |s| {
            if let Err(e) = s.set_locator_seq(seq) {
                warn!("cannot save locator seq: {e}");
            }
        });
        let record = Record {
            key: locator::record_key(self.swarm.local_peer_id()),
            value,
            publisher: None,
            expires: Some(Instant::now() + self.locator_ttl),
        };
        let table = self.routing_table_size();
        debug!(seq, online, ?addrs, table, "publishing locator");
        self.republisher.published(Instant::now(), table);
        // Leaving, we wait (up to the grace) for every holder: the query
        // ends at its quorum, and with it our swarm, cutting off the puts
        // still under way — a holder that missed "offline" would go on
        // answering "online" for the record's lifetime.
        let quorum = if online { Quorum::One } else { Quorum::All };
        match self.swarm.behaviour_mut().kad.put_record(record, quorum) {
            Ok(id) => Some(id),
            Err(e) => {
                warn!("cannot store own locator: {e}");
                None
            }
        }
    }

    /// Addresses worth publishing: our listeners, without loopback ones
    /// unless that is all we have (tests, the demo).
    fn public_addrs(&self) -> Vec<Multiaddr> {
        let all: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .chain(self.swarm.external_addresses())
            .cloned()
            .collect();
        let is_loopback = |a: &Multiaddr| {
            a.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_loopback(),
                Protocol::Ip6(ip) => ip.is_loopback(),
                _ => false,
            })
        };
        let routable: Vec<Multiaddr> = all.iter().filter(|a| !is_loopback(a)).cloned().collect();
        if routable.is_empty() { all } else { routable }
    }

    fn routing_table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    fn begin_shutdown(&mut self, reply: Option<oneshot::Sender<()>>) {
        if let Some(s) = &mut self.stopping {
            s.replies.extend(reply);
            return;
        }
        info!("leaving the network");
        let query = self.publish(false);
        self.stopping = Some(Stopping {
            query,
            deadline: Instant::now() + SHUTDOWN_GRACE,
            replies: reply.into_iter().collect(),
        });
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!("listening on {address}/p2p/{}", self.swarm.local_peer_id());
                self.republisher.addresses_changed(Instant::now());
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                debug!(%address, "listen address gone");
                self.republisher.addresses_changed(Instant::now());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                debug!(%peer_id, "connected");
                if endpoint.is_dialer() {
                    self.lasting.opened(connection_id, peer_id, Instant::now());
                }
                let _ = self.net_events.try_send(NetEvent::Connected(peer_id));
                for r in self.pending_dials.remove(&peer_id).unwrap_or_default() {
                    let _ = r.send(Ok(()));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                debug!(%peer, "dial failed: {error}");
                if !self.swarm.is_connected(&peer) {
                    for r in self.pending_dials.remove(&peer).unwrap_or_default() {
                        let _ = r.send(Err(error.to_string()));
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mailbox(e)) => route_rpc(
                e,
                &mut self.pending_mailbox,
                &mut self.mailbox_limit,
                &self.net_events,
                |peer, request, channel| NetEvent::MailboxRequest {
                    peer,
                    request,
                    channel,
                },
            ),
            SwarmEvent::Behaviour(BehaviourEvent::Presence(e)) => route_rpc(
                e,
                &mut self.pending_presence,
                &mut self.presence_limit,
                &self.net_events,
                |peer, request, channel| NetEvent::PresenceRequest {
                    peer,
                    request,
                    channel,
                },
            ),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if let Some(r) = self.lasting.closed(connection_id) {
                    self.remember(r);
                }
                if num_established == 0 {
                    let _ = self.net_events.try_send(NetEvent::Disconnected(peer_id));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identified(peer_id, info),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    debug!(%peer, %addr, "found on the LAN");
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self
                            .swarm
                            .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                    }
                }
            }
            _ => {}
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        if !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        for addr in &info.listen_addrs {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
        }
        if let Some(r) = self
            .lasting
            .identified(peer, info.listen_addrs, Instant::now())
        {
            self.remember(r);
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_record(source, record),
            kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                ..
            } => {
                let size = self.routing_table_size();
                self.republisher.peer_added(Instant::now(), size);
                if self.stopping.is_none() {
                    self.hand_over_records(peer);
                }
                let _ = self.net_events.try_send(NetEvent::NewPeer(peer));
            }
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(PeerRecord {
                    record,
                    peer,
                }))) => {
                    let now = unix_ms();
                    let answer = match self.pending_finds.get(&id) {
                        Some(&(asked, _)) => {
                            locator::validate_answer(&asked, &record.key, &record.value, now)
                        }
                        None => return, // answered already
                    };
                    match (answer, peer) {
                        (Ok(loc), None) => {
                            self.own_answers.insert(id, loc);
                        }
                        (Ok(loc), Some(from)) => self.found(id, loc, record, from),
                        (Err(e), _) => debug!(?peer, "ignoring record from lookup: {e}"),
                    }
                    if step.last {
                        self.find_done(id);
                    }
                }
                QueryResult::GetRecord(_) => self.find_done(id),
                QueryResult::GetClosestPeers(res) => {
                    let peers = match res {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    for p in &peers {
                        for a in &p.addrs {
                            self.swarm.add_peer_address(p.peer_id, a.clone());
                        }
                    }
                    if let Some(reply) = self.pending_closest.remove(&id) {
                        let _ = reply.send(peers.into_iter().map(|p| p.peer_id).collect());
                    }
                }
                QueryResult::PutRecord(res) => {
                    if let Some(reply) = self.pending_puts.remove(&id) {
                        let _ = reply.send(res.map(|_| ()).map_err(|e| e.to_string()));
                        return;
                    }
                    if let Some(retry) = self.handoffs.remove(&id) {
                        if let Err(e) = res {
                            debug!("hand-over of a held record failed: {e}");
                            if let Some(peers) = retry {
                                self.retry_hand_over(e, peers);
                            }
                        }
                        return;
                    }
                    if let Some(s) = &mut self.stopping
                        && s.query == Some(id)
                    {
                        s.query = None;
                        return;
                    }
                    if let Err(e) = res {
                        debug!("locator publication incomplete: {e}");
                        let size = self.routing_table_size();
                        self.republisher.failed(Instant::now(), size);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Gives a newly met peer the held locators it now ranks among the
    /// closest holders of, when we are the one to send them (see
    /// [`record_handoff`]). Without it a locator put into a young network
    /// stays with its first holders while lookups move to nodes that joined
    /// later.
    fn hand_over_records(&mut self, newcomer: PeerId) {
        let local = KBucketKey::from(*self.swarm.local_peer_id());
        let theirs = KBucketKey::from(newcomer);
        let kad = &mut self.swarm.behaviour_mut().kad;
        let now = Instant::now();
        let keys: Vec<kad::RecordKey> = kad
            .store_mut()
            .records()
            .filter(|r| !r.is_expired(now))
            .map(|r| r.key.clone())
            .collect();
        for key in keys {
            let target = KBucketKey::new(key.clone());
            let known = kad.get_closest_local_peers(&target);
            if !record_handoff::should_hand_over(&target, &local, &theirs, known) {
                continue;
            }
            let Some(record) = kad.store_mut().get(&key).map(|r| r.into_owned()) else {
                continue;
            };
            debug!(%newcomer, ?key, "handing over a held record");
            let id = kad.put_record_to(record, std::iter::once(newcomer), Quorum::One);
            self.handoffs.insert(id, Some(vec![newcomer]));
        }
    }

    /// A peer answered lookup `id` with a valid `loc`. The newer of it and
    /// our own copy (if we hold one) is the answer; an own copy older than
    /// the peer's is replaced.
    fn found(&mut self, id: QueryId, loc: Locator, record: Record, from: PeerId) {
        let answer = match self.own_answers.remove(&id) {
            Some(own) if own.seq > loc.seq => own,
            Some(_) => {
                if let Err(e) = self.keep_record(from, record) {
                    debug!("not replacing our copy: {e}");
                }
                loc
            }
            None => loc,
        };
        if let Some((_, reply)) = self.pending_finds.remove(&id) {
            let _ = reply.send(Some(answer));
        }
        if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            q.finish();
        }
    }

    /// Lookup `id` ended: whoever has not been answered gets our own copy,
    /// if we hold one, or nothing.
    fn find_done(&mut self, id: QueryId) {
        let own = self.own_answers.remove(&id);
        if let Some((_, reply)) = self.pending_finds.remove(&id) {
            let _ = reply.send(own);
        }
    }

    /// With `FilterBoth`, nothing enters our record store unless it passes
    /// here: signature, key (the canonical locator key of the record's
    /// signer), seq, expiry and size, and the sender's share of the store.
    fn on_inbound_record(&mut self, source: PeerId, record: Record) {
        match self.keep_record(source, record) {
            Ok(Some((loc, record))) if self.stopping.is_none() && loc.peer != source => {
                self.pass_on_record(source, record);
            }
            Ok(_) => {}
            Err(e) => debug!(%source, "refused record: {e}"),
        }
    }

    /// Stores `record`, sent by `source`, if it is valid, newer than what
    /// we hold and within `source`'s share of the store
    /// ([`super::record_store`]); returns it with its locator if it was new
    /// to us.
    fn keep_record(
        &mut self,
        source: PeerId,
        mut record: Record,
    ) -> Result<Option<(Locator, Record)>, locator::RecordError> {
        let now = unix_ms();
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let held = store.get(&record.key).map(|r| r.value.clone());
        if held.as_deref() == Some(record.value.as_slice()) {
            return Ok(None); // a re-replication of what we hold
        }
        let held_seq = held.as_deref().and_then(locator::seq_of);
        let loc = locator::validate(&record.key, &record.value, now, held_seq)?;
        record.expires = Some(Instant::now() + Duration::from_millis(loc.expires_at - now));
        match store.put_from(source, record.clone(), Instant::now()) {
            Ok(()) => {}
            Err(e @ PutError::SourceFull { .. }) => {
                debug!("record not stored: {e}");
                return Ok(None);
            }
            Err(e) => {
                warn!("record store full: {e}");
                return Ok(None);
            }
        }
        Ok(Some((loc, record)))
    }

    /// Passes a record a holder has just handed us on to the closer peers
    /// it did not count on (see [`record_handoff::pass_on`]): without it, a
    /// peer we met before the record reached us never gets it.
    fn pass_on_record(&mut self, source: PeerId, record: Record) {
        let local = KBucketKey::from(*self.swarm.local_peer_id());
        let target = KBucketKey::new(record.key.clone());
        let kad = &mut self.swarm.behaviour_mut().kad;
        let known = kad.get_closest_local_peers(&target);
        let to = record_handoff::pass_on(&target, &local, &KBucketKey::from(source), known);
        if to.is_empty() {
            return;
        }
        debug!(%source, ?to, key = ?record.key, "passing on a record handed over");
        // `All`: the outcome then names every peer that did not take it,
        // for the retry.
        let id = kad.put_record_to(record, to.iter().copied(), Quorum::All);
        self.handoffs.insert(id, Some(to));
    }

    /// Tries a failed hand-over once more, to the peers that did not take
    /// the record. Once we know a peer closer to the key than we are, we
    /// leave later newcomers to it; if our put to it failed on a busy
    /// moment, nobody hands the record on and it stays behind for good
    /// (1000-node runs saw 35–109 of ~40 000 hand-overs fail; every retry
    /// that was counted succeeded). A second failure is left alone: the peer is most likely
    /// gone.
    fn retry_hand_over(&mut self, error: kad::PutRecordError, peers: Vec<PeerId>) {
        let (kad::PutRecordError::QuorumFailed { key, success, .. }
        | kad::PutRecordError::Timeout { key, success, .. }) = error;
        let rest: Vec<PeerId> = peers.into_iter().filter(|p| !success.contains(p)).collect();
        if rest.is_empty() || self.stopping.is_some() {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        let record = kad.store_mut().get(&key).map(|r| r.into_owned());
        let Some(record) = record.filter(|r| !r.is_expired(Instant::now())) else {
            return;
        };
        debug!(?key, ?rest, "handing over a held record again");
        let id = kad.put_record_to(record, rest.iter().copied(), Quorum::All);
        self.handoffs.insert(id, None);
    }
}
