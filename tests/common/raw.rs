//! Bare libp2p swarms for tests that play a peer by hand: no roost node
//! behind them, so the test writes every frame, answer and request itself.

use std::time::Duration;

use libp2p::Swarm;
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;

/// A swarm on TCP (Noise, Yamux) as `keypair`, with `behaviour`, that keeps
/// idle connections open for five minutes: a hand-played peer must not
/// lose its connection while the test waits on the node.
pub fn tcp_swarm<B: NetworkBehaviour>(
    keypair: Keypair,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("TCP transport")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// A swarm with only the stream protocol, as `keypair`: the test reads
/// every frame and writes every ack of `/roost/msg/1` itself.
pub fn hand_speaker(keypair: Keypair) -> Swarm<libp2p_stream::Behaviour> {
    tcp_swarm(keypair, |_| libp2p_stream::Behaviour::new())
}
