use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use super::*;
use crate::store::journal::tests::copy_dir;

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path(), 1 << 20).unwrap()
}

/// Holds the worker's thread until the returned sender is used or dropped;
/// returns once the thread is held.
async fn stall(w: &Worker) -> std::sync::mpsc::Sender<()> {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, is_started) = oneshot::channel();
    drop(w.submit(move |_| {
        let _ = started.send(());
        let _ = wait.recv();
        Ok(())
    }));
    is_started.await.unwrap();
    release
}

#[tokio::test]
async fn jobs_run_and_report_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(open(&dir));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Queued behind a stall, so the thread takes them as groups.
    let release = stall(&w).await;
    for i in 0..200u64 {
        let tx = tx.clone();
        // Alternate durable and plain jobs: the order holds anyway.
        let flush = [Flush::Now, Flush::No, Flush::No][(i % 3) as usize];
        w.then(
            flush,
            move |s| {
                // Each job sees the one before it.
                let before = s.locator_seq()?;
                s.set_locator_seq(i + 1)?;
                Ok((before, i))
            },
            move |r| {
                let _ = tx.send(r.unwrap());
            },
        );
    }
    drop((tx, release));
    let mut seen = Vec::new();
    while let Some((before, i)) = rx.recv().await {
        assert_eq!(before, i, "job {i} ran after job {before}");
        seen.push(i);
    }
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    // A read runs after every write submitted before it.
    assert_eq!(w.run(|s| s.locator_seq()).await.unwrap(), 200);
}

/// What a job saw of the flush count when it ran, and what its report saw.
async fn syncs_around(w: &Worker, probe: &Store, flush: Flush) -> (u64, u64) {
    let (tx, rx) = oneshot::channel();
    let probe = probe.clone();
    w.then(
        flush,
        |s| {
            s.set_locator_seq(7)?;
            Ok(s.sync_count())
        },
        move |r| {
            let _ = tx.send((r.unwrap(), probe.sync_count()));
        },
    );
    rx.await.unwrap()
}

#[tokio::test]
async fn a_durable_job_reports_only_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let w = Worker::new(store.clone());
    let (ran, reported) = syncs_around(&w, &store, Flush::Now).await;
    assert!(reported > ran, "Flush::Now reported before a flush");
    let (ran, reported) = syncs_around(&w, &store, Flush::Soon).await;
    assert!(reported > ran, "Flush::Soon reported before a flush");
    let (ran, reported) = syncs_around(&w, &store, Flush::No).await;
    assert_eq!(reported, ran, "Flush::No started a flush");
}

#[tokio::test]
async fn a_soon_job_rides_on_the_next_flush_or_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(open(&dir));
    // Covered by a later job's flush: reported with it, and first.
    let mut soon = w.reply(Flush::Soon, |s| s.set_locator_seq(1));
    // Run (and held) before the next job is even submitted.
    assert_eq!(w.run(|s| s.locator_seq()).await.unwrap(), 1);
    let now = w.reply(Flush::Now, |s| s.set_locator_seq(2));
    assert!(now.await.unwrap().is_ok());
    assert!(soon.try_recv().unwrap().is_ok());
    // Alone: flushed once its wait is over.
    let alone = w.reply(Flush::Soon, |s| s.set_locator_seq(3));
    tokio::time::timeout(Duration::from_secs(30), alone)
        .await
        .expect("a held job is flushed on its own")
        .unwrap()
        .unwrap();
    // Held when the worker is closed: the final flush reports it.
    let last = w.reply(Flush::Soon, |s| s.set_locator_seq(4));
    w.close().await;
    assert!(last.await.unwrap().is_ok());
    assert_eq!(open(&dir).locator_seq().unwrap(), 4);
}

#[tokio::test]
async fn soon_jobs_are_flushed_at_once_when_a_batch_is_held() {
    let dir = tempfile::tempdir().unwrap();
    // Their wait an hour: only the batch rule can flush them.
    let w = Worker::with_soon(open(&dir), Duration::from_secs(3600));
    let mut held: Vec<_> = (1..SOON_BATCH as u64)
        .map(|i| w.reply(Flush::Soon, move |s| s.set_locator_seq(i)))
        .collect();
    // Every one has run, one short of a batch: none reported.
    assert_eq!(
        w.run(|s| s.locator_seq()).await.unwrap(),
        SOON_BATCH as u64 - 1
    );
    for r in &mut held {
        assert!(r.try_recv().is_err(), "reported before a flush was due");
    }
    // The batch's last: all flushed and reported, without the hour.
    held.push(w.reply(Flush::Soon, |s| s.set_locator_seq(SOON_BATCH as u64)));
    for r in held {
        tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("a full batch waits for its timer")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn best_effort_writes_beyond_the_bound_are_dropped_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(open(&dir));
    let release = stall(&w).await;
    let ran = Arc::new(AtomicU64::new(0));
    let mut queued = 0;
    // The thread is held: none of these can run while they are submitted,
    // and none of the submits may wait for it.
    for _ in 0..BEST_EFFORT + 100 {
        let ran = ran.clone();
        if w.try_submit(move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
        }) {
            queued += 1;
        }
    }
    assert_eq!(queued, BEST_EFFORT, "the bound was not kept");
    drop(release);
    w.close().await;
    assert_eq!(ran.load(Ordering::SeqCst), BEST_EFFORT as u64);
    // Room again once they have run... and refused once closed.
    assert!(!w.try_submit(|_| {}), "a closed worker took a write");
}

