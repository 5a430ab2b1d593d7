//! An ordered queue of store jobs on one dedicated thread, with group
//! commit.
//!
//! Jobs run in the order they were submitted, so a service can start a
//! write, carry on without waiting for it (e.g. put a message on the wire
//! while its outbox entry is being flushed) and still know that every later
//! job sees it. The thread takes every job that is waiting, runs them all,
//! flushes **once** if any of them must be durable, and only then reports
//! their results, in order: under load, one flush covers many writes from
//! many callers, which is what makes durable messaging fast.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Store, StoreError};

/// Most jobs one flush covers; bounds how long the first waits.
const GROUP: usize = 1024;

/// What a job leaves to do once the flush (if any) is done: report.
type Finish = Box<dyn FnOnce(&Result<(), String>) + Send>;

struct Job {
    work: Box<dyn FnOnce(&Store) -> Finish + Send>,
    durable: bool,
}

/// Handle to the queue's thread; dropping it drains the queue, flushes and
/// releases the store.
pub struct Queue {
    tx: QueueSender,
    thread: Option<JoinHandle<()>>,
}

/// A cloneable way to submit jobs, for tasks that write without going
/// through the queue's owner. Once the [`Queue`] is dropped, jobs sent
/// here are not run (their receivers see a closed channel).
#[derive(Clone)]
pub struct QueueSender(mpsc::Sender<Option<Job>>);

impl Queue {
    /// Starts the thread over `store`.
    pub fn new(store: Store) -> Self {
        // `None` is the owner's "stop": other senders may outlive it.
        let (tx, rx) = mpsc::channel::<Option<Job>>();
        let thread = std::thread::Builder::new()
            .name("roost-store".into())
            .spawn(move || {
                while let Ok(Some(first)) = rx.recv() {
                    if run_group(&store, first, &rx) {
                        break;
                    }
                }
                if let Err(e) = store.flush() {
                    tracing::warn!("final flush failed: {e}");
                }
            })
            .ok();
        Self {
            tx: QueueSender(tx),
            thread,
        }
    }

    /// A sender for other tasks.
    pub fn sender(&self) -> QueueSender {
        self.tx.clone()
    }

    /// Queues `f`; the receiver yields its result once it has run.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        self.tx.submit(f)
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

impl QueueSender {
    /// Queues `work`; `then` gets its result on the store thread once it has
    /// run and, if `durable`, once it is on disk. `then` must be quick and
    /// must not block (send on a channel, answer a oneshot).
    pub fn then<T: Send + 'static>(
        &self,
        durable: bool,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        let job = Job {
            durable,
            work: Box::new(move |s| {
                let res = work(s);
                Box::new(move |flushed: &Result<(), String>| {
                    then(match (res, flushed) {
                        (Ok(_), Err(e)) if durable => Err(StoreError::Failed(e.clone())),
                        (res, _) => res,
                    })
                })
            }),
        };
        if self.0.send(Some(job)).is_err() {
            // The thread is gone; `then` is dropped, so a waiting receiver
            // sees a closed channel.
            tracing::debug!("store queue stopped; a job was not run");
        }
    }

    /// Queues `f`; the receiver yields its result once it has run.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        self.reply(false, f)
    }

    /// Queues `f`; the receiver yields its result once it is on disk.
    pub fn submit_durable<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        self.reply(true, f)
    }

    fn reply<T: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        self.then(durable, f, move |r| {
            let _ = tx.send(r);
        });
        rx
    }
}

/// Runs `first` and every job already waiting behind it, flushes once if
/// any must be durable, then reports all of them in order. Returns whether
/// the owner asked to stop.
fn run_group(store: &Store, first: Job, rx: &mpsc::Receiver<Option<Job>>) -> bool {
    let mut finish = Vec::new();
    let mut durable = false;
    let mut next = Some(first);
    let mut stop = false;
    while let Some(job) = next {
        durable |= job.durable;
        finish.push((job.work)(store));
        if finish.len() >= GROUP {
            break;
        }
        next = match rx.try_recv() {
            Ok(Some(job)) => Some(job),
            Ok(None) => {
                stop = true;
                None
            }
            Err(_) => None,
        };
    }
    let flushed = if durable {
        store.flush().map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    for f in finish {
        f(&flushed);
    }
    stop
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Everything queued before this runs; then the thread flushes and
        // ends, whoever else still holds a sender.
        let _ = self.tx.0.send(None);
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
        let second = q.sender().submit_durable(|s| s.set_locator_seq(2));
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

    #[tokio::test]
    async fn results_are_reported_in_submission_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::new(Store::open(dir.path(), 1 << 20).unwrap());
        let sender = q.sender();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..200u64 {
            let tx = tx.clone();
            // Alternate durable and plain jobs: the order must hold anyway.
            sender.then(
                i % 3 == 0,
                move |s| s.set_locator_seq(i).map(|()| i),
                move |r| {
                    let _ = tx.send(r.unwrap());
                },
            );
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(i) = rx.recv().await {
            seen.push(i);
        }
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }
}
