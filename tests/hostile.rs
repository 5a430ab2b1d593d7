//! [hardening] Hostile peers: silent streams, too many streams, garbage on
//! every protocol. Honest nodes keep serving and lose nothing.

mod common;

use std::time::{Duration, Instant};

use common::{TestNode, arrives, eventually, honest_and_other, init_tracing};
use futures::StreamExt;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{SwarmEvent, dummy};
use libp2p::{Multiaddr, PeerId, Swarm};
use roost::net::MAX_CONNECTIONS_PER_PEER;
use roost::node::messenger::{FIRST_FRAME_TIMEOUT, MAX_STREAMS_PER_PEER, MSG_PROTOCOL};
use roost::wire::mailbox::{MailboxRequest, MailboxResponse};
use roost::{Content, Identity};

/// `honest` still takes a message from `other`: whatever was thrown at it
/// did not stop it serving.
async fn still_serves(honest: &TestNode, other: &TestNode) {
    let to = honest.handle.peer_id();
    let id = other
        .handle
        .send(to, Content::text("still here"))
        .await
        .unwrap();
    arrives(&honest.handle, other.handle.peer_id(), id).await;
}

/// True once the remote has closed `s` (EOF or reset).
async fn closed(s: &mut libp2p::Stream) -> bool {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(common::DEADLINE, s.read(&mut buf));
    matches!(
        read.await.expect("the node closes the stream in time"),
        Ok(0) | Err(_)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_surplus_streams_are_closed_and_honest_traffic_flows() {
    init_tracing();
    let (honest, mallory) = honest_and_other().await;
    let target = honest.handle.peer_id();

    // Streams beyond the per-peer limit are refused at once.
    // The first-frame timeout runs from each stream's opening: on a loaded
    // machine the checks below can take seconds, so time from here.
    let opened = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..MAX_STREAMS_PER_PEER {
        streams.push(
            mallory
                .handle
                .open_raw_stream(target, MSG_PROTOCOL)
                .await
                .unwrap(),
        );
    }
    let mut extra = mallory
        .handle
        .open_raw_stream(target, MSG_PROTOCOL)
        .await
        .unwrap();
    assert!(closed(&mut extra).await, "the surplus stream is closed");

    // The silent ones are closed after the first-frame timeout, not before.
    assert!(closed(&mut streams[0]).await);
    let waited = opened.elapsed();
    assert!(
        waited >= FIRST_FRAME_TIMEOUT - Duration::from_secs(1),
        "closed after {waited:?}"
    );
    drop(streams);

    // Meanwhile and afterwards, honest messages go through.
    still_serves(&honest, &mallory).await;
    honest.handle.shutdown().await.unwrap();
    mallory.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_mailbox_and_presence_protocols_does_not_hurt() {
    init_tracing();
    let (honest, mallory) = honest_and_other().await;
    let target = honest.handle.peer_id();
    for proto in [
        roost::wire::mailbox::MAILBOX_PROTOCOL,
        roost::wire::presence::PRESENCE_PROTOCOL,
    ] {
        // Random bytes, then a length header announcing 4 GiB.
        let mut s = mallory
            .handle
            .open_raw_stream(target, proto.clone())
            .await
            .unwrap();
        s.write_all(b"\x00\x00\x00\x05junk!").await.unwrap();
        s.close().await.unwrap();
        assert!(closed(&mut s).await);
        let mut s = mallory.handle.open_raw_stream(target, proto).await.unwrap();
        s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        s.flush().await.unwrap();
        assert!(closed(&mut s).await);
    }
    // A deposit of envelopes addressed to the holder itself is refused
    // (it should have been delivered, not deposited).
    let sealer = roost::crypto::Sealer::new(&Identity::load_from(mallory.dir.path()).unwrap());
    let inner = roost::wire::message::Inner::text(&mallory.handle.peer_id(), 1, "x");
    let env = roost::wire::message::seal(
        &sealer,
        roost::wire::message::MessageId::random(),
        &target,
        &inner,
    )
    .unwrap();
    let resp = mallory
        .handle
        .net()
        .mailbox(target, MailboxRequest::Deposit(vec![env]))
        .await
        .unwrap();
    assert!(matches!(resp, MailboxResponse::Deposited(r) if r[0].is_some()));
    assert_eq!(honest.handle.held_len().await.unwrap(), 0);

    // The honest node still answers everything.
    let id = mallory
        .handle
        .send(target, Content::text("hello"))
        .await
        .unwrap();
    arrives(&honest.handle, mallory.handle.peer_id(), id).await;
    honest.handle.shutdown().await.unwrap();
    mallory.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_cut_off_and_others_are_still_served() {
    init_tracing();
    let honest = TestNode::start(&[]).await;
    let boot = honest.addr().await;
    let mallory = TestNode::start(std::slice::from_ref(&boot)).await;
    let friend = TestNode::start(&[boot]).await;
    let target = honest.handle.peer_id();
    eventually("mallory finds the honest node", || async {
        mallory.handle.find(target).await.unwrap()
    })
    .await;

    // 600 mailbox fetches at once: far over the per-peer burst of 200.
    let net = mallory.handle.net().clone();
    let me = mallory.handle.peer_id().to_bytes();
    let answers = futures::future::join_all((0..600).map(|_| {
        let (net, me) = (net.clone(), me.clone());
        async move {
            net.mailbox(
                target,
                MailboxRequest::Fetch {
                    recipient: me,
                    cursor: 0,
                },
            )
            .await
            .is_ok()
        }
    }))
    .await;
    let served = answers.iter().filter(|ok| **ok).count();
    assert!(
        served < 600,
        "a flood is not served in full ({served} of 600 answered)"
    );
    assert!(served > 0, "the first requests are served");

    // Another peer is served as usual meanwhile.
    let id = friend
        .handle
        .send(target, Content::text("unaffected"))
        .await
        .unwrap();
    arrives(&honest.handle, friend.handle.peer_id(), id).await;
    for n in [&honest, &mallory, &friend] {
        n.handle.shutdown().await.unwrap();
    }
}

/// A bare libp2p peer: speaks no protocol and keeps idle connections open.
fn bare_peer() -> Swarm<dummy::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| dummy::Behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// Dials `target` from `peer` once more, even if already connected.
fn dial_again(peer: &mut Swarm<dummy::Behaviour>, target: PeerId, addr: &Multiaddr) {
    let dial = DialOpts::peer_id(target)
        .addresses(vec![addr.clone()])
        .condition(PeerCondition::Always)
        .build();
    peer.dial(dial).unwrap();
}

/// Drives `peers` until `open` of their dials are up and `refused` were
/// turned away (closed right after they were established, or failed in the
/// upgrade); fails the test with what it saw if that does not happen.
async fn dials_end(peers: Vec<Swarm<dummy::Behaviour>>, open: u32, refused: u32) {
    let mut events = futures::stream::select_all(peers);
    let (mut up, mut away) = (0u32, 0u32);
    let settled = tokio::time::timeout(common::DEADLINE, async {
        while !(up == open && away == refused) {
            match events.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => up += 1,
                SwarmEvent::ConnectionClosed { .. } => {
                    up -= 1;
                    away += 1;
                }
                SwarmEvent::OutgoingConnectionError { .. } => away += 1,
                _ => {}
            }
        }
    });
    assert!(
        settled.await.is_ok(),
        "expected {open} open and {refused} refused, saw {up} open and {away} refused"
    );
}

/// A peer that dials us again and again (each connection a socket and
/// buffers on our side) keeps [`MAX_CONNECTIONS_PER_PEER`]; the node closes
/// the rest as soon as they are up, and goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_hold_more_than_its_share_of_connections() {
    init_tracing();
    let honest = TestNode::start(&[]).await;
    let target = honest.handle.peer_id();
    let addr = honest.addr().await;
    let mut mallory = bare_peer();
    let extra = 4;
    for _ in 0..MAX_CONNECTIONS_PER_PEER + extra {
        dial_again(&mut mallory, target, &addr);
    }
    dials_end(vec![mallory], MAX_CONNECTIONS_PER_PEER, extra).await;
    let other = TestNode::start(&[addr]).await;
    still_serves(&honest, &other).await;
    other.handle.shutdown().await.unwrap();
    honest.handle.shutdown().await.unwrap();
}

/// Identities cost nothing, so many peers together are held to
/// `max_incoming_connections`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_peers_together_are_held_to_the_incoming_limit() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    Identity::create_in(dir.path()).unwrap();
    let node = common::start_with(&dir, &[], |c| c.max_incoming_connections = 3).await;
    let target = node.peer_id();
    let addr = node.dial_addrs().await.unwrap().remove(0);
    let peers: Vec<_> = (0..5)
        .map(|_| {
            let mut p = bare_peer();
            dial_again(&mut p, target, &addr);
            p
        })
        .collect();
    dials_end(peers, 3, 2).await;
    node.shutdown().await.unwrap();
}
