//! Our own reachability and what follows from it — a pure state machine
//! (`handle(input, now) -> outputs`, owning its timers), so the rules are
//! tested without a network; [`crate::net::EventLoop`] feeds it swarm
//! events and applies its outputs.
//!
//! The rules:
//! - **Reachability.** `public` once an address that is not a relay
//!   circuit is confirmed by AutoNAT or declared by the user
//!   (`external_addrs`, or `dht_mode = "server"`, which claims
//!   reachability); `private` once AutoNAT found an address unreachable and
//!   none is confirmed; `unknown` before either. libp2p also counts a relay
//!   circuit address and a UPnP mapping as confirmed external addresses:
//!   neither makes us public here. A circuit address proves nothing about
//!   direct reachability, and a gateway may map a port that its own
//!   upstream NAT (carrier-grade NAT) still hides; a working mapping gets
//!   confirmed by AutoNAT like any other address.
//! - **Kademlia mode** follows it under `dht_mode = "auto"`: server only
//!   when public, so an unreachable node is never chosen to hold locator
//!   records or mailboxes.
//! - **Relay server** (HOP) on only when public (and allowed by config).
//! - **Relay reservations** while not public: on the configured relays
//!   first, then on peers that advertise HOP, until [`MIN_RELAYS`] are held
//!   or pending (a configured relay we are not connected to is dialled
//!   first). A reservation lost is replaced at once by another candidate;
//!   a relay that failed rests [`FIRST_BACKOFF`], doubling with each
//!   failure in a row up to [`RELAY_BACKOFF`], before it is tried again;
//!   one that does not answer within [`RESERVE_TIMEOUT`] is given up. Once
//!   public, the reservations are dropped.
//! - **Publication waits for a circuit**: a node that is not public holds
//!   its first locator publication until it holds a reservation (or every
//!   one tried failed, or [`PUBLISH_HOLD`] passed), so the first record a
//!   buddy finds names a way in ([`hold`]).
//! - **Direct beats relayed**: once a direct connection to a peer is up
//!   (hole punch or any dial), its relayed connections are closed, because
//!   request-response and libp2p-stream would otherwise keep using them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::backoff::{Backoff, Jitter};

pub(crate) mod addr;
mod declare;
mod hold;
mod interface;
mod relays;
use addr::{Scope, is_circuit, is_direct, is_global, is_unspecified};
pub use hold::PUBLISH_HOLD;
pub use interface::{Input, Output};

/// Reservations a private node keeps, so one relay leaving does not cut it
/// off while the replacement is made.
pub const MIN_RELAYS: usize = 2;
/// How long a reservation may take before the relay is given up.
pub const RESERVE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a relay that failed or left waits before it is tried again.
pub const RELAY_BACKOFF: Duration = Duration::from_secs(60);
/// How long a relay waits after its first failure in a row.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// How long a relay that failed rests: [`FIRST_BACKOFF`], doubling with
/// each failure in a row up to [`RELAY_BACKOFF`], jittered like every
/// retry (so the NATed nodes behind a relay that went away do not all come
/// back to it in the same instant).
pub const RELAY_RETRY: Backoff = Backoff::new(FIRST_BACKOFF, RELAY_BACKOFF);
/// How long after peers first report an address of ours (an AutoNAT
/// candidate) we call ourselves private if none is confirmed. AutoNAT v2
/// only reports an address unreachable when the dial-back fails quickly: a
/// NAT that drops the dial-back's packets (most home routers) makes the
/// request time out, which v2 retries in silence for ever. Confirmation
/// normally takes one probe (5 s).
pub const PRIVATE_AFTER: Duration = Duration::from_secs(30);
/// Most relay candidates remembered (peers advertising HOP).
pub const MAX_CANDIDATES: usize = 64;
/// How long a relay candidate is kept after its last direct connection
/// closed. Most close at the idle timeout (10 s) with nothing wrong with
/// the peer: it can still be dialled when a relay is lost, so a private
/// node is not left with one relay until a lookup happens to meet another.
pub const CANDIDATE_KEPT: Duration = Duration::from_secs(600);
/// Most open connections tracked; beyond, a connection is not tracked (it
/// is then neither listed nor closed in favour of a direct one).
pub const MAX_CONNECTIONS: usize = 4096;
/// Most addresses remembered as confirmed or declared.
pub const MAX_ADDRS: usize = 32;
/// Most relays remembered as failed: resting, or no longer resting but
/// with their count of failures in a row kept for their next rest.
pub const MAX_BACKOFF: usize = 256;

/// What we know of our own reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Others can dial us directly.
    Public,
    /// AutoNAT says they cannot.
    Private,
    /// Not known yet.
    Unknown,
}

