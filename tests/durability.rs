//! [msg] An acknowledgement waits for the disk, seen at the syscall level:
//! the recipient is a real `roost daemon` run under `strace`, which logs
//! every `fdatasync` the process makes. sled 0.34 itself only ever calls
//! `fsync` (`File::sync_all`), never `fdatasync`, and roost's own
//! write-outs `fsync` too, so each `fdatasync` of the store's journal
//! `<data-dir>/db/journal` is `Store::flush`'s (and each of sled's log
//! `<data-dir>/db/db`, a checkpoint's, which also makes everything
//! durable). strace writes
//! a syscall's line when the call returns, before the traced thread runs
//! on, so a sync the daemon waited for before it sent its ack is in the
//! log by the time the ack reaches the sender. A test counting `Store::sync_count`
//! would pass with the `fdatasync` gone and the counter kept; this one
//! counts the system calls.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{TestNode, eventually, init_tracing, roost};
use libp2p::PeerId;
use roost::Content;
use roost::store::MessageState;
use roost::wire::mailbox::{MailboxRequest, MailboxResponse};
use roost::wire::message::{Envelope, MessageId};

/// A `roost daemon` running under `strace -f`, its `fdatasync`s logged to
/// `trace`. Dropping it kills the daemon with SIGKILL; strace then exits.
struct TracedDaemon {
    dir: tempfile::TempDir,
    id: PeerId,
    trace: PathBuf,
    strace: std::cell::RefCell<Child>,
}

