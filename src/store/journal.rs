//! The store's journal: what makes a write power-safe without sled's
//! flush.
//!
//! Every write to a tree of the store ([`Tree`](super::tree::Tree)) is
//! encoded as a record and held, with its value, in the write-behind map
//! ([`Overlay`]) in front of sled, under one lock, so the records' order is
//! the writes' order. The records reach the file in batches
//! ([`Journal::settle`], which the store worker calls after each group of
//! jobs and before reporting any of them; at most [`PENDING_MAX`] bytes
//! wait), never one `write` system call per store write. To make
//! everything written so far durable ([`Journal::sync`]) the waiting
//! records are written and one `fdatasync` of the file is enough: one wait
//! for the device, on the thread that needs it. sled's own flush, by
//! contrast, hands its log buffer to its I/O pool (waking all of its
//! threads), waits for it, then for `sync_file_range`, and only then could
//! the `fdatasync` start; on the message path that cost about half again as
//! much as the `fdatasync` alone (docs/performance.md).
//!
//! sled holds a write only once the map is drained into it (a scan of its
//! tree, the map's bound, an idle store thread, a checkpoint), and a drain
//! first writes every waiting record to the file. So whatever sled's background threads put
//! into sled's own files is in the journal's file too. When the process
//! dies (`kill -9`, a panic), applying the journal over sled's files
//! therefore gives exactly the writes made up to some point, in order: a
//! prefix, as sled alone promises. Writes whose records were still waiting
//! are lost with the process, but no job that made them had reported. After
//! a power cut the journal's synced part survives, so every flushed write
//! does; a write never flushed may or may not.
//!
//! sled is flushed and `fdatasync`ed only at a checkpoint
//! ([`Journal::checkpoint`]): when the file passes [`CHECKPOINT_AT`], when
//! the store is opened or closed, and after a failed write. A checkpoint
//! holds every writer back while it drains the map, flushes sled and then
//! empties the file, so the file only ever holds records written after the
//! last checkpoint.
//!
//! On open, the file's records are applied to sled again, in order, up to
//! the first torn or damaged one, and a checkpoint follows. A record holds
//! a write's result (the value put, or a removal), so applying one again
//! is harmless.
//!
//! Record: `len` (u32, little-endian, of the body), CRC-32 of the body,
//! then the body: op (0 remove, 1 put), tree name length (u8), tree name,
//! key length (u32), key, and for a put the value (the rest).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sled::IVec;

use super::StoreError;
use super::overlay::Overlay;

/// The journal's file, in sled's directory.
pub(super) const FILE: &str = "journal";

/// File size past which the next sync is a checkpoint instead: bounds
/// the file and the work of applying it on open (16 MiB is about 10 000
/// messages a node in the messaging bench, well under a second to apply).
pub const CHECKPOINT_AT: u64 = 16 << 20;

/// Largest record body written or read back: a longer write is refused
/// before it is made, and a longer length read back is damage. Rows are
/// far smaller (sled values of a few KiB; a large group's row is about
/// 40 KiB at 1000 members).
const MAX_RECORD: usize = 16 << 20;

/// Most of the file read back on open. The file is checkpointed at the
/// first sync past [`CHECKPOINT_AT`], and the store worker writes out
/// after any group of jobs that leaves it past that, so a longer file is
/// damage; its records are applied up to here.
const MAX_FILE: u64 = 256 << 20;

/// Most bytes of records waiting to be written to the file: past it, the
/// next write writes them first. Bounds the memory they take and the
/// work lost with a process that dies before its worker settles.
pub(super) const PENDING_MAX: usize = 256 << 10;

const REMOVE: u8 = 0;
const PUT: u8 = 1;

/// How a sync waits for the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wait {
    /// `fdatasync`, counted ([`Journal::syncs`]): a flush someone is told
    /// about. `tests/durability.rs` counts these system calls.
    Data,
    /// `fsync`, not counted: a write-out nobody waits for, kept apart so
    /// that it never stands in for the acknowledged path's sync in a test.
    All,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Db(sled::Error::Io(e))
}

/// Why applying the journal stopped early, for the log.
#[derive(Debug, thiserror::Error)]
enum Damage {
    #[error("a record ends past the end of the file (a write cut short)")]
    Torn,
    #[error("a record's length {0} is past the limit")]
    TooLong(usize),
    #[error("a record's checksum does not match")]
    Checksum,
    #[error("a record's body is malformed")]
    Malformed,
}

