//! The one way async code reaches the store: a [`Worker`], a dedicated
//! thread that runs store jobs in order, with group commit.
//!
//! Rules:
//!
//! - **Order.** Jobs run in the order they were submitted, whoever
//!   submitted them, reads and writes alike. A task can start a write,
//!   carry on without waiting for it (put a message on the wire while its
//!   outbox entry is flushed) and know that every later job — including a
//!   read — sees it. Reads go through the same thread on purpose: they are
//!   short (sled serves them from its cache), and being ordered behind the
//!   writes means a caller that was told "done" reads what it wrote.
//! - **Durability** is per job ([`Flush`]). The thread takes every job that
//!   is waiting, runs them all, flushes **once** if any of them must be
//!   durable now, and only then reports their results, in order: under
//!   load one flush covers many writes from many callers. A job that must
//!   be durable but not this instant ([`Flush::Soon`]) rides on the next
//!   flush, at the latest [`SOON`] after it ran, or at once when
//!   [`SOON_BATCH`] of them are waiting. Before it reports anything the
//!   thread writes the group's journal records to the file
//!   (`Store::settle`), so that what a job reported survives the process
//!   dying. Plain jobs queued behind a
//!   held one still report at once (a `delivered` must not wait for the
//!   flush of the send it answers). What plain jobs wrote is written out
//!   and `fsync`ed (`Store::write_out`) at the latest [`LAZY`] after they
//!   ran, unless a flush came first ([`Flush::Background`] jobs leave
//!   theirs to sled's own flusher); while no job runs the thread sleeps,
//!   so an idle node does not wake for its store.
//! - **Best effort** ([`Worker::try_submit`]) is for the swarm task, which
//!   must never wait: such writes (the peer book, the locator seq) are
//!   bounded to [`BEST_EFFORT`] waiting at once and dropped with a warning
//!   beyond; they run in order with everything else.
//! - **Close.** [`Worker::close`] (or dropping every clone) runs everything
//!   submitted before it, checkpoints (`Store::checkpoint`), reports held
//!   jobs, and drops the thread's `Store`, which releases sled's lock once
//!   no other handle is left. Clones do not hold the store, so a task that
//!   outlives the close only finds its later jobs refused (their receivers
//!   see a closed channel).
//!
//! - **Idle.** A thread with nothing to run, nothing held and nothing
//!   left to write out for [`IDLE`] drains the writes held in front of
//!   sled into it (so that sled's flusher has them), parks the store and
//!   the queue and ends; the next job starts a new thread. An idle node keeps no store
//!   thread, and a process running many nodes (the benchmarks) keeps
//!   threads only for the nodes at work: sled's writes walk every thread
//!   of the process registered with crossbeam's epoch collector, so each
//!   idle thread made every node's writes dearer.
//!
//! Callers never block: submitting is a channel send (and, when the thread
//! has ended, starting a new one). The thread is a plain OS thread, not a
//! tokio blocking task: it serves a queue whose jobs block on `fsync`, and
//! a process running many nodes would otherwise exhaust tokio's blocking
//! pool. A node runs two workers over one database (the mailbox holder's
//! own, so its flushes never delay messaging); each is ordered only within
//! itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use thread::{Parked, Slot, Thread, lock, serve_then_park, spawn, take_over};

use super::{Store, StoreError};

/// Most jobs one flush covers; bounds how long the first waits.
const GROUP: usize = 1024;

/// Most best-effort jobs waiting at once; beyond, they are dropped.
pub const BEST_EFFORT: usize = 1024;

/// Longest a [`Flush::Soon`] job waits for a flush to ride on: long
/// enough for a recipient's flush on the same disk (a loopback round trip
/// is ~0.5 ms) to go first, and for a quick answer's flush to cover it;
/// short enough that one caller's sequential sends still run at hundreds
/// a second. Nobody notices 2 ms.
pub const SOON: Duration = Duration::from_millis(2);

/// Most [`Flush::Soon`] jobs held at once: with this many waiting, the
/// flush runs without waiting for another job's. Under load (a window of
/// sends in flight) the wait would stall all of them to save one flush
/// in eight; a lone send, or a few, still ride on the next flush. In the
/// messaging bench eight took a 16-message window from 4.7–5.0 k to
/// 8.0–9.2 k msgs/s and a 64-message one from 12.0 k to 14.3–15.3 k
/// (docs/performance.md).
pub const SOON_BATCH: usize = 8;

/// Longest what a [`Flush::No`] job wrote waits to be written out and
/// `fsync`ed (`Store::write_out`), as sled's own flusher, which wakes only
/// rarely here (see `Store::open`), does every 500 ms by default.
pub const LAZY: Duration = Duration::from_millis(500);

