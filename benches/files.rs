//! `cargo bench --bench files [-- --mib N]`: one file of `N` MiB (default
//! 1024) of random bytes over loopback TCP, in the same run:
//!
//! 1. **floor**: the same bytes over one bare libp2p stream (TCP + Noise +
//!    Yamux, `benches/common/bare.rs`) in this process, read from the
//!    source file and written to a file, synced at the end;
//! 2. **roost**: two real `roost daemon` processes, buddies; the sender
//!    offers the file, the receiver `roost files get`s it; timed from the
//!    `get` to the file in place (verified, synced, renamed). The
//!    receiver's peak RSS is its own process's `VmHWM`;
//! 3. **resume**: a fresh receiver fetches the same file, is killed with
//!    SIGKILL at about 40 % and restarted; the bytes sent twice are what
//!    the sender put on the wire for it (its `served` count) less what it
//!    put on the wire for the clean transfer of phase 2.
//!
//! Prints one JSON line. Each received file is checked against the
//! source's BLAKE3 hash.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::StreamProtocol;
use serde_json::{Value, json};

mod common;
use common::{arg, bare, init_tracing};

const MIB: u64 = 1024 * 1024;
/// Longest wait for any bench condition.
const LIMIT: Duration = Duration::from_secs(900);
const FLOOR: StreamProtocol = StreamProtocol::new("/roost-bench/file-floor/1");
/// Buffer of each side of the floor (roost's side of a stream uses 128 KiB).
const BUF: usize = 128 * 1024;

