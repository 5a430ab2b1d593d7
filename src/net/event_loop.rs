//! The task that owns the Swarm. It translates between libp2p events, the
//! [`Command`]s the rest of the program sends through [`super::NetClient`],
//! and the sans-IO locator machine beside it ([`super::locator`]); it never
//! blocks: its writes (the peer book, the locator seq) are best-effort jobs
//! for the store's [`Worker`], dropped when its queue is full.
//!
//! It stops when its cancellation token is cancelled (or every
//! [`super::NetClient`] is dropped): it puts an "offline" locator record
//! (waiting for it to be stored, or a grace period), remembers the peers it
//! is still connected to, and drops the swarm. Closing the store is its
//! owner's part.
//!
//! Its Kademlia side (the translation between `kad::Event`s and the
//! locator machine's inputs and outputs) is in [`kademlia`];
//! request-response routing (mailboxes, presence) in [`rpc`];
//! reachability (AutoNAT, relays, hole punching, connections) in
//! [`reach`], whose rules are in [`super::reach`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::kad::QueryId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod kademlia;
mod pubsub;
mod reach;
mod rpc;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::command::{Command, NetEvent};
use super::dials::Dials;
use super::kad_probe::BucketProbes;
use super::lasting::{Lasting, Remember};
use super::locator::{self, Op};
use super::ratelimit::{MAILBOX_BURST, MAILBOX_RATE, PRESENCE_BURST, PRESENCE_RATE, RateLimiter};
use super::reach::addr::split_peer;
use super::reach::{Reach, Settings};
use crate::clock::unix_ms;
use crate::config::Config;
use crate::identity::Identity;
use crate::store::{KnownPeer, Worker};
use crate::wire::mailbox::MailboxResponse;
use crate::wire::presence::PresenceResponse;
use rpc::{Pending, route_rpc};

/// What [`EventLoop::dial_unless_connected`] did.
enum Dialled {
    /// Nothing: the peer is connected.
    Connected,
    /// Started the dial of this id.
    Started(libp2p::swarm::ConnectionId),
    /// Nothing: a dial of the peer is under way (the condition said no).
    UnderWay,
}

/// Remembered peers dialled at start.
const REDIAL_AT_START: usize = 8;

/// Owner of the Swarm.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    net_events: mpsc::Sender<NetEvent>,
    /// The store, for best-effort writes only: this task never waits on it.
    store: Worker,
    /// Our locator record and the records held for others: every rule.
    locator: locator::Machine,
    /// The Kademlia queries the locator machine asked for.
    locator_queries: HashMap<QueryId, Op>,
    /// Who waits for each lookup the machine answers.
    find_waiters: HashMap<u64, oneshot::Sender<Option<crate::wire::locator::Locator>>>,
    next_waiter: u64,
    /// Our dials under way and the callers waiting on them.
    dials: Dials<oneshot::Sender<Result<(), String>>>,
    /// The raw puts tests ask for (`Command::PutRecordTo`).
    #[cfg(feature = "test-util")]
    pending_puts: HashMap<QueryId, oneshot::Sender<Result<(), String>>>,
    pending_closest: HashMap<QueryId, oneshot::Sender<Vec<PeerId>>>,
    pending_mailbox: Pending<MailboxResponse>,
    pending_presence: Pending<PresenceResponse>,
    mailbox_limit: RateLimiter,
    presence_limit: RateLimiter,
    /// Which connections have lasted: their peers are the ones remembered.
    lasting: Lasting,
    /// When each full Kademlia bucket last checked its oldest entry.
    probes: BucketProbes,
    /// Our reachability and what follows from it.
    reach: Reach,
    /// The circuit listener held on each relay.
    relay_listeners: HashMap<PeerId, ListenerId>,
    /// Leaving: the locator's "offline" record is on its way.
    stopping: bool,
    /// The rooms service's queries and requests under way.
    rooms_pending: pubsub::RoomsPending,
}

