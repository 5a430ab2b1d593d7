//! The event loop's reachability side: translates swarm and behaviour
//! events (listeners, connections, AutoNAT, relay, DCUtR, UPnP, identify)
//! into inputs of the pure [`crate::net::reach`] machine, and its outputs
//! into swarm calls. Connection and listener bookkeeping the rest of the
//! loop needs (lasting connections, pending dials, republication) is here
//! too, so `event_loop.rs` only dispatches.

use std::time::Instant;

use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, autonat, dcutr, identify, kad, relay, upnp};
use tracing::{debug, info, warn};

use super::{EventLoop, NetEvent};
use crate::net::command::ReachStatus;
use crate::net::reach::{Input, Output};

impl EventLoop {
    /// Feeds the machine one input and applies what it asks.
    pub(super) fn reach_input(&mut self, input: Input) {
        let out = self.reach.handle(input, Instant::now());
        self.apply_reach(out);
    }

    /// Applies the machine's outputs to the swarm.
    pub(super) fn apply_reach(&mut self, outputs: Vec<Output>) {
        let mut queue = std::collections::VecDeque::from(outputs);
        while let Some(o) = queue.pop_front() {
            match o {
                Output::KadServer(on) => {
                    info!(server = on, "DHT mode");
                    let mode = if on {
                        kad::Mode::Server
                    } else {
                        kad::Mode::Client
                    };
                    self.swarm.behaviour_mut().kad.set_mode(Some(mode));
                }
                Output::RelayServer(on) => {
                    info!(on, "relay server");
                    let status = if on {
                        relay::Status::Enable
                    } else {
                        relay::Status::Disable
                    };
                    self.swarm.behaviour_mut().relay.set_status(Some(status));
                }
                Output::Reserve { relay, addr } => match self.swarm.listen_on(addr.clone()) {
                    Ok(id) => {
                        debug!(%addr, "reserving on a relay");
                        self.relay_listeners.insert(relay, id);
                    }
                    Err(e) => {
                        warn!(%addr, "cannot listen via relay: {e}");
                        let more = self
                            .reach
                            .handle(Input::RelayClosed { relay }, Instant::now());
                        queue.extend(more);
                    }
                },
                Output::Dial { relay, addr } => {
                    let opts = DialOpts::peer_id(relay).addresses(vec![addr]).build();
                    if let Err(e) = self.swarm.dial(opts) {
                        debug!(%relay, "cannot dial relay: {e}");
                    }
                }
                Output::Release { relay } => {
                    if let Some(id) = self.relay_listeners.remove(&relay) {
                        self.swarm.remove_listener(id);
                    }
                }
                Output::Close(conn) => {
                    debug!(?conn, "closing a relayed connection: a direct one is up");
                    self.swarm.close_connection(conn);
                }
                Output::Declare(addr) => self.swarm.add_external_address(addr),
                Output::Retract(addr) => self.swarm.remove_external_address(&addr),
                Output::AddressesChanged => {
                    self.drive_locator(super::super::locator::Input::AddressesChanged)
                }
                Output::Publishable(on) => {
                    debug!(on, "locator publication allowed");
                    self.drive_locator(super::super::locator::Input::Publishable(on))
                }
            }
        }
    }

    /// What `roost status` shows of the network.
    pub(super) fn reach_status(&self) -> ReachStatus {
        ReachStatus {
            reachability: self.reach.reachability(),
            relays: self.reach.held_relays(),
            connections: self.reach.connections(),
        }
    }

    pub(super) fn on_new_listen_addr(&mut self, address: Multiaddr) {
        info!("listening on {address}/p2p/{}", self.swarm.local_peer_id());
        self.reach_input(Input::ListenAddr(address));
    }

    pub(super) fn on_expired_listen_addr(&mut self, address: Multiaddr) {
        debug!(%address, "listen address gone");
        self.reach_input(Input::ListenAddrExpired);
    }

    pub(super) fn on_listener_closed(
        &mut self,
        listener: ListenerId,
        error: Option<std::io::Error>,
    ) {
        let relay = self
            .relay_listeners
            .iter()
            .find(|(_, id)| **id == listener)
            .map(|(p, _)| *p);
        if let Some(relay) = relay {
            debug!(%relay, ?error, "relay listener closed");
            self.relay_listeners.remove(&relay);
            self.reach_input(Input::RelayClosed { relay });
        }
    }

    pub(super) fn on_connection_established(
        &mut self,
        peer: PeerId,
        conn: ConnectionId,
        endpoint: ConnectedPoint,
    ) {
        let relayed = endpoint.is_relayed();
        debug!(%peer, relayed, "connected");
        if endpoint.is_dialer() {
            self.lasting.opened(conn, peer, Instant::now());
        }
        let _ = self.net_events.try_send(NetEvent::Connected(peer));
        for r in self.dials.connected(peer) {
            let _ = r.send(Ok(()));
        }
        // An inbound relayed connection's remote address is only
        // `/p2p/<peer>`; the circuit it came through says more.
        let addr = match &endpoint {
            ConnectedPoint::Listener { local_addr, .. } if relayed => local_addr.clone(),
            other => other.get_remote_address().clone(),
        };
        self.reach_input(Input::Connected {
            conn,
            peer,
            addr,
            relayed,
            dialer: endpoint.is_dialer(),
        });
    }

    pub(super) fn on_connection_closed(
        &mut self,
        peer: PeerId,
        conn: ConnectionId,
        num_established: u32,
    ) {
        if let Some(r) = self.lasting.closed(conn, Instant::now()) {
            self.remember(r);
        }
        if num_established == 0 {
            let _ = self.net_events.try_send(NetEvent::Disconnected(peer));
        }
        self.reach_input(Input::Disconnected { conn });
    }

    /// A peer's identify answer: whether it relays (for `reach`), and
    /// where it listens (for Kademlia and the peers remembered).
    pub(super) fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received {
            peer_id: peer,
            info,
            ..
        } = event
        else {
            return;
        };
        self.reach_input(Input::Identified {
            peer,
            hop: info.protocols.contains(&relay::HOP_PROTOCOL_NAME),
            listen: info.listen_addrs.clone(),
        });
        self.on_identified(peer, info);
    }

    pub(super) fn on_autonat(&mut self, e: autonat::v2::client::Event) {
        let reachable = e.result.is_ok();
        debug!(addr = %e.tested_addr, server = %e.server, reachable, "AutoNAT probe");
        self.reach_input(Input::AutoNat {
            addr: e.tested_addr,
            reachable,
        });
    }

    pub(super) fn on_relay_client(&mut self, e: relay::client::Event) {
        match e {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                if !renewal {
                    info!(relay = %relay_peer_id, "relay reservation accepted");
                }
                self.reach_input(Input::ReservationAccepted {
                    relay: relay_peer_id,
                });
            }
            other => debug!(?other, "relay client"),
        }
    }

    pub(super) fn on_dcutr(&mut self, e: dcutr::Event) {
        match e.result {
            Ok(conn) => info!(peer = %e.remote_peer_id, ?conn, "hole punch succeeded"),
            Err(err) => debug!(peer = %e.remote_peer_id, "hole punch failed: {err}"),
        }
    }

    pub(super) fn on_upnp(&mut self, e: upnp::Event) {
        match e {
            upnp::Event::NewExternalAddr { external_addr, .. } => {
                info!(%external_addr, "UPnP port mapping")
            }
            other => debug!(?other, "UPnP"),
        }
    }

    pub(super) fn on_relay_server(&mut self, e: relay::Event) {
        debug!(?e, "relay server");
    }
}
