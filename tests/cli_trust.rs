//! [trust] Whom the `roost` command talks to, and what it prints of other
//! people's words. A fake daemon on `<data-dir>/api.sock` records every
//! connection and every byte: a refused command must have reached it with
//! nothing (checked after a sentinel request, served after anything the
//! command sent).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::cli::stderr;
use common::fake_http::{read_request, respond_json};
use common::roost;

/// The uid the foreign fake daemon runs as (`nobody`).
const STRANGER: u32 = 65534;

/// What the fake answers every request with, by request path.
type Answer = fn(&str) -> String;

/// A process playing the daemon on a Unix socket: it answers like the real
/// one and records each connection's bytes, in order.
struct FakeDaemon {
    path: PathBuf,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FakeDaemon {
    /// Serves on a socket bound at `bind` (then found at `path`, which the
    /// caller renames it to if they differ), from a thread whose effective
    /// uid is `uid` when given: the socket's peer credentials are those of
    /// the thread that listened.
    fn start(bind: &Path, path: &Path, uid: Option<u32>, answer: Answer) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let bind = bind.to_path_buf();
        let (ready, bound) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Some(uid) = uid {
                // The raw syscall changes this thread's credentials only
                // (glibc's setresuid would change every thread's).
                // SAFETY: a plain syscall with integer arguments.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_setresuid,
                        -1 as libc::c_long,
                        libc::c_long::from(uid),
                        -1 as libc::c_long,
                    )
                };
                assert_eq!(r, 0, "setresuid: {}", std::io::Error::last_os_error());
            }
            let listener = UnixListener::bind(&bind).expect("bind the fake socket");
            ready.send(()).unwrap();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                conn.set_read_timeout(Some(common::DEADLINE)).unwrap();
                let req = read_request(&mut conn);
                let head = String::from_utf8_lossy(&req).into_owned();
                log.lock().unwrap().push(req);
                let target = head.split(' ').nth(1).unwrap_or("");
                respond_json(&mut conn, &answer(target));
            }
        });
        bound.recv().expect("the fake daemon is listening");
        Self {
            path: path.to_path_buf(),
            seen,
        }
    }

    /// Every connection it had since the last call, each as the bytes it
    /// was sent: a sentinel request sent now is served after all of them.
    fn everything_before_a_sentinel(&self) -> Vec<String> {
        let mut s = UnixStream::connect(&self.path).expect("reach the fake");
        s.write_all(b"GET /sentinel HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let mut seen: Vec<String> = std::mem::take(&mut *self.seen.lock().unwrap())
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let last = seen.pop().expect("the sentinel was recorded");
        assert!(last.starts_with("GET /sentinel"), "{last:?}");
        seen
    }
}

/// Answers `send` as a daemon would have queued it.
fn queued(_: &str) -> String {
    r#"{"id":"00000000000000000000000000000000","state":"queued"}"#.into()
}

/// A refusal as scripts expect it: exit 1, nothing on stdout, one line on
/// stderr containing `needle`.
fn assert_refused(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "wanted {needle:?} in: {err}");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A temp dir as `roost daemon` leaves its data dir: mode 0700.
fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o700);
    dir
}

const SECRET: &str = "meet me at the old mill at midnight";

#[test]
fn a_data_dir_open_to_others_is_refused_before_anything_is_sent() {
    let dir = private_dir();
    let sock = dir.path().join("api.sock");
    let fake = FakeDaemon::start(&sock, &sock, None, queued);
    for mode in [0o755, 0o770, 0o701] {
        chmod(dir.path(), mode);
        let out = roost(dir.path(), &["send", "bob", SECRET]);
        let seen = fake.everything_before_a_sentinel();
        assert!(
            seen.is_empty(),
            "mode {mode:o}: the fake was reached: {seen:?}"
        );
        assert_refused(&out, &format!("mode {mode:o}, open to group or others"));
        assert!(stderr(&out).contains("chmod 700"), "{}", stderr(&out));
    }
    // The same fake, in a private dir of ours, is talked to: the refusals
    // above were the mode's doing.
    chmod(dir.path(), 0o700);
    let out = roost(dir.path(), &["--json", "send", "bob", SECRET]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "queued");
    let seen = fake.everything_before_a_sentinel();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("POST /api/v1/send"), "{seen:?}");
    assert!(seen[0].contains(SECRET), "{seen:?}");
}

/// A temp dir another uid can pass through (0711), for dirs of both users.
fn shared_parent() -> tempfile::TempDir {
    assert_eq!(
        std::fs::metadata("/proc/self").map(|m| m.uid()).ok(),
        Some(0),
        "this test plays two users, so it must run as root (CI does)"
    );
    let top = tempfile::tempdir().unwrap();
    chmod(top.path(), 0o711);
    top
}

