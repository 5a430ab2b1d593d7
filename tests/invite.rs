//! [reach] Invites: two people who share nothing but one invite become
//! buddies and talk; a daemon joins the network through an invite given
//! as `--bootstrap`; an expired, forged or damaged invite adds no one.
//! Real `roost` daemons and real nodes on 127.0.0.1, no mDNS, no shared
//! bootstrap peer.

mod common;

use std::process::Output;
use std::time::Duration;

use common::cli::{Running, json, stderr};
use common::nat::presence_of;
use common::{Daemon, TestNode, eventually, roost, spawn_daemon};
use data_encoding::BASE32_NOPAD;
use libp2p::{Multiaddr, PeerId};
use roost::Identity;
use roost::api::client::ApiClient;
use roost::api::{AddBuddy, BuddyRow};
use roost::clock::unix_ms;
use roost::wire::invite::{self, URI_PREFIX};
use serde_json::Value;

/// A failed command's one line of stderr.
fn refusal(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "not refused: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
    assert!(out.stdout.is_empty());
    let err = stderr(out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

/// Whether `d`'s `roost presence` shows `of` as `status`.
fn shows(d: &Daemon, of: &Daemon, status: &str) -> bool {
    presence_of(d, of).is_some_and(|r| r["status"] == status)
}

/// Whether `d`'s inbox holds `text`.
fn in_inbox(d: &Daemon, text: &str) -> bool {
    d.rows(&["inbox"]).iter().any(|m| m["text"] == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invite_is_all_two_strangers_need() {
    // Neither knows a bootstrap peer, neither looks on the LAN.
    let alice = Daemon::start(None).await;
    let bob = Daemon::start(None).await;
    assert_eq!(bob.status().await["peers"], 0, "Bob's node knows no one");

    let inv = json(&roost(alice.dir.path(), &["--json", "invite"]));
    let uri = inv["uri"].as_str().expect("the invite's text");
    assert_eq!(inv["id"], alice.id.to_string());
    let row = json(&roost(
        bob.dir.path(),
        &["--json", "buddy", "add", uri, "--name", "alice"],
    ));
    assert_eq!((&row["id"], &row["name"]), (&inv["id"], &"alice".into()));

    // Bob's buddy request reaches Alice, who accepts it with the ID it
    // names: she needed nothing from him beforehand.
    let bob_id = bob.id.to_string();
    eventually("Alice gets Bob's buddy request", || async {
        alice
            .rows(&["buddy", "requests"])
            .iter()
            .any(|r| r["id"] == bob_id)
            .then_some(())
    })
    .await;
    json(&roost(
        alice.dir.path(),
        &["--json", "buddy", "add", &bob_id, "--name", "bob"],
    ));
    eventually("each sees the other online", || async {
        (shows(&alice, &bob, "online") && shows(&bob, &alice, "online")).then_some(())
    })
    .await;

    json(&roost(
        bob.dir.path(),
        &["--json", "send", "alice", "hi Alice"],
    ));
    eventually("Bob's message is in Alice's inbox", || async {
        in_inbox(&alice, "hi Alice").then_some(())
    })
    .await;
    json(&roost(
        alice.dir.path(),
        &["--json", "send", "bob", "hi Bob"],
    ));
    eventually("Alice's answer is in Bob's inbox", || async {
        in_inbox(&bob, "hi Bob").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_given_an_invite_as_bootstrap_joins_the_network_through_it() {
    // Alice and Carol form a network; the new daemon is told only Alice's
    // invite, and reaches Carol, whom it can only find through the DHT.
    let alice = TestNode::start(&[]).await;
    let carol = TestNode::start(&[alice.addr().await]).await;
    let carol_id = carol.handle.peer_id();
    eventually("Carol's locator is in the DHT", || async {
        alice.handle.find(carol_id).await.expect("node running")
    })
    .await;
    let (uri, _) = alice
        .handle
        .invite(Duration::from_secs(3600))
        .await
        .expect("an invite");

    let dir = tempfile::tempdir().unwrap();
    let me: PeerId = json(&roost(dir.path(), &["--json", "init"]))["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("init prints the ID");
    let _daemon = Running(spawn_daemon(dir.path(), Some(&uri)));
    eventually("the daemon connects to a peer", || async {
        let out = roost(dir.path(), &["--json", "status"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["peers"].as_u64()? > 0).then_some(())
    })
    .await;
    let text = "found you through the DHT";
    json(&roost(
        dir.path(),
        &["--json", "send", &carol_id.to_string(), text],
    ));
    eventually("the message reaches Carol", || async {
        let conv = carol.handle.conversation(me, 10).await.expect("running");
        conv.iter().any(|m| m.data == text.as_bytes()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_given_an_expired_invite_as_bootstrap_says_so_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    json(&roost(dir.path(), &["--json", "init"]));
    let owner = Identity::generate().unwrap();
    let at: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().unwrap();
    let expired = invite::create(&owner, &[at], unix_ms() - 1).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--bootstrap", &expired])
        .env_remove("ROOST_HOME")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed if it does not stop on its own.
    let daemon = std::sync::Mutex::new(Running(child));
    let code = eventually("the daemon stops", || async {
        daemon.lock().unwrap().0.try_wait().unwrap()
    })
    .await;
    assert_eq!(code.code(), Some(1));
    let mut err = String::new();
    let pipe = daemon.lock().unwrap().0.stderr.take();
    std::io::Read::read_to_string(&mut pipe.unwrap(), &mut err).unwrap();
    assert!(err.contains("roost: this invite expired on "), "{err}");
    assert!(!dir.path().join("api.sock").exists(), "no API was served");
}

/// `invite` with one address changed: the port of `/ip4/127.0.0.1/tcp/<port>`
/// (its bytes in the signed body) moved by one.
fn with_port_moved(uri: &str, port: u16) -> String {
    let mut bytes = BASE32_NOPAD
        .decode(uri.strip_prefix(URI_PREFIX).unwrap().as_bytes())
        .unwrap();
    let mut needle = vec![0x04, 127, 0, 0, 1, 0x06];
    needle.extend(port.to_be_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the address is in the invite");
    let moved = port.wrapping_add(1).to_be_bytes();
    bytes[at + 6..at + 8].copy_from_slice(&moved);
    format!("{URI_PREFIX}{}", BASE32_NOPAD.encode(&bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_and_damaged_invites_add_no_one() {
    let bob = Daemon::start(None).await;
    // The owner runs a node at the invites' address: an invite wrongly
    // taken would reach it.
    let owner = Identity::generate().unwrap();
    let node = TestNode::start_as(&owner, &[]).await;
    let addrs: Vec<Multiaddr> = node.handle.listen_addrs().await.unwrap();
    let port = match addrs[0].iter().nth(1) {
        Some(libp2p::multiaddr::Protocol::Tcp(p)) => p,
        other => panic!("not a TCP address: {other:?}"),
    };
    let now = unix_ms();
    let expired = invite::create(&owner, &addrs, now - 60_000).unwrap();
    let good = invite::create(&owner, &addrs, now + 3_600_000).unwrap();
    let forged = with_port_moved(&good, port);
    let bob_dir = bob.dir.path();

    let err = refusal(&roost(bob_dir, &["buddy", "add", &expired]));
    assert!(err.contains("this invite expired on "), "{err}");
    let err = refusal(&roost(bob_dir, &["buddy", "add", &forged]));
    assert!(err.contains("signature does not match the ID"), "{err}");
    let err = refusal(&roost(bob_dir, &["buddy", "add", "roost:HELLO"]));
    assert!(err.contains("damaged or incomplete"), "{err}");
    let err = refusal(&roost(bob_dir, &["buddy", "add", "https://example.com/x"]));
    assert!(err.contains("not a roost invite"), "{err}");

    let list = bob.rows(&["buddy", "list"]);
    assert!(list.is_empty(), "no buddy was added: {list:?}");
    let bob_id = bob.id;
    assert!(
        !node
            .handle
            .connected_peers()
            .await
            .unwrap()
            .contains(&bob_id),
        "Bob's node never dialled the owner"
    );

    // The same owner's valid invite goes through: the refusals were the
    // invites', not the daemon's.
    let row = json(&roost(bob_dir, &["--json", "buddy", "add", &good]));
    assert_eq!(row["id"], owner.peer_id().to_string());
    eventually("Bob's node reaches the owner", || async {
        let peers = node.handle.connected_peers().await.unwrap();
        peers.contains(&bob_id).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roost_invite_prints_the_link_its_qr_code_and_what_it_says() {
    let d = Daemon::start(None).await;
    let before = unix_ms();
    let v = json(&roost(
        d.dir.path(),
        &["--json", "invite", "--expires", "2h"],
    ));
    let after = unix_ms();
    let uri = v["uri"].as_str().unwrap();
    let parsed = invite::parse(uri, after).expect("a valid invite");
    assert_eq!(v["id"], d.id.to_string());
    assert_eq!(parsed.peer, d.id);
    let expires_at = v["expires_at"].as_u64().unwrap();
    assert_eq!(parsed.expires_at, expires_at);
    let two_hours = 2 * 3_600_000;
    assert!((before + two_hours..=after + two_hours).contains(&expires_at));
    assert_eq!(v["expires"], roost::clock::format_utc(expires_at));
    // The addresses are where the daemon listens (without its ID).
    let listening: Vec<String> = d.status().await["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a: Multiaddr = a.as_str().unwrap().parse().unwrap();
            a.pop();
            a.to_string()
        })
        .collect();
    let carried: Vec<String> = parsed.addrs.iter().map(|a| a.to_string()).collect();
    assert_eq!(carried, listening);
    assert_eq!(v["addrs"], serde_json::json!(carried));

    let human = roost(d.dir.path(), &["invite"]);
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with(URI_PREFIX)), "{text}");
    assert!(text.contains('█'), "a QR code: {text}");
    let bare = roost(d.dir.path(), &["invite", "--no-qr"]);
    let text = String::from_utf8(bare.stdout).unwrap();
    assert!(
        text.starts_with(URI_PREFIX) && !text.contains('█'),
        "{text}"
    );

    let err = refusal(&roost(d.dir.path(), &["invite", "--expires", "91d"]));
    assert!(err.contains("from 1 minute to 90 days"), "{err}");
    let err = refusal(&roost(d.dir.path(), &["invite", "--expires", "7"]));
    assert!(err.contains("not a duration"), "{err}");

    // One's own invite is no way to add oneself.
    let own = refusal(&roost(d.dir.path(), &["buddy", "add", uri]));
    assert!(own.contains("yourself"), "{own}");

    // Through the API, an ID and an invite at once are refused, and add
    // neither.
    let other = Identity::generate().unwrap();
    let theirs = invite::create(&other, &[], unix_ms() + 3_600_000).unwrap();
    let api = ApiClient::open(d.dir.path()).unwrap();
    let both = AddBuddy {
        id: Some(Identity::generate().unwrap().peer_id().to_string()),
        name: None,
        invite: Some(theirs),
    };
    let err = api.post::<BuddyRow>("buddies", &both).await.unwrap_err();
    assert!(err.to_string().contains("exactly one"), "{err}");
    let list: Vec<BuddyRow> = api.get("buddies").await.unwrap();
    assert!(list.is_empty(), "{list:?}");
}
