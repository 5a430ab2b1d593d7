//! Shared helpers for integration tests: real nodes over TCP on 127.0.0.1
//! with real sled stores in temp dirs, and event-polling with a deadline.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use libp2p::Multiaddr;
use roost::{Config, Identity, Node, NodeHandle};
use tempfile::TempDir;

pub mod api;
pub mod cli;
pub mod fake_holder;
pub mod fake_http;
pub mod groups;
pub mod nat;
pub mod netns;
pub mod presence;
pub mod random;
pub mod raw;

/// How long any condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running node and the temp dir that holds its data.
pub struct TestNode {
    pub dir: TempDir,
    pub handle: NodeHandle,
}

impl TestNode {
    /// A fresh identity in a new temp dir, started with `bootstrap`.
    pub async fn start(bootstrap: &[Multiaddr]) -> Self {
        let dir = new_dir();
        let handle = start_in(&dir, bootstrap).await;
        Self { dir, handle }
    }

    /// Starts the identity in `dir` as a DHT client only: it holds no
    /// one's mailbox, and others' lookups never reach it, so it connects
    /// only to whom it dials itself.
    pub async fn start_client(dir: TempDir, bootstrap: &[Multiaddr]) -> Self {
        let handle = start_with(&dir, bootstrap, |c| {
            c.dht_mode = roost::config::DhtMode::Client;
        })
        .await;
        Self { dir, handle }
    }

    /// Starts a node for an identity chosen by the test.
    pub async fn start_as(identity: &Identity, bootstrap: &[Multiaddr]) -> Self {
        let dir = dir_for(identity);
        let handle = start_in(&dir, bootstrap).await;
        Self { dir, handle }
    }

    /// Stops the node and starts it again on the same data dir.
    pub async fn restart(&mut self, bootstrap: &[Multiaddr]) {
        self.handle.shutdown().await.expect("shutdown");
        self.handle = start_in(&self.dir, bootstrap).await;
    }

    /// An address others can bootstrap from.
    pub async fn addr(&self) -> Multiaddr {
        self.handle.dial_addrs().await.expect("addrs").remove(0)
    }
}

/// Starts a node on an existing data dir.
pub async fn start_in(dir: &TempDir, bootstrap: &[Multiaddr]) -> NodeHandle {
    start_with(dir, bootstrap, |_| {}).await
}

/// Starts a node on an existing data dir with adjusted settings.
pub async fn start_with(
    dir: &TempDir,
    bootstrap: &[Multiaddr],
    adjust: impl FnOnce(&mut Config),
) -> NodeHandle {
    let mut config = Config::local(dir.path().to_path_buf());
    config.bootstrap = bootstrap.to_vec();
    adjust(&mut config);
    Node::start(config).await.expect("node starts")
}

/// A new temp dir holding a fresh identity, not started yet.
pub fn new_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    Identity::create_in(dir.path()).expect("identity");
    dir
}

/// A data dir holding `identity`, not started yet.
pub fn dir_for(identity: &Identity) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    identity.save_new_in(dir.path()).expect("identity");
    dir
}

/// Polls `check` every 50 ms until it yields `Some`, failing the test with
/// `what` after [`DEADLINE`]. Waits for an event, never for a fixed time.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually`] with a deadline of its own, for waits on a lot of work.
pub async fn eventually_within<T, F, Fut>(deadline: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_within(deadline, check).await {
        Some(v) => v,
        None => panic!("timed out after {deadline:?} waiting for: {what}"),
    }
}

/// Polls `check` every 50 ms until it yields `Some`, or `None` once
/// `deadline` has passed: for a caller that counts a timeout as an
/// outcome (the benchmarks) instead of failing.
pub async fn poll_within<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Runs the real `roost` binary on data dir `dir`.
pub fn roost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ROOST_HOME")
        .env_remove("RUST_LOG")
        .output()
        .expect("run roost")
}

/// Starts `roost daemon` on `dir` (loopback, ephemeral port, no mDNS, no
/// UPnP), serving the DHT: loopback peers can all dial it, and AutoNAT
/// would not call a loopback address public.
pub fn spawn_daemon(dir: &Path, bootstrap: Option<&str>) -> Child {
    let launch = Launch {
        bootstrap: bootstrap.map(str::to_string).into_iter().collect(),
        ..Launch::default()
    };
    launch.spawn(dir)
}

