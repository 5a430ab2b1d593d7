//! [files] Two partial sources, each holding a different half of a file,
//! complete it together: Bob holds the first half verified, Carol the
//! second, and Dave, offered the file by both, downloads it from the two
//! and gets the exact bytes. Each source counts the bytes it served
//! (`served`), neither inferred. The origin (Alice) is gone before Dave
//! starts, so no one else could have served a byte. Real nodes on
//! 127.0.0.1.
//!
//! A partial source is set up the way a paused or crashed download leaves
//! one: Bob's and Carol's rows for the file (Alice's offers to them, not
//! taken) get a `<id>.part` at full size whose one half holds the true
//! bytes and the other zeros, next to the file's outboard (`<id>.obao`,
//! the same tree every holder of the root has). What verifies there is
//! what each serves. Their offers to Dave are written by hand, as a
//! member passing on a file it holds would. A second test has a download
//! in progress serve what it has verified.

mod common;

use common::{TestNode, eventually_within, init_tracing, random};
use roost::Content;
use roost::node::files::FileInfo;
use roost::store::{Transfer, TransferState};
use roost::wire::files::{OFFER_TYPE, Offer};
use roost::wire::message::MessageId;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

const MIB: usize = 1024 * 1024;
const LONG: Duration = Duration::from_secs(120);

/// Waits until `node` has filed transfer `id`.
async fn filed(node: &TestNode, id: MessageId) -> TransferState {
    eventually_within(LONG, "the offer is filed", || async {
        node.handle.file(id).await.ok().map(|f| f.transfer.state)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_partial_sources_holding_different_halves_complete_a_file() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let boot = [alice.addr().await];
    let bob = TestNode::start(&boot).await;
    let carol = TestNode::start(&boot).await;
    let dave = TestNode::start(&[bob.addr().await, carol.addr().await]).await;
    // Bob and Carol serve Dave as a buddy; Dave has not added them, so
    // their offers wait for his `get` (no download starts before both are
    // sources).
    for source in [&bob, &carol] {
        source
            .handle
            .add_buddy(dave.handle.peer_id(), "dave".into())
            .await
            .unwrap();
    }

    let size = 4 * MIB;
    let half = size / 2;
    let bytes = random::bytes(size, 7);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("halves.bin");
    std::fs::write(&src, &bytes).unwrap();

    let held = hold_halves(
        &alice,
        &[(&bob, 0..half), (&carol, half..size)],
        &src,
        &bytes,
    )
    .await;
    let root = held[0].root;
    alice.handle.shutdown().await.unwrap();

    // Both offer the file to Dave: one transfer with two sources.
    let file = MessageId::random();
    offer_by_hand(&[&bob, &carol], &dave, file, size as u64, root).await;
    eventually_within(LONG, "both offers merge at Dave", || async {
        let f = dave.handle.file(file).await.ok()?;
        (f.transfer.sources.len() == 2).then_some(())
    })
    .await;
    assert_eq!(filed(&dave, file).await, TransferState::Offered);

    let out = tmp.path().join("received.bin");
    dave.handle.get_file(file, Some(out.clone())).await.unwrap();
    let done = completes(&dave, file).await;
    assert!(done.transfer.dropped.is_empty(), "no source lied");
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), size);
    assert_eq!(blake3::hash(&got), blake3::hash(&bytes));
    assert!(got == bytes, "the bytes differ");

    let served_b = bob.handle.file(held[0].id).await.unwrap().served;
    let served_c = carol.handle.file(held[1].id).await.unwrap().served;
    assert!(served_b > 0, "Bob served his half");
    assert!(served_c > 0, "Carol served her half");
    assert!(
        served_b + served_c >= size as u64,
        "together they served the whole file: {served_b} + {served_c}"
    );
}

