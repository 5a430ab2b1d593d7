//! A single background thread that performs store writes for the swarm
//! task, which must never block on disk. Writes are queued on a bounded
//! channel (a flood of peer events cannot grow it without limit) and the
//! queue is drained before [`Writer::close`] returns, so after a node stops
//! nothing holds the database open any more.

use tokio::sync::mpsc;
use tracing::warn;

use super::Store;

type Job = Box<dyn FnOnce(&Store) + Send>;

/// Queue capacity; beyond it, best-effort writes are dropped.
const CAPACITY: usize = 1024;

/// Handle to the writer thread.
pub struct Writer {
    tx: mpsc::Sender<Job>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(CAPACITY);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(job) = rx.blocking_recv() {
                job(&store);
            }
            if let Err(e) = store.flush() {
                warn!("final flush failed: {e}");
            }
        });
        Self { tx, task }
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
        drop(self.tx);
        let _ = self.task.await;
    }
}