impl TracedDaemon {
    async fn start() -> Self {
        match Command::new("strace").arg("-V").output() {
            Ok(out) if out.status.success() => {}
            other => panic!(
                "this test needs strace to watch the daemon's fdatasync calls; install it \
                 (e.g. `apt-get install strace`): `strace -V` gave {other:?}"
            ),
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let init = roost(dir.path(), &["--json", "init"]);
        let v: serde_json::Value = serde_json::from_slice(&init.stdout).expect("init prints JSON");
        let id = v["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("init prints the ID");
        let trace = dir.path().join("strace.out");
        let errors = std::fs::File::create(dir.path().join("strace.err")).expect("strace.err");
        let strace = Command::new("strace")
            .args(["-f", "-qq", "-y", "--seccomp-bpf"])
            .args(["-e", "trace=fdatasync", "-e", "signal=none", "-o"])
            .arg(&trace)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_roost"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .env_remove("ROOST_HOME")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(errors)
            .spawn()
            .expect("start strace");
        let d = Self {
            dir,
            id,
            trace,
            strace: std::cell::RefCell::new(strace),
        };
        eventually("the traced daemon answers `roost status`", || async {
            let exited = d.strace.borrow_mut().try_wait();
            if let Ok(Some(status)) = exited {
                let err = std::fs::read_to_string(d.dir.path().join("strace.err"));
                panic!("strace exited ({status}): {err:?}");
            }
            roost(d.dir.path(), &["--json", "status"])
                .status
                .success()
                .then_some(())
        })
        .await;
        d
    }

    /// A file of the store, as strace names it (`-y` prints resolved
    /// paths): `journal`, or sled's log `db`.
    fn store_file(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join(roost::node::DB_DIR)
            .join(name)
            .canonicalize()
            .expect("the store's file exists")
    }

    /// Completed, successful `fdatasync` calls on the journal or sled's
    /// log so far.
    fn syncs(&self) -> usize {
        let text = std::fs::read_to_string(&self.trace).expect("read the strace output");
        ["journal", "db"]
            .iter()
            .map(|f| count_syncs(&text, &self.store_file(f)))
            .sum()
    }

    async fn addr(&self) -> libp2p::Multiaddr {
        let out = roost(self.dir.path(), &["--json", "status"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        v["addrs"][0]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("status shows an address")
    }
}

impl Drop for TracedDaemon {
    /// Kills the daemon, not strace: killed, strace would detach from the
    /// daemon and leave it running. The daemon is strace's child whose
    /// command line names this data dir (strace also forks short-lived
    /// children of its own while it starts).
    fn drop(&mut self) {
        let strace = self.strace.get_mut();
        let children = format!("/proc/{0}/task/{0}/children", strace.id());
        let dir = self.dir.path().as_os_str().as_encoded_bytes();
        let daemons = std::fs::read_to_string(children).unwrap_or_default();
        let mut killed = false;
        for pid in daemons
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if pid > 0 && cmdline.windows(dir.len()).any(|w| w == dir) {
                // SAFETY: kill(2) on our own grandchild; no memory involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = true;
            }
        }
        if !killed {
            let _ = strace.kill();
        }
        let _ = strace.wait();
    }
}

/// Counts `fdatasync(<fd></path/to/log>) = 0` in strace `-f` output,
/// including a call split by another thread's line into `<unfinished ...>`
/// and `<... fdatasync resumed>` halves.
fn count_syncs(trace: &str, log: &Path) -> usize {
    let target = format!("<{}>)", log.display());
    let target_open = format!("<{}>", log.display());
    let mut pending = HashSet::new();
    let mut n = 0;
    for line in trace.lines() {
        let line = line.trim_end();
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        let ok = line.ends_with("= 0");
        if call.starts_with("fdatasync(") {
            if call.ends_with("<unfinished ...>") {
                if call.contains(&target_open) {
                    pending.insert(pid.to_string());
                }
            } else if ok && call.contains(&target) {
                n += 1;
            }
        } else if call.starts_with("<... fdatasync resumed>") && pending.remove(pid) && ok {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ack_and_stored_follows_an_fdatasync_of_the_store() {
    init_tracing();
    let bob = TracedDaemon::start().await;
    let alice = TestNode::start(&[bob.addr().await]).await;
    eventually("Alice finds Bob", || async {
        alice.handle.find(bob.id).await.expect("node running")
    })
    .await;

    for i in 0..5 {
        let before = bob.syncs();
        let id = alice
            .handle
            .send(bob.id, Content::text(format!("durable {i}")))
            .await
            .expect("send");
        eventually("Alice sees the message delivered (Bob's ack)", || async {
            let conv = alice.handle.conversation(bob.id, 100).await.ok()?;
            conv.iter()
                .any(|m| m.id == id && m.state == MessageState::Delivered)
                .then_some(())
        })
        .await;
        let after = bob.syncs();
        assert!(
            after > before,
            "message {i} was acknowledged with no fdatasync of {} since it was sent \
             ({before} before, {after} after)",
            bob.store_file("journal").display()
        );
    }

    // As a mailbox holder, Bob says "stored" only after a sync too.
    let a = alice.handle.peer_id();
    let before = bob.syncs();
    let envelope = Envelope {
        id: MessageId::random(),
        to: PeerId::random().to_bytes(),
        from: a.to_bytes(),
        nonce: [0; 24],
        sealed: vec![7; 300],
    };
    let answer = alice
        .handle
        .net()
        .mailbox(bob.id, MailboxRequest::Deposit(vec![envelope]))
        .await
        .expect("Bob answers the deposit");
    assert_eq!(answer, MailboxResponse::Deposited(vec![None]));
    let after = bob.syncs();
    assert!(
        after > before,
        "the deposit was answered `stored` with no fdatasync of the journal \
         ({before} before, {after} after)"
    );

    alice.handle.shutdown().await.expect("shutdown");
}

#[test]
fn strace_lines_are_counted_whole_or_split() {
    let log = Path::new("/d/db/db");
    let trace = "\
1 fdatasync(9</d/db/db>) = 0
2 fdatasync(9</d/db/db> <unfinished ...>
3 fdatasync(4</d/other>) = 0
2 <... fdatasync resumed>) = 0
3 fdatasync(9</d/db/db>) = -1 EIO (Input/output error)
4 fdatasync(9</d/db/db.old>) = 0
";
    assert_eq!(count_syncs(trace, log), 2);
}
