//! [hardening] A data dir (or key file) owned by another user is refused by
//! `roost daemon` and `roost init` — exit code 1, one line naming the path
//! and the fix, nothing read from it or written into it — while the same
//! dir, once ours, works. These tests play two users, so they run as root
//! (CI does) and fail, not skip, otherwise.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::{DEADLINE, roost, spawn_daemon};

/// The uid that plays the other user (`nobody`).
const OTHER: u32 = 65534;

fn must_be_root() {
    assert_eq!(
        std::fs::metadata("/proc/self").map(|m| m.uid()).ok(),
        Some(0),
        "this test plays two users, so it must run as root (CI does)"
    );
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// What is in `dir`, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// `roost daemon` on `dir`, stopped and reported as a failure if it is
/// still running after [`DEADLINE`] (it should have refused at once).
fn daemon_refuses(dir: &Path) -> Output {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(dir)
        .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .env_remove("ROOST_HOME")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the daemon ran on another user's data dir; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Exit code 1 and exactly one line on stderr naming `path` and its owner.
fn refused(out: &Output, path: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&format!("{} belongs to uid {OTHER}", path.display())),
        "names the path and its owner: {err}"
    );
    assert!(
        err.contains("--data-dir or ROOST_HOME"),
        "says the fix: {err}"
    );
}

/// A temp parent and, in it, a 0700 data dir holding a valid `config.toml`
/// (a dir someone made ahead, e.g. under /tmp).
fn made_ahead() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("config.toml"), "mdns = false\n").unwrap();
    (top, dir)
}

#[test]
fn a_data_dir_owned_by_another_user_is_refused_and_works_once_ours() {
    must_be_root();
    let (_top, dir) = made_ahead();
    chown(&dir, OTHER);
    chown(&dir.join("config.toml"), OTHER);
    let before = listing(&dir);

    refused(&daemon_refuses(&dir), &dir);
    assert_eq!(listing(&dir), before, "the daemon wrote nothing");
    let init = roost(&dir, &["init"]);
    refused(&init, &dir);
    assert_eq!(listing(&dir), before, "init wrote nothing");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().mode() & 0o7777,
        0o700,
        "not even the mode changed"
    );

    // Sentinel: the same dir, ours again, takes a key and runs a daemon.
    chown(&dir, 0);
    chown(&dir.join("config.toml"), 0);
    let init = roost(&dir, &["init"]);
    assert!(
        init.status.success(),
        "init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(dir.join("identity.key").exists());
    let mut daemon = spawn_daemon(&dir, None);
    let start = Instant::now();
    while !dir.join("api.sock").exists() {
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("the daemon exited on our own data dir: {status}");
        }
        assert!(start.elapsed() < DEADLINE, "the daemon did not come up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn a_key_or_database_owned_by_another_user_is_refused() {
    must_be_root();
    let (_top, dir) = made_ahead();
    let init = roost(&dir, &["init"]);
    assert!(init.status.success());
    let key = dir.join("identity.key");
    chown(&key, OTHER);
    refused(&daemon_refuses(&dir), &key);
    assert!(!dir.join("db").exists(), "no database was made");

    // The key ours again, a database dir someone else made is refused too.
    chown(&key, 0);
    let db = dir.join("db");
    std::fs::create_dir(&db).unwrap();
    chown(&db, OTHER);
    let before = listing(&db);
    refused(&daemon_refuses(&dir), &db);
    assert_eq!(listing(&db), before, "nothing written in it");
}