fn main() {
    init_tracing();
    let mib = arg("--mib", 1024);
    let size = mib * MIB;
    // `ROOST_BENCH_DIR` puts the files on another disk than the temp dir's.
    let tmp = match std::env::var_os("ROOST_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("a scratch dir");
    let src = tmp.path().join("source.bin");
    let root = random_file(&src, size);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let floor = rt.block_on(floor(&src, &tmp.path().join("floor.bin"), root));
    drop(rt);
    let roost = transfers(tmp.path(), &src, size, root);
    let ratio = roost.mib_s / floor;
    println!(
        "{}",
        json!({
            "bench": "files",
            "mib": mib,
            "floor_mib_s": round1(floor),
            "roost_mib_s": round1(roost.mib_s),
            "ratio": (ratio * 1000.0).round() / 1000.0,
            "ratio_target": 0.8,
            "receiver_peak_rss_mib": round1(roost.peak_rss_mib),
            "receiver_rss_before_mib": round1(roost.rss_before_mib),
            "rss_target_mib": 64,
            "resume_killed_at_percent": round1(roost.killed_at * 100.0),
            "resume_sent_twice_bytes": roost.sent_twice,
            "resume_overhead_percent": (roost.sent_twice as f64 / size as f64 * 1e4).round() / 100.0,
            "clean_wire_bytes": roost.clean_wire,
        })
    );
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Writes `size` pseudo-random bytes to `path` a block at a time; returns
/// their BLAKE3 hash.
fn random_file(path: &Path, size: u64) -> blake3::Hash {
    let mut rng = common::Rng::new(23);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = blake3::Hasher::new();
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            word.copy_from_slice(&rng.next().to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        f.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    f.flush().unwrap();
    f.get_ref().sync_all().unwrap();
    hasher.finalize()
}

/// The BLAKE3 hash of the file at `path`, read a block at a time.
fn hash_of(path: &Path) -> blake3::Hash {
    let mut f = std::fs::File::open(path).unwrap();
    let mut hasher = blake3::Hasher::new();
    let mut block = vec![0u8; MIB as usize];
    loop {
        let n = f.read(&mut block).unwrap();
        if n == 0 {
            return hasher.finalize();
        }
        hasher.update(&block[..n]);
    }
}

/// The floor: the file over one bare stream into `out`, synced; MiB/s
/// from the stream's opening to the sync.
async fn floor(src: &Path, out: &Path, root: blake3::Hash) -> f64 {
    let (mut control, mut incoming, pb) = bare::connected(FLOOR).await;
    let receiver = {
        let out = out.to_path_buf();
        tokio::spawn(async move {
            let (_, mut stream) = incoming.next().await.unwrap();
            let mut f = std::fs::File::create(&out).unwrap();
            let mut buf = vec![0u8; BUF];
            let mut got = 0u64;
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                tokio::task::block_in_place(|| f.write_all(&buf[..n])).unwrap();
                got += n as u64;
            }
            tokio::task::block_in_place(|| f.sync_all()).unwrap();
            got
        })
    };
    // Connected first, so the figure is the transfer's alone.
    let mut stream = bare::open(&mut control, pb, FLOOR).await;
    let t = Instant::now();
    let mut f = std::fs::File::open(src).unwrap();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = tokio::task::block_in_place(|| f.read(&mut buf)).unwrap();
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await.unwrap();
    }
    stream.close().await.unwrap();
    let got = receiver.await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(hash_of(out), root, "the floor delivered other bytes");
    std::fs::remove_file(out).unwrap();
    got as f64 / MIB as f64 / secs
}

/// A `roost daemon` child on its own data dir, killed when dropped.
struct Daemon {
    dir: PathBuf,
    child: Option<Child>,
    bootstrap: Option<String>,
}

impl Daemon {
    fn start(dir: PathBuf, bootstrap: Option<String>) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let out = roost(&dir, &["--json", "init"]);
        assert!(out.status.success(), "roost init: {out:?}");
        // Every transfer starts on `roost files get`, whatever its size:
        // a buddy's file under `auto_accept_mib` would start by itself.
        std::fs::write(dir.join("config.toml"), "[files]\nauto_accept_mib = 0\n").unwrap();
        let mut d = Self {
            dir,
            child: None,
            bootstrap,
        };
        d.restart();
        d
    }

    fn restart(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roost"));
        cmd.arg("--data-dir").arg(&self.dir).args([
            "daemon",
            "--no-mdns",
            "--no-upnp",
            "--dht-mode",
            "server",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ]);
        if let Some(b) = &self.bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        let child = cmd
            .env_remove("ROOST_HOME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start roost daemon");
        self.child = Some(child);
        self.status();
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    fn status(&self) -> Value {
        until("the daemon answers", || {
            let out = roost(&self.dir, &["--json", "status"]);
            out.status
                .success()
                .then(|| serde_json::from_slice(&out.stdout).ok())
                .flatten()
        })
    }

    fn id(&self) -> String {
        self.status()["id"].as_str().unwrap().to_string()
    }

    fn addr(&self) -> String {
        self.status()["addrs"][0].as_str().unwrap().to_string()
    }

    /// `roost --json ARGS`, which must succeed: one JSON value per line.
    fn rows(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = roost(&self.dir, &full);
        assert!(
            out.status.success(),
            "roost {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The row of file `id` in `roost files`, if listed.
    fn file(&self, id: &str) -> Option<Value> {
        self.rows(&["files"]).into_iter().find(|r| r["id"] == id)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn roost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ROOST_HOME")
        .env_remove("RUST_LOG")
        .output()
        .expect("run roost")
}

/// Polls `f` until it gives a value; panics after [`LIMIT`].
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < LIMIT, "bench condition not reached: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process's peak resident memory so far (`VmHWM`), in MiB.
fn peak_rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024.0
}

/// What the roost phases measured.
struct Roost {
    mib_s: f64,
    peak_rss_mib: f64,
    rss_before_mib: f64,
    killed_at: f64,
    sent_twice: i64,
    clean_wire: u64,
}

fn befriend(a: &Daemon, a_name: &str, b: &Daemon, b_name: &str) {
    a.rows(&["buddy", "add", &b.id(), "--name", b_name]);
    b.rows(&["buddy", "add", &a.id(), "--name", a_name]);
}

/// The sender offers `src` to buddy `to` (a receiver in `to_node`); once
/// the receiver lists the offer, returns its file id.
fn offer(sender: &Daemon, to: &str, to_node: &Daemon, src: &Path) -> String {
    let sent = sender.rows(&["send", to, "--file", src.to_str().unwrap()]);
    let id = sent[0]["file"]["id"].as_str().unwrap().to_string();
    until("the receiver lists the offer", || {
        to_node.file(&id).filter(|r| r["state"] == "offered")
    });
    id
}

/// Bytes the sender has put on the wire for the file `id`'s content.
fn served(sender: &Daemon, id: &str) -> u64 {
    sender.file(id).unwrap()["served"].as_u64().unwrap()
}

/// Phases 2 and 3: the file between real daemons, then the resume.
fn transfers(dir: &Path, src: &Path, size: u64, root: blake3::Hash) -> Roost {
    let alice = Daemon::start(dir.join("alice"), None);
    let bob = Daemon::start(dir.join("bob"), Some(alice.addr()));
    befriend(&alice, "alice", &bob, "bob");
    let id = offer(&alice, "bob", &bob, src);
    let out = dir.join("bob.bin");
    let rss_before_mib = peak_rss_mib(&bob.pid());
    let wire0 = served(&alice, &id);
    let t = Instant::now();
    bob.rows(&["files", "get", &id, "--out", out.to_str().unwrap()]);
    // The file is renamed into place once verified and synced.
    while !out.exists() {
        assert!(t.elapsed() < LIMIT, "the file did not arrive");
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = t.elapsed().as_secs_f64();
    let peak_rss_mib = peak_rss_mib(&bob.pid());
    until("the row says complete", || {
        bob.file(&id).filter(|r| r["state"] == "complete")
    });
    let clean_wire = served(&alice, &id) - wire0;
    assert_eq!(hash_of(&out), root, "roost delivered other bytes");
    std::fs::remove_file(&out).unwrap();
    drop(bob);

    let mut carol = Daemon::start(dir.join("carol"), Some(alice.addr()));
    befriend(&alice, "alice", &carol, "carol");
    let id2 = offer(&alice, "carol", &carol, src);
    let out = dir.join("carol.bin");
    let wire1 = served(&alice, &id2);
    carol.rows(&["files", "get", &id2, "--out", out.to_str().unwrap()]);
    let done = until("40 % arrived", || {
        let r = carol.file(&id2)?;
        let done = r["done"].as_u64()?;
        (done >= size * 4 / 10).then_some(done)
    });
    carol.kill();
    let killed_at = done as f64 / size as f64;
    carol.restart();
    until("the resumed file arrives", || out.exists().then_some(()));
    until("the resumed row says complete", || {
        carol.file(&id2).filter(|r| r["state"] == "complete")
    });
    let resume_wire = served(&alice, &id2) - wire1;
    assert_eq!(hash_of(&out), root, "the resumed file differs");
    std::fs::remove_file(&out).unwrap();
    Roost {
        mib_s: size as f64 / MIB as f64 / secs,
        peak_rss_mib,
        rss_before_mib,
        killed_at,
        sent_twice: resume_wire as i64 - clean_wire as i64,
        clean_wire,
    }
}