/// Where and how a `roost daemon` runs: the loopback defaults of
/// [`spawn_daemon`], or inside a network namespace of a NAT topology
/// (see `netns.rs`) on the addresses given there.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// The network namespace to run in (`ip netns exec`); `None` runs in
    /// the test's own.
    pub netns: Option<String>,
    /// `--listen` addresses; loopback TCP on an ephemeral port when empty.
    pub listen: Vec<String>,
    /// `--bootstrap` addresses.
    pub bootstrap: Vec<String>,
    /// Further `roost daemon` arguments.
    pub args: Vec<String>,
    /// Where the daemon's stderr (its log) goes; discarded when `None`.
    pub log: Option<std::path::PathBuf>,
}

impl Launch {
    /// Starts `roost daemon` (no mDNS) on data dir `dir`; in the test's
    /// own namespace also without UPnP and as a DHT server, in a topology's
    /// namespace with the defaults.
    pub fn spawn(&self, dir: &Path) -> Child {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns])
                    .arg(env!("CARGO_BIN_EXE_roost"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_roost")),
        };
        cmd.arg("--data-dir").arg(dir).args(["daemon", "--no-mdns"]);
        if self.netns.is_none() {
            // Loopback: every peer can dial it, but AutoNAT would never call
            // a loopback address public, so it serves the DHT by decree.
            cmd.args(["--no-upnp", "--dht-mode", "server"]);
        }
        if self.listen.is_empty() {
            cmd.args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
        }
        for a in &self.listen {
            cmd.args(["--listen", a]);
        }
        for b in &self.bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        let stderr = match &self.log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("daemon log file")),
            None => Stdio::null(),
        };
        cmd.args(&self.args)
            .env_remove("ROOST_HOME")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start roost daemon")
    }
}

/// Waits until `node` has the message `id` from `from`.
pub async fn arrives(node: &NodeHandle, from: libp2p::PeerId, id: roost::wire::message::MessageId) {
    arrives_within(DEADLINE, node, from, id).await
}

/// [`arrives`] with a deadline of its own, for a path that takes longer.
pub async fn arrives_within(
    deadline: Duration,
    node: &NodeHandle,
    from: libp2p::PeerId,
    id: roost::wire::message::MessageId,
) {
    eventually_within(deadline, "the message arrives", || async {
        let conv = node.conversation(from, 10_000).await.expect("node running");
        conv.iter().any(|m| m.id == id).then_some(())
    })
    .await
}

/// Whether `node` holds a buddy request from `from`.
pub async fn has_buddy_request(node: &NodeHandle, from: libp2p::PeerId) -> bool {
    let requests = node.buddy_requests().await.expect("node running");
    requests.iter().any(|r| r.peer == from.to_bytes())
}

/// Waits until `node` holds a buddy request from `from`.
pub async fn buddy_request_arrives(node: &NodeHandle, from: libp2p::PeerId) {
    eventually("the buddy request arrives", || async {
        has_buddy_request(node, from).await.then_some(())
    })
    .await
}

/// The state of our message `id` in the conversation with `peer`.
pub async fn state_of(
    node: &NodeHandle,
    peer: libp2p::PeerId,
    id: roost::wire::message::MessageId,
) -> Option<roost::store::MessageState> {
    node.conversation(peer, 100)
        .await
        .expect("node running")
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| m.state)
}

/// Waits until our message `id` to `peer` is in `state`.
pub async fn reaches_state(
    node: &NodeHandle,
    peer: libp2p::PeerId,
    id: roost::wire::message::MessageId,
    state: roost::store::MessageState,
    what: &str,
) {
    eventually(what, || async {
        (state_of(node, peer, id).await == Some(state)).then_some(())
    })
    .await;
}

/// An honest node and a second one that joined through it and can reach it.
pub async fn honest_and_other() -> (TestNode, TestNode) {
    let honest = TestNode::start(&[]).await;
    let other = TestNode::start(&[honest.addr().await]).await;
    let target = honest.handle.peer_id();
    eventually("the second node finds the honest one", || async {
        other.handle.find(target).await.expect("node running")
    })
    .await;
    (honest, other)
}

