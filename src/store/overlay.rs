//! The store's write-behind map: writes held in memory, in front of sled,
//! until they are drained into it.
//!
//! sled 0.34 copies a whole leaf on every write, so a key written twice
//! costs two copies, and a key put and removed soon after (an outbox row
//! whose message was acknowledged a millisecond later) costs two copies
//! for nothing left behind. The messaging bench's profile put a third of
//! the store thread's time there. The journal ([`super::journal`]) already
//! makes every write durable by itself, so sled does not need to hold a
//! write until a checkpoint: this map holds the latest value of each key
//! written since the last drain, and a drain applies each key once.
//!
//! Readers see the map first and sled behind it: a point read finds a key
//! here or in sled; an ordered read (a scan) drains its tree first, so
//! sled alone answers it. The map is bounded ([`MAX_ENTRIES`],
//! [`MAX_BYTES`]): past either, all of it is handed to a thread of its own
//! that applies it to sled while the store thread goes on (the writes
//! being drained are read from here until that thread is done), so that
//! sled's copies run on another core than the store's jobs.
//!
//! The journal owns the map and holds its lock across every use, and it
//! writes the records of everything the map holds to its file before a
//! drain, so sled never holds a write the journal's file lacks (what the
//! journal's recovery rests on).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;

use sled::IVec;

/// Most keys held before everything is drained. Under the messaging
/// bench's load a message leaves three (outbox, history, index) on its
/// sender, so 4096 keys hold some 1300 messages, far more than a send
/// window: most outbox rows are removed before they are drained.
pub(super) const MAX_ENTRIES: usize = 4096;

/// Most bytes of keys and values held before everything is drained.
pub(super) const MAX_BYTES: usize = 2 << 20;

/// A held write: the value put, or `None` for a removal.
type Held = Option<IVec>;

/// One tree's held writes, with the handle they are drained through.
struct TreeWrites {
    tree: sled::Tree,
    writes: BTreeMap<IVec, Held>,
}

/// Held writes of every tree, keyed by tree name.
type Writes = HashMap<IVec, TreeWrites>;

/// Writes handed to a thread of their own to be applied to sled, still
/// read from here until that thread is done and reaped.
struct Draining {
    writes: Arc<Writes>,
    thread: JoinHandle<sled::Result<()>>,
}

/// Held writes of every tree, and those being drained.
#[derive(Default)]
pub(super) struct Overlay {
    trees: Writes,
    entries: usize,
    bytes: usize,
    /// At most one drain runs at a time; the map's bound therefore holds
    /// at most twice [`MAX_ENTRIES`] keys in memory.
    draining: Option<Draining>,
}

fn size(key: &[u8], value: &Held) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len())
}

/// Applies `writes` of one tree to sled, in key order.
fn apply(t: &TreeWrites) -> sled::Result<()> {
    for (key, value) in &t.writes {
        match value {
            Some(v) => t.tree.insert(key, v.clone()).map(drop)?,
            None => t.tree.remove(key).map(drop)?,
        }
    }
    Ok(())
}

impl Overlay {
    /// The held write of `key` in `name`: `None` if nothing is held (ask
    /// sled), `Some(None)` if it is held removed.
    pub(super) fn get(&self, name: &[u8], key: &[u8]) -> Option<Held> {
        let held = |w: &Writes| w.get(name)?.writes.get(key).cloned();
        held(&self.trees).or_else(|| held(self.draining.as_ref()?.writes.as_ref()))
    }

    /// Holds `value` (or a removal) as the latest write of `key`.
    pub(super) fn set(&mut self, tree: &sled::Tree, name: &IVec, key: &[u8], value: Held) {
        let add = size(key, &value);
        let t = self
            .trees
            .entry(name.clone())
            .or_insert_with(|| TreeWrites {
                tree: tree.clone(),
                writes: BTreeMap::new(),
            });
        match t.writes.insert(IVec::from(key), value) {
            Some(old) => self.bytes -= size(key, &old),
            None => self.entries += 1,
        }
        self.bytes += add;
    }