#[tokio::test]
async fn close_runs_everything_queued_flushes_and_releases_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let w = Worker::new(store.clone());
    let other = w.clone();
    let release = stall(&w).await;
    let mut replies = Vec::new();
    for i in 1..=100u64 {
        replies.push(other.submit(move |s| s.set_locator_seq(i)));
    }
    // Only the thread holds the database now.
    let journal = store.journal.clone();
    drop(store);
    let before = journal.syncs();
    let closing = w.close();
    tokio::pin!(closing);
    assert!(
        futures::poll!(&mut closing).is_pending(),
        "closed while held"
    );
    // Submitted after the close, through another clone: never run.
    let late = other.submit(|s| s.set_locator_seq(1000));
    drop(release);
    closing.await;
    for r in replies {
        assert!(r.await.unwrap().is_ok(), "a job queued before the close");
    }
    assert!(late.await.is_err(), "a job queued after the close ran");
    assert!(journal.syncs() > before, "closed without a flush");
    // The store is released (it opens again) with the last write before
    // the close.
    assert_eq!(open(&dir).locator_seq().unwrap(), 100);
}

#[tokio::test]
async fn a_job_that_panics_loses_its_own_answer_and_the_worker_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(open(&dir));
    let failed = w.run(|_| -> Result<(), StoreError> { panic!("a damaged page") });
    assert!(
        failed.await.is_err(),
        "the panicking job's caller is answered"
    );
    // Jobs after it still run, durable ones included.
    w.run(|s| s.set_locator_seq(7)).await.unwrap();
    let (tx, rx) = oneshot::channel();
    w.then(Flush::Now, |s| s.locator_seq(), move |r| drop(tx.send(r)));
    assert_eq!(rx.await.unwrap().unwrap(), 7);
    w.close().await;
}

/// Polls `done` for at most a minute.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a plain job wrote is made power-safe without any flush asked for
/// and without sled's flusher (off here): the worker writes it out
/// ([`LAZY`]), an `fsync` of the journal that no flush count includes.
#[tokio::test]
async fn a_plain_write_is_written_out_without_a_flush_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    let w = Worker::new(probe.clone());
    let flushes = probe.sync_count();
    w.run(|s| s.set_locator_seq(42)).await.unwrap();
    until("the write was never written out", || {
        probe.journal.all_synced()
    })
    .await;
    assert_eq!(probe.sync_count(), flushes, "a flush, not a write-out");
    drop(probe);
    w.close().await;
}

/// Polls `w` until its thread has ended, for at most a minute.
async fn until_parked(w: &Worker) {
    until("the idle thread never ended", || !w.running()).await;
}

/// An idle thread ends only once what it wrote is written out (sled's
/// flusher is off here); the next job starts a thread that sees it, and a
/// close while no thread runs still releases the store.
#[tokio::test]
async fn an_idle_worker_ends_its_thread_after_writing_out_and_the_next_job_starts_one() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    let w = Worker::with_idle(probe.clone(), Duration::from_millis(50), Duration::ZERO);
    w.run(|s| s.set_locator_seq(42)).await.unwrap();
    until_parked(&w).await;
    assert!(probe.journal.all_synced(), "parked before writing out");
    drop(probe);
    assert_eq!(w.run(|s| s.locator_seq()).await.unwrap(), 42);
    w.run(|s| s.set_locator_seq(43)).await.unwrap();
    until_parked(&w).await;
    w.close().await;
    assert_eq!(open(&dir).locator_seq().unwrap(), 43);
}

/// Runs `set_locator_seq(seq)` as a [`Flush::Background`] job on `w`.
async fn background_seq(w: &Worker, seq: u64) {
    let (tx, rx) = oneshot::channel();
    let report = move |r| drop(tx.send(r));
    w.then(Flush::Background, move |s| s.set_locator_seq(seq), report);
    rx.await.unwrap().unwrap();
}

/// The locator seq in a copy of `dir`'s files taken now, at `copy`.
fn seq_on_disk(dir: &std::path::Path, copy: &std::path::Path, journal: bool) -> u64 {
    copy_dir(dir, copy, journal);
    let on_disk = Store::open_with(copy, 1 << 20, None).unwrap();
    on_disk.locator_seq().unwrap()
}