/// How long a thread with nothing to do waits for a job before it ends.
/// Long enough that a conversation's messages, seconds apart, find it
/// running; a new thread costs tens of microseconds.
pub const IDLE: Duration = Duration::from_secs(5);

/// The thread's waits: for a flush to ride on ([`SOON`]) and for work
/// before it ends ([`IDLE`]); tests shorten them.
#[derive(Clone, Copy)]
struct Timing {
    soon: Duration,
    idle: Duration,
    /// A pause between seeing the queue empty and taking the slot's lock
    /// to end, which tests widen so that jobs are sent in it.
    #[cfg(test)]
    before_parking: Duration,
}

const TIMING: Timing = Timing {
    soon: SOON,
    idle: IDLE,
    #[cfg(test)]
    before_parking: Duration::ZERO,
};

/// When a job's writes must be on disk before it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Reports once run and schedules no write-out: the writes survive the
    /// process dying once reported (the worker writes a group's journal
    /// records to the file before it reports any of the group), and a
    /// power cut once any later flush or write-out syncs the journal, or
    /// they were drained into sled and sled's own flusher (`Store::open`,
    /// every 10 s) has them. For rows that
    /// others hand back when a crash loses them (a large group's gossip,
    /// caught up again from the members): a write-out per message cost
    /// every member of a large group an `fsync` per message.
    Background,
    /// Reports once run; the writes reach disk with a later flush, at the
    /// latest [`LAZY`] after. For state that is learnt again if lost, and
    /// for reads.
    No,
    /// Reports once on disk, but waits up to [`SOON`] for a flush that
    /// some other job needs, instead of starting one.
    Soon,
    /// Reports once on disk; the group is flushed as soon as it has run.
    Now,
}

/// What a job leaves to do once the flush (if any) is done: report.
type Finish = Box<dyn FnOnce(&Result<(), String>) + Send>;

/// A job's work on the store; what it returns reports after the flush.
type Work = Box<dyn FnOnce(&Store) -> Finish + Send>;

struct Job {
    work: Work,
    flush: Flush,
}

/// What the thread receives: a job, or `None` for [`Worker::close`].
type Msg = Option<Job>;

/// Handle to a store thread; cheap to clone. See the module doc for the
/// rules.
#[derive(Clone)]
pub struct Worker {
    tx: mpsc::Sender<Msg>,
    /// Best-effort jobs submitted and not yet run.
    waiting: Arc<AtomicUsize>,
    /// Becomes `true` (or closes) once the thread has released the store.
    released: watch::Receiver<bool>,
    thread: Slot,
    timing: Timing,
}

impl Worker {
    /// A worker over `store`; its thread starts with the first job.
    pub fn new(store: Store) -> Self {
        Self::parked(store, TIMING)
    }

    /// A worker whose [`Flush::Soon`] jobs wait up to `soon`, for tests
    /// that must tell the batch rule from the timer.
    #[cfg(test)]
    fn with_soon(store: Store, soon: Duration) -> Self {
        Self::parked(store, Timing { soon, ..TIMING })
    }

    /// A worker whose thread ends after `idle` without work, pausing
    /// `before_parking` on its way out, for tests.
    #[cfg(test)]
    fn with_idle(store: Store, idle: Duration, before_parking: Duration) -> Self {
        Self::parked(
            store,
            Timing {
                idle,
                before_parking,
                ..TIMING
            },
        )
    }

    /// Whether a thread serves the queue now, for tests.
    #[cfg(test)]
    fn running(&self) -> bool {
        !matches!(*lock(&self.thread), Thread::Parked { .. })
    }

    /// Whether no thread serves the queue and none is starting to: every
    /// job sent before has run on a thread that has since ended. For tests.
    #[cfg(test)]
    fn at_rest(&self) -> bool {
        matches!(
            *lock(&self.thread),
            Thread::Parked {
                starting: false,
                ..
            }
        )
    }

    fn parked(store: Store, timing: Timing) -> Self {
        let (tx, rx) = mpsc::channel::<Msg>();
        let (released_tx, released) = watch::channel(false);
        let parked = Parked {
            store: Box::new(store),
            rx,
            released: released_tx,
        };
        Self {
            tx,
            waiting: Arc::default(),
            released,
            thread: Arc::new(Mutex::new(Thread::Parked {
                parked,
                starting: false,
            })),
            timing,
        }
    }