/// One write, as read back from the file.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Record<'a> {
    pub tree: &'a [u8],
    pub key: &'a [u8],
    /// `None`: removed.
    pub value: Option<&'a [u8]>,
}

/// Appends one record to `buf`.
fn encode(buf: &mut Vec<u8>, tree: &[u8], key: &[u8], value: Option<&[u8]>) {
    let tree = &tree[..tree.len().min(u8::MAX as usize)];
    let body = 1 + 1 + tree.len() + 4 + key.len() + value.map_or(0, <[u8]>::len);
    let start = buf.len();
    buf.extend_from_slice(&(body as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(if value.is_some() { PUT } else { REMOVE });
    buf.push(tree.len() as u8);
    buf.extend_from_slice(tree);
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    if let Some(v) = value {
        buf.extend_from_slice(v);
    }
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Splits `bytes` into records, up to the first damaged one.
pub(super) fn decode(mut bytes: &[u8]) -> (Vec<Record<'_>>, Option<String>) {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match next(bytes) {
            Ok((record, rest)) => {
                out.push(record);
                bytes = rest;
            }
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

fn next(bytes: &[u8]) -> Result<(Record<'_>, &[u8]), Damage> {
    let head = bytes.get(..8).ok_or(Damage::Torn)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_RECORD {
        return Err(Damage::TooLong(len));
    }
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let body = bytes.get(8..8 + len).ok_or(Damage::Torn)?;
    if crc32fast::hash(body) != crc {
        return Err(Damage::Checksum);
    }
    let (&op, rest) = body.split_first().ok_or(Damage::Malformed)?;
    let (&tree_len, rest) = rest.split_first().ok_or(Damage::Malformed)?;
    let (tree, rest) = rest
        .split_at_checked(tree_len as usize)
        .ok_or(Damage::Malformed)?;
    let (key_len, rest) = rest.split_at_checked(4).ok_or(Damage::Malformed)?;
    let key_len = u32::from_le_bytes([key_len[0], key_len[1], key_len[2], key_len[3]]) as usize;
    let (key, value) = rest.split_at_checked(key_len).ok_or(Damage::Malformed)?;
    let value = match op {
        PUT => Some(value),
        REMOVE if value.is_empty() => None,
        _ => return Err(Damage::Malformed),
    };
    Ok((Record { tree, key, value }, &bytes[8 + len..]))
}

/// The file, the records waiting for it and the writes held in front of
/// sled; held across each write (and across a checkpoint, which drains
/// the map and empties the file).
struct Appender {
    file: File,
    /// Bytes in the file now.
    len: u64,
    /// Bytes ever appended through this handle: a sync covers every
    /// record up to the count it read.
    appended: u64,
    /// Records not yet written to the file, in order.
    pending: Vec<u8>,
    /// The latest value of every key written since its tree's last drain.
    overlay: Overlay,
}

impl Appender {
    /// Writes the waiting records to the file. On a failure the file is
    /// cut back to its last whole record and the records keep waiting, so
    /// a later try appends them after whole records only.
    fn write_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!("cannot cut the store's journal back after a failed write: {cut}");
            }
            return Err(e);
        }
        let n = self.pending.len() as u64;
        self.len += n;
        self.appended += n;
        self.pending.clear();
        if self.pending.capacity() > 4 * PENDING_MAX {
            self.pending.shrink_to(PENDING_MAX);
        }
        Ok(())
    }

    /// Drains every held write into sled, its records written first.
    fn drain_all(&mut self) -> sled::Result<()> {
        self.write_pending()?;
        self.overlay.drain_all()
    }
}

/// The store's journal; shared by every clone of a `Store` (both workers
/// of a node write through it).
pub(super) struct Journal {
    appender: Mutex<Appender>,
    /// The same file, for syncs that do not hold writers back.
    sync_file: File,
    /// `Appender::appended` as of the last completed [`Wait::Data`] sync or
    /// checkpoint: a caller whose records an earlier, finished sync
    /// covered skips its own. Syncs themselves hold no lock, so concurrent
    /// ones overlap in the device instead of queueing.
    synced: AtomicU64,
    /// `Appender::appended` as of the last completed sync of any kind.
    durable: AtomicU64,
    /// Set when a write to the file or to sled failed: the file may end
    /// in a torn record, or hold one that sled never applied. The next
    /// sync is a checkpoint, which empties it.
    damaged: AtomicBool,
    /// Completed [`Wait::Data`] syncs and checkpoints, for tests.
    syncs: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the file as it was or with a
    // torn record at its end, which `damaged` covers; carry on with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads and writes the trees while the journal's lock is held
/// ([`Journal::with`]).
pub(super) struct Writer<'a>(MutexGuard<'a, Appender>);

impl Writer<'_> {
    /// Puts `value` (`Some`) or removes `key` (`None`) in the tree `tree`
    /// named `name`: recorded for the file and held in front of sled. A
    /// write that fails is not made.
    pub(super) fn set(
        &mut self,
        tree: &sled::Tree,
        name: &IVec,
        key: &[u8],
        value: Option<IVec>,
    ) -> sled::Result<()> {
        let size = key.len() + value.as_ref().map_or(0, |v| v.len());
        // The rest of a body is at most 261 bytes (op, a tree name of up
        // to 255 bytes and its length, the key's length).
        if size > MAX_RECORD - 300 {
            return Err(sled::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a store write of {size} bytes is past the journal's limit"),
            )));
        }
        let a = &mut *self.0;
        if a.pending.len() >= PENDING_MAX {
            a.write_pending()?;
        }
        a.overlay.reap();
        if a.overlay.full() {
            // Records first: sled never holds a write the file lacks.
            a.write_pending()?;
            a.overlay.start_drain()?;
        }
        encode(&mut a.pending, name, key, value.as_deref());
        a.overlay.set(tree, name, key, value);
        Ok(())
    }

    /// The current value of `key` in `tree` named `name`: held, or sled's.
    pub(super) fn get(
        &self,
        tree: &sled::Tree,
        name: &[u8],
        key: &[u8],
    ) -> sled::Result<Option<IVec>> {
        match self.0.overlay.get(name, key) {
            Some(held) => Ok(held),
            None => tree.get(key),
        }
    }

    /// Drains the writes held for `name` into sled, so that sled alone
    /// answers an ordered read of it.
    pub(super) fn drain(&mut self, name: &[u8]) -> sled::Result<()> {
        let a = &mut *self.0;
        if !a.overlay.holds(name) {
            return Ok(());
        }
        a.write_pending()?;
        a.overlay.drain(name)
    }

    /// Keys held in front of sled and not being drained, for tests.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.0.overlay.entries()
    }

    /// Waits for the drain under way, for tests.
    #[cfg(test)]
    pub(super) fn drained(&mut self) {
        self.0.overlay.finish_drain();
    }
}

