//! A single background thread that performs store writes for the swarm
//! task, which must never block on disk. Writes are queued on a bounded
//! channel (a flood of peer events cannot grow it without limit) and the
//! queue is drained before [`Writer::close`] returns, so after a node stops
//! nothing holds the database open any more.
//!
//! The thread is a plain OS thread, not a tokio blocking task: it lives as
//! long as the node, and a process running many nodes (the benchmarks) would
//! otherwise exhaust tokio's blocking pool and stall every `spawn_blocking`.

use tokio::sync::mpsc;
use tracing::warn;

use super::Store;

type Job = Box<dyn FnOnce(&Store) + Send>;

/// Queue capacity; beyond it, best-effort writes are dropped.
const CAPACITY: usize = 1024;

/// Handle to the writer thread.
pub struct Writer {
    tx: mpsc::Sender<Job>,
    /// Resolves when the thread has flushed and released the store.
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(CAPACITY);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("roost-writer".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&store);
                }
                if let Err(e) = store.flush() {
                    warn!("final flush failed: {e}");
                }
                drop(store);
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            warn!("cannot start the store writer thread: {e}");
        }
        Self { tx, done }
    }

    /// Queues a best-effort write (peer book, counters); dropped with a
    /// warning if the queue is full.
    pub fn submit(&self, job: impl FnOnce(&Store) + Send + 'static) {
        if self.tx.try_send(Box::new(job)).is_err() {
            warn!("store write queue full; dropping a best-effort write");
        }
    }

    /// Drains the queue, flushes and releases the store.
    pub async fn close(self) {
        let Self { tx, done } = self;
        drop(tx);
        let _ = done.await;
    }
}
