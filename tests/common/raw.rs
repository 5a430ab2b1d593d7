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

/// A hand speaker connected to a node, its swarm driven on a task of its
/// own: the test opens streams with `control` and takes the streams the
/// node opens to it from `incoming`.
pub struct Speaker {
    pub identity: roost::Identity,
    pub id: libp2p::PeerId,
    pub control: libp2p_stream::Control,
    pub incoming: libp2p_stream::IncomingStreams,
    pub driver: tokio::task::JoinHandle<()>,
}

impl Speaker {
    /// A new identity's speaker, dialled to `node`; returns once `node`
    /// counts it among its connected peers.
    pub async fn connect(node: &super::TestNode) -> Self {
        use futures::StreamExt;
        let identity = roost::Identity::generate().unwrap();
        let id = identity.peer_id();
        let mut swarm = hand_speaker(identity.keypair().clone());
        let mut control = swarm.behaviour().new_control();
        let incoming = control
            .accept(roost::node::messenger::MSG_PROTOCOL)
            .unwrap();
        swarm.dial(node.addr().await).unwrap();
        let driver = tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        super::eventually("the node is connected to the speaker", || async {
            let peers = node.handle.connected_peers().await.unwrap();
            peers.contains(&id).then_some(())
        })
        .await;
        Self {
            identity,
            id,
            control,
            incoming,
            driver,
        }
    }
}