    /// Starts a thread that opens the database in `dir` (see
    /// [`Store::open`]) and then serves jobs; the open's blocking retries
    /// happen there, not on the caller's task.
    pub async fn open(dir: PathBuf, cache_bytes: u64) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let (released_tx, released) = watch::channel(false);
        let thread: Slot = Arc::new(Mutex::new(Thread::Running));
        let (opened_tx, opened) = oneshot::channel();
        let slot = thread.clone();
        let spawned = spawn(move || match Store::open(&dir, cache_bytes) {
            Ok(store) => {
                let _ = opened_tx.send(Ok(()));
                let parked = Parked {
                    store: Box::new(store),
                    rx,
                    released: released_tx,
                };
                serve_then_park(parked, &slot, TIMING);
            }
            Err(e) => {
                *lock(&slot) = Thread::Gone;
                let _ = opened_tx.send(Err(e));
            }
        });
        if let Err(e) = spawned {
            return Err(StoreError::Failed(format!(
                "cannot start the store thread: {e}"
            )));
        }
        opened
            .await
            .map_err(|_| StoreError::Failed("store thread did not start".into()))??;
        Ok(Self {
            tx,
            waiting: Arc::default(),
            released,
            thread,
            timing: TIMING,
        })
    }

    /// A second worker over the same database, with its own thread and
    /// order: for work whose flushes must not delay this one's.
    pub async fn sibling(&self) -> Result<Self, StoreError> {
        let store = self.run(|s| Ok(s.clone())).await?;
        Ok(Self::new(store))
    }

    /// Queues `msg`, then makes sure a thread serves the queue.
    fn send(&self, msg: Msg) -> Result<(), mpsc::SendError<Msg>> {
        self.tx.send(msg)?;
        let mut thread = lock(&self.thread);
        if let Thread::Parked { starting, .. } = &mut *thread
            && !*starting
        {
            let (slot, timing) = (self.thread.clone(), self.timing);
            match spawn(move || take_over(&slot, timing)) {
                Ok(()) => *starting = true,
                // Still parked: the next job tries again.
                Err(e) => tracing::warn!("cannot start the store thread: {e}"),
            }
        }
        Ok(())
    }

    /// Queues `work`; `then` gets its result on the store thread once it has
    /// run and is as durable as `flush` asks. `then` must be quick and must
    /// not block (send on a channel, answer a oneshot).
    pub fn then<T: Send + 'static>(
        &self,
        flush: Flush,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        let durable = matches!(flush, Flush::Soon | Flush::Now);
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
        if self.send(Some(job)).is_err() {
            // The thread is gone; `then` is dropped, so a waiting receiver
            // sees a closed channel.
            tracing::debug!("store worker closed; a job was not run");
        }
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

    /// Queues `f` ([`Flush::No`]); the receiver yields its result once it
    /// has run.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> oneshot::Receiver<Result<T, StoreError>> {
        self.reply(Flush::No, f)
    }

    /// Runs `f` after everything submitted before it, and waits for it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit(f)
            .await
            .map_err(|_| StoreError::Failed("store worker closed".into()))?
    }

    /// Queues a best-effort write without ever waiting: dropped, with a
    /// warning, when [`BEST_EFFORT`] such writes are already waiting or the
    /// worker is closed. Returns whether it was queued.
    pub fn try_submit(&self, job: impl FnOnce(&Store) + Send + 'static) -> bool {
        let room = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < BEST_EFFORT).then_some(n + 1)
            });
        if room.is_err() {
            tracing::warn!("store worker busy; dropping a best-effort write");
            return false;
        }
        let waiting = self.waiting.clone();
        let job = Job {
            flush: Flush::No,
            work: Box::new(move |s| {
                waiting.fetch_sub(1, Ordering::AcqRel);
                job(s);
                Box::new(|_| {})
            }),
        };
        if self.send(Some(job)).is_err() {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("store worker closed; dropping a best-effort write");
            return false;
        }
        true
    }

    /// Runs everything submitted before this call, flushes, and releases
    /// the thread's store; returns once that is done. Jobs submitted later
    /// (by any clone) are not run.
    pub async fn close(&self) {
        let _ = self.send(None);
        let mut released = self.released.clone();
        // An error means the thread is gone, which is as good.
        let _ = released.wait_for(|r| *r).await;
    }
}

