//! [files] Only the peer a file was offered to (or a buddy) may fetch it:
//! a stranger who learnt the root is refused on `/roost/files/1` and gets
//! no byte, while the recipient is served. Real nodes on 127.0.0.1, the
//! stranger speaking the protocol by hand.

mod common;

use common::{TestNode, init_tracing};
use futures::AsyncWriteExt;
use libp2p::StreamProtocol;
use roost::wire::files::{Answer, MAX_ANSWER, PROTOCOL, Refusal, Request};
use roost::wire::frame::{ReadFrame, read_frame, write_frame};

async fn ask(stream: &mut libp2p::Stream, req: &Request) -> Answer {
    write_frame(stream, &roost::wire::encode(req).unwrap())
        .await
        .unwrap();
    stream.flush().await.unwrap();
    match read_frame(stream, MAX_ANSWER).await.unwrap() {
        ReadFrame::Frame(f) => roost::wire::decode(&f, MAX_ANSWER).unwrap(),
        other => panic!("no answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_and_the_recipient_is_served() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    let mallory = TestNode::start(&[alice.addr().await]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.bin");
    std::fs::write(&path, vec![42u8; 100_000]).unwrap();
    let (_, t) = alice
        .handle
        .send_file(bob.handle.peer_id(), path)
        .await
        .unwrap();
    let proto = StreamProtocol::new(PROTOCOL);

    let mut s = mallory
        .handle
        .open_raw_stream(alice.handle.peer_id(), proto.clone())
        .await
        .unwrap();
    let have = ask(&mut s, &Request::Have { root: t.root }).await;
    assert_eq!(have, Answer::Refused(Refusal::NotAllowed));
    let get = Request::Get {
        root: t.root,
        ranges: vec![(0, 16)],
    };
    assert_eq!(
        ask(&mut s, &get).await,
        Answer::Refused(Refusal::NotAllowed)
    );
    let served = alice.handle.file(t.id).await.unwrap().served;
    assert_eq!(served, 0, "no byte went to the stranger");

    // The sentinel: the recipient, asking the same on the same protocol, is served.
    let mut s = bob
        .handle
        .open_raw_stream(alice.handle.peer_id(), proto)
        .await
        .unwrap();
    assert_eq!(
        ask(&mut s, &Request::Have { root: t.root }).await,
        Answer::Have(vec![(0, 98)])
    );
    assert_eq!(ask(&mut s, &get).await, Answer::Sending);
    common::eventually("Alice counts the bytes sent to Bob", || async {
        (alice.handle.file(t.id).await.unwrap().served > 16 * 1024).then_some(())
    })
    .await;
}
