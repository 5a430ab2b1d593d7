//! [surface] The README's two-machine walkthrough, on one machine: three
//! real `roost daemon` processes in separate data dirs, driven only through
//! the CLI with `--json`, every output parsed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{eventually, roost};
use serde_json::Value;

/// A data dir with a running daemon.
struct Daemon {
    dir: tempfile::TempDir,
    child: Child,
    id: String,
}

impl Daemon {
    async fn start(bootstrap: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let id = one(&roost(dir.path(), &["--json", "init"]))["id"]
            .as_str()
            .unwrap()
            .to_string();
        let child = common::spawn_daemon(dir.path(), bootstrap);
        let d = Self { dir, child, id };
        eventually("daemon answers", || async { d.try_json(&["status"]) }).await;
        d
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Runs a command with `--json`; `None` if it failed.
    fn try_json(&self, args: &[&str]) -> Option<Vec<Value>> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = roost(self.dir.path(), &full);
        out.status.success().then(|| lines(&out))
    }

    /// Runs a command with `--json` that must succeed.
    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = roost(self.dir.path(), &full);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out)
    }

    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

/// Every stdout line parsed as one JSON object (stdout is JSON only).
fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn one(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = lines(out);
    assert_eq!(v.len(), 1);
    v.remove(0)
}

/// Exit 1 with exactly one line on stderr.
fn fails_cleanly(dir: &Path, args: &[&str]) -> String {
    let out = roost(dir, args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(out.stdout.is_empty());
    err
}

fn http_status(url: &str, token: Option<&str>) -> u16 {
    let hostport = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /api/v1/status HTTP/1.1\r\nHost: {hostport}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn find<'a>(rows: &'a [Value], key: &str, value: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r[key] == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_run_the_walkthrough_through_the_cli() {
    let a = Daemon::start(None).await;
    let boot = a.json(&["id"])[0]["addrs"][0].as_str().unwrap().to_string();
    let b = Daemon::start(Some(&boot)).await;
    let c = Daemon::start(Some(&boot)).await;

    let st = &a.json(&["status"])[0];
    for key in ["id", "peers", "outbox", "held"] {
        assert!(st.get(key).is_some(), "status has {key}");
    }

    buddies_add_each_other(&a, &b, &c).await;
    presence_is_seen_and_hidden(&a, &b, &c).await;
    a_message_is_followed_read_and_logged(&a, &b).await;
    errors_are_one_line_and_the_api_is_guarded(&a);

    for d in [a, b, c] {
        d.stop();
    }
}

/// Add each other; B sees A's request first.
async fn buddies_add_each_other(a: &Daemon, b: &Daemon, c: &Daemon) {
    let row = &a.json(&["buddy", "add", &b.id, "--name", "bob"])[0];
    assert_eq!(
        (row["id"].as_str(), row["name"].as_str()),
        (Some(b.id.as_str()), Some("bob"))
    );
    eventually("B lists A's buddy request", || async {
        find(&b.try_json(&["buddy", "requests"])?, "id", &a.id).map(|_| ())
    })
    .await;
    b.json(&["buddy", "add", &a.id, "--name", "alice"]);
    c.json(&["buddy", "add", &a.id, "--name", "alice"]);
    a.json(&["buddy", "add", &c.id, "--name", "carol"]);
}

async fn presence_is_seen_and_hidden(a: &Daemon, b: &Daemon, c: &Daemon) {
    eventually("A sees bob online", || async {
        let rows = a.try_json(&["buddy", "list"])?;
        (find(&rows, "name", "bob")?["status"] == "online").then_some(())
    })
    .await;
    b.json(&[
        "presence",
        "set",
        "away",
        "--note",
        "lunch, back at 14:00",
        "--until",
        "14:00",
    ]);
    eventually("A sees bob away with his note", || async {
        let rows = a.try_json(&["presence"])?;
        let bob = find(&rows, "name", "bob")?;
        (bob["status"] == "away" && bob["note"] == "lunch, back at 14:00").then_some(())
    })
    .await;
    // C must first see alice online: until her presence reaches C, C shows
    // her offline anyway, and "offline" below would prove nothing.
    eventually("C sees alice online before the hide", || async {
        let rows = c.try_json(&["presence"])?;
        (find(&rows, "name", "alice")?["status"] == "online").then_some(())
    })
    .await;
    a.json(&["buddy", "hide", "carol"]);
    eventually("C sees alice offline once hidden", || async {
        let rows = c.try_json(&["presence"])?;
        (find(&rows, "name", "alice")?["status"] == "offline").then_some(())
    })
    .await;
}

/// B follows its inbox while A sends; B reads it and A's log shows it read.
async fn a_message_is_followed_read_and_logged(a: &Daemon, b: &Daemon) {
    let mut follow = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(b.path())
        .args(["--json", "inbox", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sent = &a.json(&["send", "bob", "Bob, come here!"])[0];
    assert_eq!(sent["state"], "queued");
    let id = sent["id"].as_str().unwrap().to_string();
    let stdout = follow.stdout.take().unwrap();
    let reader = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(common::DEADLINE, reader)
        .await
        .expect("inbox --follow prints the new message")
        .unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    let pushed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (pushed["id"].as_str(), pushed["text"].as_str()),
        (Some(id.as_str()), Some("Bob, come here!"))
    );

    let inbox = b.json(&["inbox", "--from", "alice"]);
    let m = find(&inbox, "id", &id).expect("in B's inbox");
    for key in ["id", "from", "from_name", "sent_at", "content_type", "text"] {
        assert!(m.get(key).is_some(), "inbox row has {key}");
    }
    assert_eq!(
        (m["from"].as_str(), m["from_name"].as_str()),
        (Some(a.id.as_str()), Some("alice"))
    );
    b.json(&["read", "alice"]);
    eventually("A's log shows the message read", || async {
        let log = a.try_json(&["log", "bob"])?;
        let m = find(&log, "id", &id)?;
        (m["direction"] == "out" && m["state"] == "read" && m["text"] == "Bob, come here!")
            .then_some(())
    })
    .await;
}

fn errors_are_one_line_and_the_api_is_guarded(a: &Daemon) {
    // Errors: exit 1, one line; the daemon keeps serving.
    let err = fails_cleanly(&a.path(), &["buddy", "add", "not-an-id"]);
    assert!(err.contains("expected an ed25519 peer ID"), "{err}");
    let err = fails_cleanly(&a.path(), &["presence", "set", "sleepy"]);
    assert!(err.contains("unknown presence state"), "{err}");
    let big = "x".repeat(64 * 1024 + 1);
    let err = fails_cleanly(&a.path(), &["send", "bob", &big]);
    assert!(err.contains("limit"), "{err}");
    let err = fails_cleanly(&a.path(), &["send", "nobody", "hi"]);
    assert!(err.contains("no buddy is called"), "{err}");
    assert!(a.try_json(&["status"]).is_some(), "still serving");

    // The API: loopback only by default, 401 without or with a wrong token.
    let info: Value =
        serde_json::from_slice(&std::fs::read(a.dir.path().join("api.json")).unwrap()).unwrap();
    let url = info["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(http_status(url, None), 401);
    assert_eq!(http_status(url, Some("wrong")), 401);
    assert_eq!(http_status(url, info["token"].as_str()), 200);
}

#[test]
fn the_daemon_not_running_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    roost(dir.path(), &["init"]);
    let err = fails_cleanly(dir.path(), &["send", "bob", "hi"]);
    assert!(err.contains("roost daemon"), "{err}");
}
