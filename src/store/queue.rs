//! An ordered queue of store jobs on one dedicated thread, with group
//! commit.
//!
//! Jobs run in the order they were submitted, so a service can start a
//! write, carry on without waiting for it (e.g. put a message on the wire
//! while its outbox entry is being flushed) and still know that every later
//! job sees it. The thread takes every job that is waiting, runs them all,
//! flushes **once** if any of them must be durable now, and only then
//! reports their results, in order: under load, one flush covers many
//! writes from many callers, which is what makes durable messaging fast.
//!
//! A job that must be durable but not this instant ([`Flush::Soon`]) does
//! not start a flush of its own: it rides on the next one, at the latest
//! [`SOON`] after it ran. A sender's outbox entry is such a write: the
//! message is already on the wire, and if the recipient's store is on the
//! same disk (or the recipient answers), an immediate flush of ours would
//! only queue behind or in front of theirs. Plain jobs queued behind a held
//! one still report at once (a `delivered` must not wait for the flush of
//! the send it answers); jobs still *run* in order, so every later job
//! sees the held job's writes.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Store, StoreError};

/// Most jobs one flush covers; bounds how long the first waits.
const GROUP: usize = 1024;

/// Longest a [`Flush::Soon`] job waits for a flush to ride on: long
/// enough for a recipient's flush on the same disk (a loopback round trip
/// is ~0.5 ms) to go first, and for a quick answer's flush to cover it;
/// short enough that one caller's sequential sends still run at hundreds
/// a second. Nobody notices 2 ms.
pub const SOON: Duration = Duration::from_millis(2);

/// When a job's writes must be on disk before it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Reports once run; the writes reach disk with a later flush (or
    /// sled's own, within half a second). For state that is learnt again
    /// if lost.
    No,
    /// Reports once on disk, but waits up to [`SOON`] for a flush that
    /// some other job needs, instead of starting one.
    Soon,
    /// Reports once on disk; the group is flushed as soon as it has run.
    Now,
}

/// What a job leaves to do once the flush (if any) is done: report.
type Finish = Box<dyn FnOnce(&Result<(), String>) + Send>;

struct Job {
    work: Box<dyn FnOnce(&Store) -> Finish + Send>,
    flush: Flush,
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
                let mut held = Held::default();
                loop {
                    // Checked before waiting, not only on a timeout: a
                    // steady stream of jobs would never let one happen.
                    if held.due.is_some_and(|due| Instant::now() >= due) {
                        held.report(&flush(&store));
                    }
                    let first = match held.due {
                        None => rx.recv().ok(),
                        Some(due) => {
                            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                                Ok(job) => Some(job),
                                Err(RecvTimeoutError::Timeout) => continue,
                                Err(RecvTimeoutError::Disconnected) => None,
                            }
                        }
                    };
                    let Some(Some(first)) = first else { break };
                    if run_group(&store, first, &rx, &mut held) {
                        break;
                    }
                }
                let flushed = flush(&store);
                if let Err(e) = &flushed {
                    tracing::warn!("final flush failed: {e}");
                }
                held.report(&flushed);
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
    /// run and is as durable as `flush` asks. `then` must be quick and must
    /// not block (send on a channel, answer a oneshot).
    pub fn then<T: Send + 'static>(
        &self,
        flush: Flush,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        let durable = flush != Flush::No;
        let job = Job {
            flush,
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
        self.reply(Flush::No, f)
    }

    /// Queues `f`; the receiver yields its result once it is as durable as
    /// `flush` asks.
    pub fn reply<T: Send + 'static>(
        &self,
        flush: Flush,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        let (tx, rx) = oneshot::channel();
        self.then(flush, f, move |r| {
            let _ = tx.send(r);
        });
        rx
    }
}

/// [`Flush::Soon`] jobs that have run and wait for a flush, and when that
/// flush is due at the latest.
#[derive(Default)]
struct Held {
    jobs: Vec<Finish>,
    due: Option<Instant>,
}

impl Held {
    /// Reports every held job with the outcome of the flush that covered it.
    fn report(&mut self, flushed: &Result<(), String>) {
        self.due = None;
        for f in self.jobs.drain(..) {
            f(flushed);
        }
    }
}

fn flush(store: &Store) -> Result<(), String> {
    store.flush().map_err(|e| e.to_string())
}

/// Runs `first` and every job already waiting behind it. If any must be
/// durable now, flushes once and reports all of them, and every held
/// [`Flush::Soon`] job, in order; otherwise reports the plain ones at once
/// and holds the `Soon` ones for a later flush. Returns whether the owner
/// asked to stop.
fn run_group(store: &Store, first: Job, rx: &mpsc::Receiver<Option<Job>>, held: &mut Held) -> bool {
    let mut finish = Vec::new();
    let mut now = false;
    let mut next = Some(first);
    let mut stop = false;
    while let Some(job) = next {
        now |= job.flush == Flush::Now;
        finish.push((job.flush, (job.work)(store)));
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
    if now {
        let flushed = flush(store);
        held.report(&flushed);
        for (_, f) in finish {
            f(&flushed);
        }
        return stop;
    }
    for (kind, f) in finish {
        if kind == Flush::Soon {
            held.jobs.push(f);
            held.due.get_or_insert_with(|| Instant::now() + SOON);
        } else {
            f(&Ok(()));
        }
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
        let second = q.sender().reply(Flush::Now, |s| s.set_locator_seq(2));
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
                if i % 3 == 0 { Flush::Now } else { Flush::No },
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

    #[tokio::test]
    async fn a_soon_job_rides_on_the_next_flush_or_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::new(Store::open(dir.path(), 1 << 20).unwrap());
        let s = q.sender();
        // Covered by a later job's flush: reported with it, and first.
        let mut soon = s.reply(Flush::Soon, |s| s.set_locator_seq(1));
        // Run (and held) before the next job is even submitted.
        assert_eq!(q.run(|s| s.locator_seq()).await.unwrap(), 1);
        let now = s.reply(Flush::Now, |s| s.set_locator_seq(2));
        assert!(now.await.unwrap().is_ok());
        assert!(soon.try_recv().unwrap().is_ok());
        // Alone: flushed once its wait is over.
        let alone = s.reply(Flush::Soon, |s| s.set_locator_seq(3));
        tokio::time::timeout(Duration::from_secs(30), alone)
            .await
            .expect("a held job is flushed on its own")
            .unwrap()
            .unwrap();
        // Held when the queue is dropped: the final flush reports it.
        let last = s.reply(Flush::Soon, |s| s.set_locator_seq(4));
        drop(q);
        assert!(last.await.unwrap().is_ok());
        assert_eq!(
            Store::open(dir.path(), 1 << 20)
                .unwrap()
                .locator_seq()
                .unwrap(),
            4
        );
    }
}