impl EventLoop {
    /// Wraps a built swarm. `seq` is the last locator seq we published.
    pub fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        net_events: mpsc::Sender<NetEvent>,
        identity: Identity,
        store: Worker,
        config: &Config,
        seq: u64,
    ) -> Self {
        Self {
            swarm,
            commands,
            commands_open: true,
            net_events,
            store,
            locator: locator::Machine::new(
                identity,
                config.locator_ttl,
                config.republish_min_interval,
                seq,
            ),
            locator_queries: HashMap::new(),
            find_waiters: HashMap::new(),
            next_waiter: 0,
            dials: Dials::default(),
            #[cfg(feature = "test-util")]
            pending_puts: HashMap::new(),
            pending_closest: HashMap::new(),
            pending_mailbox: HashMap::new(),
            pending_presence: HashMap::new(),
            // Generous for honest peers (a mailbox fetch is a few requests,
            // presence one per change), tight enough to stop a flood.
            mailbox_limit: RateLimiter::new(MAILBOX_RATE, MAILBOX_BURST),
            presence_limit: RateLimiter::new(PRESENCE_RATE, PRESENCE_BURST),
            lasting: Lasting::new(config.lasting_connection),
            probes: BucketProbes::default(),
            reach: Reach::new(Settings {
                dht_mode: config.dht_mode,
                relay_server: config.relay_server,
                relays: config.relays.clone(),
                external: config.external_addrs.clone(),
            }),
            relay_listeners: HashMap::new(),
            stopping: false,
            rooms_pending: pubsub::RoomsPending::default(),
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
        let first = self.reach.start(Instant::now());
        self.apply_reach(first);
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
            if let Some((peer, plain)) = split_peer(addr) {
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

    /// Runs until `stop` is cancelled (or every client is dropped) and the
    /// network is left cleanly.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv(), if self.commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.commands_open = false;
                        self.begin_shutdown();
                    }
                },
                _ = stop.cancelled(), if !self.stopping => self.begin_shutdown(),
                _ = tokio::time::sleep_until(deadline.into()) => self.on_timer(),
            }
            if self.locator.is_stopped() {
                break;
            }
        }
        for r in self.lasting.still_connected() {
            self.remember(r);
        }
        info!("left the network");
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let locator = self.locator.poll_timeout().unwrap_or(far);
        let lasting = self.lasting.due().unwrap_or(far);
        let reach = self.reach.next_deadline().unwrap_or(far);
        locator.min(lasting).min(reach)
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.locator.poll_timeout().is_some_and(|t| t <= now) {
            super::stats::count(super::stats::Kind::TimerLocator);
            self.drive_locator(locator::Input::Tick);
        }
        if self.lasting.due().is_some_and(|t| t <= now) {
            super::stats::count(super::stats::Kind::TimerLasting);
        }
        for r in self.lasting.poll(now) {
            self.remember(r);
        }
        if self.reach.next_deadline().is_some_and(|d| d <= now) {
            super::stats::count(super::stats::Kind::TimerReach);
            self.reach_input(super::reach::Input::Tick);
        }
    }

    /// Saves a peer we kept a lasting connection with, for the next start.
    fn remember(&self, Remember { peer, addrs }: Remember) {
        debug!(%peer, "remembering a peer of a lasting connection");
        self.store.try_submit(move |s| {
            if let Err(e) = s.remember_peer(&peer, &addrs, unix_ms()) {
                warn!("cannot remember peer: {e}");
            }
        });
    }

    fn on_command(&mut self, cmd: Command) {
        super::stats::count(super::stats::of_command(&cmd));
        match cmd {
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::PublicAddrs { reply } => {
                let _ = reply.send(self.public_addrs());
            }
            Command::Meet { peer, contacts } => self.meet(peer, contacts),
            Command::Reach { reply } => {
                let _ = reply.send(self.reach_status());
            }
            Command::Find { peer, reply } => self.find(peer, reply),
            Command::Dial {
                peer,
                addrs,
                alongside,
                reply,
            } => self.dial(peer, addrs, alongside, reply),
            #[cfg(feature = "test-util")]
            Command::PutRecordTo {
                key,
                value,
                peer,
                reply,
            } => {
                let record = libp2p::kad::Record::new(key, value);
                let id = self.swarm.behaviour_mut().kad.put_record_to(
                    record,
                    std::iter::once(peer),
                    libp2p::kad::Quorum::One,
                );
                self.pending_puts.insert(id, reply);
            }
            #[cfg(feature = "test-util")]
            Command::HeldRecord { key, reply } => {
                use libp2p::kad::store::RecordStore;
                let held = self.swarm.behaviour_mut().kad.store_mut().get(&key);
                let _ = reply.send(held.map(|r| r.value.clone()));
            }
            Command::ClosestPeers { key, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_closest_peers(key);
                self.pending_closest.insert(id, reply);
            }
            Command::KeepAlive { peers } => self.swarm.behaviour_mut().keep.set(peers),
            cmd @ (Command::Mailbox { .. }
            | Command::MailboxRespond { .. }
            | Command::Presence { .. }
            | Command::Notify { .. }
            | Command::PresenceRespond { .. }) => self.on_rpc_command(cmd),
            Command::Rooms(cmd) => self.on_room_command(cmd),
        }
    }

    fn dial(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        alongside: bool,
        reply: oneshot::Sender<Result<(), String>>,
    ) {
        let condition = if alongside {
            PeerCondition::Disconnected
        } else {
            PeerCondition::DisconnectedAndNotDialing
        };
        let conn = match self.dial_unless_connected(peer, addrs, condition) {
            Ok(Dialled::Connected) => {
                let _ = reply.send(Ok(()));
                return;
            }
            Ok(Dialled::Started(conn)) => Some(conn),
            Ok(Dialled::UnderWay) => None,
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
                return;
            }
        };
        if let Err((e, reply)) = self.dials.started(peer, conn, reply) {
            let _ = reply.send(Err(e.to_string()));
        }
    }

    /// Dials `peer` at `addrs` and those the behaviours know (Kademlia's
    /// routing table) unless it is connected or `condition` says no (a
    /// dial is under way).
    fn dial_unless_connected(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        condition: PeerCondition,
    ) -> Result<Dialled, DialError> {
        if self.swarm.is_connected(&peer) {
            return Ok(Dialled::Connected);
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .extend_addresses_through_behaviour()
            .condition(condition)
            .build();
        let conn = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => Ok(Dialled::Started(conn)),
            Err(DialError::DialPeerConditionFalse(_)) => Ok(Dialled::UnderWay),
            Err(e) => Err(e),
        }
    }

    /// Adds `contacts` to Kademlia (as bootstrap peers are) and dials
    /// `peer` at its own addresses among them.
    fn meet(&mut self, peer: PeerId, contacts: Vec<(PeerId, Multiaddr)>) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        for (p, addr) in &contacts {
            kad.add_address(p, addr.clone());
        }
        let addrs = contacts
            .into_iter()
            .filter_map(|(p, a)| (p == peer).then_some(a))
            .collect();
        if let Err(e) =
            self.dial_unless_connected(peer, addrs, PeerCondition::DisconnectedAndNotDialing)
        {
            debug!(%peer, "cannot dial a peer met through an invite: {e}");
        }
    }

    fn begin_shutdown(&mut self) {
        if self.stopping {
            return;
        }
        info!("leaving the network");
        self.stopping = true;
        self.drive_locator(locator::Input::Shutdown);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        super::stats::count(super::stats::of_swarm_event(&event));
        match event {
            SwarmEvent::NewListenAddr { address, .. } => self.on_new_listen_addr(address),
            SwarmEvent::ExpiredListenAddr { address, .. } => self.on_expired_listen_addr(address),
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => self.on_listener_closed(listener_id, reason.err()),
            SwarmEvent::NewExternalAddrCandidate { address } => {
                self.reach_input(super::reach::Input::Candidate(address))
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                self.reach_input(super::reach::Input::ExternalConfirmed(address))
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.reach_input(super::reach::Input::ExternalExpired(address))
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connection_established(peer_id, connection_id, endpoint),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                connection_id,
                error,
            } => {
                debug!(%peer, "dial failed: {error}");
                let connected = self.swarm.is_connected(&peer);
                for r in self.dials.failed(peer, connection_id, connected) {
                    let _ = r.send(Err(error.to_string()));
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
            } => self.on_connection_closed(peer_id, connection_id, num_established),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.on_identify(e),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => self.on_autonat(e),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(e)) => self.on_relay_client(e),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => self.on_relay_server(e),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => self.on_dcutr(e),
            SwarmEvent::Behaviour(BehaviourEvent::Upnp(e)) => self.on_upnp(e),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(e)) => self.on_mdns(e),
            SwarmEvent::Behaviour(BehaviourEvent::Pubsub(e)) => self.on_pubsub(e),
            SwarmEvent::Behaviour(BehaviourEvent::RoomHistory(e)) => self.on_room_history(e),
            _ => {}
        }
    }
}
