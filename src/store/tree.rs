//! A sled tree whose every write is recorded in the store's journal and
//! held in front of sled until drained into it.
//!
//! The store's modules reach sled only through [`Tree`]: it offers the
//! writes the store uses, each recorded for the journal and held in its
//! write-behind map ([`Journal::with`], [`super::overlay`]), so that a
//! sync of the journal makes it durable; point reads that look at the map
//! first; and ordered reads that drain the tree's held writes into sled
//! first. A method sled has and this type lacks cannot be called by
//! mistake and bypass the journal or the map.

use std::ops::RangeBounds;
use std::sync::Arc;

use sled::{CompareAndSwapError, IVec};

use super::journal::Journal;

/// A tree of the store; cheap to clone.
#[derive(Clone)]
pub(super) struct Tree {
    tree: sled::Tree,
    name: IVec,
    journal: Arc<Journal>,
}

impl Tree {
    /// The tree `name` of `db`, its writes recorded in `journal`.
    pub(super) fn open(
        db: &sled::Db,
        name: &str,
        journal: &Arc<Journal>,
    ) -> Result<Self, super::StoreError> {
        let tree = db.open_tree(name)?;
        Ok(Self {
            name: tree.name(),
            tree,
            journal: journal.clone(),
        })
    }

    /// Puts `value` under `key` and returns what it replaced.
    pub(super) fn insert<K: AsRef<[u8]>, V: Into<IVec>>(
        &self,
        key: K,
        value: V,
    ) -> sled::Result<Option<IVec>> {
        self.swap(key.as_ref(), Some(value.into()))
    }

    /// Puts `value` under `key`, not reading what it replaces: for the
    /// message path's writes, which never need it.
    pub(super) fn put<K: AsRef<[u8]>, V: Into<IVec>>(&self, key: K, value: V) -> sled::Result<()> {
        let (key, value) = (key.as_ref(), value.into());
        self.journal
            .with(|w| w.set(&self.tree, &self.name, key, Some(value)))
    }

    /// Removes `key` and returns what it held.
    pub(super) fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        self.swap(key.as_ref(), None)
    }

    /// Removes `key`, not reading what it held (a removal of nothing is
    /// recorded too: harmless to apply, and cheaper than looking first).
    pub(super) fn delete<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<()> {
        let key = key.as_ref();
        self.journal
            .with(|w| w.set(&self.tree, &self.name, key, None))
    }

    fn swap(&self, key: &[u8], value: Option<IVec>) -> sled::Result<Option<IVec>> {
        self.journal.with(|w| {
            let old = w.get(&self.tree, &self.name, key)?;
            w.set(&self.tree, &self.name, key, value)?;
            Ok(old)
        })
    }

    /// sled's `compare_and_swap`. Every use of the tree holds the
    /// journal's lock, so the value read here stays current until the
    /// write that swaps it.
    pub(super) fn compare_and_swap<K: AsRef<[u8]>, OV: AsRef<[u8]>, NV: Into<IVec>>(
        &self,
        key: K,
        old: Option<OV>,
        new: Option<NV>,
    ) -> sled::Result<Result<(), CompareAndSwapError>> {
        let (key, new) = (key.as_ref(), new.map(Into::into));
        self.journal.with(|w| {
            let current = w.get(&self.tree, &self.name, key)?;
            if current.as_deref() != old.as_ref().map(AsRef::as_ref) {
                return Ok(Err(CompareAndSwapError {
                    current,
                    proposed: new,
                }));
            }
            w.set(&self.tree, &self.name, key, new)?;
            Ok(Ok(()))
        })
    }

    /// The current value of `key`.
    pub(super) fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let key = key.as_ref();
        self.journal.with(|w| w.get(&self.tree, &self.name, key))
    }

    /// Whether `key` holds a value.
    pub(super) fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Drains the writes held for this tree into sled, so that sled's
    /// ordered reads see them.
    fn drained(&self) -> sled::Result<&sled::Tree> {
        self.journal.with(|w| w.drain(&self.name))?;
        Ok(&self.tree)
    }

    /// sled's `iter`, over every write made.
    pub(super) fn iter(&self) -> sled::Result<sled::Iter> {
        Ok(self.drained()?.iter())
    }

    /// sled's `scan_prefix`, over every write made.
    pub(super) fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> sled::Result<sled::Iter> {
        Ok(self.drained()?.scan_prefix(prefix))
    }

    /// sled's `range`, over every write made.
    pub(super) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        range: R,
    ) -> sled::Result<sled::Iter> {
        Ok(self.drained()?.range(range))
    }

    /// What sled itself holds for `key`, held writes aside, for tests.
    #[cfg(test)]
    pub(super) fn in_sled<K: AsRef<[u8]>>(&self, key: K) -> Option<IVec> {
        self.tree.get(key).unwrap()
    }

    /// Keys in the tree (walks the whole tree).
    pub(super) fn len(&self) -> sled::Result<usize> {
        Ok(self.drained()?.len())
    }
}
