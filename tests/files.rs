//! [files] File transfer between real daemons on 127.0.0.1: offers through
//! the message path, content over `/roost/files/1`, verified against the
//! BLAKE3 root as it streams, resumed after SIGKILL of either side, and a
//! lying source dropped. The received file is compared byte for byte and
//! by its BLAKE3 hash with what was sent (no SHA-256: byte equality
//! already implies every hash agrees).
//!
//! A test catches a transfer part way with the `test-util` hook
//! `<data-dir>/files/.test-serve-delay-ms` (a pause before each 1 MiB
//! piece served); the bytes a sender put on the wire are counted by the
//! sender (`served` in `roost files`), never inferred.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Daemon, eventually, eventually_within, init_tracing, random};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
const LONG: Duration = Duration::from_secs(180);

/// A file `name` in `dir` of `len` pseudo-random bytes, different for
/// each `seed`.
fn random_file(dir: &Path, name: &str, len: u64, seed: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, random::bytes(len as usize, seed)).unwrap();
    p
}

/// A hub that stays up, and Alice and Bob joined through it, buddies
/// both ways: either of them can restart and be found again.
async fn trio() -> (Daemon, Daemon, Daemon) {
    let hub = Daemon::start(None).await;
    let alice = Daemon::start(Some(&hub.addr().await)).await;
    let bob = Daemon::start(Some(&hub.addr().await)).await;
    alice.befriend("alice", &bob, "bob");
    (hub, alice, bob)
}

/// Makes `d` pause `ms` before each 1 MiB piece it serves.
fn delay(d: &Daemon, ms: u64) {
    std::fs::write(
        d.dir.path().join("files/.test-serve-delay-ms"),
        ms.to_string(),
    )
    .unwrap();
}

/// The row of file `id` in `roost files`, once it is there.
async fn row(d: &Daemon, id: &str) -> Value {
    eventually("the file is listed", || async {
        let out = common::roost(d.dir.path(), &["--json", "files"]);
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["id"] == id)
    })
    .await
}

/// Waits until `pred` holds for the row of file `id`.
async fn until(d: &Daemon, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually_within(LONG, what, || async {
        let r = row(d, id).await;
        assert_ne!(r["state"], "failed", "{what}: the transfer failed: {r}");
        pred(&r).then_some(r)
    })
    .await
}

/// `roost send NAME --file PATH`: the file id.
fn offer(from: &Daemon, to: &str, path: &Path) -> String {
    let sent = from.rows(&["send", to, "--file", path.to_str().unwrap()]);
    assert_eq!(sent[0]["state"], "queued", "{sent:?}");
    assert!(sent[0]["id"].is_string());
    sent[0]["file"]["id"].as_str().unwrap().to_string()
}

/// Waits until `d` lists file `id` as offered: its row then.
async fn sees_offer(d: &Daemon, id: &str) -> Value {
    until(d, id, "the offer is listed", |r| r["state"] == "offered").await
}

/// `roost files get ID --out OUT` on `d`, which must succeed.
fn get(d: &Daemon, id: &str, out: &Path) {
    d.rows(&["files", "get", id, "--out", out.to_str().unwrap()]);
}

/// Waits until `d` has file `id` complete: its row then.
async fn completes(d: &Daemon, id: &str) -> Value {
    until(d, id, "the file completes", |r| r["state"] == "complete").await
}

/// Waits until at least 40 % of file `id` (of `size` bytes) is at `d`:
/// its row then.
async fn at_40_percent(d: &Daemon, id: &str, size: u64) -> Value {
    until(d, id, "40 % arrived", |r| {
        r["done"].as_u64().unwrap() >= size * 4 / 10
    })
    .await
}

/// The bytes of file `id` that `d` counts as served.
async fn served_by(d: &Daemon, id: &str) -> u64 {
    row(d, id).await["served"].as_u64().unwrap()
}

/// Waits until `d` has two sources for file `id`: its row then.
async fn merges(d: &Daemon, id: &str) -> Value {
    until(d, id, "both offers merge", |r| r["sources"] == 2).await
}

