//! [msg] Nothing `send` accepted is lost: the sender's daemon is killed
//! with SIGKILL right after `roost send` returns, restarted, and the message
//! is delivered exactly once.

mod common;

use std::path::Path;
use std::process::{Child, Output};

use common::{TestNode, eventually, init_tracing, roost};

/// Parses stdout as JSON rows if the command succeeded.
fn rows(out: &Output) -> Option<Vec<serde_json::Value>> {
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn daemon(dir: &Path, bootstrap: &str) -> Child {
    common::spawn_daemon(dir, Some(bootstrap))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_survives_sigkill_right_after_send_and_arrives_once() {
    init_tracing();
    let bob = TestNode::start(&[]).await;
    let bob_id = bob.handle.peer_id().to_string();
    let boot = bob.addr().await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let init = rows(&roost(dir.path(), &["--json", "init"])).expect("init");
    let alice: libp2p::PeerId = init[0]["id"].as_str().unwrap().parse().unwrap();

    let mut first = daemon(dir.path(), &boot);
    eventually("the daemon answers", || async {
        rows(&roost(dir.path(), &["--json", "status"]))
    })
    .await;
    let sent = rows(&roost(
        dir.path(),
        &["--json", "send", &bob_id, "survive the crash"],
    ))
    .expect("send");
    first.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
    first.wait().unwrap();
    let id = sent[0]["id"].as_str().unwrap().to_string();
    assert_eq!(sent[0]["state"], "queued");

    let mut second = daemon(dir.path(), &boot);
    let got = eventually("Bob has the message", || async {
        let conv = bob.handle.conversation(alice, 10).await.unwrap();
        (!conv.is_empty()).then_some(conv)
    })
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id.to_string(), id);
    assert_eq!(got[0].data, b"survive the crash");
    eventually("Alice's log shows it delivered", || async {
        let log = rows(&roost(dir.path(), &["--json", "log", &bob_id]))?;
        (log.len() == 1 && log[0]["state"] == "delivered" && log[0]["id"] == id.as_str())
            .then_some(())
    })
    .await;
    // Still exactly once after everything settled.
    assert_eq!(bob.handle.conversation(alice, 10).await.unwrap().len(), 1);
    second.kill().unwrap();
    second.wait().unwrap();
    bob.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_offline_peer_survives_sigkill_and_arrives_when_it_returns() {
    init_tracing();
    let seed = TestNode::start(&[]).await;
    let boot = seed.addr().await;
    let mut bob = TestNode::start(std::slice::from_ref(&boot)).await;
    let bob_id = bob.handle.peer_id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let init = rows(&roost(dir.path(), &["--json", "init"])).expect("init");
    let alice: libp2p::PeerId = init[0]["id"].as_str().unwrap().parse().unwrap();
    bob.handle.shutdown().await.unwrap();

    let mut first = daemon(dir.path(), &boot.to_string());
    eventually("the daemon answers", || async {
        rows(&roost(dir.path(), &["--json", "status"]))
    })
    .await;
    let sent = rows(&roost(
        dir.path(),
        &["--json", "send", &bob_id, "wait for me"],
    ))
    .expect("send");
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let id = sent[0]["id"].as_str().unwrap().to_string();

    let mut second = daemon(dir.path(), &boot.to_string());
    // Still pending after the restart: queued, or already `stored` in
    // Bob's mailbox at the seed node (the only other peer).
    eventually("the restarted daemon still has it pending", || async {
        let log = rows(&roost(dir.path(), &["--json", "log", &bob_id]))?;
        let state = log.first()?["state"].as_str()?.to_string();
        (log.len() == 1 && (state == "queued" || state == "stored")).then_some(())
    })
    .await;
    bob.restart(&[boot]).await;
    let got = eventually("Bob gets it when he is back", || async {
        let conv = bob.handle.conversation(alice, 10).await.unwrap();
        (!conv.is_empty()).then_some(conv)
    })
    .await;
    assert_eq!((got.len(), got[0].id.to_string()), (1, id.clone()));
    eventually("Alice's log shows it delivered", || async {
        let log = rows(&roost(dir.path(), &["--json", "log", &bob_id]))?;
        (log.len() == 1 && log[0]["state"] == "delivered").then_some(())
    })
    .await;
    assert_eq!(bob.handle.conversation(alice, 10).await.unwrap().len(), 1);
    second.kill().unwrap();
    second.wait().unwrap();
    bob.handle.shutdown().await.unwrap();
    seed.handle.shutdown().await.unwrap();
}
