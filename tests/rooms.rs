//! Public rooms between real nodes on 127.0.0.1 (mDNS off): joined by
//! name through the DHT, messages over gossipsub, the owner's bans and
//! the per-sender rate enforced by every member, history for a late
//! joiner, and room records a DHT node refuses.

mod common;

use common::{TestNode, eventually, start_with};
use libp2p::Multiaddr;
use roost::NodeHandle;
use roost::node::NodeError;
use roost::node::rooms::{RoomFailure, RoomLimits};
use roost::wire::room::{self, MAX_HISTORY, RoomId};

/// A node bootstrapped from `boot` with the given room limits.
async fn start_limited(boot: &[Multiaddr], limits: RoomLimits) -> TestNode {
    let dir = tempfile::tempdir().expect("temp dir");
    roost::Identity::create_in(dir.path()).expect("identity");
    let handle = start_with(&dir, boot, |c| c.room_limits = limits).await;
    TestNode { dir, handle }
}

/// Joins `name` on `node`, retrying while the DHT does not answer yet.
async fn join(node: &NodeHandle, name: &str) {
    eventually(&format!("{} joins {name}", node.peer_id()), || async {
        node.room_join(name).await.ok()
    })
    .await;
}

async fn texts(node: &NodeHandle, room: &str) -> Vec<String> {
    node.room_log(room, 10_000)
        .await
        .expect("log")
        .into_iter()
        .map(|e| e.text)
        .collect()
}

/// Waits until `node`'s log of `room` holds `text`.
async fn shows(node: &NodeHandle, room: &str, text: &str) {
    eventually(&format!("{} shows {text:?}", node.peer_id()), || async {
        texts(node, room)
            .await
            .iter()
            .any(|t| t == text)
            .then_some(())
    })
    .await;
}

/// Waits until `node` sees `n` other members subscribed to `room`.
async fn sees_members(node: &NodeHandle, room: &str, n: usize) {
    eventually(&format!("{} sees {n} members", node.peer_id()), || async {
        let m = node.room_members(room).await.ok()?;
        (m.len() > n).then_some(())
    })
    .await;
}

