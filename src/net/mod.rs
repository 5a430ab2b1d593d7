//! The network side: one task owns the libp2p `Swarm` ([`EventLoop`]); the
//! rest of the program talks to it through [`Command`]s sent over a bounded
//! channel, the pattern of rust-libp2p's file-sharing example.

mod behaviour;
mod client;
mod command;
pub mod dials;
mod event_loop;
pub mod gossip_idle;
pub mod kad_probe;
pub mod keep;
pub mod lasting;
pub mod locator;
pub mod pubsub;
pub mod quiet;
pub mod ratelimit;
pub mod reach;
pub mod record_handoff;
pub mod record_store;
mod relay_server;
pub mod relay_wake;
pub mod republish;
pub mod stats;
pub mod wire_count;

use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::{Swarm, Transport, noise, tcp, yamux};

pub use behaviour::{Behaviour, KAD_PROTOCOL, MAX_CONNECTIONS_PER_PEER};
pub use client::{NetClient, RequestError};
pub use command::{Command, NetEvent, ReachStatus};
pub use event_loop::EventLoop;

use crate::config::Config;
use crate::identity::Identity;

/// Errors building the swarm.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The transport stack could not be set up.
    #[error("cannot set up the network: {0}")]
    Setup(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: libp2p::Multiaddr,
        /// Why.
        reason: String,
    },
}

/// Builds the swarm: TCP and QUIC, Noise, Yamux, DNS names, and the relay
/// client transport (dials and listens on `/p2p-circuit` addresses), with
/// our behaviour.
///
/// It also speaks libp2p's in-process memory transport (`/memory/N`
/// addresses, same Noise and Yamux on top), used only when a node is told
/// to listen on one: that lets a benchmark run a thousand real nodes in one
/// process without a file descriptor per connection. A memory address in a
/// foreign peer's record is simply undialable here.
pub fn build_swarm(identity: &Identity, config: &Config) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(identity.keypair().clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                let written = wire_count::counter(identity.peer_id());
                Ok(MemoryTransport::default()
                    .map(move |c, _| wire_count::Counted::new(c, written.clone()))
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            },
        )
        .map_err(|e| setup(&e))?
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(
            |_, relay_client| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(Behaviour::new(identity, config, relay_client)?)
            },
        )
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}
