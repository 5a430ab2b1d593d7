//! [msg] Direct MESSAGE delivery between real nodes: sealed, acknowledged,
//! deduplicated, receipted; hostile frames refused without disturbing
//! honest traffic.

mod common;

use common::{TestNode, eventually, init_tracing, reaches_state};
use futures::AsyncWriteExt;
use libp2p::PeerId;
use roost::crypto::Sealer;
use roost::node::messenger::MSG_PROTOCOL;
use roost::store::{Direction, MessageState};
use roost::wire::message::{
    self, Ack, AckResult, Envelope, Frame, Inner, MAX_FRAME, MessageId, ReadFrame, RejectReason,
    read_frame, write_frame,
};
use roost::{Content, Event, Identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_arrive_once_in_order_then_are_delivered_and_read() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let a = TestNode::start(std::slice::from_ref(&boot)).await;
    let b = TestNode::start(&[boot]).await;
    let (ida, idb) = (a.handle.peer_id(), b.handle.peer_id());
    b.handle.add_buddy(ida, "alice".into()).await.unwrap();
    let mut events = a.handle.events();

    let texts: Vec<String> = (0..1000)
        .map(|i| format!("message {i:04} from A: {}", "·".repeat(i % 50)))
        .collect();
    let mut ids = Vec::new();
    for t in &texts {
        ids.push(a.handle.send(idb, Content::text(t.clone())).await.unwrap());
    }

    let got = eventually("B has all 1000", || async {
        let conv = b.handle.conversation(ida, 5000).await.unwrap();
        (conv.len() >= 1000).then_some(conv)
    })
    .await;
    assert_eq!(got.len(), 1000, "exactly once");
    for (m, (t, id)) in got.iter().zip(texts.iter().zip(&ids)) {
        assert_eq!(m.direction, Direction::In);
        assert_eq!(&m.id, id);
        assert_eq!(m.data, t.as_bytes(), "body intact, in order");
        assert_eq!(m.content_type, "text/plain");
        assert!(!m.request, "from a buddy");
        assert_eq!(m.state, MessageState::Unread);
    }
    assert_eq!(b.handle.inbox().await.unwrap().len(), 1000);

    eventually("A sees every message delivered", || async {
        let conv = a.handle.conversation(idb, 5000).await.unwrap();
        conv.iter()
            .all(|m| m.state == MessageState::Delivered)
            .then_some(())
    })
    .await;
    assert_eq!(a.handle.outbox_len().await.unwrap(), 0);

    assert_eq!(b.handle.mark_read(ida).await.unwrap(), 1000);
    eventually("A sees every message read", || async {
        let conv = a.handle.conversation(idb, 5000).await.unwrap();
        conv.iter()
            .all(|m| m.state == MessageState::Read)
            .then_some(())
    })
    .await;
    // The state changes were pushed as events too, each before a read
    // could show it.
    let mut read_events = 0;
    loop {
        match events.try_recv() {
            Ok(Event::State {
                state: MessageState::Read,
                ..
            }) => read_events += 1,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
            Err(e) => panic!("A's events were not all kept for the test: {e}"),
        }
    }
    assert_eq!(read_events, 1000);
    for n in [&seed, &a, &b] {
        n.handle.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_event_is_never_ahead_of_the_history() {
    init_tracing();
    let b = TestNode::start(&[]).await;
    let a = TestNode::start(&[b.addr().await]).await;
    let idb = b.handle.peer_id();
    let mut events = a.handle.events();
    for i in 0..20 {
        a.handle
            .send(idb, Content::text(format!("note {i}")))
            .await
            .unwrap();
    }
    let mut seen = 0;
    while seen < 20 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(30), events.recv())
            .await
            .expect("A hears about every message")
            .unwrap();
        if let Event::State {
            id,
            state: MessageState::Delivered,
            ..
        } = ev
        {
            // Announced at the ack, before the state is written: a read
            // asked for after the event must already see it.
            let conv = a.handle.conversation(idb, 100).await.unwrap();
            let m = conv.iter().find(|m| m.id == id).expect("in the history");
            assert!(
                matches!(m.state, MessageState::Delivered | MessageState::Read),
                "event said delivered, history says {:?}",
                m.state
            );
            seen += 1;
        }
    }
    for n in [&a, &b] {
        n.handle.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_strangers_are_requests_and_blocked_keys_are_refused() {
    init_tracing();
    let b = TestNode::start(&[]).await;
    let a = TestNode::start(&[b.addr().await]).await;
    let (ida, idb) = (a.handle.peer_id(), b.handle.peer_id());
    a.handle
        .send(idb, Content::text("hello, stranger"))
        .await
        .unwrap();
    let req = eventually("B lists it under requests", || async {
        b.handle.requests().await.unwrap().pop()
    })
    .await;
    assert_eq!(req.data, b"hello, stranger");
    assert!(b.handle.inbox().await.unwrap().is_empty());

    b.handle.block(ida).await.unwrap();
    let id = a
        .handle
        .send(idb, Content::text("let me in"))
        .await
        .unwrap();
    reaches_state(
        &a.handle,
        idb,
        id,
        MessageState::Failed,
        "A sees the message refused",
    )
    .await;
    assert_eq!(b.handle.conversation(ida, 10).await.unwrap().len(), 1);
    assert!(matches!(
        a.handle
            .send(idb, Content::text("x".repeat(64 * 1024 + 1)))
            .await,
        Err(roost::NodeError::Content(_))
    ));
    a.handle.shutdown().await.unwrap();
    b.handle.shutdown().await.unwrap();
}

/// Fails the test instead of hanging if the node never answers.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(common::DEADLINE, f)
        .await
        .expect("the node answers in time")
}

/// Writes one frame on a raw stream and reads the ack.
async fn exchange(stream: &mut libp2p::Stream, bytes: &[u8]) -> Ack {
    write_frame(stream, bytes).await.unwrap();
    stream.flush().await.unwrap();
    match within(read_frame(stream, MAX_FRAME)).await.unwrap() {
        ReadFrame::Frame(b) => roost::wire::decode(&b, MAX_FRAME).unwrap(),
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_get_typed_rejections_and_honest_traffic_continues() {
    init_tracing();
    let honest = TestNode::start(&[]).await;
    let mallory = TestNode::start(&[honest.addr().await]).await;
    let third = Identity::generate().unwrap();
    let mal_id = Identity::load_from(mallory.dir.path()).unwrap();
    let sealer = Sealer::new(&mal_id);
    let target = honest.handle.peer_id();
    eventually("mallory finds the honest node", || async {
        mallory.handle.find(target).await.unwrap()
    })
    .await;
    let mut s = mallory
        .handle
        .open_raw_stream(target, MSG_PROTOCOL)
        .await
        .unwrap();

    sealed_frames_are_refused_or_deduplicated(&mut s, &sealer, &mal_id, &third, target).await;
    an_oversize_frame_closes_the_stream(&mut s).await;

    // The node keeps serving: the next honest message is delivered.
    let id = mallory
        .handle
        .send(target, Content::text("honest again"))
        .await
        .unwrap();
    let conv = eventually("honest message arrives", || async {
        let conv = honest
            .handle
            .conversation(mal_id.peer_id(), 10)
            .await
            .unwrap();
        conv.iter().any(|m| m.id == id).then_some(conv)
    })
    .await;
    let texts: Vec<&[u8]> = conv.iter().map(|m| m.data.as_slice()).collect();
    assert_eq!(texts, vec![&b"once"[..], &b"honest again"[..]]);
    honest.handle.shutdown().await.unwrap();
    mallory.handle.shutdown().await.unwrap();
}

/// A plain text message from `from`, as Mallory's frames carry it.
fn text(from: &Identity, s: &str) -> Inner {
    Inner::text(&from.peer_id(), 1, s)
}

/// The encoded DELIVER frame of `env`.
fn frame(env: Envelope) -> Vec<u8> {
    roost::wire::encode(&Frame::Deliver(env)).unwrap()
}

/// Tampered, mis-sent and junk frames each get their typed rejection; a
/// replayed envelope is a duplicate, not a second message.
async fn sealed_frames_are_refused_or_deduplicated(
    s: &mut libp2p::Stream,
    sealer: &Sealer,
    mal_id: &Identity,
    third: &Identity,
    target: PeerId,
) {
    // Tampered ciphertext.
    let mut env = message::seal(sealer, MessageId::random(), &target, &text(mal_id, "hi")).unwrap();
    env.sealed[0] ^= 1;
    let ack = exchange(s, &frame(env.clone())).await;
    assert_eq!(
        (ack.id, ack.result),
        (Some(env.id), AckResult::Rejected(RejectReason::BadSeal))
    );

    // Inner sender does not match the key that sealed it.
    let env = message::seal(
        sealer,
        MessageId::random(),
        &target,
        &text(third, "I am someone else"),
    )
    .unwrap();
    let ack = exchange(s, &frame(env)).await;
    assert_eq!(
        ack.result,
        AckResult::Rejected(RejectReason::SenderMismatch)
    );

    // Sealed to another key.
    let env = message::seal(
        sealer,
        MessageId::random(),
        &third.peer_id(),
        &text(mal_id, "not yours"),
    )
    .unwrap();
    let ack = exchange(s, &frame(env)).await;
    assert_eq!(ack.result, AckResult::Rejected(RejectReason::NotForMe));

    // Random bytes.
    let ack = exchange(s, b"\x13\x37 random junk \xff\xfe").await;
    assert_eq!(
        (ack.id, ack.result),
        (None, AckResult::Rejected(RejectReason::Malformed))
    );

    // A replayed honest envelope is a duplicate, not a second message.
    let env = message::seal(sealer, MessageId::random(), &target, &text(mal_id, "once")).unwrap();
    assert_eq!(
        exchange(s, &frame(env.clone())).await.result,
        AckResult::Accepted
    );
    assert_eq!(exchange(s, &frame(env)).await.result, AckResult::Duplicate);
}

/// An oversize frame: refused without reading it, and the stream closed.
async fn an_oversize_frame_closes_the_stream(s: &mut libp2p::Stream) {
    s.write_all(&((MAX_FRAME as u32 + 1).to_be_bytes()))
        .await
        .unwrap();
    s.flush().await.unwrap();
    match within(read_frame(s, MAX_FRAME)).await.unwrap() {
        ReadFrame::Frame(b) => {
            let ack: Ack = roost::wire::decode(&b, MAX_FRAME).unwrap();
            assert_eq!(ack.result, AckResult::Rejected(RejectReason::TooLarge));
        }
        other => panic!("expected an ack, got {other:?}"),
    }
    assert!(matches!(
        within(read_frame(s, MAX_FRAME)).await,
        Ok(ReadFrame::Eof) | Err(_)
    ));
}