impl Reachability {
    /// The word used in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Unknown => "unknown",
        }
    }
}

pub use crate::config::DhtMode;

/// One open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// The remote peer.
    pub peer: PeerId,
    /// Its address.
    pub addr: Multiaddr,
    /// Through a relay.
    pub relayed: bool,
    /// We dialled it, so `addr` is one the peer can be dialled on.
    pub dialer: bool,
}

#[derive(Debug, Clone)]
enum Relay {
    Dialing { addr: Multiaddr, since: Instant },
    Pending { addr: Multiaddr, since: Instant },
    Held { addr: Multiaddr },
}

/// A relay that failed: how often in a row, and until when it rests
/// ([`RELAY_RETRY`]; `None` once the rest is over).
#[derive(Debug, Clone, Copy)]
struct Failed {
    in_a_row: u32,
    rest_until: Option<Instant>,
}

/// The machine's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `dht_mode`.
    pub dht_mode: DhtMode,
    /// Whether we may serve as a relay.
    pub relay_server: bool,
    /// Relays named by the user (`…/p2p/R`).
    pub relays: Vec<Multiaddr>,
    /// Addresses the user declares reachable.
    pub external: Vec<Multiaddr>,
}

/// The reachability machine.
#[derive(Debug)]
pub struct Reach {
    settings: Settings,
    confirmed: HashSet<Multiaddr>,
    declared: HashSet<Multiaddr>,
    /// Under `dht_mode = "server"`: the widest [`Scope`] among our listen
    /// addresses so far, and those of it we declared.
    server_scope: Option<Scope>,
    server_declared: Vec<Multiaddr>,
    failed_probes: usize,
    /// When a direct candidate was first reported, and whether
    /// [`PRIVATE_AFTER`] has passed since without a confirmation.
    candidate_since: Option<Instant>,
    unconfirmed: bool,
    conns: HashMap<ConnectionId, Conn>,
    candidates: HashMap<PeerId, relays::Candidate>,
    relays: HashMap<PeerId, Relay>,
    /// Relays that failed: until when they rest ([`RELAY_RETRY`]), and how
    /// often in a row they failed.
    failed: HashMap<PeerId, Failed>,
    /// Spreads the relays' rests ([`RELAY_RETRY`]).
    jitter: Jitter,
    /// Whether our first locator publication waits for a reservation.
    hold: hold::Hold,
    kad_server: Option<bool>,
    relay_server: Option<bool>,
}

impl Reach {
    /// A machine under `settings`; [`Reach::start`] gives its first outputs.
    pub fn new(settings: Settings) -> Self {
        let declared = settings.external.iter().take(MAX_ADDRS).cloned().collect();
        Self {
            settings,
            confirmed: HashSet::new(),
            declared,
            server_scope: None,
            server_declared: Vec::new(),
            failed_probes: 0,
            candidate_since: None,
            unconfirmed: false,
            conns: HashMap::new(),
            candidates: HashMap::new(),
            relays: HashMap::new(),
            failed: HashMap::new(),
            jitter: Jitter::from_entropy(),
            hold: hold::Hold::default(),
            kad_server: None,
            relay_server: None,
        }
    }

    /// The outputs due at start: the modes, and reservations on the
    /// configured relays if we are not known to be public.
    pub fn start(&mut self, now: Instant) -> Vec<Output> {
        let mut out: Vec<Output> = self.declared.iter().cloned().map(Output::Declare).collect();
        out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        let public = self.reachability() == Reachability::Public;
        if self.hold.start(now, public) {
            out.push(Output::Publishable(false));
        }
        self.settle(now, &mut out);
        out
    }

    /// Our reachability now.
    pub fn reachability(&self) -> Reachability {
        let public = self.settings.dht_mode == DhtMode::Server
            || !self.declared.is_empty()
            || !self.confirmed.is_empty();
        if public {
            Reachability::Public
        } else if self.failed_probes > 0 || self.unconfirmed {
            Reachability::Private
        } else {
            Reachability::Unknown
        }
    }

    /// The circuit addresses of the reservations we hold.
    pub fn held_relays(&self) -> Vec<Multiaddr> {
        let mut v: Vec<Multiaddr> = self
            .relays
            .values()
            .filter_map(|r| match r {
                Relay::Held { addr } => Some(addr.clone()),
                Relay::Pending { .. } | Relay::Dialing { .. } => None,
            })
            .collect();
        v.sort();
        v
    }

    /// Open connections tracked.
    pub fn connections(&self) -> Vec<Conn> {
        let mut v: Vec<Conn> = self.conns.values().cloned().collect();
        v.sort_by(|a, b| (a.peer, &a.addr).cmp(&(b.peer, &b.addr)));
        v
    }

