//! [house] Buddy names as typed on the command line reach the daemon
//! whole: a name with a space, `/`, `?`, `&` or `#` names the same buddy in
//! every command that takes one (the daemon resolves it, the CLI only
//! carries it). The real binary and daemon on 127.0.0.1.

mod common;

use common::cli::{Running, json, stderr};
use common::{eventually, roost};
use roost::Identity;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_url_characters_names_the_same_buddy_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    roost(dir.path(), &["--json", "init"]);
    let _daemon = Running(common::spawn_daemon(dir.path(), None));
    eventually("the daemon is up", || async {
        let v = json(&roost(dir.path(), &["--json", "id"]));
        (!v["addrs"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let friend = Identity::generate().unwrap().peer_id().to_string();
    let name = "my friend/at home?x=1&y#2";
    let ok = |args: &[&str]| {
        let out = roost(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    ok(&["--json", "buddy", "add", &friend, "--name", name]);

    ok(&["--json", "log", name]);
    ok(&["--json", "inbox", "--from", name]);
    ok(&["--json", "read", name]);
    let hidden = json(&ok(&["--json", "buddy", "hide", name]));
    assert_eq!(hidden["id"], friend.as_str(), "the action hit that buddy");
    ok(&["--json", "buddy", "rename", name, "pal"]);
    let row = json(&ok(&["--json", "buddy", "list"]));
    assert_eq!(
        (
            row["id"].as_str(),
            row["name"].as_str(),
            row["hidden"].as_bool()
        ),
        (Some(friend.as_str()), Some("pal"), Some(true)),
        "hidden, then renamed, under the name typed"
    );
}