/// Carol, joined through `hub` and a buddy of Bob's both ways: a second
/// source for what she offers him.
async fn carol_for(hub: &Daemon, bob: &Daemon) -> Daemon {
    let carol = Daemon::start(Some(&hub.addr().await)).await;
    carol.befriend("carol", bob, "bob");
    carol
}

/// `a` and `b` hold files of the same bytes (same size, same BLAKE3).
fn same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(x.len(), y.len(), "sizes");
    assert_eq!(blake3::hash(&x), blake3::hash(&y), "BLAKE3");
    assert!(x == y, "the bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_file_arrives_verified() {
    init_tracing();
    let (_hub, alice, bob) = trio().await;
    let tmp = tempfile::tempdir().unwrap();
    let src = random_file(tmp.path(), "big.bin", 50 * MIB, 1);
    let id = offer(&alice, "bob", &src);
    let offered = sees_offer(&bob, &id).await;
    assert_eq!(offered["size"], 50 * MIB);
    assert_eq!(offered["name"], "big.bin");
    assert_eq!(offered["direction"], "in");
    assert_eq!(offered["peer"], alice.id.to_string());
    assert_eq!(
        offered["blake3"],
        blake3::hash(&std::fs::read(&src).unwrap())
            .to_hex()
            .as_str()
    );
    let out = tmp.path().join("received.bin");
    get(&bob, &id, &out);
    let done = completes(&bob, &id).await;
    assert_eq!(done["done"], 50 * MIB);
    same_file(&src, &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_refuses_an_out_that_exists_and_leaves_it_alone() {
    init_tracing();
    let (_hub, alice, bob) = trio().await;
    let tmp = tempfile::tempdir().unwrap();
    // Up to 32 MiB a buddy's file is taken at once; this one waits for `get`.
    let src = random_file(tmp.path(), "big.bin", 33 * MIB, 3);
    let id = offer(&alice, "bob", &src);
    sees_offer(&bob, &id).await;
    let taken = tmp.path().join("taken.txt");
    std::fs::write(&taken, b"keep me").unwrap();
    let out = common::roost(
        bob.dir.path(),
        &["files", "get", &id, "--out", taken.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("already exists"), "{said}");
    // A get to a free place completes: the refused one started nothing
    // that would later land on the existing file.
    let free = tmp.path().join("free.bin");
    get(&bob, &id, &free);
    completes(&bob, &id).await;
    same_file(&src, &free);
    assert_eq!(std::fs::read(&taken).unwrap(), b"keep me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_killed_at_40_percent_resumes_without_refetching() {
    init_tracing();
    let (_hub, alice, mut bob) = trio().await;
    let tmp = tempfile::tempdir().unwrap();
    let size = 50 * MIB;
    let src = random_file(tmp.path(), "big.bin", size, 2);
    delay(&alice, 60);
    let id = offer(&alice, "bob", &src);
    sees_offer(&bob, &id).await;
    let out = tmp.path().join("received.bin");
    get(&bob, &id, &out);
    let at = at_40_percent(&bob, &id, size).await;
    bob.kill();
    let done_at_kill = at["done"].as_u64().unwrap();
    assert!(done_at_kill < size, "killed part way");
    bob.restart().await;
    completes(&bob, &id).await;
    same_file(&src, &out);
    let served = served_by(&alice, &id).await;
    assert!(
        served < size + size / 10,
        "Alice sent {served} bytes for a file of {size}: more than 10 % twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_killed_and_restarted_resumes() {
    init_tracing();
    let (_hub, mut alice, bob) = trio().await;
    let tmp = tempfile::tempdir().unwrap();
    let size = 50 * MIB;
    let src = random_file(tmp.path(), "big.bin", size, 3);
    delay(&alice, 60);
    let id = offer(&alice, "bob", &src);
    sees_offer(&bob, &id).await;
    let out = tmp.path().join("received.bin");
    get(&bob, &id, &out);
    at_40_percent(&bob, &id, size).await;
    alice.kill();
    alice.restart().await;
    completes(&bob, &id).await;
    same_file(&src, &out);
    // Alice's count starts again at her restart: she sent only the rest.
    let served = served_by(&alice, &id).await;
    assert!(
        served < size * 7 / 10,
        "Alice sent {served} bytes after her restart, for a file of {size}: not resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_source_is_dropped_and_the_file_completes_from_another() {
    init_tracing();
    let (hub, alice, bob) = trio().await;
    let carol = carol_for(&hub, &bob).await;
    std::fs::write(carol.dir.path().join("files/.test-corrupt"), "").unwrap();
    delay(&alice, 20);
    let tmp = tempfile::tempdir().unwrap();
    let size = 40 * MIB;
    let src = random_file(tmp.path(), "same.bin", size, 4);
    let id = offer(&alice, "bob", &src);
    offer(&carol, "bob", &src);
    // One transfer with both as sources (same content, same root).
    let r = merges(&bob, &id).await;
    assert_eq!(r["state"], "offered");
    let out = tmp.path().join("received.bin");
    get(&bob, &id, &out);
    let done = completes(&bob, &id).await;
    same_file(&src, &out);
    assert_eq!(done["dropped"], 1, "Carol is dropped: {done}");
    let rows = carol.rows(&["files"]);
    let lied = rows[0]["served"].as_u64().unwrap();
    assert!(lied > 0, "Carol was asked and sent a corrupt piece");
    assert!(
        lied <= 2 * MIB,
        "Carol sent {lied} bytes: she was not dropped after her first corrupt piece"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_buddy_gets_a_small_image_from_the_mailboxes() {
    init_tracing();
    let (hub, mut alice, mut bob) = trio().await;
    bob.kill();
    let tmp = tempfile::tempdir().unwrap();
    let src = random_file(tmp.path(), "photo.png", 200 * 1024, 5);
    let sent = alice.rows(&["send", "bob", "--file", src.to_str().unwrap()]);
    let id = sent[0]["file"]["id"].as_str().unwrap().to_string();
    // Every message of the offer is deposited with a mailbox holder (the
    // hub) before Alice goes away.
    eventually_within(LONG, "Alice's offer is in Bob's mailboxes", || async {
        let log = alice.rows(&["log", "bob", "--limit", "100"]);
        (!log.is_empty() && log.iter().all(|m| m["state"] == "stored")).then_some(())
    })
    .await;
    assert!(hub.held().await > 0, "the hub holds Bob's mailbox");
    alice.kill();
    bob.restart().await;
    let done = until(&bob, &id, "the image arrives", |r| r["state"] == "complete").await;
    assert_eq!(done["mime"], "image/png");
    assert_eq!(done["name"], "photo.png");
    let path = PathBuf::from(done["path"].as_str().unwrap());
    assert!(path.starts_with(bob.dir.path().join("files")), "{path:?}");
    same_file(&src, &path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_move_into_place_does_not_fetch_again() {
    init_tracing();
    let (_hub, alice, mut bob) = trio().await;
    let tmp = tempfile::tempdir().unwrap();
    // A buddy's file under `auto_accept_mib`, above `inline_kib`: it comes
    // over the stream by itself and lands under Bob's `files/`.
    let size = 4 * MIB;
    let src = random_file(tmp.path(), "landed.bin", size, 6);
    let hook = bob.dir.path().join("files/.test-crash-after-move");
    std::fs::write(&hook, "").unwrap();
    let id = offer(&alice, "bob", &src);
    let landed = bob.dir.path().join("files/landed.bin");
    eventually_within(LONG, "Bob dies right after the move", || async {
        let answers = common::roost(bob.dir.path(), &["--json", "status"])
            .status
            .success();
        (landed.exists() && !answers).then_some(())
    })
    .await;
    bob.kill();
    std::fs::remove_file(&hook).unwrap();
    let sent = served_by(&alice, &id).await;
    assert!(sent >= size, "Alice sent the whole file once: {sent}");
    bob.restart().await;
    let done = until(&bob, &id, "the file is complete", |r| {
        r["state"] == "complete"
    })
    .await;
    assert_eq!(PathBuf::from(done["path"].as_str().unwrap()), landed);
    same_file(&src, &landed);
    assert!(
        !bob.dir.path().join("files/landed.bin (1)").exists(),
        "no second copy"
    );
    let again = served_by(&alice, &id).await;
    assert_eq!(again, sent, "Alice was asked for the file again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_source_loses_its_piece_to_another_after_the_deadline() {
    init_tracing();
    let (hub, alice, bob) = trio().await;
    let carol = carol_for(&hub, &bob).await;
    // Carol answers, but a 1 MiB piece would take her about a minute (a
    // KiB every 50 ms: no read waits long enough to time out); Bob gives
    // a piece 1 s while another source could take it.
    std::fs::write(carol.dir.path().join("files/.test-serve-trickle-ms"), "50").unwrap();
    std::fs::write(bob.dir.path().join("files/.test-piece-deadline-ms"), "1000").unwrap();
    // Alice is slow enough per piece that Carol is asked for one too.
    delay(&alice, 100);
    let tmp = tempfile::tempdir().unwrap();
    // Above `auto_accept_mib`: the download starts on `get`, with both
    // sources known.
    let size = 40 * MIB;
    let src = random_file(tmp.path(), "slow.bin", size, 7);
    let id = offer(&alice, "bob", &src);
    offer(&carol, "bob", &src);
    merges(&bob, &id).await;
    let out = tmp.path().join("received.bin");
    get(&bob, &id, &out);
    completes(&bob, &id).await;
    same_file(&src, &out);
    // Carol counts each write as it goes out.
    let carol_sent = carol.rows(&["files"])[0]["served"].as_u64().unwrap();
    assert!(carol_sent > 0, "Carol was asked for a piece");
    assert!(
        carol_sent < MIB,
        "Carol sent {carol_sent} bytes: the file waited for her whole piece"
    );
}

/// A small file comes both ways at once: in its mailbox parts and over
/// the stream (its download). The parts verify the file; the download,
/// started meanwhile, is moving it into place when the parts' side
/// cancels it. The file still lands once, complete, and no partial file
/// is left behind. Holds order the two paths: Alice serves nothing until
/// the parts verified the file; the parts' side then waits until the
/// download has moved the file; the end of the move waits until the
/// parts' side cancelled the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cancelled_while_it_moves_the_file_leaves_it_complete() {
    init_tracing();
    let (_hub, alice, bob) = trio().await;
    let files = bob.dir.path().join("files");
    let hold = |name: &str| files.join(format!(".test-hold-{name}"));
    let at = |name: &str| files.join(format!(".test-at-{name}"));
    let serving = alice.dir.path().join("files/.test-hold-serve");
    std::fs::write(&serving, "").unwrap();
    std::fs::write(hold("verified"), "").unwrap();
    std::fs::write(hold("moved"), "").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = random_file(tmp.path(), "notes.bin", 150 * 1024, 8);
    let id = offer(&alice, "bob", &src);
    eventually_within(LONG, "the parts verified the file", || async {
        at("verified").exists().then_some(())
    })
    .await;
    std::fs::remove_file(&serving).unwrap();
    eventually_within(LONG, "the download moved the file", || async {
        at("moved").exists().then_some(())
    })
    .await;
    std::fs::remove_file(hold("verified")).unwrap();
    eventually_within(LONG, "the parts' side cancelled the download", || async {
        at("parts-complete").exists().then_some(())
    })
    .await;
    std::fs::remove_file(hold("moved")).unwrap();
    let done = completes(&bob, &id).await;
    let landed = files.join("notes.bin");
    assert_eq!(PathBuf::from(done["path"].as_str().unwrap()), landed);
    same_file(&src, &landed);
    let names: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "notes.bin" || n.ends_with(".obao")),
        "one copy, no partial file: {names:?}"
    );
}