/// A download in progress is a source too, of what it has verified so
/// far (the list the download keeps). Bob downloads a file from Carol, who
/// holds only its first half: his download verifies that half and waits
/// for a source of the rest. Offered the file by Bob alone, Dave gets that
/// half from him while Bob's download is still waiting. Then Alice offers
/// Bob the file: his download completes, and Dave's with it, from Bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_in_progress_serves_what_it_has_verified() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let boot = [alice.addr().await];
    let carol = TestNode::start(&boot).await;
    let bob = TestNode::start(&boot).await;
    let dave = TestNode::start(&[bob.addr().await]).await;
    // Carol serves Bob, and Bob serves Dave, as buddies.
    for (source, to, name) in [(&carol, &bob, "bob"), (&bob, &dave, "dave")] {
        source
            .handle
            .add_buddy(to.handle.peer_id(), name.into())
            .await
            .unwrap();
    }
    let size = 4 * MIB;
    let half = size / 2;
    let bytes = random::bytes(size, 9);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("halves.bin");
    std::fs::write(&src, &bytes).unwrap();
    let root = hold_halves(&alice, &[(&carol, 0..half)], &src, &bytes).await[0].root;

    let at_bob = MessageId::random();
    offer_by_hand(&[&carol], &bob, at_bob, size as u64, root).await;
    assert_eq!(filed(&bob, at_bob).await, TransferState::Offered);
    bob.handle.get_file(at_bob, None).await.unwrap();
    eventually_within(LONG, "Bob verified Carol's half", || async {
        let f = bob.handle.file(at_bob).await.ok()?;
        (f.done >= half as u64).then_some(())
    })
    .await;

    let at_dave = MessageId::random();
    offer_by_hand(&[&bob], &dave, at_dave, size as u64, root).await;
    assert_eq!(filed(&dave, at_dave).await, TransferState::Offered);
    let out = tmp.path().join("received.bin");
    dave.handle
        .get_file(at_dave, Some(out.clone()))
        .await
        .unwrap();
    eventually_within(LONG, "Dave has the half Bob verified", || async {
        let f = dave.handle.file(at_dave).await.ok()?;
        (f.done >= half as u64).then_some(())
    })
    .await;
    let b = bob.handle.file(at_bob).await.unwrap();
    assert_ne!(
        b.transfer.state,
        TransferState::Complete,
        "Bob's download ended"
    );
    assert!(b.done < size as u64, "Bob has the whole file: {}", b.done);

    alice
        .handle
        .send_file(bob.handle.peer_id(), src.clone())
        .await
        .unwrap();
    completes(&bob, at_bob).await;
    let done = completes(&dave, at_dave).await;
    assert_eq!(done.transfer.sources.len(), 1, "Bob is Dave's only source");
    let got = std::fs::read(&out).unwrap();
    assert!(got == bytes, "the bytes differ");
    let served = bob.handle.file(at_bob).await.unwrap().served;
    assert!(served >= size as u64, "Bob served the whole file: {served}");
}

/// Alice offers `src` (holding `bytes`) to each node, which files it as
/// `offered` (a stranger's offer); each is then made a partial source the
/// way a paused download leaves one: Alice's outboard copied beside a
/// `<id>.part` at full size holding only its range of the true bytes.
/// The transfers, in the order of `holders`.
async fn hold_halves(
    alice: &TestNode,
    holders: &[(&TestNode, Range<usize>)],
    src: &Path,
    bytes: &[u8],
) -> Vec<Transfer> {
    let mut held = Vec::new();
    for (node, keep) in holders.iter().cloned() {
        let (_, t) = alice
            .handle
            .send_file(node.handle.peer_id(), src.to_path_buf())
            .await
            .unwrap();
        assert_eq!(filed(node, t.id).await, TransferState::Offered);
        let files = node.dir.path().join("files");
        let obao = alice.dir.path().join(format!("files/{}.obao", t.id));
        std::fs::copy(obao, files.join(format!("{}.obao", t.id))).unwrap();
        let mut part = vec![0u8; bytes.len()];
        part[keep.clone()].copy_from_slice(&bytes[keep]);
        std::fs::write(files.join(format!("{}.part", t.id)), part).unwrap();
        held.push(t);
    }
    held
}

/// Each of `sources` sends `to` an offer of `file` (`halves.bin`, `size`
/// bytes, `root`) written by hand, as a member passing on a file it holds
/// would.
async fn offer_by_hand(
    sources: &[&TestNode],
    to: &TestNode,
    file: MessageId,
    size: u64,
    root: [u8; 32],
) {
    for source in sources {
        let offer = Offer {
            file,
            name: "halves.bin".into(),
            size,
            mime: "application/octet-stream".into(),
            root,
        };
        let content = Content {
            content_type: OFFER_TYPE.into(),
            subject: None,
            data: offer.encode().unwrap(),
        };
        source
            .handle
            .send(to.handle.peer_id(), content)
            .await
            .unwrap();
    }
}

/// Waits until `node`'s download of `file` is complete (failing at once
/// if it failed): its row then.
async fn completes(node: &TestNode, file: MessageId) -> FileInfo {
    eventually_within(LONG, "the file completes", || async {
        let f = node.handle.file(file).await.ok()?;
        assert_ne!(
            f.transfer.state,
            TransferState::Failed,
            "{:?}",
            f.transfer.error
        );
        (f.transfer.state == TransferState::Complete).then_some(f)
    })
    .await
}
