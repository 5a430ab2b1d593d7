//! [trust] Fields of incoming messages are bounded before they reach the
//! history: a `sent_at` far in the future is not taken (it would pin the
//! message above everything that follows), an oversize subject is refused
//! by kind. A hostile peer plays the sender on a raw `/roost/msg/1` stream.

mod common;

use common::{TestNode, eventually, honest_and_other, init_tracing};
use roost::clock::unix_ms;
use roost::crypto::Sealer;
use roost::node::content::MAX_CLOCK_SKEW_MS;
use roost::node::messenger::MSG_PROTOCOL;
use roost::wire::message::{
    self, Ack, AckResult, Body, Frame, Inner, MAX_FRAME, MAX_SUBJECT, MessageId, ReadFrame,
    RejectReason, read_frame, write_frame,
};
use roost::{Content, Identity};

/// Seals a text message from `from` to `to` claiming `sent_at`.
fn frame(
    from: &Identity,
    to: &libp2p::PeerId,
    sent_at: u64,
    subject: Option<String>,
    text: &str,
) -> (MessageId, Vec<u8>) {
    let inner = Inner {
        from: from.peer_id().to_bytes(),
        sent_at,
        body: Body::Content {
            content_type: "text/plain".into(),
            subject,
            data: text.as_bytes().to_vec(),
        },
    };
    let id = MessageId::random();
    let env = message::seal(&Sealer::new(from), id, to, &inner).unwrap();
    (id, roost::wire::encode(&Frame::Deliver(env)).unwrap())
}

/// Writes one frame on a raw stream and reads its ack.
async fn exchange(stream: &mut libp2p::Stream, bytes: &[u8]) -> Ack {
    write_frame(&mut *stream, bytes).await.unwrap();
    let answer = tokio::time::timeout(common::DEADLINE, read_frame(stream, MAX_FRAME))
        .await
        .expect("the node answers in time")
        .unwrap();
    match answer {
        ReadFrame::Frame(b) => roost::wire::decode(&b, MAX_FRAME).unwrap(),
        other => panic!("expected an ack, got {other:?}"),
    }
}

/// An honest node, a stranger that can reach it, the stranger's identity
/// (to seal frames as its node would) and a raw `/roost/msg/1` stream from
/// the stranger to the honest node, on which the test plays the sender.
async fn raw_sender() -> (TestNode, TestNode, Identity, libp2p::Stream) {
    let (honest, stranger) = honest_and_other().await;
    let me = Identity::load_from(stranger.dir.path()).unwrap();
    let stream = stranger
        .handle
        .open_raw_stream(honest.handle.peer_id(), MSG_PROTOCOL)
        .await
        .unwrap();
    (honest, stranger, me, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_message_is_not_taken_and_a_newer_genuine_one_is_latest() {
    init_tracing();
    let (honest, stranger, me, mut s) = raw_sender().await;
    let target = honest.handle.peer_id();
    let from = stranger.handle.peer_id();

    // The same raw path takes a message written a second ago.
    let (earlier, bytes) = frame(&me, &target, unix_ms() - 1000, None, "earlier");
    let ack = exchange(&mut s, &bytes).await;
    assert_eq!((ack.id, ack.result), (Some(earlier), AckResult::Accepted));

    // Ten years ahead, and just past the tolerated skew.
    let ten_years = 10 * 365 * 24 * 3600 * 1000;
    let (pinned, bytes) = frame(&me, &target, unix_ms() + ten_years, None, "pin me");
    let pinned_ack = exchange(&mut s, &bytes).await;
    let skew = unix_ms() + MAX_CLOCK_SKEW_MS + 60_000;
    let (edge, bytes) = frame(&me, &target, skew, None, "a bit too far");
    let edge_ack = exchange(&mut s, &bytes).await;

    // A genuine message written after them is the latest in every history.
    let genuine = stranger
        .handle
        .send(target, Content::text("genuine"))
        .await
        .unwrap();
    common::arrives(&honest.handle, from, genuine).await;
    let latest = honest.handle.conversation(from, 1).await.unwrap();
    assert_eq!(latest[0].id, genuine, "the genuine message is the latest");
    let received = honest.handle.received().await.unwrap();
    let newest = received.iter().max_by_key(|m| (m.sent_at, m.id)).unwrap();
    assert_eq!(newest.id, genuine, "{received:?}");
    let conv = honest.handle.conversation(from, 10).await.unwrap();
    let ids: Vec<MessageId> = conv.iter().map(|m| m.id).collect();
    assert_eq!(ids, [earlier, genuine], "oldest first, nothing else");

    // They were not taken now: the sender may offer them again later.
    let not_now = AckResult::Rejected(RejectReason::Unavailable);
    assert_eq!(
        (pinned_ack.id, pinned_ack.result),
        (Some(pinned), not_now.clone())
    );
    assert_eq!((edge_ack.id, edge_ack.result), (Some(edge), not_now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_subject_is_refused_by_kind_and_not_stored() {
    init_tracing();
    let (honest, stranger, me, mut s) = raw_sender().await;
    let target = honest.handle.peer_id();
    let from = stranger.handle.peer_id();

    let now = unix_ms();
    let (long, bytes) = frame(&me, &target, now, Some("s".repeat(100 * 1024)), "long");
    let ack = exchange(&mut s, &bytes).await;
    assert_eq!(
        (ack.id, ack.result),
        (Some(long), AckResult::Rejected(RejectReason::FieldTooLarge))
    );
    let (over, bytes) = frame(&me, &target, now, Some("s".repeat(MAX_SUBJECT + 1)), "x");
    let ack = exchange(&mut s, &bytes).await;
    assert_eq!(
        (ack.id, ack.result),
        (Some(over), AckResult::Rejected(RejectReason::FieldTooLarge))
    );
    // At the limit it is taken, on the same stream.
    let (at, bytes) = frame(&me, &target, now, Some("s".repeat(MAX_SUBJECT)), "ok");
    let ack = exchange(&mut s, &bytes).await;
    assert_eq!((ack.id, ack.result), (Some(at), AckResult::Accepted));

    let conv = eventually("the message at the limit is stored", || async {
        let conv = honest.handle.conversation(from, 10).await.unwrap();
        conv.iter().any(|m| m.id == at).then_some(conv)
    })
    .await;
    assert_eq!(conv.len(), 1, "only the one within limits: {conv:?}");
    assert_eq!(conv[0].subject.as_deref().map(str::len), Some(MAX_SUBJECT));
}
