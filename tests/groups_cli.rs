//! [rooms] `roost group …` against real daemons: the rows of the CLI
//! contract, an invitation accepted with `group join ID`, a message and a
//! membership change in every member's log, an ambiguous name refused.

mod common;

use common::{Daemon, eventually, roost};
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commands_keep_the_contract() {
    let alice = Daemon::start(None).await;
    let bob = Daemon::start(Some(&alice.addr().await)).await;
    let made = alice.rows(&["group", "create", "team"]).remove(0);
    assert_eq!(keys(&made), ["id", "name"]);
    let gid = made["id"].as_str().unwrap().to_string();
    let inv = alice.rows(&["group", "invite", "team", &bob.id.to_string()]);
    assert_eq!(inv[0]["state"], "done");
    eventually("Bob has the invitation", || async {
        let rows = bob.rows(&["group", "invitations"]);
        rows.iter().any(|r| r["id"] == gid.as_str()).then_some(())
    })
    .await;
    let joined = bob.rows(&["group", "join", &gid]).remove(0);
    assert_eq!(joined["name"], "team");
    let list = bob.rows(&["group", "list"]);
    assert_eq!(list.len(), 1);
    assert_eq!(keys(&list[0]), ["id", "members", "name", "public"]);
    assert_eq!(list[0]["members"], 2);
    assert_eq!(list[0]["public"], false);
    let members = bob.rows(&["group", "members", "team"]);
    assert_eq!(members.len(), 2);
    assert_eq!(keys(&members[0]), ["id", "name", "role"]);
    let roles: Vec<&str> = members
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"admin") && roles.contains(&"member"));

    let sent = bob.rows(&["group", "send", "team", "hello team"]).remove(0);
    assert_eq!(keys(&sent), ["id", "state"]);
    let log = eventually("Alice has Bob's message", || async {
        let log = alice.rows(&["group", "log", "team", "--limit", "10"]);
        log.iter().any(|l| l["text"] == "hello team").then_some(log)
    })
    .await;
    let line = log.iter().find(|l| l["text"] == "hello team").unwrap();
    assert_eq!(keys(line), ["from", "from_name", "id", "sent_at", "text"]);
    assert_eq!(line["from"], bob.id.to_string());
    assert_eq!(line["id"], sent["id"]);
    assert!(
        log.iter()
            .any(|l| l["text"].as_str().unwrap().starts_with("* added"))
    );

    // A second group of the same name: the name is ambiguous now.
    alice.rows(&["group", "create", "team"]);
    let out = roost(alice.dir.path(), &["group", "send", "team", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("several groups") && err.contains(&gid),
        "{err}"
    );
}

/// The creator makes Bob an admin; Bob (not the key authority) invites
/// Carol: his request goes to the creator, who issues the state, and
/// Carol's invitation arrives. Demoted, Bob's next invite is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_the_creator_made_invites_through_the_creator() {
    let alice = Daemon::start(None).await;
    let boot = alice.addr().await;
    let bob = Daemon::start(Some(&boot)).await;
    let carol = Daemon::start(Some(&boot)).await;
    let gid = alice.rows(&["group", "create", "crew"]).remove(0)["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice.rows(&["group", "invite", "crew", &bob.id.to_string()]);
    eventually("Bob has the invitation", || async {
        let rows = bob.rows(&["group", "invitations"]);
        rows.iter().any(|r| r["id"] == gid.as_str()).then_some(())
    })
    .await;
    bob.rows(&["group", "join", &gid]);
    let done = alice.rows(&["group", "promote", "crew", &bob.id.to_string()]);
    assert_eq!(done[0]["state"], "done");
    let role_at_bob = |who: String| {
        let bob = &bob;
        async move {
            bob.rows(&["group", "members", "crew"])
                .into_iter()
                .find(|m| m["id"] == who.as_str())
                .map(|m| m["role"].as_str().unwrap_or_default().to_string())
        }
    };
    eventually("Bob sees himself an admin", || async {
        (role_at_bob(bob.id.to_string()).await.as_deref() == Some("admin")).then_some(())
    })
    .await;
    let asked = bob.rows(&["group", "invite", "crew", &carol.id.to_string()]);
    assert_eq!(asked[0]["state"], "requested");
    eventually("Carol has the invitation Bob asked for", || async {
        let rows = carol.rows(&["group", "invitations"]);
        rows.iter().any(|r| r["id"] == gid.as_str()).then_some(())
    })
    .await;
    let log = alice.rows(&["group", "log", "crew", "--limit", "10"]);
    let texts: Vec<&str> = log.iter().filter_map(|l| l["text"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("* made") && t.ends_with("an admin")),
        "{texts:?}"
    );

    alice.rows(&["group", "demote", "crew", &bob.id.to_string()]);
    eventually("Bob sees himself a member", || async {
        (role_at_bob(bob.id.to_string()).await.as_deref() == Some("member")).then_some(())
    })
    .await;
    let out = roost(
        bob.dir.path(),
        &["group", "invite", "crew", &alice.id.to_string()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only an admin"), "{err}");
}
