//! [hardening] Hostile peers: silent streams, too many streams, garbage on
//! every protocol, presence pushed by strangers. Honest nodes keep serving
//! and lose nothing.

mod common;

use std::time::Instant;

use common::{TestNode, arrives, eventually, honest_and_other, init_tracing};
use futures::StreamExt;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::request_response::OutboundFailure;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{SwarmEvent, dummy};
use libp2p::{Multiaddr, PeerId, Swarm};
use roost::clock::unix_ms;
use roost::crypto::Sealer;
use roost::net::ratelimit::{MAILBOX_BURST, MAILBOX_RATE, PRESENCE_BURST, PRESENCE_RATE};
use roost::net::{MAX_CONNECTIONS_PER_PEER, RequestError};
use roost::node::messenger::{MAX_STREAMS_PER_PEER, MSG_PROTOCOL};
use roost::node::presence::READING;
use roost::wire::mailbox::{DepositReject, FETCH_FROM, MailboxRequest, MailboxResponse};
use roost::wire::message::{self, Ack, AckResult, MAX_FRAME, MessageId, ReadFrame};
use roost::wire::presence::{MAX_NOTE, MAX_PRESENCE_FRAME, PUSH_PROTOCOL, PresenceInfo, Status};
use roost::{Content, Event, Identity};

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