/// A owns `lobby`; B and C, who know only A (as their DHT bootstrap), join
/// it by name.
async fn three_in_a_room(c_limits: RoomLimits) -> (TestNode, TestNode, TestNode) {
    let a = TestNode::start(&[]).await;
    let boot = vec![a.addr().await];
    let b = TestNode::start(&boot).await;
    let c = start_limited(&boot, c_limits).await;
    let (id, name) = a.handle.room_create("Lobby").await.expect("create");
    assert_eq!(name, "lobby");
    assert_eq!(id, RoomId::of_name("lobby").unwrap());
    join(&b.handle, "LOBBY").await;
    join(&c.handle, "lobby").await;
    for n in [&a, &b, &c] {
        sees_members(&n.handle, "lobby", 2).await;
    }
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_room_is_joined_by_name_and_messages_reach_every_member() {
    common::init_tracing();
    let (a, b, c) = three_in_a_room(RoomLimits::default()).await;
    for (n, text) in [(&a, "from a"), (&b, "from b"), (&c, "from c")] {
        let (_, sent) = n.handle.room_send("lobby", text).await.expect("send");
        assert_eq!(sent.as_str(), "sent");
    }
    for n in [&a, &b, &c] {
        for text in ["from a", "from b", "from c"] {
            shows(&n.handle, "lobby", text).await;
        }
    }
    // Each message once, however many paths brought it.
    for n in [&a, &b, &c] {
        assert_eq!(texts(&n.handle, "lobby").await.len(), 3);
    }
    let members = b.handle.room_members("lobby").await.unwrap();
    let owner: Vec<_> = members.iter().filter(|m| m.owner).map(|m| m.id).collect();
    assert_eq!(owner, vec![a.handle.peer_id()]);
    // Every member announces itself in the DHT: a joiner finds them there.
    let key = RoomId::of_name("lobby").unwrap().record_key();
    let d = TestNode::start(&[a.addr().await]).await;
    eventually(
        "the DHT lists A, B and C as the room's providers",
        || async {
            let found = d.handle.net().providers(key.clone()).await.ok()?;
            [&a, &b, &c]
                .iter()
                .all(|n| found.contains(&n.handle.peer_id()))
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_key_is_dropped_by_every_member() {
    common::init_tracing();
    let (a, b, c) = three_in_a_room(RoomLimits::default()).await;
    // Before the ban, C is heard by everyone.
    c.handle.room_send("lobby", "c before").await.unwrap();
    shows(&a.handle, "lobby", "c before").await;
    shows(&b.handle, "lobby", "c before").await;

    let banned = c.handle.peer_id();
    a.handle.room_ban("lobby", banned, true).await.expect("ban");
    eventually("B learns of the ban", || async {
        b.handle
            .room_bans("lobby")
            .ok()?
            .contains(&banned)
            .then_some(())
    })
    .await;
    let dropped = (a.handle.room_dropped(), b.handle.room_dropped());
    let (_, sent) = c.handle.room_send("lobby", "banned text").await.unwrap();
    assert_eq!(sent.as_str(), "sent", "C's message went out");
    // Every member judged it and dropped it…
    eventually("A and B drop C's message", || async {
        (a.handle.room_dropped() > dropped.0 && b.handle.room_dropped() > dropped.1).then_some(())
    })
    .await;
    // …and a message sent after it by an unbanned member arrives everywhere.
    b.handle.room_send("lobby", "sentinel").await.unwrap();
    for n in [&a, &b, &c] {
        shows(&n.handle, "lobby", "sentinel").await;
    }
    for n in [&a, &b] {
        let log = texts(&n.handle, "lobby").await;
        assert!(!log.contains(&"banned text".to_string()), "{log:?}");
    }
    // The ban is in the DHT too: a late joiner learns it from the record,
    // here found by the room's id alone (the record names the room).
    let d = TestNode::start(&[a.addr().await]).await;
    let id = RoomId::of_name("lobby").unwrap();
    let (joined, name) = eventually("D joins lobby by its id", || async {
        d.handle.room_join(&id.to_string()).await.ok()
    })
    .await;
    assert_eq!((joined, name.as_str()), (id, "lobby"));
    assert!(d.handle.room_bans("lobby").unwrap().contains(&banned));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_the_last_messages_from_members() {
    common::init_tracing();
    let a = TestNode::start(&[]).await;
    let boot = vec![a.addr().await];
    let b = TestNode::start(&boot).await;
    a.handle.room_create("history").await.unwrap();
    join(&b.handle, "history").await;
    sees_members(&a.handle, "history", 1).await;
    let total = MAX_HISTORY + 5;
    for i in 0..total - 3 {
        a.handle
            .room_send("history", &format!("a{i}"))
            .await
            .unwrap();
    }
    for i in 0..3 {
        b.handle
            .room_send("history", &format!("b{i}"))
            .await
            .unwrap();
    }
    for i in 0..3 {
        shows(&a.handle, "history", &format!("b{i}")).await;
    }
    let at_a: Vec<String> = a
        .handle
        .room_log("history", MAX_HISTORY)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(at_a.len(), MAX_HISTORY);

    let d = TestNode::start(&boot).await;
    join(&d.handle, "history").await;
    let at_d: Vec<String> = d
        .handle
        .room_log("history", 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(at_d, at_a, "the last {MAX_HISTORY} messages, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_the_rate_limit_has_its_excess_dropped() {
    common::init_tracing();
    let burst = 3;
    let tight = RoomLimits {
        rate: 0.0001,
        burst: burst as f64,
    };
    let (a, b, c) = three_in_a_room(tight).await;
    let before = c.handle.room_dropped();
    let sent = 8;
    for i in 0..sent {
        a.handle
            .room_send("lobby", &format!("flood {i}"))
            .await
            .unwrap();
    }
    // B (default limits) shows every one: they all went out.
    for i in 0..sent {
        shows(&b.handle, "lobby", &format!("flood {i}")).await;
    }
    // C judged all of them: `burst` shown, the rest dropped.
    eventually("C drops the excess", || async {
        (c.handle.room_dropped() - before == (sent - burst) as u64).then_some(())
    })
    .await;
    b.handle.room_send("lobby", "sentinel").await.unwrap();
    shows(&c.handle, "lobby", "sentinel").await;
    let at_c = texts(&c.handle, "lobby").await;
    let flood = at_c.iter().filter(|t| t.starts_with("flood")).count();
    assert_eq!(flood, burst, "{at_c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_squatting_room_record_is_refused() {
    common::init_tracing();
    let a = TestNode::start(&[]).await;
    let boot = vec![a.addr().await];
    let b = TestNode::start(&boot).await;
    a.handle.room_create("taken").await.unwrap();
    let key = RoomId::of_name("taken").unwrap().record_key();
    let held = a.handle.net().held_record(key.clone()).await.unwrap();
    let owned = held.clone().expect("A holds its record");

    // B cannot create a room of that name: the DHT says it is A's.
    let err = eventually("B's lookup finds A's record", || async {
        match b.handle.room_create("taken").await {
            Err(NodeError::Room(RoomFailure::NameTaken(_, owner))) => Some(owner),
            _ => None,
        }
    })
    .await;
    assert_eq!(err, a.handle.peer_id());

    // Put to A directly, bypassing B's own checks: B's record for the name
    // (a higher seq, B's valid signature), and a record naming A as owner
    // with a higher seq and a signature that is not A's (B's, over other
    // bytes).
    let b_id = roost::Identity::load_from(b.dir.path()).unwrap();
    let squat = room::sign_record(&b_id, "taken", 0, 1 << 40, &[]).unwrap();
    let sig = b_id.sign(b"not the record").to_bytes().to_vec();
    let forged = room::assemble_record("taken", &a.handle.peer_id(), 1 << 41, sig).unwrap();
    let to_a = a.handle.peer_id();
    for value in [squat.raw, forged] {
        b.handle
            .net()
            .put_record_to(key.clone(), value, to_a)
            .await
            .unwrap();
    }
    // Sentinel: a valid record of B's under a free name, put last, lands.
    let free = room::sign_record(&b_id, "free", 0, 1, &[]).unwrap();
    let free_key = RoomId::of_name("free").unwrap().record_key();
    b.handle
        .net()
        .put_record_to(free_key.clone(), free.raw.clone(), to_a)
        .await
        .unwrap();
    eventually("A holds the sentinel", || async {
        let h = a.handle.net().held_record(free_key.clone()).await.ok()??;
        (h == free.raw).then_some(())
    })
    .await;
    assert_eq!(
        a.handle.net().held_record(key).await.unwrap(),
        Some(owned),
        "A still holds its own record"
    );
}

/// The keys of a JSON object, sorted.
fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_rows_of_the_contract() {
    let a = common::Daemon::start(None).await;
    let b = common::Daemon::start(Some(&a.addr().await)).await;
    let room = cli_create_and_join(&a, &b).await;
    cli_send_and_log(&a, &b).await;
    cli_list_and_members(&a, &b);
    // A public room has no roster to remove from.
    let out = common::roost(
        a.dir.path(),
        &["group", "remove", "lobby", &b.id.to_string()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ban instead"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli_kinds_and_a_twin_name(&a, &room);
    // Only the owner bans.
    let out = common::roost(b.dir.path(), &["group", "ban", "lobby", &a.id.to_string()]);
    assert!(!out.status.success());
    a.rows(&["group", "ban", &room, &b.id.to_string()]);
    b.rows(&["group", "leave", "lobby"]);
    assert!(b.rows(&["group", "list"]).is_empty());
}

/// A creates the public room `Lobby` (named `lobby`), B joins it by name,
/// and A sees B in it: the rows `create` and `join` print. The room's id.
async fn cli_create_and_join(a: &common::Daemon, b: &common::Daemon) -> String {
    let created = a.rows(&["group", "create", "Lobby", "--public"]);
    assert_eq!(keys(&created[0]), ["id", "name"]);
    assert_eq!(created[0]["name"], "lobby");
    let joined = eventually("B joins by name", || async {
        let out = common::roost(b.dir.path(), &["--json", "group", "join", "lobby"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
            .flatten()
    })
    .await;
    assert_eq!(joined["id"], created[0]["id"]);
    let room = created[0]["id"].as_str().unwrap().to_string();
    eventually("A sees B in the room", || async {
        (a.rows(&["group", "members", &room]).len() == 2).then_some(())
    })
    .await;
    room
}

/// B sends to `lobby` and A's log shows it: the rows `send` and `log`
/// print.
async fn cli_send_and_log(a: &common::Daemon, b: &common::Daemon) {
    let sent = b.rows(&["group", "send", "lobby", "hello room"]);
    assert_eq!(keys(&sent[0]), ["id", "state"]);
    assert_eq!(sent[0]["state"], "sent");
    let row = eventually("A's log shows B's message", || async {
        a.rows(&["group", "log", "lobby", "--limit", "5"]).pop()
    })
    .await;
    assert_eq!(keys(&row), ["from", "from_name", "id", "sent_at", "text"]);
    assert_eq!(row["text"], "hello room");
    assert_eq!(row["from"], b.id.to_string());
    assert_eq!(row["id"], sent[0]["id"]);
}

/// The rows A's `list` and `members` print for `lobby`: a public room of
/// two, A its owner and B a member.
fn cli_list_and_members(a: &common::Daemon, b: &common::Daemon) {
    let list = a.rows(&["group", "list"]);
    assert_eq!(keys(&list[0]), ["id", "members", "name", "public"]);
    assert_eq!(list[0]["public"], true);
    assert_eq!(list[0]["members"], 2);
    let members = a.rows(&["group", "members", "lobby"]);
    assert_eq!(keys(&members[0]), ["id", "name", "role"]);
    let roles: Vec<(String, String)> = members
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        roles.contains(&(a.id.to_string(), "owner".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&(b.id.to_string(), "member".into())),
        "{roles:?}"
    );
}

/// A private group and the public `room`, both listed with their kind;
/// then a private group also named `lobby`: a send to the name both hold
/// is refused, naming both ids, and neither log shows it.
fn cli_kinds_and_a_twin_name(a: &common::Daemon, room: &str) {
    let team = a.rows(&["group", "create", "team"]);
    let private = team[0]["id"].as_str().unwrap().to_string();
    let kinds: Vec<(String, bool)> = a
        .rows(&["group", "list"])
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().into(),
                r["public"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.contains(&(private.clone(), false)), "{kinds:?}");
    assert!(kinds.contains(&(room.to_string(), true)), "{kinds:?}");
    // A name both kinds hold is refused, naming both ids; nothing is sent.
    let twin = a.rows(&["group", "create", "lobby"]);
    let twin = twin[0]["id"].as_str().unwrap().to_string();
    let out = common::roost(a.dir.path(), &["group", "send", "lobby", "which one?"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&twin) && err.contains(room), "{err}");
    for id in [twin.as_str(), room] {
        let texts: Vec<serde_json::Value> = a
            .rows(&["group", "log", id])
            .iter()
            .map(|l| l["text"].clone())
            .collect();
        assert!(!texts.contains(&"which one?".into()), "{texts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_senders_and_records_over_gossip_are_refused_by_every_member() {
    common::init_tracing();
    let (a, b, c) = three_in_a_room(RoomLimits::default()).await;
    let id = RoomId::of_name("lobby").unwrap();
    let b_id = roost::Identity::load_from(b.dir.path()).unwrap();
    let c_id = roost::Identity::load_from(c.dir.path()).unwrap();
    let frame = |g: room::Gossip| roost::wire::encode(&g).unwrap();
    // C's genuine message, dated long ago, gossiped again by B: anyone
    // may gossip a signed message, so an old one coming round is a
    // replay, ignored (not counted as refused; the log shows it is gone).
    let replayed = room::sign_message(&c_id, id, 1, "c said this long ago").unwrap();
    // A message naming A as its sender, signed by B.
    let sig = b_id.sign(b"anything").to_bytes().to_vec();
    let forged =
        room::assemble_message(id, &a.handle.peer_id(), 2, "a never said this", sig).unwrap();
    // B's own message whose signature is not B's.
    let sig = b_id.sign(b"something else").to_bytes().to_vec();
    let unsigned =
        room::assemble_message(id, &b.handle.peer_id(), 3, "b's broken signature", sig).unwrap();
    // A record for the room signed by B, banning A's key.
    let squat = room::sign_record(&b_id, "lobby", 0, 99, &[a.handle.peer_id()]).unwrap();
    let before = (a.handle.room_dropped(), c.handle.room_dropped());
    for g in [
        room::Gossip::Msg(replayed.raw.into()),
        room::Gossip::Msg(forged.into()),
        room::Gossip::Msg(unsigned.into()),
        room::Gossip::Record(squat.raw.into()),
    ] {
        let sent = b.handle.room_publish_raw("lobby", frame(g)).await.unwrap();
        assert_eq!(sent.as_str(), "sent");
    }
    eventually("A and C refuse the three forgeries", || async {
        (a.handle.room_dropped() - before.0 == 3 && c.handle.room_dropped() - before.1 == 3)
            .then_some(())
    })
    .await;
    b.handle.room_send("lobby", "sentinel").await.unwrap();
    for n in [&a, &c] {
        shows(&n.handle, "lobby", "sentinel").await;
        let log = texts(&n.handle, "lobby").await;
        assert_eq!(log, vec!["sentinel".to_string()], "{log:?}");
        assert!(n.handle.room_bans("lobby").unwrap().is_empty());
    }
    let members = c.handle.room_members("lobby").await.unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.owner && m.id == a.handle.peer_id())
    );
}
