//! [msg] Nothing `send` accepted is lost: the sender's daemon is killed
//! with SIGKILL right after `roost send` returns, restarted, and the message
//! is delivered exactly once.

mod common;

use std::path::Path;
use std::process::{Child, Output};

use common::{Daemon, TestNode, eventually, init_tracing, roost};
use roost::Identity;

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
    // Alice's daemon is alone, so no peer can hold a mailbox copy: only
    // her outbox keeps the message across the kill.
    let bob_identity = Identity::generate().unwrap();
    let bob = bob_identity.peer_id();
    let bob_id = bob.to_string();
    let mut alice_daemon = Daemon::start(None).await;
    let alice = alice_daemon.id;
    let sent = rows(&roost(
        alice_daemon.dir.path(),
        &["--json", "send", &bob_id, "wait for me"],
    ))
    .expect("send");
    alice_daemon.kill(); // SIGKILL
    let id = sent[0]["id"].as_str().unwrap().to_string();

    alice_daemon.restart().await;
    let log = rows(&roost(alice_daemon.dir.path(), &["--json", "log", &bob_id])).expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0]["id"].as_str(), log[0]["state"].as_str()),
        (Some(id.as_str()), Some("queued")),
        "after the restart the message is still only in Alice's outbox"
    );
    // Bob comes back, and finds Alice through her address.
    let bob_node = TestNode::start_as(&bob_identity, &[alice_daemon.addr().await]).await;
    let got = eventually("Bob gets it when he is back", || async {
        let conv = bob_node.handle.conversation(alice, 10).await.unwrap();
        (!conv.is_empty()).then_some(conv)
    })
    .await;
    assert_eq!((got.len(), got[0].id.to_string()), (1, id.clone()));
    assert_eq!(got[0].data, b"wait for me");
    eventually("Alice's log shows it delivered", || async {
        let log = rows(&roost(alice_daemon.dir.path(), &["--json", "log", &bob_id]))?;
        (log.len() == 1 && log[0]["state"] == "delivered").then_some(())
    })
    .await;
    assert_eq!(
        bob_node.handle.conversation(alice, 10).await.unwrap().len(),
        1
    );
    bob_node.handle.shutdown().await.unwrap();
}
