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
