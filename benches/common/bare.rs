//! The bare network stack roost is measured against: two libp2p swarms
//! with nothing but `libp2p_stream` over TCP + Noise + Yamux on
//! 127.0.0.1, the same transport a roost node uses.

use std::time::Duration;

use futures::StreamExt;
use libp2p::{PeerId, Stream, StreamProtocol, Swarm};
use libp2p_stream::{Control, IncomingStreams};

/// A swarm with only the stream behaviour, on TCP + Noise + Yamux.
pub fn bare_swarm() -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// Two bare swarms, A dialling B on 127.0.0.1, each driven by a task of
/// its own: A's stream control, B's incoming streams of `protocol`, and
/// B's id.
pub async fn connected(protocol: StreamProtocol) -> (Control, IncomingStreams, PeerId) {
    let mut sa = bare_swarm();
    let mut sb = bare_swarm();
    sb.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
            sb.select_next_some().await
        {
            break address;
        }
    };
    let pb: PeerId = *sb.local_peer_id();
    let incoming = sb.behaviour().new_control().accept(protocol).unwrap();
    let control = sa.behaviour().new_control();
    tokio::spawn(async move {
        loop {
            sb.select_next_some().await;
        }
    });
    // Connected before anyone opens a stream: a stream asked for while the
    // dial is still under way can wait for good.
    sa.dial(addr.with(libp2p::multiaddr::Protocol::P2p(pb)))
        .unwrap();
    loop {
        match sa.select_next_some().await {
            libp2p::swarm::SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == pb => {
                break;
            }
            libp2p::swarm::SwarmEvent::OutgoingConnectionError { error, .. } => {
                panic!("the bare swarms did not connect: {error}")
            }
            _ => {}
        }
    }
    tokio::spawn(async move {
        loop {
            sa.select_next_some().await;
        }
    });
    (control, incoming, pb)
}

/// Opens a stream of `protocol` to `peer` (connected by [`connected`]),
/// asking again after a failure.
pub async fn open(control: &mut Control, peer: PeerId, protocol: StreamProtocol) -> Stream {
    loop {
        match control.open_stream(peer, protocol.clone()).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}
