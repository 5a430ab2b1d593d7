//! [msg] The send window of a link, end to end: a peer speaking
//! `/roost/msg/1` by hand receives Alice's frames and answers with acks of
//! its choosing. Only an ack for a frame on the link unanswered lets the
//! next frame out; an ack without an id (a frame the peer could not read)
//! closes the link, and its messages are sent again on a new one.

mod common;

use std::collections::HashSet;

use common::{TestNode, eventually, init_tracing};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use roost::Content;
use roost::node::messenger::{ACK_TIMEOUT, WINDOW};
use roost::wire::message::{
    self, Ack, AckResult, Frame, MAX_FRAME, MessageId, ReadFrame, RejectReason,
};

/// The next frame on `link`: the id of the message it carries, or `None`
/// once the stream has ended (closed or reset). Panics with `what` if
/// neither comes within the deadline.
async fn next_frame(link: &mut Stream, what: &str) -> Option<MessageId> {
    let read = tokio::time::timeout(common::DEADLINE, message::read_frame(link, MAX_FRAME))
        .await
        .unwrap_or_else(|_| panic!("waited in vain for {what}"));
    match read {
        Ok(ReadFrame::Frame(bytes)) => {
            let Frame::Deliver(env) = roost::wire::decode::<Frame>(&bytes, MAX_FRAME).unwrap();
            Some(env.id)
        }
        Ok(ReadFrame::Eof | ReadFrame::TooLarge(_)) | Err(_) => None,
    }
}

/// Writes `acks` to `link` in one write.
async fn answer(link: &mut Stream, acks: &[Ack]) {
    let mut buf = Vec::new();
    for ack in acks {
        message::push_frame(&mut buf, &roost::wire::encode(ack).unwrap()).unwrap();
    }
    link.write_all(&buf).await.unwrap();
    link.flush().await.unwrap();
}

fn accepted(id: MessageId) -> Ack {
    Ack {
        id: Some(id),
        result: AckResult::Accepted,
    }
}

/// Alice and a hand speaker connected to her.
struct Setup {
    alice: TestNode,
    speaker: PeerId,
    incoming: libp2p_stream::IncomingStreams,
    driver: tokio::task::JoinHandle<()>,
}

async fn setup() -> Setup {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let s = common::raw::Speaker::connect(&alice).await;
    Setup {
        alice,
        speaker: s.id,
        incoming: s.incoming,
        driver: s.driver,
    }
}

/// Alice sends `n` messages to the speaker; the link she opens for them.
async fn send_n(s: &mut Setup, n: usize) -> (Vec<MessageId>, Stream) {
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let content = Content::text(format!("message {i}"));
        sent.push(s.alice.handle.send(s.speaker, content).await.unwrap());
    }
    let (from, link) = tokio::time::timeout(common::DEADLINE, s.incoming.next())
        .await
        .expect("alice opens a link")
        .unwrap();
    assert_eq!(from, s.alice.handle.peer_id());
    (sent, link)
}

/// Junk acks do not widen the window: with the speaker answering only acks
/// for ids never sent and repeats of one it already answered, Alice stops
/// at exactly [`WINDOW`] frames, and each real ack lets exactly one more
/// out. The count ends with an id-less ack, which makes Alice close the
/// link: every frame she wrote before that is read, up to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_acks_free_no_slot_and_each_real_ack_frees_one() {
    let mut s = setup().await;
    let extra = 20;
    let (sent, mut link) = send_n(&mut s, WINDOW + extra).await;
    let all: HashSet<MessageId> = sent.iter().copied().collect();

    // Nothing answered yet: a full window arrives.
    let mut got = Vec::new();
    while got.len() < WINDOW {
        got.push(
            next_frame(&mut link, "a frame of the window")
                .await
                .expect("a frame of the window"),
        );
    }
    // Junk: acks for ids never sent, then one real ack (so that the
    // junk was handled before it: acks on a link are read in order).
    let mut junk: Vec<Ack> = (0..3 * extra)
        .map(|_| accepted(MessageId::random()))
        .collect();
    junk.push(accepted(got[0]));
    answer(&mut link, &junk).await;
    got.push(
        next_frame(&mut link, "the frame a real ack allows")
            .await
            .expect("one frame per real ack"),
    );
    // More junk: repeats of the ack just given, in every verdict, then a
    // second real ack.
    let mut junk: Vec<Ack> = (0..extra)
        .flat_map(|_| {
            [
                accepted(got[0]),
                Ack {
                    id: Some(got[0]),
                    result: AckResult::Duplicate,
                },
                Ack {
                    id: Some(got[0]),
                    result: AckResult::Rejected(RejectReason::Unavailable),
                },
            ]
        })
        .collect();
    junk.push(accepted(got[1]));
    answer(&mut link, &junk).await;
    got.push(
        next_frame(&mut link, "the frame a real ack allows")
            .await
            .expect("one frame per real ack"),
    );

    // The end of the count: an id-less ack. Whatever Alice wrote before
    // she read it comes first, then the stream ends.
    answer(
        &mut link,
        &[Ack {
            id: None,
            result: AckResult::Rejected(RejectReason::Malformed),
        }],
    )
    .await;
    let mut surplus = 0;
    while let Some(id) = next_frame(&mut link, "alice to close the link after an id-less ack").await
    {
        assert!(all.contains(&id), "a frame of alice's messages");
        surplus += 1;
    }
    assert_eq!(
        surplus,
        0,
        "junk acks let {surplus} frames out beyond the {} that {} real acks allow",
        WINDOW + 2,
        2
    );
    let distinct: HashSet<MessageId> = got.iter().copied().collect();
    assert!(distinct.len() == got.len() && distinct.is_subset(&all));
    s.driver.abort();
    s.alice.handle.shutdown().await.unwrap();
}

