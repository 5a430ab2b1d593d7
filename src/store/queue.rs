//! An ordered queue of store jobs on one dedicated thread. Jobs run in the
//! order they were submitted, so a service can start a write, carry on
//! without waiting for it (e.g. put a message on the wire while its outbox
//! entry is being flushed) and still know that every later job sees it.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Store, StoreError};

type Job = Box<dyn FnOnce(&Store) + Send>;

/// Handle to the queue's thread; dropping it drains the queue, flushes and
/// releases the store.
pub struct Queue {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Queue {
    /// Starts the thread over `store`.
    pub fn new(store: Store) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("roost-store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&store);
                }
                if let Err(e) = store.flush() {
                    tracing::warn!("final flush failed: {e}");
                }
            })
            .ok();
        Self {
            tx: Some(tx),
            thread,
        }
    }

    /// Queues `f`; the receiver yields its result once it has run.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = reply.send(f(s));
        });
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
        rx
    }

    /// Runs `f` after everything queued before it, and waits for it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit(f)
            .await
            .map_err(|_| StoreError::Failed("store thread stopped".into()))?
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_and_the_store_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::new(Store::open(dir.path(), 1 << 20).unwrap());
        let first = q.submit(|s| s.set_locator_seq(1));
        let second = q.submit(|s| s.set_locator_seq(2));
        assert_eq!(q.run(|s| s.locator_seq()).await.unwrap(), 2);
        assert!(first.await.unwrap().is_ok() && second.await.unwrap().is_ok());
        drop(q);
        // The database can be opened again: nothing holds it.
        assert_eq!(
            Store::open(dir.path(), 1 << 20)
                .unwrap()
                .locator_seq()
                .unwrap(),
            2
        );
    }
}
