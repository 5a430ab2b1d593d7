//! [core] The `roost` binary as a user (or a script) meets it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use common::{eventually, roost};

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn init_creates_a_private_key_once_and_never_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = json(&roost(dir.path(), &["--json", "init"]));
    let id = first["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("12D3KooW"), "{id}");
    let key = dir.path().join("identity.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let again = roost(dir.path(), &["init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );
    assert_eq!(stderr(&again).trim().lines().count(), 1);
    // Still the same identity.
    let shown = json(&roost(dir.path(), &["--json", "id"]));
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["addrs"], serde_json::json!([]));
}

#[test]
fn a_key_readable_by_others_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    json(&roost(dir.path(), &["--json", "init"]));
    let key = dir.path().join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for cmd in [&["id"][..], &["daemon", "--no-mdns"][..]] {
        let out = roost(dir.path(), cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    }
}

#[test]
fn missing_identity_and_bad_usage_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let out = roost(dir.path(), &["id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("roost init"), "{}", stderr(&out));
    let out = roost(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("roost daemon"), "{}", stderr(&out));
    let out = roost(dir.path(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let top = roost(dir.path(), &["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout).to_string();
    for sub in [
        "init",
        "id",
        "daemon",
        "status",
        "buddy",
        "presence",
        "send",
        "inbox",
        "log",
        "read",
        "demo",
        "completions",
    ] {
        assert!(text.contains(sub), "top-level help lists {sub}");
        let out = roost(dir.path(), &[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("--data-dir"));
    }
    for sub in [
        "add", "list", "requests", "remove", "rename", "hide", "show", "block", "unblock",
    ] {
        let out = roost(dir.path(), &["buddy", sub, "--help"]);
        assert!(out.status.success(), "buddy {sub} --help");
    }
    let out = roost(dir.path(), &["completions", "bash"]);
    assert!(out.status.success() && !out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_publishes_its_addresses_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    json(&roost(dir.path(), &["--json", "init"]));
    let daemon = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api_file = dir.path().join("api.json");
    let shown = eventually("roost id shows the daemon's addresses", || async {
        let v = json(&roost(dir.path(), &["--json", "id"]));
        (!v["addrs"].as_array()?.is_empty()).then_some(v)
    })
    .await;
    let addr = shown["addrs"][0].as_str().unwrap();
    assert!(addr.starts_with("/ip4/127.0.0.1/tcp/"), "{addr}");
    assert!(addr.ends_with(shown["id"].as_str().unwrap()), "{addr}");
    assert_eq!(
        std::fs::metadata(&api_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let status = json(&roost(dir.path(), &["--json", "status"]));
    assert_eq!(status["id"], shown["id"]);
    assert_eq!(status["peers"], 0);

    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let daemon = std::sync::Mutex::new(daemon);
    let code = eventually("daemon exits", || async {
        daemon.lock().unwrap().try_wait().unwrap()
    })
    .await;
    assert!(code.success(), "daemon exit: {code:?}");
    assert!(!api_file.exists(), "api.json removed on clean shutdown");
    let after = json(&roost(dir.path(), &["--json", "id"]));
    assert_eq!(after["addrs"], serde_json::json!([]));
}

#[test]
fn the_demo_tells_the_whole_story_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("demo")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "Discovery by key",
        "Oscar hides",
        "pushed",
        "direct MESSAGE",
        "Store and forward",
        "All steps passed",
    ] {
        assert!(text.contains(step), "narrates {step:?}:\n{text}");
    }
}
