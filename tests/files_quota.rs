//! [files] A receiver refuses an offer that would pass its quota on
//! incoming files (`[files] quota_mib`): the row is `failed` with an error
//! naming the limit and no byte of it is fetched, while a later offer
//! inside the quota completes (the sentinel). Real nodes on 127.0.0.1.

mod common;

use common::{TestNode, eventually, init_tracing};
use roost::store::TransferState;
use roost::wire::message::MessageId;

async fn state(node: &TestNode, id: MessageId) -> Option<(TransferState, Option<String>)> {
    let f = node.handle.file(id).await.ok()?;
    Some((f.transfer.state, f.transfer.error))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_past_the_quota_is_refused_and_one_inside_completes() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    roost::Identity::create_in(dir.path()).unwrap();
    let handle = common::start_with(&dir, &[alice.addr().await], |c| {
        c.files.quota_bytes = 1024 * 1024;
    })
    .await;
    let bob = TestNode { dir, handle };
    alice
        .handle
        .add_buddy(bob.handle.peer_id(), "bob".into())
        .await
        .unwrap();
    bob.handle
        .add_buddy(alice.handle.peer_id(), "alice".into())
        .await
        .unwrap();

    let files = tempfile::tempdir().unwrap();
    let big = files.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 2 * 1024 * 1024]).unwrap();
    let (_, t_big) = alice
        .handle
        .send_file(bob.handle.peer_id(), big)
        .await
        .unwrap();
    let (st, error) = eventually("Bob files the big offer", || async {
        state(&bob, t_big.id).await
    })
    .await;
    assert_eq!(st, TransferState::Failed, "refused past the quota");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("quota_mib = 1"),
        "the error names the limit: {error}"
    );

    // The sentinel: a file inside the quota, offered after, completes.
    let small = files.path().join("small.bin");
    std::fs::write(&small, vec![9u8; 300_000]).unwrap();
    let (_, t_small) = alice
        .handle
        .send_file(bob.handle.peer_id(), small)
        .await
        .unwrap();
    eventually("the small file completes", || async {
        (state(&bob, t_small.id).await?.0 == TransferState::Complete).then_some(())
    })
    .await;

    // Nothing of the refused file was fetched or kept.
    assert_eq!(alice.handle.file(t_big.id).await.unwrap().served, 0);
    let part = bob.dir.path().join(format!("files/{}.part", t_big.id));
    assert!(!part.exists(), "no partial file for the refused offer");
    assert_eq!(
        bob.handle.file(t_big.id).await.unwrap().transfer.state,
        TransferState::Failed
    );

    // Asking for it explicitly is refused the same way.
    let f = bob.handle.get_file(t_big.id, None).await.unwrap();
    assert_eq!(f.transfer.state, TransferState::Failed);
    assert!(f.transfer.error.unwrap_or_default().contains("quota_mib"));
}

/// A receiver whose `[files] free_margin_mib` is more than its disk has
/// free refuses a buddy's offer, and `files get` of it too, fetching
/// nothing; a second receiver with the default margin takes a file of
/// the same size to the end (the sentinel: such an offer goes through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_that_would_eat_into_the_free_space_margin_is_refused() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    roost::Identity::create_in(dir.path()).unwrap();
    let handle = common::start_with(&dir, &[alice.addr().await], |c| {
        // More room than any test machine's disk has free.
        c.files.free_margin_bytes = 1 << 60;
    })
    .await;
    let bob = TestNode { dir, handle };
    let carol = TestNode::start(&[alice.addr().await]).await;
    for (r, name) in [(&bob, "bob"), (&carol, "carol")] {
        alice
            .handle
            .add_buddy(r.handle.peer_id(), name.into())
            .await
            .unwrap();
        r.handle
            .add_buddy(alice.handle.peer_id(), "alice".into())
            .await
            .unwrap();
    }
    let files = tempfile::tempdir().unwrap();
    // Above `inline_kib`, so it comes only over the stream when accepted.
    let src = files.path().join("two.bin");
    std::fs::write(&src, vec![5u8; 2 * 1024 * 1024]).unwrap();
    let (_, to_bob) = alice
        .handle
        .send_file(bob.handle.peer_id(), src)
        .await
        .unwrap();
    let (st, error) = eventually("Bob files the offer", || async {
        state(&bob, to_bob.id).await
    })
    .await;
    assert_eq!(st, TransferState::Failed, "refused for the margin");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("free_margin_mib"),
        "names the limit: {error}"
    );

    // Other bytes, so what Alice serves for Bob's file is counted apart.
    let other = files.path().join("other.bin");
    std::fs::write(&other, vec![6u8; 2 * 1024 * 1024]).unwrap();
    let (_, to_carol) = alice
        .handle
        .send_file(carol.handle.peer_id(), other)
        .await
        .unwrap();
    eventually("Carol's copy completes", || async {
        (state(&carol, to_carol.id).await?.0 == TransferState::Complete).then_some(())
    })
    .await;

    let f = bob.handle.get_file(to_bob.id, None).await.unwrap();
    assert_eq!(f.transfer.state, TransferState::Failed);
    assert!(
        f.transfer
            .error
            .unwrap_or_default()
            .contains("free_margin_mib")
    );
    assert_eq!(
        alice.handle.file(to_bob.id).await.unwrap().served,
        0,
        "nothing served to Bob"
    );
    let part = bob.dir.path().join(format!("files/{}.part", to_bob.id));
    assert!(!part.exists(), "no partial file for the refused offer");
}
