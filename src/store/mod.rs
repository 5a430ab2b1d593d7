//! The node's durable state, in sled, behind a typed API.
//!
//! No sled tree leaks out of this module. Every call blocks (sled does disk
//! I/O), so async code reaches the store only through a [`Worker`], the
//! store's own thread (ordered jobs with group commit, best-effort writes
//! for the swarm task, reads). sled fsyncs only every
//! 500 ms by itself; anything the node acknowledges to someone else is
//! flushed explicitly first, with an `fdatasync` of sled's log on top of
//! sled's own flush ([`Store::flush`]).

mod buddies;
mod files;
mod groups;
mod held;
mod messages;
mod peers;
mod rooms;
mod strangers;
mod worker;

use std::path::Path;

pub use buddies::{Buddy, BuddyRequest, MAX_BUDDY_REQUESTS, Relation};
pub use files::{FileDirection, Transfer, TransferState};
pub use groups::{GroupRow, LogRow, MAX_PENDING, PrevEpoch};
pub use held::{Admitted, HeldItem};
pub use messages::{Direction, Filed, MessageState, StoredMessage};
pub use peers::KnownPeer;
pub use rooms::{JoinedRoom, MAX_ROOM_LOG, MAX_ROOMS, RoomLogEntry};
pub use strangers::{MAX_REQUEST_MESSAGES, MAX_REQUEST_MESSAGES_PER_STRANGER};
pub use worker::{Flush, Worker};

/// Bumped when the on-disk layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

const META: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema";
const LOCATOR_SEQ_KEY: &[u8] = b"locator_seq";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// The database was written by an incompatible version of roost.
    #[error("database schema {found} is not supported (this roost uses {SCHEMA_VERSION})")]
    Schema {
        /// Version found on disk.
        found: u32,
    },
    /// A stored value could not be decoded.
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
    /// A write shared by several callers failed (the cause, as text).
    #[error("database write failed: {0}")]
    Failed(String),
    /// The store's lock is held by another process (a daemon is running).
    #[error("the database at {0} is in use by another roost process")]
    Locked(String),
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// sled's log file, synced after every [`Store::flush`] (see there).
    log: std::sync::Arc<std::fs::File>,
    /// How many times [`Store::flush`] has synced the log: tests count
    /// these around an acknowledgement to prove it waited for the disk.
    syncs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    meta: sled::Tree,
    peers: sled::Tree,
    /// Rows in `peers`, kept beside the tree: sled's `Tree::len` walks the
    /// whole tree, and the peer book asks at every new lasting connection
    /// (`peers::MAX_KNOWN_PEERS`).
    peer_rows: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    msgs: sled::Tree,
    index: sled::Tree,
    outbox: sled::Tree,
    buddies: sled::Tree,
    held: sled::Tree,
    held_ids: sled::Tree,
    requests: sled::Tree,
}

/// How often sled's own flusher thread wakes (its default is 500 ms). It
/// is also the only place sled cleans its log's segments, so it stays on,
/// but rarely: the store worker writes out (and `fsync`s) what it left
/// unflushed within [`worker::LAZY`] of running it, and does nothing
/// while no job runs, so an idle node does not wake twice a second per
/// database. (In a process running many nodes, each of those wake-ups
/// also walks every thread registered with crossbeam's epoch collector:
/// at 500 nodes they were most of the process's idle CPU.) What
/// [`worker::Flush::Background`] jobs wrote waits for it, 10 s at most,
/// unless another flush comes first.
const SLED_FLUSH_EVERY_MS: u64 = 10_000;

impl Store {
    /// Opens (or creates) the database in `dir` with a page cache of
    /// `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, cache_bytes, Some(SLED_FLUSH_EVERY_MS))
    }

    /// [`Store::open`] with sled's flusher waking every `flush_every_ms`
    /// (none: never; for a test that must see only the worker's writes).
    fn open_with(
        dir: &Path,
        cache_bytes: u64,
        flush_every_ms: Option<u64>,
    ) -> Result<Self, StoreError> {
        // sled releases its file lock from background threads a moment
        // after the last handle is dropped; a restart in the same process
        // (tests, the demo) may get there first. Retry briefly.
        let mut tries = 0;
        let db = loop {
            let opened = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .flush_every_ms(flush_every_ms)
                .open();
            match opened {
                Err(sled::Error::Io(ref io)) if io.to_string().contains("acquire lock") => {
                    tries += 1;
                    if tries > 120 {
                        return Err(StoreError::Locked(dir.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => break other?,
            }
        };
        let meta = db.open_tree(META)?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt(META))?,
                );
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { found });
                }
            }
        }
        // sled 0.34 keeps its log in this one file (`Config::db_path`).
        let log = std::fs::File::open(dir.join("db")).map_err(sled::Error::Io)?;
        let peers = db.open_tree(peers::TREE)?;
        Ok(Self {
            log: std::sync::Arc::new(log),
            syncs: Default::default(),
            // Counted once here, then kept by `remember_peer`.
            peer_rows: std::sync::Arc::new(peers.len().into()),
            peers,
            msgs: db.open_tree(messages::MSGS)?,
            index: db.open_tree(messages::INDEX)?,
            outbox: db.open_tree(messages::OUTBOX)?,
            buddies: db.open_tree(buddies::BUDDIES)?,
            requests: db.open_tree(buddies::REQUESTS)?,
            held: db.open_tree(held::HELD)?,
            held_ids: db.open_tree(held::HELD_IDS)?,
            db,
            meta,
        })
    }

    /// Forces everything written so far to disk, so that it survives a
    /// power cut too. `sled::Db::flush` alone does not promise that: it
    /// writes the log with `sync_file_range`, which neither empties the
    /// device's write cache nor records the log's new length; the `fsync`
    /// of [`Store::write_out`] (or of sled's own flusher) follows only up
    /// to 500 ms later. One `fdatasync` of the log closes that gap.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log.sync_data().map_err(sled::Error::Io)?;
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Writes out what sled holds in its buffers and `fsync`s the log:
    /// what sled's own flusher does on each wake-up, done by the store
    /// worker [`worker::LAZY`] after writes no caller asked to flush.
    /// Neither counted by `sync_count` nor an `fdatasync`, so the tests
    /// that watch the acknowledged path's syncs see only that path's.
    pub fn write_out(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log.sync_all().map_err(sled::Error::Io)?;
        Ok(())
    }

    /// How many `fdatasync`s of the log [`Store::flush`] has completed on
    /// this handle and its clones: a test reads it before and after an
    /// acknowledged write to show the write waited for the disk.
    #[cfg(any(test, feature = "test-util"))]
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last locator seq we published (0 if none).
    pub fn locator_seq(&self) -> Result<u64, StoreError> {
        Ok(match self.meta.get(LOCATOR_SEQ_KEY)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(META))?,
            ),
            None => 0,
        })
    }

    /// Records the seq of a locator about to be published.
    pub fn set_locator_seq(&self, seq: u64) -> Result<(), StoreError> {
        self.meta.insert(LOCATOR_SEQ_KEY, &seq.to_be_bytes())?;
        Ok(())
    }
}
