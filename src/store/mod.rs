//! The node's durable state, in sled, behind a typed API.
//!
//! No sled tree leaks out of this module. Every call blocks (sled does disk
//! I/O), so async code reaches the store only through a [`Worker`], the
//! store's own thread (ordered jobs with group commit, best-effort writes
//! for the swarm task, reads). Every write is first appended to the
//! store's journal ([`journal`]); anything the node acknowledges to
//! someone else is made durable first ([`Store::flush`]: one `fdatasync`
//! of the journal), and sled's own files are made durable at checkpoints
//! and by sled's flusher.

mod buddies;
mod files;
mod groups;
mod held;
mod journal;
mod messages;
mod overlay;
mod peers;
mod rooms;
mod strangers;
mod tree;
mod worker;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::Arc;

use journal::{Journal, Wait};
use tree::Tree;

pub use buddies::{Buddy, BuddyRequest, MAX_BUDDY_REQUESTS, Relation};
pub use files::{FileDirection, Transfer, TransferState};
pub use groups::{GroupRow, LogRow, MAX_PENDING, PrevEpoch};
pub use held::{Admitted, HeldItem};
pub use journal::CHECKPOINT_AT;
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
    /// sled's log file, synced at every checkpoint ([`Store::checkpoint`]).
    log: Arc<std::fs::File>,
    /// Every write of every tree, recorded for [`Store::flush`].
    journal: Arc<Journal>,
    meta: Tree,
    peers: Tree,
    /// Rows in `peers`, kept beside the tree: sled's `Tree::len` walks the
    /// whole tree, and the peer book asks at every new lasting connection
    /// (`peers::MAX_KNOWN_PEERS`).
    peer_rows: Arc<std::sync::atomic::AtomicUsize>,
    msgs: Tree,
    index: Tree,
    outbox: Tree,
    buddies: Tree,
    held: Tree,
    held_ids: Tree,
    requests: Tree,
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
        let (journal, written) = Journal::open(dir)?;
        apply_journal(&db, &written)?;
        let tree = |name: &str| Tree::open(&db, name, &journal);
        let meta = tree(META)?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.put(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
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
        let peers = tree(peers::TREE)?;
        let store = Self {
            log: Arc::new(log),
            // Counted once here, then kept by `remember_peer`.
            peer_rows: Arc::new(peers.len()?.into()),
            peers,
            msgs: tree(messages::MSGS)?,
            index: tree(messages::INDEX)?,
            outbox: tree(messages::OUTBOX)?,
            buddies: tree(buddies::BUDDIES)?,
            requests: tree(buddies::REQUESTS)?,
            held: tree(held::HELD)?,
            held_ids: tree(held::HELD_IDS)?,
            journal,
            db,
            meta,
        };
        // What was applied (and the schema row of a new database) goes
        // into sled's own files, and the journal starts empty.
        store.checkpoint()?;
        Ok(store)
    }

    /// A tree of the store by name, its writes journaled.
    fn tree(&self, name: &str) -> Result<Tree, StoreError> {
        Tree::open(&self.db, name, &self.journal)
    }

    /// Makes everything written so far survive a power cut: one
    /// `fdatasync` of the journal, which holds every write already (or,
    /// when the file is due for it, a checkpoint). Cheaper than sled's own
    /// flush, which hands its log to an I/O pool and waits for it, then
    /// for `sync_file_range`, before the `fdatasync` could start.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.journal.sync(Wait::Data, || self.flush_db())
    }

    /// Makes what was written since the last flush durable, as sled's own
    /// flusher would: done by the store worker [`worker::LAZY`] after
    /// writes no caller asked to flush. An `fsync` of the journal (or a
    /// checkpoint when one is due), neither counted by `sync_count` nor
    /// an `fdatasync`, so the tests that watch the acknowledged path's
    /// syncs see only that path's.
    pub fn write_out(&self) -> Result<(), StoreError> {
        self.journal.sync(Wait::All, || self.flush_db())
    }

    /// Puts everything written so far into sled's own files, power-safe
    /// (sled's flush, then an `fdatasync` of its log: sled's flush alone
    /// writes with `sync_file_range`, which neither empties the device's
    /// write cache nor records the log's new length), and empties the
    /// journal. Done on open, on close, and by [`Store::flush`] once the
    /// journal passes [`CHECKPOINT_AT`].
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.journal.checkpoint(Wait::Data, || self.flush_db())
    }

    /// Writes the journal's waiting records to its file: what the store
    /// worker does before reporting a group of jobs, so that a reported
    /// write survives the process dying.
    fn settle(&self) -> Result<(), StoreError> {
        self.journal.settle()
    }

    /// Drains the writes held in front of sled into it: what an idle store
    /// thread does before it ends, so that sled's flusher has them.
    fn drain(&self) -> Result<(), StoreError> {
        self.journal.drain()
    }

    /// Whether the journal has grown past [`CHECKPOINT_AT`]: writes that
    /// ask for no flush ([`worker::Flush::Background`]) could otherwise
    /// grow it without bound; the worker writes out (a checkpoint, then).
    fn checkpoint_due(&self) -> bool {
        self.journal.checkpoint_due()
    }

    fn flush_db(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log.sync_data().map_err(sled::Error::Io)?;
        Ok(())
    }

    /// How many times [`Store::flush`] (or a checkpoint) has waited for the
    /// disk with an `fdatasync`, on this handle and its clones: a test
    /// reads it before and after an acknowledged write to show the write
    /// waited for the disk.
    #[cfg(any(test, feature = "test-util"))]
    pub fn sync_count(&self) -> u64 {
        self.journal.syncs()
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
        self.meta.put(LOCATOR_SEQ_KEY, &seq.to_be_bytes())?;
        Ok(())
    }
}

/// Applies the journal's records to sled, in order, up to the first
/// damaged one (a write cut short by a crash ends the file so).
fn apply_journal(db: &sled::Db, bytes: &[u8]) -> Result<(), StoreError> {
    let (records, damage) = journal::decode(bytes);
    if let Some(d) = damage {
        tracing::warn!(
            applied = records.len(),
            "the journal's tail is unreadable ({d}); applying what comes before it"
        );
    }
    let mut trees: HashMap<&[u8], sled::Tree> = HashMap::new();
    for r in &records {
        let t = match trees.entry(r.tree) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(db.open_tree(r.tree)?),
        };
        match r.value {
            Some(v) => t.insert(r.key, v)?,
            None => t.remove(r.key)?,
        };
    }
    if !records.is_empty() {
        tracing::info!(records = records.len(), "applied the store's journal");
    }
    Ok(())
}