/// A private (0700) dir owned by `uid`.
fn dir_of(uid: u32, path: &Path) {
    std::fs::create_dir(path).unwrap();
    chmod(path, 0o700);
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

#[test]
fn a_data_dir_made_by_another_user_is_refused_even_when_its_daemon_is_theirs() {
    // Another user got to `--data-dir` first (e.g. under /tmp), made it
    // private to themselves and serves its socket: owner, socket and
    // peer all agree, and none of them is us.
    let top = shared_parent();
    let data = top.path().join("roost");
    dir_of(STRANGER, &data);
    let sock = data.join("api.sock");
    let fake = FakeDaemon::start(&sock, &sock, Some(STRANGER), queued);
    let out = roost(&data, &["send", "bob", SECRET]);
    let seen = fake.everything_before_a_sentinel();
    assert!(
        seen.is_empty(),
        "the stranger's daemon was reached: {seen:?}"
    );
    assert_refused(
        &out,
        &format!("the data dir is owned by uid {STRANGER}, not by you (uid 0)"),
    );
}

#[test]
fn a_data_dir_reached_through_another_users_symlink_is_refused() {
    // Our own private data dir with our own daemon, but `--data-dir` names
    // a symlink another user owns (and could point elsewhere at any time).
    let top = shared_parent();
    let data = top.path().join("roost");
    dir_of(0, &data);
    let sock = data.join("api.sock");
    let fake = FakeDaemon::start(&sock, &sock, None, queued);
    let link = top.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(STRANGER), Some(STRANGER)).unwrap();
    let out = roost(&link, &["send", "bob", SECRET]);
    let seen = fake.everything_before_a_sentinel();
    assert!(seen.is_empty(), "the daemon was reached: {seen:?}");
    assert_refused(
        &out,
        &format!("the data dir is owned by uid {STRANGER}, not by you (uid 0)"),
    );
    // Through a symlink of our own, the same daemon is talked to.
    let ours = top.path().join("ours");
    std::os::unix::fs::symlink(&data, &ours).unwrap();
    let out = roost(&ours, &["--json", "send", "bob", SECRET]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_socket_served_by_another_user_is_refused_and_told_nothing() {
    // Our private data dir, but the socket in it is served by a process of
    // another user (bound where that user may write, then moved in).
    let top = shared_parent();
    let data = top.path().join("roost");
    dir_of(0, &data);
    let theirs = top.path().join("theirs");
    dir_of(STRANGER, &theirs);
    let bound = theirs.join("s");
    let sock = data.join("api.sock");
    let fake = FakeDaemon::start(&bound, &sock, Some(STRANGER), queued);
    std::fs::rename(&bound, &sock).unwrap();
    let out = roost(&data, &["send", "bob", SECRET]);
    // It had to connect to learn who serves the socket, and sent nothing.
    let seen = fake.everything_before_a_sentinel();
    assert_eq!(seen, vec![String::new()], "the stranger was told something");
    assert_refused(
        &out,
        &format!("it is served by uid {STRANGER}, not by you (uid 0)"),
    );
}

#[test]
fn names_and_notes_cannot_fake_rows_in_human_output() {
    let dir = private_dir();
    let sock = dir.path().join("api.sock");
    let _fake = FakeDaemon::start(&sock, &sock, None, |path| {
        let row = serde_json::json!({
            "id": "12D3KooWFakeFakeFake",
            "name": "mal\nlory",
            "status": "online",
            "note": "brb\nbob              online    \"free\"\t\u{61c}",
            "activity": null, "location": null, "until": null,
            "hidden": false, "blocked": false,
        });
        match path {
            "/api/v1/presence/buddies" | "/api/v1/buddies" => format!("[{row}]"),
            _ => "[]".into(),
        }
    });
    for args in [&["presence"][..], &["buddy", "list"][..]] {
        let out = roost(dir.path(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let shown = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            shown.lines().count(),
            1,
            "{args:?}: one buddy, one row: {shown:?}"
        );
        assert!(!shown.contains(['\t', '\u{61c}']), "{args:?}: {shown:?}");
        assert!(shown.starts_with("mal\\u{a}lory "), "{args:?}: {shown:?}");
    }
    let shown = String::from_utf8(roost(dir.path(), &["presence"]).stdout).unwrap();
    assert!(
        shown.contains("\"brb\\u{a}bob              online    \"free\"\\u{9}\\u{61c}\""),
        "{shown:?}"
    );
}
