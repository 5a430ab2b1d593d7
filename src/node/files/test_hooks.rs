//! Hooks for tests and benches (the `test-util` feature), set by files in
//! `<data-dir>/files/` so a test can set them for one daemon: a delay
//! before each piece served (`.test-serve-delay-ms`), so a test can catch
//! a transfer part way; a serving side that flips one bit of what it
//! sends (`.test-corrupt`), a lying source; a source that sends each KiB
//! after a pause (`.test-serve-trickle-ms`); a deadline per piece fetched
//! (`.test-piece-deadline-ms`); and a crash right after a finished
//! download is moved into place (`.test-crash-after-move`); and named
//! holds (`.test-hold-<name>`), where a node marks its arrival
//! (`.test-at-<name>`) and waits while the file is there, so a test can
//! order two of a node's paths.

use std::io::{self, Write};
use std::path::Path;

/// The number in hook file `name` of `dir`, if it is there.
fn number(dir: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// The delay before serving each piece, if set.
pub fn serve_delay_ms(dir: &Path) -> Option<u64> {
    number(dir, ".test-serve-delay-ms")
}

/// Whether this node aborts (as a `kill -9` would stop it: no cleanup)
/// right after moving a finished download into place, before its row
/// says so (`.test-crash-after-move`).
pub fn crash_after_move(dir: &Path) -> bool {
    dir.join(".test-crash-after-move").exists()
}

/// How often a held path looks whether its hold is lifted.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Marks that this node reached point `name` (one line more in
/// `.test-at-<name>`), so a test can wait for it.
pub fn mark(dir: &Path, name: &str) {
    let at = dir.join(format!(".test-at-{name}"));
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(at)
        .and_then(|mut f| f.write_all(b"1\n"));
    if let Err(e) = appended {
        tracing::warn!("test hook {name}: {e}");
    }
}

/// At point `name`, if `.test-hold-<name>` exists: marks the arrival,
/// then blocks this thread while the hold is there.
pub fn hold(dir: &Path, name: &str) {
    if held(dir, name) {
        while held_at(dir, name).exists() {
            std::thread::sleep(HOLD_POLL);
        }
    }
}

/// Whether point `name` is held (`.test-hold-<name>` exists); if so, marks
/// the arrival.
pub fn held(dir: &Path, name: &str) -> bool {
    let held = held_at(dir, name).exists();
    if held {
        mark(dir, name);
    }
    held
}

/// Resolves once point `name` is no longer held.
pub async fn lifted(dir: &Path, name: &str) {
    while held_at(dir, name).exists() {
        tokio::time::sleep(HOLD_POLL).await;
    }
}

fn held_at(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!(".test-hold-{name}"))
}

/// The base deadline of a piece this node fetches, if set
/// (`.test-piece-deadline-ms`).
pub fn piece_deadline_ms(dir: &Path) -> Option<u64> {
    number(dir, ".test-piece-deadline-ms")
}

/// The pause before each KiB this node serves, if set
/// (`.test-serve-trickle-ms`): a source that answers, but slowly.
pub fn trickle_ms(dir: &Path) -> Option<u64> {
    number(dir, ".test-serve-trickle-ms")
}

/// A writer that writes at most 1 KiB per call, each after a pause: a
/// slow source that never stalls long enough for a read to time out.
pub struct Trickling<W> {
    inner: W,
    pause: std::time::Duration,
}

impl<W> Trickling<W> {
    /// Wraps `inner`, pausing `ms` before each KiB.
    pub fn new(inner: W, ms: u64) -> Self {
        Self {
            inner,
            pause: std::time::Duration::from_millis(ms),
        }
    }
}

impl<W: Write> Write for Trickling<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(self.pause);
        let n = buf.len().min(1024);
        self.inner.write(&buf[..n])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether this node lies about what it serves.
pub fn corrupt(dir: &Path) -> bool {
    dir.join(".test-corrupt").exists()
}

/// A writer that flips one bit of the 4000th byte written through it.
pub struct Corrupting<W> {
    inner: W,
    written: usize,
}

impl<W> Corrupting<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, written: 0 }
    }
}

impl<W: Write> Write for Corrupting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        const AT: usize = 4000;
        let n = if self.written <= AT && AT < self.written + buf.len() {
            let mut copy = buf.to_vec();
            copy[AT - self.written] ^= 0x01;
            self.inner.write(&copy)?
        } else {
            self.inner.write(buf)?
        };
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
