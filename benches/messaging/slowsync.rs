//! Part `slowsync`: the floors and roost again, with every `fsync` and
//! `fdatasync` of the process 1 ms slower — for roost and the floor alike —
//! as on a disk whose syncs are slow. A commit that waits for more than one
//! sync, or a batch that does not grow while syncs take longer, shows in
//! the ratios here before it shows on this machine's fast disk.
//!
//! The bench builds the shim (`slowsync.c`) with the system `cc` into the
//! target dir and runs itself again with `LD_PRELOAD` set to it. The child
//! checks that the shim is loaded and slows a sync before it measures
//! anything, and counts the shim's calls per part: what is reported is
//! measured, never assumed.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

/// Set in the child that runs under the shim.
pub const CHILD: &str = "ROOST_BENCH_SLOWSYNC";

/// What the shim adds to each sync.
const DELAY: Duration = Duration::from_millis(1);

/// Whether this process is the child running under the shim.
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Builds the shim and runs `floor roost` under it in a child process,
/// which prints its own lines; panics if it cannot or the child fails.
pub fn run() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).expect("target tmp dir");
    let src = dir.join("roost-slowsync.c");
    let so = dir.join("roost-slowsync.so");
    std::fs::write(&src, include_str!("slowsync.c")).expect("write the shim's source");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("run cc");
    assert!(built.success(), "cc could not build the slow-sync shim");
    let exe = std::env::current_exe().expect("the bench's own path");
    let ran = Command::new(exe)
        .args(["floor", "roost"])
        .env("LD_PRELOAD", &so)
        .env(CHILD, "1")
        .status()
        .expect("run the bench under the shim");
    assert!(ran.success(), "the bench under the slow-sync shim failed");
}

/// The shim's calls so far; `None` when it is not loaded.
pub fn calls() -> Option<u64> {
    // SAFETY: a lookup of a symbol by a NUL-terminated name; the function
    // found is the shim's `long roost_slowsync_calls(void)`.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"roost_slowsync_calls".as_ptr());
        if f.is_null() {
            return None;
        }
        let f: extern "C" fn() -> libc::c_long = std::mem::transmute(f);
        Some(f() as u64)
    }
}

/// Panics unless the shim is loaded, counts a sync, and makes it take at
/// least [`DELAY`] longer: one `fdatasync` of a scratch file, timed.
pub fn check_active() {
    let before = calls().expect("the slow-sync shim is not loaded");
    let dir = tempfile::tempdir().expect("tmp dir");
    let f = std::fs::File::create(dir.path().join("probe")).expect("probe file");
    std::io::Write::write_all(&mut &f, b"probe").expect("probe write");
    let t = Instant::now();
    f.sync_data().expect("probe fdatasync");
    let took = t.elapsed();
    let after = calls().expect("shim loaded");
    assert_eq!(after, before + 1, "the shim did not count the probe's sync");
    assert!(took >= DELAY, "a sync under the shim took only {took:?}");
    println!(
        "{}",
        json!({"part": "slowsync", "shim": "active", "probe_sync_us": (took.as_secs_f64() * 1e6).round()})
    );
}