impl Journal {
    /// Opens the journal in `dir` and returns it with what its file holds.
    pub(super) fn open(dir: &Path) -> Result<(Arc<Self>, Vec<u8>), StoreError> {
        let opened = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE));
        let mut file = opened.map_err(io)?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(MAX_FILE)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let journal = Self {
            sync_file: file.try_clone().map_err(io)?,
            appender: Mutex::new(Appender {
                len: bytes.len() as u64,
                appended: 0,
                pending: Vec::new(),
                overlay: Overlay::default(),
                file,
            }),
            synced: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            damaged: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        };
        Ok((Arc::new(journal), bytes))
    }

    /// Runs `write` (reads, and writes recorded and held) under the
    /// journal's lock, so that the records' order is the writes' whichever
    /// thread writes. A failure marks the journal damaged (see there).
    pub(super) fn with<T>(
        &self,
        write: impl FnOnce(&mut Writer<'_>) -> sled::Result<T>,
    ) -> sled::Result<T> {
        let mut writer = Writer(lock(&self.appender));
        let done = write(&mut writer);
        if done.is_err() {
            self.damaged.store(true, Ordering::Release);
        }
        done
    }

    /// Makes every write recorded so far durable, waiting for the device
    /// as `wait` says, or runs a checkpoint instead when the file is due
    /// for one ([`CHECKPOINT_AT`], or damaged).
    pub(super) fn sync(
        &self,
        wait: Wait,
        flush_db: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let target = {
            let mut a = lock(&self.appender);
            if self.damaged.load(Ordering::Acquire) || a.len >= CHECKPOINT_AT {
                return self.checkpoint_locked(a, wait, flush_db);
            }
            if let Err(e) = a.write_pending() {
                self.damaged.store(true, Ordering::Release);
                return Err(io(e));
            }
            a.appended
        };
        let covered = match wait {
            Wait::Data => self.synced.load(Ordering::Acquire),
            Wait::All => self.durable.load(Ordering::Acquire),
        };
        if covered >= target {
            // Every record is synced already, by a call that finished.
            return Ok(());
        }
        let done = match wait {
            Wait::Data => self.sync_file.sync_data(),
            Wait::All => self.sync_file.sync_all(),
        };
        if let Err(e) = done {
            // What the file holds now is unknown (a failed sync may drop
            // the dirty pages): only a checkpoint makes it durable.
            self.damaged.store(true, Ordering::Release);
            return Err(io(e));
        }
        // A write-out (`fsync`) is as durable, but only a counted sync
        // lets a later `Wait::Data` call skip its own: the tests that
        // watch an acknowledgement's `fdatasync` must always see one.
        self.durable.fetch_max(target, Ordering::Release);
        if wait == Wait::Data {
            self.synced.fetch_max(target, Ordering::Release);
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes the waiting records to the file: after it, the writes made so
    /// far survive the process dying (not yet a power cut). The store
    /// worker calls it before it reports a group of jobs.
    pub(super) fn settle(&self) -> Result<(), StoreError> {
        let mut a = lock(&self.appender);
        a.write_pending().map_err(|e| {
            self.damaged.store(true, Ordering::Release);
            io(e)
        })
    }

    /// Drains every held write into sled (its records written to the file
    /// first), so that sled's own flusher makes it durable: what an idle
    /// store thread does before it ends.
    pub(super) fn drain(&self) -> Result<(), StoreError> {
        let mut a = lock(&self.appender);
        a.drain_all().map_err(|e| {
            self.damaged.store(true, Ordering::Release);
            StoreError::Db(e)
        })
    }

    /// Makes every write so far durable by draining the held writes into
    /// sled and `flush_db` (sled's flush and an `fdatasync` of its log),
    /// then empties the file.
    pub(super) fn checkpoint(
        &self,
        wait: Wait,
        flush_db: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.checkpoint_locked(lock(&self.appender), wait, flush_db)
    }

    fn checkpoint_locked(
        &self,
        // Held throughout: a record appended between the flush and the
        // emptying, its write not in the flush, would be lost with the file.
        mut a: MutexGuard<'_, Appender>,
        wait: Wait,
        flush_db: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let done = a
            .drain_all()
            .map_err(StoreError::Db)
            .and_then(|()| flush_db())
            .and_then(|()| {
                // Emptied, and that made durable, before anyone is told the
                // flush is done: records left in the file would be applied
                // over newer values on the next open.
                a.file
                    .set_len(0)
                    .and_then(|()| a.file.sync_all())
                    .map_err(io)
            });
        match done {
            Ok(()) => {
                a.len = 0;
                self.synced.fetch_max(a.appended, Ordering::Release);
                self.durable.fetch_max(a.appended, Ordering::Release);
                self.damaged.store(false, Ordering::Release);
                if wait == Wait::Data {
                    self.syncs.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(e) => {
                self.damaged.store(true, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Whether the file has passed [`CHECKPOINT_AT`], so that the next
    /// sync will be a checkpoint.
    pub(super) fn checkpoint_due(&self) -> bool {
        let a = lock(&self.appender);
        a.len + a.pending.len() as u64 >= CHECKPOINT_AT
    }

    /// Completed syncs of the journal, checkpoints included.
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Whether every write recorded so far is synced (by a flush, a
    /// write-out or a checkpoint): what survives a power cut now.
    #[cfg(test)]
    pub(super) fn all_synced(&self) -> bool {
        let a = lock(&self.appender);
        a.pending.is_empty() && self.durable.load(Ordering::Acquire) >= a.appended
    }
}

impl Drop for Journal {
    /// The last handle's records go to the file, so that a store dropped
    /// without a close (a test, a failed start) is reopened with them.
    fn drop(&mut self) {
        let a = self.appender.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = a.write_pending() {
            tracing::warn!("cannot write the store's journal on drop: {e}");
        }
        a.overlay.finish_drain();
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
pub(super) mod tests;
