//! The store's journal: what makes a write power-safe without sled's
//! flush.
//!
//! Every write to a tree of the store ([`Tree`](super::tree::Tree)) is
//! first appended to one file, then applied to sled, under one lock, so the
//! file's order is sled's. To make everything written so far durable
//! ([`Journal::sync`]) one `fdatasync` of that file is enough: one wait for
//! the device, on the thread that needs it. sled's own flush, by contrast,
//! hands its log buffer to its I/O pool (waking all of its threads), waits
//! for it, then for `sync_file_range`, and only then could the `fdatasync`
//! start; on the message path that cost about half again as much as the
//! `fdatasync` alone (docs/performance.md).
//!
//! The record reaches the file (the kernel's page cache) before sled holds
//! the write, so whatever sled's background threads put into sled's own
//! files is in the journal too. When the process dies (`kill -9`, a
//! panic), applying the journal over sled's files therefore gives exactly
//! the writes made up to some point, in order: a prefix, as sled alone
//! promises. After a power cut the journal's synced part survives, so
//! every flushed write does; a write never flushed may or may not.
//!
//! sled is flushed and `fdatasync`ed only at a checkpoint
//! ([`Journal::checkpoint`]): when the file passes [`CHECKPOINT_AT`], when
//! the store is opened or closed, and after a failed write. A checkpoint
//! holds every writer back while it flushes sled and then empties the
//! file, so the file only ever holds records written after the last
//! checkpoint.
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

use super::StoreError;

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

/// The file, held across each record and its sled write (and across a
/// checkpoint, which empties the file).
struct Appender {
    file: File,
    /// Bytes in the file now.
    len: u64,
    /// Bytes ever appended through this handle: a sync covers every
    /// record up to the count it read.
    appended: u64,
    /// Reused for each record's bytes.
    scratch: Vec<u8>,
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

/// Records writes while the journal's lock is held ([`Journal::write`]).
pub(super) struct Writer<'a>(MutexGuard<'a, Appender>);

impl Writer<'_> {
    /// Appends a put (`Some`) or a removal (`None`) of `key` in `tree`.
    pub(super) fn record(
        &mut self,
        tree: &[u8],
        key: &[u8],
        value: Option<&[u8]>,
    ) -> sled::Result<()> {
        let size = key.len() + value.map_or(0, <[u8]>::len);
        // The rest of a body is at most 261 bytes (op, a tree name of up
        // to 255 bytes and its length, the key's length).
        if size > MAX_RECORD - 300 {
            return Err(sled::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a store write of {size} bytes is past the journal's limit"),
            )));
        }
        let a = &mut *self.0;
        a.scratch.clear();
        encode(&mut a.scratch, tree, key, value);
        a.file.write_all(&a.scratch)?;
        a.len += a.scratch.len() as u64;
        a.appended += a.scratch.len() as u64;
        Ok(())
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
                scratch: Vec::new(),
                file,
            }),
            synced: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            damaged: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
        };
        Ok((Arc::new(journal), bytes))
    }

    /// Runs `write` (records, each followed by its sled write) under the
    /// journal's lock, so that the file's order is sled's whichever thread
    /// writes. A failure marks the journal damaged (see there).
    pub(super) fn write<T>(
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
            let a = lock(&self.appender);
            if self.damaged.load(Ordering::Acquire) || a.len >= CHECKPOINT_AT {
                return self.checkpoint_locked(a, wait, flush_db);
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

    /// Makes every write so far durable by `flush_db` (sled's flush and an
    /// `fdatasync` of its log), then empties the file.
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
        let done = flush_db().and_then(|()| {
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
        lock(&self.appender).len >= CHECKPOINT_AT
    }

    /// Completed syncs of the journal, checkpoints included.
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Whether every write recorded so far is synced (by a flush, a
    /// write-out or a checkpoint): what survives a power cut now.
    #[cfg(test)]
    pub(super) fn all_synced(&self) -> bool {
        let appended = lock(&self.appender).appended;
        self.durable.load(Ordering::Acquire) >= appended
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
pub(super) mod tests;
