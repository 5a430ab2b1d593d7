//! Flushes writes that nobody waited for, soon after they happen — and
//! otherwise sleeps.
//!
//! sled's own flusher thread wakes every 500 ms for as long as the database
//! is open, busy or not: the idle benchmark counted four wake-ups a second
//! from it in a node doing nothing. Writes that must be durable are flushed
//! by whoever made them (the store queue's group commit, the mailbox
//! holder); this thread covers the rest (message states, the peer book)
//! within [`DELAY`] of the first unflushed write, with one flush per burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

/// How long an unflushed write may wait; also what coalesces a burst.
pub const DELAY: Duration = Duration::from_millis(500);

/// Shared by every clone of a [`super::Store`]; when the last one goes, the
/// thread flushes what is pending and ends, releasing the database.
pub(super) struct Lazy {
    pending: Arc<AtomicBool>,
    wake: SyncSender<()>,
}

impl Lazy {
    /// Starts the thread for `db`.
    pub(super) fn start(db: sled::Db) -> Self {
        let pending = Arc::new(AtomicBool::new(false));
        let (wake, rx) = sync_channel(1);
        let flag = pending.clone();
        let spawned = std::thread::Builder::new()
            .name("roost-flush".into())
            .spawn(move || run(&db, &flag, &rx));
        if let Err(e) = spawned {
            // sled's files are still written; only the timing of the
            // flush of non-durable writes is lost until the next flush.
            tracing::warn!("cannot start the store flusher thread: {e}");
        }
        Self { pending, wake }
    }

    /// Something was written and not flushed.
    pub(super) fn wrote(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = self.wake.try_send(());
        }
    }
}

fn run(db: &sled::Db, pending: &AtomicBool, rx: &Receiver<()>) {
    while rx.recv().is_ok() {
        // Let the burst settle; stop waiting if the store is closed.
        let closed = matches!(rx.recv_timeout(DELAY), Err(RecvTimeoutError::Disconnected));
        pending.store(false, Ordering::Release);
        if let Err(e) = db.flush() {
            tracing::warn!("background flush failed: {e}");
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use crate::store::Store;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// A write nobody flushed reaches the disk on its own: a copy of the
    /// database's files (what a crash would leave) soon has it. sled's own
    /// flusher is off, so without this thread it never would.
    #[test]
    fn an_unflushed_write_reaches_the_disk_soon() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20).unwrap();
        store.set_locator_seq(42).unwrap();
        store.wrote();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(&dir.path().join("db"), &copy.path().join("db"));
            let seen = Store::open(&copy.path().join("db"), 1 << 20)
                .and_then(|s| s.locator_seq())
                .unwrap_or(0);
            if seen == 42 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the write never reached the disk"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