/// A `roost daemon` child process on a temp data dir that outlives it, so
/// a test can kill it with SIGKILL (which an in-process node cannot get)
/// and start it again on the same data. Killed when dropped.
pub struct Daemon {
    pub dir: TempDir,
    pub id: libp2p::PeerId,
    launch: Launch,
    child: Option<Child>,
}

impl Daemon {
    /// `self` and `other` add each other by `roost buddy add`: `self`
    /// calls the other `other_name`, the other calls `self` `name`.
    pub fn befriend(&self, name: &str, other: &Daemon, other_name: &str) {
        self.rows(&["buddy", "add", &other.id.to_string(), "--name", other_name]);
        other.rows(&["buddy", "add", &self.id.to_string(), "--name", name]);
    }

    /// `roost init` in a new temp dir, then starts the daemon and waits
    /// until it answers.
    pub async fn start(bootstrap: Option<&Multiaddr>) -> Self {
        let launch = Launch {
            bootstrap: bootstrap.map(|b| b.to_string()).into_iter().collect(),
            ..Launch::default()
        };
        Self::start_with(launch).await
    }

    /// [`Daemon::start`] launched as `launch` says.
    pub async fn start_with(launch: Launch) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = roost(dir.path(), &["--json", "init"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("init prints JSON");
        let id = v["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("init prints the ID");
        let mut d = Self {
            dir,
            id,
            launch,
            child: None,
        };
        d.restart().await;
        d
    }

    /// Starts the daemon on its data dir (again) and waits until it answers.
    pub async fn restart(&mut self) {
        self.child = Some(self.launch.spawn(self.dir.path()));
        self.status().await;
    }

    /// Stops the daemon, writes `toml` as its `config.toml` and starts it
    /// again: a daemon with settings of its own, already a buddy.
    pub async fn restart_with_config(&mut self, toml: &str) {
        self.kill();
        std::fs::write(self.dir.path().join("config.toml"), toml).expect("write config.toml");
        self.restart().await;
    }

    /// `roost --json status`, once the daemon answers it.
    pub async fn status(&self) -> serde_json::Value {
        eventually("the daemon answers `roost status`", || async {
            let out = roost(self.dir.path(), &["--json", "status"]);
            if !out.status.success() {
                return None;
            }
            serde_json::from_slice(&out.stdout).ok()
        })
        .await
    }

    /// Mailbox items it holds for others, as `roost status` shows them.
    pub async fn held(&self) -> u64 {
        self.status().await["held"]
            .as_u64()
            .expect("status shows `held`")
    }

    /// `roost --json ARGS` run as a user would, which must succeed: every
    /// line of its output as one JSON value.
    pub fn rows(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = roost(self.dir.path(), &full);
        assert!(
            out.status.success(),
            "roost {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    /// An address others can bootstrap from.
    pub async fn addr(&self) -> Multiaddr {
        self.status().await["addrs"][0]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("status shows an address")
    }

    /// Stops the daemon with SIGSTOP: it answers nothing until killed, so a
    /// test knows which requests it cannot have answered.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            let pid = i32::try_from(child.id()).expect("a pid fits i32");
            // SAFETY: kill(2) with a pid we spawned and have not reaped.
            let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
            assert_eq!(rc, 0, "SIGSTOP the daemon");
            // The signal is delivered asynchronously: wait until every
            // thread of the daemon is stopped (state `T` in /proc).
            let tasks = format!("/proc/{pid}/task");
            let all_stopped = || {
                std::fs::read_dir(&tasks)
                    .expect("the daemon's /proc")
                    .all(|t| {
                        let stat = t
                            .ok()
                            .and_then(|t| std::fs::read_to_string(t.path().join("stat")).ok());
                        // `pid (comm) S …`: the state follows the last ')'.
                        stat.and_then(|s| {
                            s.rsplit(')')
                                .next()
                                .map(|r| r.trim_start().starts_with('T'))
                        })
                        .unwrap_or(false)
                    })
            };
            let start = std::time::Instant::now();
            while !all_stopped() {
                assert!(
                    start.elapsed() < DEADLINE,
                    "the daemon did not stop on SIGSTOP"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Kills the process with SIGKILL and reaps it; a no-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
            child.wait().expect("reap the daemon");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