/// An ack without an id answers a frame we cannot name, so its slot could
/// never be freed: after a window of them Alice's link would stall for
/// good with its messages in flight. Instead the link closes, and the
/// messages it carried are sent again on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_without_an_id_closes_the_link_and_its_messages_are_sent_again() {
    let mut s = setup().await;
    let (sent, mut link) = send_n(&mut s, WINDOW + 1).await;
    let mut got = Vec::new();
    while got.len() < WINDOW {
        got.push(
            next_frame(&mut link, "a frame of the window")
                .await
                .expect("a frame of the window"),
        );
    }
    // What a peer that cannot decode our frames answers: TooLarge or
    // Malformed, without an id; the first message is answered for real.
    answer(
        &mut link,
        &[
            accepted(got[0]),
            Ack {
                id: None,
                result: AckResult::Rejected(RejectReason::TooLarge),
            },
            Ack {
                id: None,
                result: AckResult::Rejected(RejectReason::Malformed),
            },
        ],
    )
    .await;
    // The old link ends (after at most the frame the real ack allowed).
    let mut after = 0;
    while next_frame(&mut link, "alice to close the link after an id-less ack")
        .await
        .is_some()
    {
        after += 1;
    }
    assert!(after <= 1, "{after} frames after one real ack");
    // Alice comes back on a new link with every message still unanswered.
    let (from, mut again) = tokio::time::timeout(common::DEADLINE, s.incoming.next())
        .await
        .expect("alice opens a new link after the id-less ack")
        .unwrap();
    assert_eq!(from, s.alice.handle.peer_id());
    let mut resent = HashSet::new();
    while resent.len() < WINDOW {
        let id = next_frame(&mut again, "a resent frame")
            .await
            .expect("resent frames");
        assert_ne!(id, got[0], "the message answered is not sent again");
        resent.insert(id);
    }
    let expected: HashSet<MessageId> = sent[1..].iter().copied().collect();
    assert_eq!(resent, expected, "every unanswered message, once");
    // They are still alice's to deliver: answered on the new link, they end.
    let acks: Vec<Ack> = resent.iter().map(|id| accepted(*id)).collect();
    answer(&mut again, &acks).await;
    eventually("alice's outbox empties", || async {
        (s.alice.handle.outbox_len().await.unwrap() == 0).then_some(())
    })
    .await;
    s.driver.abort();
    s.alice.handle.shutdown().await.unwrap();
}

/// A peer that takes frames and never answers would hold Alice's messages
/// in flight for good: after [`ACK_TIMEOUT`] without an ack the link
/// closes, and the messages are sent again on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_acks_loses_the_link_and_its_messages_are_sent_again() {
    let mut s = setup().await;
    let (sent, mut link) = send_n(&mut s, 3).await;
    let mut got = HashSet::new();
    while got.len() < sent.len() {
        let id = next_frame(&mut link, "a frame").await.expect("a frame");
        got.insert(id);
    }
    // Silence. The old link ends, then a new one brings them again.
    let patience = ACK_TIMEOUT * 2 + common::DEADLINE;
    let ended = tokio::time::timeout(patience, message::read_frame(&mut link, MAX_FRAME))
        .await
        .expect("alice closes a link whose peer does not answer");
    assert!(!matches!(ended, Ok(ReadFrame::Frame(_))), "no more frames");
    let (_, mut again) = tokio::time::timeout(common::DEADLINE, s.incoming.next())
        .await
        .expect("alice opens a new link")
        .unwrap();
    let mut resent = HashSet::new();
    while resent.len() < sent.len() {
        let id = next_frame(&mut again, "a resent frame")
            .await
            .expect("resent");
        resent.insert(id);
    }
    assert_eq!(resent, got, "every unanswered message again");
    s.driver.abort();
    s.alice.handle.shutdown().await.unwrap();
}
