//! [core] The `roost` binary as a user (or a script) meets it.

mod common;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::cli::{Running, json, stderr};
use common::fake_http::{read_request, respond_json};
use common::{eventually, roost};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

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
        "invite",
        "buddy",
        "presence",
        "send",
        "inbox",
        "log",
        "read",
        "chat",
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
        .args([
            "daemon",
            "--no-mdns",
            "--no-upnp",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
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
    let socket = dir.path().join("api.sock");
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let status = json(&roost(dir.path(), &["--json", "status"]));
    assert_eq!(status["id"], shown["id"]);
    assert_eq!(status["peers"], 0);
    // The default is `dht_mode = "auto"`: alone, nobody has tested us.
    assert_eq!(status["reachability"], "unknown", "{status}");
    assert_eq!(status["relays"], serde_json::json!([]));
    assert_eq!(status["connections"], serde_json::json!([]));

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
    assert!(!socket.exists(), "the socket removed on clean shutdown");
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

/// A process playing the daemon at the address of a stale `api.json`: it
/// answers like the real one and records every byte it is sent.
struct FakeDaemon {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl FakeDaemon {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                conn.set_read_timeout(Some(common::DEADLINE)).unwrap();
                log.lock()
                    .unwrap()
                    .extend_from_slice(&read_request(&mut conn));
                respond_json(
                    &mut conn,
                    r#"{"id":"00000000000000000000000000000000","state":"queued"}"#,
                );
            }
        });
        Self { addr, seen }
    }

    /// Everything it was sent, once every earlier connection is recorded:
    /// a sentinel request sent now is served after them.
    async fn everything_seen(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        s.write_all(b"GET /sentinel HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        eventually("the fake daemon recorded the sentinel", || async {
            let seen = String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned();
            seen.contains("/sentinel").then_some(seen)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_after_a_crash_tells_a_port_squatter_nothing() {
    let dir = tempfile::tempdir().unwrap();
    json(&roost(dir.path(), &["--json", "init"]));
    // What a killed daemon leaves: api.json naming its port (now bound by
    // someone else) and a socket nobody listens on.
    let fake = FakeDaemon::start();
    let token = "5ec7e7".repeat(10) + "abcd";
    let info = serde_json::json!({ "url": format!("http://{}", fake.addr), "token": token });
    std::fs::write(dir.path().join("api.json"), info.to_string()).unwrap();
    std::fs::set_permissions(
        dir.path().join("api.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("api.sock")).unwrap());

    let secret = "meet me at the old mill at midnight";
    let out = roost(dir.path(), &["send", "bob", secret]);
    let seen = fake.everything_seen().await;
    assert!(!seen.contains(secret), "the fake got the text:\n{seen}");
    assert!(!seen.contains(&token), "the fake got the token:\n{seen}");
    assert!(
        seen.starts_with("GET /sentinel"),
        "nothing but the sentinel reached it:\n{seen}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_shows_escape_sequences_from_others_without_obeying_them() {
    let dir = tempfile::tempdir().unwrap();
    let id = json(&roost(dir.path(), &["--json", "init"]))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let _daemon = Running(common::spawn_daemon(dir.path(), None));
    let shown = eventually("the daemon is up", || async {
        let v = json(&roost(dir.path(), &["--json", "id"]));
        (!v["addrs"].as_array()?.is_empty()).then_some(v)
    })
    .await;
    let addr: libp2p::Multiaddr = shown["addrs"][0].as_str().unwrap().parse().unwrap();
    let target: libp2p::PeerId = id.parse().unwrap();
    let stranger = common::TestNode::start(&[addr]).await;
    eventually("the stranger finds the daemon", || async {
        stranger.handle.find(target).await.unwrap()
    })
    .await;
    let text = "clear\x1b[2Jscreen\x1b]0;owned\x07\nsecond\rline";
    stranger
        .handle
        .send(target, roost::Content::text(text))
        .await
        .unwrap();

    // JSON carries the text as it is (escaped by JSON itself).
    let from = stranger.handle.peer_id().to_string();
    eventually("the message is in the inbox", || async {
        let out = roost(dir.path(), &["--json", "inbox"]);
        let row: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (row["text"] == text).then_some(())
    })
    .await;

    for args in [&["inbox"][..], &["log", &from][..]] {
        let out = roost(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let shown = String::from_utf8(out.stdout).unwrap();
        assert!(
            !shown.contains(['\x1b', '\x07', '\r']),
            "{args:?} printed control characters raw: {shown:?}"
        );
        assert!(
            shown.contains("clear\\u{1b}[2Jscreen\\u{1b}]0;owned\\u{7}\n"),
            "{args:?}: {shown:?}"
        );
        assert!(
            shown.contains("\n    second\\u{d}line"),
            "{args:?}: {shown:?}"
        );
    }
}