    /// When [`Input::Tick`] is next due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let pending = self.relays.values().filter_map(|r| match r {
            Relay::Pending { since, .. } | Relay::Dialing { since, .. } => {
                Some(*since + RESERVE_TIMEOUT)
            }
            Relay::Held { .. } => None,
        });
        let wanting = self.wants_relays() && self.relays.len() < MIN_RELAYS;
        let backoff = self
            .failed
            .values()
            .filter_map(|f| f.rest_until)
            .filter(|_| wanting);
        let verdict = self
            .candidate_since
            .filter(|_| !self.unconfirmed && self.reachability() != Reachability::Public)
            .map(|t| t + PRIVATE_AFTER);
        pending
            .chain(backoff)
            .chain(verdict)
            .chain(self.hold.deadline())
            .min()
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::ListenAddr(addr) => {
                if self.settings.dht_mode == DhtMode::Server
                    && !is_circuit(&addr)
                    && !is_unspecified(&addr)
                {
                    self.declare_listen_addr(addr, &mut out);
                }
                out.push(Output::AddressesChanged);
            }
            Input::AutoNat { addr, reachable } => {
                // Only an address the whole internet could dial makes us
                // public: a LAN neighbour confirms our LAN address too.
                if reachable && !is_circuit(&addr) && is_global(&addr) {
                    if self.confirmed.len() < MAX_ADDRS {
                        self.confirmed.insert(addr);
                    }
                } else if !reachable && is_direct(&addr) {
                    // A circuit (or a bare `/p2p/…` observed on one) says
                    // nothing about our own address.
                    self.failed_probes = self.failed_probes.saturating_add(1);
                }
            }
            Input::Candidate(addr) => {
                if is_direct(&addr) && self.candidate_since.is_none() {
                    self.candidate_since = Some(now);
                }
            }
            Input::ExternalConfirmed(_) | Input::ListenAddrExpired => {
                out.push(Output::AddressesChanged)
            }
            Input::ExternalExpired(addr) => {
                self.confirmed.remove(&addr);
                out.push(Output::AddressesChanged);
            }
            Input::Connected {
                conn,
                peer,
                addr,
                relayed,
                dialer,
            } => self.connected(
                conn,
                Conn {
                    peer,
                    addr,
                    relayed,
                    dialer,
                },
                now,
                &mut out,
            ),
            Input::Disconnected { conn } => {
                if let Some(c) = self.conns.remove(&conn)
                    && !c.relayed
                    && !self.conns.values().any(|o| o.peer == c.peer && !o.relayed)
                    && let Some(candidate) = self.candidates.get_mut(&c.peer)
                {
                    // No direct path to it any more: dialled if picked,
                    // and forgotten after [`CANDIDATE_KEPT`].
                    candidate.gone_since = Some(now);
                }
            }
            Input::Identified { peer, hop, listen } => self.identified(peer, hop, listen),
            Input::ReservationAccepted { relay } => self.reservation_accepted(relay),
            Input::RelayClosed { relay } => {
                if self.relays.remove(&relay).is_some() {
                    self.back_off(relay, now);
                }
                out.push(Output::AddressesChanged);
            }
            Input::Tick => self.tick(now, &mut out),
        }
        self.settle(now, &mut out);
        out
    }

    /// A connection opened: tracked; if it is the direct one a relay
    /// waited for, the reservation is asked; relayed ones to the same peer
    /// give way to it.
    fn connected(&mut self, conn: ConnectionId, c: Conn, now: Instant, out: &mut Vec<Output>) {
        let (peer, relayed) = (c.peer, c.relayed);
        if self.conns.len() < MAX_CONNECTIONS {
            self.conns.insert(conn, c);
        }
        if !relayed && let Some(candidate) = self.candidates.get_mut(&peer) {
            candidate.gone_since = None;
        }
        if !relayed && let Some(Relay::Dialing { addr, .. }) = self.relays.get(&peer) {
            let addr = addr.clone();
            self.relays.insert(
                peer,
                Relay::Pending {
                    addr: addr.clone(),
                    since: now,
                },
            );
            out.push(Output::Reserve { relay: peer, addr });
        }
        self.close_relayed_if_direct(peer, out);
    }

    /// Time passing: the private verdict after [`PRIVATE_AFTER`], and
    /// reservations that took longer than [`RESERVE_TIMEOUT`] given up.
    fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self
            .candidate_since
            .is_some_and(|t| now >= t + PRIVATE_AFTER)
        {
            self.unconfirmed = true;
        }
        let late: Vec<PeerId> = self
            .relays
            .iter()
            .filter(|(_, r)| match r {
                Relay::Pending { since, .. } | Relay::Dialing { since, .. } => {
                    now >= *since + RESERVE_TIMEOUT
                }
                Relay::Held { .. } => false,
            })
            .map(|(p, _)| *p)
            .collect();
        for relay in late {
            self.relays.remove(&relay);
            self.back_off(relay, now);
            out.push(Output::Release { relay });
        }
    }

    /// A peer identified: a relay candidate (at the addresses we dialled it
    /// on, then those it listens on) if it speaks HOP and we are connected
    /// to it directly, otherwise not.
    fn identified(&mut self, peer: PeerId, hop: bool, listen: Vec<Multiaddr>) {
        self.candidates.remove(&peer);
        // Only a peer we reach directly: one met through a relay would
        // choose the addresses we dial it on.
        let direct = self.conns.values().any(|c| c.peer == peer && !c.relayed);
        if hop && direct {
            let dialled: Vec<Multiaddr> = self
                .conns
                .values()
                .filter(|c| c.peer == peer && !c.relayed && c.dialer)
                .map(|c| c.addr.clone())
                .collect();
            self.add_candidate(peer, dialled.into_iter().chain(listen).collect());
        }
    }

    /// A relay accepted our reservation: held, and its failures forgotten.
    fn reservation_accepted(&mut self, relay: PeerId) {
        if let Some(r) = self.relays.get_mut(&relay) {
            let addr = match r {
                Relay::Pending { addr, .. }
                | Relay::Dialing { addr, .. }
                | Relay::Held { addr } => addr.clone(),
            };
            *r = Relay::Held { addr };
            self.failed.remove(&relay);
        }
    }

    fn close_relayed_if_direct(&mut self, peer: PeerId, out: &mut Vec<Output>) {
        let direct = self.conns.values().any(|c| c.peer == peer && !c.relayed);
        if !direct {
            return;
        }
        let mut relayed: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer == peer && c.relayed)
            .map(|(id, _)| *id)
            .collect();
        relayed.sort();
        out.extend(relayed.into_iter().map(Output::Close));
    }

    fn wants_relays(&self) -> bool {
        self.reachability() != Reachability::Public
    }

    /// Brings modes, reservations and the publication hold in line with
    /// what we know now.
    fn settle(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.settle_relays(now, out);
        let relays = hold::Relays {
            public: self.reachability() == Reachability::Public,
            held: self
                .relays
                .values()
                .any(|r| matches!(r, Relay::Held { .. })),
            pending: self
                .relays
                .values()
                .any(|r| !matches!(r, Relay::Held { .. })),
        };
        if self.hold.settle(now, relays) {
            out.push(Output::Publishable(true));
        }
    }

    fn settle_relays(&mut self, now: Instant, out: &mut Vec<Output>) {
        let public = self.reachability() == Reachability::Public;
        let kad = match self.settings.dht_mode {
            DhtMode::Server => true,
            DhtMode::Client => false,
            DhtMode::Auto => public,
        };
        if self.kad_server != Some(kad) {
            self.kad_server = Some(kad);
            out.push(Output::KadServer(kad));
        }
        let relay = public && self.settings.relay_server;
        if self.relay_server != Some(relay) {
            self.relay_server = Some(relay);
            out.push(Output::RelayServer(relay));
        }
        if public {
            let mut gone: Vec<PeerId> = self.relays.drain().map(|(p, _)| p).collect();
            gone.sort();
            out.extend(gone.into_iter().map(|relay| Output::Release { relay }));
            return;
        }
        self.candidates.retain(|_, c| c.kept_at(now));
        // A rest that is over ends; the count of failures in a row stays,
        // for the relay's next rest.
        for f in self.failed.values_mut() {
            if f.rest_until.is_some_and(|until| until <= now) {
                f.rest_until = None;
            }
        }
        while self.relays.len() < MIN_RELAYS {
            let Some((relay, addr)) = self.pick_relay() else {
                break;
            };
            let circuit = addr
                .clone()
                .with(Protocol::P2p(relay))
                .with(Protocol::P2pCircuit);
            if self.conns.values().any(|c| c.peer == relay && !c.relayed) {
                self.relays.insert(
                    relay,
                    Relay::Pending {
                        addr: circuit.clone(),
                        since: now,
                    },
                );
                out.push(Output::Reserve {
                    relay,
                    addr: circuit,
                });
            } else {
                self.relays.insert(
                    relay,
                    Relay::Dialing {
                        addr: circuit,
                        since: now,
                    },
                );
                out.push(Output::Dial { relay, addr });
            }
        }
    }
}

#[cfg(test)]
#[path = "reach/candidate_tests.rs"]
mod candidate_tests;
#[cfg(test)]
#[path = "reach/publish_tests.rs"]
mod publish_tests;
#[cfg(test)]
#[path = "reach_tests.rs"]
mod tests;