/// The thread's loop: serves jobs until closed (or every clone is gone),
/// then flushes a last time, reports what is still held and returns
/// `None`. After `timing.idle` with nothing to run, hold or write out, it
/// returns the slot's lock instead, taken while the queue was seen empty:
/// a job sent meanwhile finds the slot parked and starts a new thread.
fn serve<'a>(
    store: &Store,
    rx: &mpsc::Receiver<Msg>,
    timing: Timing,
    slot: &'a Mutex<Thread>,
) -> Option<MutexGuard<'a, Thread>> {
    let mut held = Held::default();
    loop {
        // Checked before waiting, not only on a timeout: a steady stream
        // of jobs would never let one happen.
        let now = Instant::now();
        if held.due.is_some_and(|due| now >= due) {
            held.report(&flush(store));
        } else if held.lazy.is_some_and(|due| now >= due) {
            held.lazy = None;
            if let Err(e) = store.write_out() {
                tracing::warn!("cannot write the store out: {e}");
            }
        }
        let (wait, idle) = match held.next() {
            None => (timing.idle, true),
            Some(due) => (due.saturating_duration_since(Instant::now()), false),
        };
        let first = match rx.recv_timeout(wait) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) if idle => {
                #[cfg(test)]
                std::thread::sleep(timing.before_parking);
                let thread = lock(slot);
                match rx.try_recv() {
                    Ok(job) => Some(job),
                    Err(TryRecvError::Empty) => {
                        if let Err(e) = store.drain() {
                            tracing::warn!("cannot drain the store's held writes: {e}");
                        }
                        return Some(thread);
                    }
                    Err(TryRecvError::Disconnected) => None,
                }
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => None,
        };
        let Some(Some(first)) = first else { break };
        if run_group(store, first, rx, (&mut held, timing.soon)) {
            break;
        }
        if store.checkpoint_due()
            && let Err(e) = store.write_out()
        {
            tracing::warn!("cannot write the store out: {e}");
        }
    }
    // Into sled's own files, so the next open has no journal to apply.
    let flushed = store.checkpoint().map_err(|e| e.to_string());
    if let Err(e) = &flushed {
        tracing::warn!("final flush failed: {e}");
    }
    held.report(&flushed);
    None
}

/// [`Flush::Soon`] jobs that have run and wait for a flush, and when that
/// flush is due at the latest; and when what plain jobs wrote is to be
/// written out ([`LAZY`]).
#[derive(Default)]
struct Held {
    jobs: Vec<Finish>,
    due: Option<Instant>,
    lazy: Option<Instant>,
}

impl Held {
    /// Reports every held job with the outcome of the flush that covered it
    /// (which covered every plain job's writes too).
    fn report(&mut self, flushed: &Result<(), String>) {
        self.due = None;
        self.lazy = None;
        for f in self.jobs.drain(..) {
            f(flushed);
        }
    }

    /// The earliest of the flush and the write-out due, if any.
    fn next(&self) -> Option<Instant> {
        match (self.due, self.lazy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Runs one job's work. A job that panics (sled panics on some damage)
/// loses only its own answer — its reply is dropped, so its caller sees
/// the worker gone — and the thread goes on serving every other job.
fn run_job(store: &Store, work: Work) -> Finish {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(store))) {
        Ok(finish) => finish,
        Err(_) => {
            tracing::error!("a store job panicked; its caller gets no answer");
            Box::new(|_: &Result<(), String>| {})
        }
    }
}

fn flush(store: &Store) -> Result<(), String> {
    store.flush().map_err(|e| e.to_string())
}

/// Runs `first` and every job already waiting behind it. If any must be
/// durable now, flushes once and reports all of them, and every held
/// [`Flush::Soon`] job, in order; otherwise reports the plain ones at once
/// (a [`Flush::No`] among them schedules the write-out) and holds the
/// `Soon` ones for a later flush, up to `soon` away, unless
/// [`SOON_BATCH`] are now held. Returns whether the worker was closed.
fn run_group(
    store: &Store,
    first: Job,
    rx: &mpsc::Receiver<Msg>,
    (held, soon): (&mut Held, Duration),
) -> bool {
    let mut finish = Vec::new();
    let mut now = false;
    let mut next = Some(first);
    let mut closed = false;
    while let Some(job) = next {
        now |= job.flush == Flush::Now;
        finish.push((job.flush, run_job(store, job.work)));
        if finish.len() >= GROUP {
            break;
        }
        next = match rx.try_recv() {
            Ok(Some(job)) => Some(job),
            Ok(None) => {
                closed = true;
                None
            }
            Err(_) => None,
        };
    }
    if !now && let Err(e) = store.settle() {
        tracing::warn!("cannot write the store's journal: {e}");
    }
    if now {
        let flushed = flush(store);
        held.report(&flushed);
        for (_, f) in finish {
            f(&flushed);
        }
        return closed;
    }
    if finish.iter().any(|(kind, _)| *kind == Flush::No) {
        held.lazy.get_or_insert_with(|| Instant::now() + LAZY);
    }
    for (kind, f) in finish {
        if kind == Flush::Soon {
            held.jobs.push(f);
            held.due.get_or_insert_with(|| Instant::now() + soon);
        } else {
            f(&Ok(()));
        }
    }
    if held.jobs.len() >= SOON_BATCH {
        held.report(&flush(store));
    }
    closed
}

#[path = "worker_thread.rs"]
mod thread;

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