/// Delivers one message from `from` to `to` on a raw message stream `s`,
/// as a sender's link would, and returns the node's ack of it (`None` if
/// the stream ended first).
async fn deliver_on(
    s: &mut libp2p::Stream,
    from: &TestNode,
    to: PeerId,
) -> (MessageId, Option<Ack>) {
    let sealer = Sealer::new(&Identity::load_from(from.dir.path()).unwrap());
    let id = MessageId::random();
    let inner = message::Inner::text(&from.handle.peer_id(), unix_ms(), "on a raw stream");
    let env = message::seal(&sealer, id, &to, &inner).unwrap();
    let frame = message::encode_deliver(&env).unwrap();
    // Written to a stream the node has closed, the frame is lost and the
    // read below ends.
    let _ = message::write_frame(s, &frame).await;
    let _ = s.flush().await;
    let read = tokio::time::timeout(common::DEADLINE, message::read_frame(s, MAX_FRAME));
    let ack = match read.await.expect("the node answers or closes in time") {
        Ok(ReadFrame::Frame(bytes)) => Some(roost::wire::decode::<Ack>(&bytes, MAX_FRAME).unwrap()),
        _ => None,
    };
    (id, ack)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_surplus_streams_are_closed_and_honest_traffic_flows() {
    init_tracing();
    let (honest, mallory) = honest_and_other().await;
    let target = honest.handle.peer_id();

    // As many silent streams as the per-peer limit allows, each opened
    // once the node has taken the last: libp2p-stream drops an inbound
    // stream that arrives while the one before it is still being handed
    // over, so streams opened at once would be cut down by the library,
    // not by the node (see `messenger::inbound::accept_streams`).
    let from = mallory.handle.peer_id();
    let mut streams = Vec::new();
    for n in 1..=MAX_STREAMS_PER_PEER {
        streams.push(
            mallory
                .handle
                .open_raw_stream(target, MSG_PROTOCOL)
                .await
                .unwrap(),
        );
        eventually("the node takes the stream", || async {
            (honest.handle.message_streams(from).await.unwrap() == n).then_some(())
        })
        .await;
    }
    // One more: the surplus, closed at once, while the others stay open.
    let mut surplus = mallory
        .handle
        .open_raw_stream(target, MSG_PROTOCOL)
        .await
        .unwrap();
    assert!(closed(&mut surplus).await, "the surplus stream is closed");
    assert_eq!(
        honest.handle.message_streams(from).await.unwrap(),
        MAX_STREAMS_PER_PEER,
        "the node serves the streams within the limit, and no more"
    );
    // ... for being surplus, not for its silence: the others, opened
    // within moments of it and silent until now, still take a message (all
    // but the last, kept silent for the timeout below). Had the surplus
    // stream been left to time out, they would have timed out with it.
    let (silent, accepted) = streams.split_last_mut().expect("streams");
    for s in accepted {
        let (id, ack) = deliver_on(s, &mallory, target).await;
        assert_eq!(
            ack,
            Some(Ack {
                id: Some(id),
                result: AckResult::Accepted
            }),
            "a stream within the limit was still open when the surplus one was closed"
        );
        arrives(&honest.handle, mallory.handle.peer_id(), id).await;
    }

    // A silent stream is closed once its first-frame timeout passes.
    assert!(
        closed(silent).await,
        "a silent stream is closed after FIRST_FRAME_TIMEOUT"
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
    assert_eq!(
        resp,
        MailboxResponse::Deposited(vec![Some(DepositReject::NotAcceptable)]),
        "a deposit to the holder itself is refused as not acceptable"
    );
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

    // Three times the burst of mailbox fetches, in waves of 100 — under
    // the request-response stream limits of both ends, so every request
    // reaches the node's rate limiter rather than a full stream table.
    let burst = MAILBOX_BURST as usize;
    let net = mallory.handle.net().clone();
    let me = mallory.handle.peer_id().to_bytes();
    let started = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..3 * burst / 100 {
        answers.extend(
            futures::future::join_all((0..100).map(|_| {
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
                }
            }))
            .await,
        );
    }
    let took = started.elapsed();

    // The node drops a request over the peer's rate unanswered: the
    // requester's read of the answer ends.
    let refusal = OutboundFailure::Io(std::io::ErrorKind::UnexpectedEof.into()).to_string();
    let mut served = 0;
    for answer in &answers {
        match answer {
            Ok(MailboxResponse::Page { items, next: None }) if items.is_empty() => served += 1,
            Err(RequestError::Dial { reason, .. }) if *reason == refusal => {}
            other => panic!("neither served nor refused by the rate limit: {other:?}"),
        }
    }
    // The burst is served, less what mallory's own node may have drawn
    // from the same bucket meanwhile (a fetch of its mailbox asks at most
    // `FETCH_FROM` holders); beyond it, only what the rate refilled while
    // the flood lasted.
    let refilled = (MAILBOX_RATE * took.as_secs_f64()).ceil() as usize;
    assert!(
        served >= burst - FETCH_FROM,
        "the burst of {burst} is served ({served} were)"
    );
    assert!(
        served <= burst + refilled,
        "{served} served: at most the burst of {burst} and {refilled} refilled over {took:?}"
    );

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
    common::raw::tcp_swarm(libp2p::identity::Keypair::generate_ed25519(), |_| {
        dummy::Behaviour
    })
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

/// Waits for the node to say it reads push stream `s` (its first byte).
async fn taken(s: &mut libp2p::Stream) {
    let mut first = [0u8; 1];
    tokio::time::timeout(common::DEADLINE, s.read_exact(&mut first))
        .await
        .expect("the node takes the push stream in time")
        .expect("the node takes the push stream");
    assert_eq!(first[0], READING);
}

/// A presence push stream carries states from the peer that opened it.
/// The node refuses one from a peer it does not watch; from a buddy it
/// takes states only within the limits. A frame over the size limit, one
/// that does not decode, or states faster than the peer's rate (one bucket
/// per peer, whichever stream) end the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_presence_is_taken_only_from_watched_buddies_within_limits() {
    init_tracing();
    let (honest, buddy) = honest_and_other().await;
    let stranger = TestNode::start(&[honest.addr().await]).await;
    let (target, idb) = (honest.handle.peer_id(), buddy.handle.peer_id());
    honest.handle.add_buddy(idb, "buddy".into()).await.unwrap();
    let mut events = honest.handle.events();
    let state = |status, note: Option<String>| {
        roost::wire::encode(&PresenceInfo {
            status,
            note,
            activity: None,
            location: None,
            until: None,
        })
        .unwrap()
    };
    let open = |node: &TestNode| {
        let handle = node.handle.clone();
        async move { handle.open_raw_stream(target, PUSH_PROTOCOL).await.unwrap() }
    };

    // A stranger's stream is refused before a byte is read from it (what
    // it writes may already find the stream gone).
    let mut s = open(&stranger).await;
    let _ = message::write_frame(&mut s, &state(Status::Busy, None)).await;
    let _ = s.flush().await;
    assert!(closed(&mut s).await, "a stranger's push stream is refused");

    // The buddy's: a frame announced over the size limit ends its stream,
    // as does a frame that is not a state.
    let mut big = open(&buddy).await;
    taken(&mut big).await;
    let too_large = u32::try_from(MAX_PRESENCE_FRAME + 1).unwrap();
    big.write_all(&too_large.to_be_bytes()).await.unwrap();
    big.flush().await.unwrap();
    assert!(
        closed(&mut big).await,
        "a frame over the limit ends the stream"
    );
    let mut garbage = open(&buddy).await;
    taken(&mut garbage).await;
    message::write_frame(&mut garbage, b"\xff\x00 not a state")
        .await
        .unwrap();
    garbage.flush().await.unwrap();
    assert!(closed(&mut garbage).await, "garbage ends the stream");

    // On a new stream, a note over the limit is dropped, and the state
    // after it (the sentinel) is taken.
    let mut b = open(&buddy).await;
    taken(&mut b).await;
    let long = Some("x".repeat(MAX_NOTE + 1));
    message::write_frame(&mut b, &state(Status::Busy, long))
        .await
        .unwrap();
    let sentinel = Some("sentinel".to_string());
    message::write_frame(&mut b, &state(Status::Away, sentinel.clone()))
        .await
        .unwrap();
    b.flush().await.unwrap();
    let before = tokio::time::timeout(common::DEADLINE, async {
        let mut before = Vec::new();
        loop {
            match events.recv().await {
                Ok(Event::Presence { peer, info }) if peer == idb && info.note == sentinel => {
                    return before;
                }
                Ok(Event::Presence { peer, info }) => before.push((peer, info)),
                Ok(_) => {}
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await
    .expect("the buddy's sentinel state is shown");
    assert!(
        before
            .iter()
            .all(|(peer, info)| *peer == idb && info.status != Status::Busy),
        "a stranger's state or one over the limits was shown: {before:?}"
    );

    // States faster than presence requests may come end the stream...
    let mut flood = Vec::new();
    for _ in 0..2 * PRESENCE_BURST as usize {
        message::push_frame(&mut flood, &state(Status::Away, None)).unwrap();
    }
    b.write_all(&flood).await.unwrap();
    b.flush().await.unwrap();
    assert!(closed(&mut b).await, "a flood of states ends the stream");
    let flooded = Instant::now();
    // ... and a new stream does not bring a new bucket: states a fresh
    // bucket would take (one short of a burst) are over the peer's rate
    // unless some five seconds passed since the flood.
    let mut again = open(&buddy).await;
    taken(&mut again).await;
    let mut short = Vec::new();
    for _ in 0..PRESENCE_BURST as usize - 1 {
        message::push_frame(&mut short, &state(Status::Away, None)).unwrap();
    }
    again.write_all(&short).await.unwrap();
    again.flush().await.unwrap();
    // The bucket refills at PRESENCE_RATE a second: only a machine that
    // stalled for seconds since the flood could have refilled it.
    let refilled = flooded.elapsed().as_secs_f64() * PRESENCE_RATE;
    if refilled < PRESENCE_BURST / 2.0 {
        assert!(
            closed(&mut again).await,
            "a new stream reset the peer's rate"
        );
    } else {
        eprintln!("{refilled:.0} states refilled since the flood: the rate check is moot");
    }
    for node in [honest, buddy, stranger] {
        node.handle.shutdown().await.unwrap();
    }
}
