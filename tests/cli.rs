//! [core] The `roost` binary as a user (or a script) meets it.

mod common;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use common::{eventually, roost};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

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

/// The names listed in the `Commands:` section of clap's help (entries are
/// indented by two spaces; wrapped descriptions by more).
fn commands(help: &str) -> Vec<String> {
    section(help, "Commands:")
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The flags (`-x`, `--long`) the `Options:` section lists: the leading
/// words of its entries, not what their descriptions mention.
fn options(help: &str) -> Vec<String> {
    section(help, "Options:")
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| {
            l.split_whitespace()
                .take_while(|t| t.starts_with('-') || t.starts_with('<') || t.starts_with('['))
        })
        .filter(|t| t.starts_with('-'))
        .map(|t| t.trim_end_matches(',').to_string())
        .collect()
}

/// The indented lines after the line `title`, up to the next unindented one.
fn section<'a>(help: &'a str, title: &str) -> impl Iterator<Item = &'a str> {
    help.lines()
        .skip_while(move |l| l.trim_end() != title)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
}

fn help_of(dir: &std::path::Path, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.push("--help");
    let out = roost(dir, &full);
    assert!(out.status.success(), "{args:?} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let listed = commands(&help_of(dir.path(), &[]));
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
        assert!(
            listed.iter().any(|c| c == sub),
            "top-level help lists {sub}: {listed:?}"
        );
        let flags = options(&help_of(dir.path(), &[sub]));
        assert!(
            flags.iter().any(|f| f == "--data-dir"),
            "{sub} --help lists --data-dir: {flags:?}"
        );
    }
    let listed = commands(&help_of(dir.path(), &["buddy"]));
    for sub in [
        "add", "list", "requests", "remove", "rename", "hide", "show", "block", "unblock",
    ] {
        assert!(
            listed.iter().any(|c| c == sub),
            "buddy help lists {sub}: {listed:?}"
        );
        help_of(dir.path(), &["buddy", sub]);
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
    let addr: Multiaddr = shown["addrs"][0].as_str().unwrap().parse().unwrap();
    let id: PeerId = shown["id"].as_str().unwrap().parse().unwrap();
    let parts: Vec<Protocol> = addr.iter().collect();
    assert!(
        matches!(
            parts[..],
            [Protocol::Ip4(ip), Protocol::Tcp(port), Protocol::P2p(p)]
                if ip == Ipv4Addr::LOCALHOST && port != 0 && p == id
        ),
        "{addr}"
    );
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
    let lines: Vec<&str> = text.lines().collect();
    // The numbered steps, each told, in order.
    let steps: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.split_once(". ")?.0.parse().ok())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>(), "{text}");
    // What each check found, as whole lines.
    for line in [
        "   Alex sees Oscar: offline.   Alice sees Oscar: online.",
        "   Jack's node sent a delivery receipt: Alice sees the message delivered.",
        "All steps passed.",
    ] {
        assert!(lines.contains(&line), "narrates {line:?}:\n{text}");
    }
    for start in [
        "   found Bob at /ip4/127.0.0.1/tcp/",
        "   Alice is told: Bob is away — \"lunch, back at 14:00\"",
        "   Bob's inbox: \"Bob, come here!\" — delivered in ",
        "   Jack has it ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(start)),
            "narrates a line starting {start:?}:\n{text}"
        );
    }
}