    /// Whether the map has grown past its bounds and should be drained.
    pub(super) fn full(&self) -> bool {
        self.entries >= MAX_ENTRIES || self.bytes >= MAX_BYTES
    }

    /// Whether anything is held for `name`, or a drain is under way.
    pub(super) fn holds(&self, name: &[u8]) -> bool {
        self.draining.is_some() || self.trees.contains_key(name)
    }

    /// Keys held (not those being drained), for tests.
    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.entries
    }

    /// Hands every held write to a thread of its own that applies it to
    /// sled, so that the store thread goes on serving jobs meanwhile; the
    /// writes are still read from here until that thread is done. Waits
    /// for the drain before it first. The caller has written their records
    /// to the journal's file.
    pub(super) fn start_drain(&mut self) -> sled::Result<()> {
        self.finish_drain();
        let writes = Arc::new(std::mem::take(&mut self.trees));
        (self.entries, self.bytes) = (0, 0);
        let shared = writes.clone();
        let spawned = std::thread::Builder::new()
            .name("roost-store-drain".into())
            .spawn(move || shared.values().try_for_each(apply));
        match spawned {
            Ok(thread) => {
                self.draining = Some(Draining { writes, thread });
                Ok(())
            }
            Err(e) => {
                tracing::debug!("no thread to drain the store's writes ({e}); draining here");
                let done = writes.values().try_for_each(apply);
                if done.is_err() {
                    self.keep(&writes);
                }
                done
            }
        }
    }

    /// Reaps a drain whose thread is done, if any, without waiting.
    pub(super) fn reap(&mut self) {
        if self
            .draining
            .as_ref()
            .is_some_and(|d| d.thread.is_finished())
        {
            self.finish_drain();
        }
    }

    /// Waits for the drain under way, if any. A failed one's writes are
    /// held again (those not written since), so the next drain applies
    /// them; the write or scan that waits here is not the one that failed,
    /// so it is logged, not returned.
    pub(super) fn finish_drain(&mut self) {
        let Some(d) = self.draining.take() else {
            return;
        };
        let done = d.thread.join().unwrap_or_else(|_| {
            Err(sled::Error::ReportableBug(
                "the store's drain thread panicked".into(),
            ))
        });
        if let Err(e) = done {
            tracing::warn!(
                "draining the store's held writes into sled failed ({e}); they stay held"
            );
            self.keep(&d.writes);
        }
    }

    /// Holds `writes` again where no later write of the same key is held.
    fn keep(&mut self, writes: &Writes) {
        for (name, t) in writes {
            self.keep_tree(name, t);
        }
    }

    fn keep_tree(&mut self, name: &IVec, t: &TreeWrites) {
        for (key, value) in &t.writes {
            let held = self
                .trees
                .get(name)
                .is_some_and(|h| h.writes.contains_key(key));
            if !held {
                self.set(&t.tree, name, key, value.clone());
            }
        }
    }

    /// Applies the held writes of `name` to sled here, in key order, after
    /// the drain under way. On a failure they are held again (applying
    /// one twice is harmless).
    pub(super) fn drain(&mut self, name: &[u8]) -> sled::Result<()> {
        self.finish_drain();
        let Some((name, t)) = self.trees.remove_entry(name) else {
            return Ok(());
        };
        for (key, value) in &t.writes {
            self.entries -= 1;
            self.bytes -= size(key, value);
        }
        apply(&t).inspect_err(|_| self.keep_tree(&name, &t))
    }

    /// Applies every held write to sled here.
    pub(super) fn drain_all(&mut self) -> sled::Result<()> {
        self.finish_drain();
        let names: Vec<IVec> = self.trees.keys().cloned().collect();
        for name in names {
            self.drain(&name)?;
        }
        Ok(())
    }
}