/// A [`Flush::Background`] job schedules no write-out: with sled's
/// flusher off, its thread goes idle and ends with the write unsynced (a
/// plain job's would be synced by then, above), though in the journal's
/// file once reported; the close's checkpoint puts it into sled's files.
/// With sled's flusher on (every 100 ms), sled's files get it without
/// one, once the idle thread has drained its held writes into sled.
#[tokio::test]
async fn a_background_write_waits_for_sleds_flusher_not_a_write_out() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Store::open_with(dir.path(), 1 << 20, None).unwrap();
    let w = Worker::with_idle(probe.clone(), Duration::from_millis(50), Duration::ZERO);
    background_seq(&w, 42).await;
    until_parked(&w).await;
    assert!(!probe.journal.all_synced(), "written out");
    drop(probe);
    let copy = tempfile::tempdir().unwrap();
    assert_eq!(
        seq_on_disk(dir.path(), copy.path(), true),
        42,
        "not in the journal"
    );
    w.close().await;
    let copy = tempfile::tempdir().unwrap();
    assert_eq!(
        seq_on_disk(dir.path(), copy.path(), false),
        42,
        "lost at the close"
    );

    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(Store::open_with(dir.path(), 1 << 20, Some(100)).unwrap());
    background_seq(&w, 7).await;
    let copies = tempfile::tempdir().unwrap();
    let mut n = 0;
    until("sled's flusher never wrote it", || {
        n += 1;
        seq_on_disk(dir.path(), &copies.path().join(n.to_string()), false) == 7
    })
    .await;
    w.close().await;
}

/// Writes that ask for no flush never leave the journal past
/// [`CHECKPOINT_AT`](super::super::CHECKPOINT_AT) for long: after the
/// group of jobs that crossed it the worker writes out, a checkpoint,
/// which empties the file (sled's flusher is off, and nothing else
/// flushes here).
#[tokio::test]
async fn background_writes_past_the_checkpoint_size_checkpoint_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(Store::open_with(dir.path(), 1 << 20, None).unwrap());
    let chunk = 1 << 20;
    let limit = super::super::CHECKPOINT_AT;
    for i in 0..limit / chunk + 2 {
        let (tx, rx) = oneshot::channel();
        let job = move |s: &Store| -> Result<(), StoreError> {
            s.tree("bulk")?
                .insert(i.to_be_bytes(), vec![0u8; chunk as usize])?;
            Ok(())
        };
        w.then(Flush::Background, job, move |r| drop(tx.send(r)));
        rx.await.unwrap().unwrap();
    }
    let file = dir.path().join(super::super::journal::FILE);
    until(
        "the journal grew past the checkpoint size and stayed",
        || std::fs::metadata(&file).unwrap().len() < limit,
    )
    .await;
    w.close().await;
}

/// With threads ending whenever the queue is empty (each pausing on its
/// way out, so that jobs arrive just then), jobs sent from many tasks are
/// all run, each task's in its order, by many threads in turn: more than
/// thirty, as each task waits thirty times for the thread to end, so its
/// thirty-one runs of jobs between those waits each had threads of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_sent_while_threads_end_and_start_are_all_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::with_idle(open(&dir), Duration::ZERO, Duration::from_millis(1));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for task in 0..4u32 {
        let (w, seen) = (w.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            for i in 0..300u32 {
                let seen = seen.clone();
                // Durable, so nothing is left to write out once it ran.
                replies.push(w.reply(Flush::Now, move |_| {
                    seen.lock()
                        .unwrap()
                        .push((task, i, std::thread::current().id()));
                    Ok(())
                }));
                // Sometimes wait, so the queue runs dry and the thread ends.
                if i % 3 == 0 {
                    for r in replies.drain(..) {
                        r.await.unwrap().unwrap();
                    }
                }
                // Every tenth job, wait until the threads that ran this
                // task's jobs have ended and none is starting, so that each
                // task sees threads end and start thirty times while the
                // others keep sending.
                if i % 10 == 0 {
                    until("the store thread never came to rest", || w.at_rest()).await;
                }
            }
            for r in replies {
                r.await.unwrap().unwrap();
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("a job was never answered");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1200);
    for task in 0..4 {
        let order: Vec<u32> = seen.iter().filter(|s| s.0 == task).map(|s| s.1).collect();
        assert_eq!(
            order,
            (0..300).collect::<Vec<_>>(),
            "task {task} out of order"
        );
    }
    let threads: std::collections::HashSet<_> = seen.iter().map(|s| s.2).collect();
    assert!(
        threads.len() > 30,
        "only {} threads ran the jobs",
        threads.len()
    );
}
