//! [core] What the `roost` binary does with its data directory before the
//! node runs: a bad `config.toml`, `ROOST_HOME`, a database written by
//! another schema version, and a database already in use — each refused
//! with exit code 1 and exactly one line on stderr.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::cli::{Running, json};
use common::{eventually, roost, spawn_daemon};

/// The `roost` binary with no `--data-dir`, `ROOST_HOME` = `home`, and the
/// platform data dir pointed at `xdg` (so a fallback would land there, not
/// in the real home directory).
fn roost_env(home: &Path, xdg: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roost"));
    cmd.args(args)
        .env("ROOST_HOME", home)
        .env("XDG_DATA_HOME", xdg)
        .env("HOME", xdg)
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `roost daemon` on `dir` (loopback, no mDNS) and waits for it to
/// exit on its own; a daemon that keeps running fails the test.
async fn daemon_exits(dir: &Path) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(dir)
        .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .env_remove("ROOST_HOME")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roost daemon");
    // Killed if the test fails while it still runs.
    let daemon = std::sync::Mutex::new(Running(child));
    eventually("the daemon exits", || async {
        daemon.lock().unwrap().0.try_wait().unwrap().map(|_| ())
    })
    .await;
    let mut daemon = daemon.into_inner().unwrap();
    let mut out = Output {
        status: daemon.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    daemon
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out.stdout)
        .unwrap();
    daemon
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut out.stderr)
        .unwrap();
    out
}

/// Exit code 1, nothing on stdout, exactly one `roost: …` line on stderr;
/// returns that line.
fn refused_in_one_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert_eq!(
        err.lines().count(),
        1,
        "exactly one line on stderr: {err:?}"
    );
    assert!(err.starts_with("roost: "), "{err}");
    err
}

async fn wait_up(dir: &Path) -> serde_json::Value {
    eventually("the daemon answers roost status", || async {
        let out = roost(dir, &["--json", "status"]);
        out.status.success().then(|| json(&out))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_file_is_refused_in_one_line_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    json(&roost(dir.path(), &["--json", "init"]));
    let file = dir.path().join("config.toml");
    for (text, key) in [
        ("mnds = false\n", "mnds"),
        ("mailbox_replicas = \"three\"\n", "mailbox_replicas"),
        ("listen = [\"not a multiaddr\"]\n", "listen"),
    ] {
        std::fs::write(&file, text).unwrap();
        let err = refused_in_one_line(&daemon_exits(dir.path()).await);
        assert!(
            err.contains(&file.display().to_string()),
            "names the file: {err}"
        );
        assert!(err.contains(key), "names the key {key}: {err}");
        assert!(!dir.path().join("api.json").exists(), "{err}");
    }
    // Sentinel: the same data dir with a valid file runs, and the file's
    // setting is applied (api on a fixed port read from the file).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(&file, format!("api = \"127.0.0.1:{port}\"\nmdns = false\n")).unwrap();
    let _daemon = Running(spawn_daemon(dir.path(), None));
    wait_up(dir.path()).await;
    let api: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("api.json")).unwrap()).unwrap();
    assert_eq!(api["url"], format!("http://127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roost_home_is_the_data_dir_when_no_flag_is_given_and_the_flag_wins() {
    let home = tempfile::tempdir().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();

    let made = json(
        &roost_env(home.path(), xdg.path(), &["--json", "init"])
            .output()
            .unwrap(),
    );
    assert!(
        home.path().join("identity.key").exists(),
        "key in ROOST_HOME"
    );
    assert_eq!(
        std::fs::read_dir(xdg.path()).unwrap().count(),
        0,
        "nothing in the platform data dir"
    );

    // The daemon, started with ROOST_HOME only, runs on that directory and
    // the CLI finds it there.
    let child = roost_env(
        home.path(),
        xdg.path(),
        &["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let _daemon = Running(child);
    let status = eventually("the CLI reaches the daemon through ROOST_HOME", || async {
        let out = roost_env(home.path(), xdg.path(), &["--json", "status"])
            .output()
            .unwrap();
        out.status.success().then(|| json(&out))
    })
    .await;
    assert_eq!(status["id"], made["id"]);
    assert!(home.path().join("api.json").exists());
    assert!(home.path().join("db").exists());
    assert_eq!(std::fs::read_dir(xdg.path()).unwrap().count(), 0);

    // --data-dir wins over ROOST_HOME: an empty dir has no identity.
    let out = roost_env(
        home.path(),
        xdg.path(),
        &["--data-dir", other.path().to_str().unwrap(), "id"],
    )
    .output()
    .unwrap();
    let err = refused_in_one_line(&out);
    assert!(err.contains("roost init"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_schema_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    json(&roost(dir.path(), &["--json", "init"]));
    let db_dir = dir.path().join("db");
    let schema = |write: Option<u32>| {
        let db = sled::open(&db_dir).unwrap();
        let meta = db.open_tree("meta").unwrap();
        if let Some(v) = write {
            meta.insert("schema", &v.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let found = meta.get("schema").unwrap().map(|v| v.to_vec());
        drop(meta);
        drop(db);
        found
    };
    let other = (roost::store::SCHEMA_VERSION + 1).to_be_bytes().to_vec();
    assert_eq!(
        schema(Some(roost::store::SCHEMA_VERSION + 1)),
        Some(other.clone())
    );

    let err = refused_in_one_line(&daemon_exits(dir.path()).await);
    assert!(
        err.contains(&format!(
            "database schema {} is not supported (this roost uses {})",
            roost::store::SCHEMA_VERSION + 1,
            roost::store::SCHEMA_VERSION
        )),
        "{err}"
    );
    assert!(!dir.path().join("api.json").exists());
    assert_eq!(
        schema(None),
        Some(other),
        "the refused database is not rewritten"
    );

    // Sentinel: with this version's schema the same data dir runs.
    schema(Some(roost::store::SCHEMA_VERSION));
    let _daemon = Running(spawn_daemon(dir.path(), None));
    wait_up(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_data_dir_is_refused_and_the_first_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let made = json(&roost(dir.path(), &["--json", "init"]));
    let mut first = Running(spawn_daemon(dir.path(), None));
    let before = wait_up(dir.path()).await;
    let api_before = std::fs::read(dir.path().join("api.json")).unwrap();

    let err = refused_in_one_line(&daemon_exits(dir.path()).await);
    assert!(err.contains("is in use by another roost process"), "{err}");
    assert!(
        err.contains(&dir.path().join("db").display().to_string()),
        "{err}"
    );

    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first daemon runs on"
    );
    assert_eq!(
        std::fs::read(dir.path().join("api.json")).unwrap(),
        api_before,
        "api.json still points at the first daemon"
    );
    let after = json(&roost(dir.path(), &["--json", "status"]));
    assert_eq!(after["id"], made["id"]);
    assert_eq!(after["addrs"], before["addrs"], "the same daemon answers");
}
