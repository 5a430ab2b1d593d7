//! [files] The API's event stream (`GET /api/v1/events`) reports a
//! download's progress as `file_progress` events: its state changes
//! (offered, waiting/downloading, complete) and, while bytes arrive,
//! rising `done` figures, at most one per 250 ms. Real nodes on 127.0.0.1,
//! the real API on its socket; the sender paces its pieces with the
//! `test-util` serving delay so the download lasts long enough to report.

mod common;

use common::{TestNode, init_tracing};
use roost::api::client::ApiClient;
use roost::api::{EventView, serve};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_reports_its_progress_on_the_event_stream() {
    init_tracing();
    let alice = TestNode::start(&[]).await;
    let bob = TestNode::start(&[alice.addr().await]).await;
    let _api = serve(
        bob.handle.clone(),
        "127.0.0.1:0".parse().unwrap(),
        bob.dir.path(),
    )
    .await
    .unwrap();
    let client = ApiClient::open(bob.dir.path()).unwrap();
    let mut events = client.events(None).await.unwrap();

    let size: u64 = 6 * 1024 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("paced.bin");
    std::fs::write(&src, vec![3u8; size as usize]).unwrap();
    // 100 ms before each 1 MiB piece: six pieces, each a step.
    std::fs::write(alice.dir.path().join("files/.test-serve-delay-ms"), "100").unwrap();
    let (_, t) = alice
        .handle
        .send_file(bob.handle.peer_id(), src)
        .await
        .unwrap();
    let id = t.id.to_string();

    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut asked = false;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .expect("an event")
            .unwrap()
            .expect("the stream stays open");
        let EventView::FileProgress {
            id: of,
            done,
            size: s,
            state,
        } = ev
        else {
            continue;
        };
        assert_eq!(of, id, "only this transfer moves");
        assert_eq!(s, size);
        seen.push((done, state.clone()));
        if state == "offered" && !asked {
            asked = true;
            bob.handle.get_file(t.id, None).await.unwrap();
        }
        assert_ne!(state, "failed", "{seen:?}");
        if state == "complete" {
            assert_eq!(done, size);
            break;
        }
    }
    assert_eq!(
        seen[0],
        (0, "offered".to_string()),
        "the offer is the first event: {seen:?}"
    );
    let partial: Vec<u64> = seen
        .iter()
        .filter(|(d, s)| s == "downloading" && *d > 0 && *d < size)
        .map(|(d, _)| *d)
        .collect();
    assert!(
        !partial.is_empty(),
        "events while the bytes arrive, before the end: {seen:?}"
    );
    assert!(
        partial.windows(2).all(|w| w[0] <= w[1]),
        "done only rises: {seen:?}"
    );
}

/// `roost files get ID --wait --json` follows the download on the event
/// stream: JSON lines with rising `done`, ending at `complete` with the
/// whole size, and the command returns once the file is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_get_wait_follows_the_download_to_its_end() {
    init_tracing();
    let hub = common::Daemon::start(None).await;
    let alice = common::Daemon::start(Some(&hub.addr().await)).await;
    let bob = common::Daemon::start(Some(&hub.addr().await)).await;
    alice.befriend("alice", &bob, "bob");
    let size: u64 = 6 * 1024 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("waited.bin");
    std::fs::write(&src, vec![5u8; size as usize]).unwrap();
    // 300 ms before each 1 MiB piece: about two seconds to follow.
    std::fs::write(alice.dir.path().join("files/.test-serve-delay-ms"), "300").unwrap();
    let sent = alice.rows(&["send", "bob", "--file", src.to_str().unwrap()]);
    let id = sent[0]["file"]["id"].as_str().unwrap().to_string();
    common::eventually("Bob files the offer", || async {
        let rows = bob.rows(&["files"]);
        rows.iter().any(|r| r["id"] == id.as_str()).then_some(())
    })
    .await;

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(bob.dir.path())
        .args(["--json", "files", "get", &id, "--wait"])
        .env_remove("ROOST_HOME")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A `--wait` that misses the end would never return: give up on it.
    let ended = common::poll_within(Duration::from_secs(120), || {
        let r = child.try_wait().unwrap();
        async move { r }
    })
    .await;
    if ended.is_none() {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        ended.is_some(),
        "`files get --wait` did not return: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("done").is_some())
        .collect();
    let last = lines.last().expect("progress lines");
    assert_eq!(last["state"], "complete", "{lines:?}");
    assert_eq!(last["done"], size);
    let done: Vec<u64> = lines.iter().map(|l| l["done"].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert!(
        done[0] < size,
        "the command followed the download, not only its end: {lines:?}"
    );
}
