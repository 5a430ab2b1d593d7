//! [files] The web app's uploads: kept in `<data-dir>/uploads/`, outside
//! the received files (a received file named `sent` cannot block them),
//! deleted when their offer is withdrawn or no offer names them at start,
//! held to the free-space margin, never sent to ourselves. Real nodes on
//! 127.0.0.1, the real API over TCP with the bearer token.

mod common;

use std::path::Path;

use common::api::{over_tcp, serve_local};
use common::{TestNode, eventually, init_tracing, start_with};

/// POSTs `body` to `/api/v1/{path}` over the daemon's TCP listener with
/// the bearer token of `api.json`: the status and the answer's body.
fn post(dir: &Path, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let (head, all) = over_tcp(dir, "POST", path, Some(body));
    let status = head[9..12].parse().unwrap();
    let mut rest = &all[..];
    // A chunked answer: the JSON is the first chunk.
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        rest = &rest[nl + 2..];
    }
    let json = serde_json::Deserializer::from_slice(rest)
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// A peer that may be sent to (an Ed25519 key, as every roost node has).
fn someone() -> libp2p::PeerId {
    libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
}

/// The upload folders of a data dir.
fn uploads(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("uploads"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_file_named_sent_does_not_block_uploads() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let _api = serve_local(&alice.handle, alice.dir.path()).await;
    let bob = someone();
    // A buddy's auto-accepted file lands in <data-dir>/files/<its name>.
    let theirs = alice.dir.path().join("files/sent");
    std::fs::write(&theirs, b"a buddy's file").unwrap();
    let (status, v) = post(
        alice.dir.path(),
        &format!("files/upload?to={bob}&name=a.txt"),
        b"hello",
    );
    assert_eq!(status, 200, "the upload failed: {v}");
    let up = uploads(alice.dir.path());
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(std::fs::read(up[0].join("a.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(&theirs).unwrap(), b"a buddy's file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_upload_is_deleted_and_one_no_offer_names_is_swept_at_start() {
    init_tracing();
    let mut alice = TestNode::start(&[]).await;
    let api = serve_local(&alice.handle, alice.dir.path()).await;
    let bob = someone();
    let dir = alice.dir.path().to_path_buf();
    let (status, v) = post(&dir, &format!("files/upload?to={bob}&name=gone.txt"), b"1");
    assert_eq!(status, 200, "{v}");
    let gone = uploads(&dir);
    assert_eq!(gone.len(), 1);
    let file = v["file"]["id"].as_str().unwrap().to_string();
    let (status, v) = post(&dir, &format!("files/{file}/cancel"), b"");
    assert_eq!(status, 200, "{v}");
    assert!(
        !gone[0].exists(),
        "the withdrawn offer's upload is still there"
    );
    // One kept (its offer stands), one no offer names (a crash's leftover).
    let (status, v) = post(&dir, &format!("files/upload?to={bob}&name=kept.txt"), b"2");
    assert_eq!(status, 200, "{v}");
    let kept = uploads(&dir);
    assert_eq!(kept.len(), 1);
    let orphan = dir.join("uploads/orphan");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("x.bin"), b"left behind").unwrap();
    drop(api);
    alice.restart(&[]).await;
    eventually("the orphan upload is swept", || {
        let gone = !orphan.exists();
        async move { gone.then_some(()) }
    })
    .await;
    assert_eq!(std::fs::read(kept[0].join("kept.txt")).unwrap(), b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_ourselves_or_past_the_free_margin_writes_nothing() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    roost::Identity::create_in(dir.path()).unwrap();
    let node = start_with(&dir, &[], |c| c.files.free_margin_bytes = u64::MAX / 2).await;
    let _api = serve_local(&node, dir.path()).await;
    let me = node.peer_id();
    let (status, v) = post(
        dir.path(),
        &format!("files/upload?to={me}&name=a.txt"),
        b"hello",
    );
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("ourselves"), "{v}");
    assert!(
        uploads(dir.path()).is_empty(),
        "a file to ourselves was written"
    );
    let bob = someone();
    let (status, v) = post(
        dir.path(),
        &format!("files/upload?to={bob}&name=a.txt"),
        b"hello",
    );
    assert_eq!(status, 507, "{v}");
    assert!(
        uploads(dir.path()).is_empty(),
        "a file past the margin was written"
    );
    assert!(node.files().await.unwrap().is_empty(), "it was offered");
}
