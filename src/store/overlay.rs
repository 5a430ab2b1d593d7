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
//! [`MAX_BYTES`]): past either, the writer drains all of it.
//!
//! The journal owns the map and holds its lock across every use, and it
//! writes the records of everything the map holds to its file before a
//! drain, so sled never holds a write the journal's file lacks (what the
//! journal's recovery rests on).

use std::collections::{BTreeMap, HashMap};

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
#[derive(Default)]
pub(super) struct Overlay {
    trees: HashMap<IVec, TreeWrites>,
    entries: usize,
    bytes: usize,
}

fn size(key: &[u8], value: &Held) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len())
}

impl Overlay {
    /// The held write of `key` in `name`: `None` if nothing is held (ask
    /// sled), `Some(None)` if it is held removed.
    pub(super) fn get(&self, name: &[u8], key: &[u8]) -> Option<Held> {
        self.trees.get(name)?.writes.get(key).cloned()
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

    /// Whether anything is held for `name`.
    pub(super) fn holds(&self, name: &[u8]) -> bool {
        self.trees.contains_key(name)
    }

    /// Keys held, for tests.
    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.entries
    }

    /// Applies the held writes of `name` to sled, in key order. On a
    /// failure the writes not yet applied stay held.
    pub(super) fn drain(&mut self, name: &[u8]) -> sled::Result<()> {
        let Some(mut t) = self.trees.remove(name) else {
            return Ok(());
        };
        while let Some((key, value)) = t.writes.pop_first() {
            let applied = match &value {
                Some(v) => t.tree.insert(&key, v.clone()).map(drop),
                None => t.tree.remove(&key).map(drop),
            };
            if let Err(e) = applied {
                t.writes.insert(key, value);
                self.trees.insert(IVec::from(name), t);
                return Err(e);
            }
            self.entries -= 1;
            self.bytes -= size(&key, &value);
        }
        Ok(())
    }

    /// Applies every held write to sled.
    pub(super) fn drain_all(&mut self) -> sled::Result<()> {
        let names: Vec<IVec> = self.trees.keys().cloned().collect();
        for name in names {
            self.drain(&name)?;
        }
        Ok(())
    }
}
