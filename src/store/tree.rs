//! A sled tree whose every write is recorded in the store's journal.
//!
//! The store's modules reach sled only through [`Tree`]: it offers sled's
//! reads as they are and the three writes the store uses, each recorded in
//! the journal before sled holds it ([`Journal::write`]), so that a sync
//! of the journal makes it durable.
//! A write method sled has and this type lacks cannot be called by
//! mistake and left out of the journal.

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

    /// sled's `insert`, recorded first.
    pub(super) fn insert<K: AsRef<[u8]>, V: Into<IVec>>(
        &self,
        key: K,
        value: V,
    ) -> sled::Result<Option<IVec>> {
        let (key, value) = (key.as_ref(), value.into());
        self.journal.write(|w| {
            w.record(&self.name, key, Some(&value))?;
            self.tree.insert(key, value)
        })
    }

    /// sled's `remove`, recorded first (a removal of nothing is recorded
    /// too: harmless to apply, and cheaper than looking first).
    pub(super) fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let key = key.as_ref();
        self.journal.write(|w| {
            w.record(&self.name, key, None)?;
            self.tree.remove(key)
        })
    }

    /// sled's `compare_and_swap`, recorded first when it swaps. Every
    /// write of the tree holds the journal's lock, so the value read here
    /// stays current until the put or removal that swaps it: one read of
    /// the tree, not a second inside sled's own compare-and-swap.
    pub(super) fn compare_and_swap<K: AsRef<[u8]>, OV: AsRef<[u8]>, NV: Into<IVec>>(
        &self,
        key: K,
        old: Option<OV>,
        new: Option<NV>,
    ) -> sled::Result<Result<(), CompareAndSwapError>> {
        let (key, new) = (key.as_ref(), new.map(Into::into));
        self.journal.write(|w| {
            let current = self.tree.get(key)?;
            if current.as_deref() != old.as_ref().map(AsRef::as_ref) {
                return Ok(Err(CompareAndSwapError {
                    current,
                    proposed: new,
                }));
            }
            w.record(&self.name, key, new.as_deref())?;
            match new {
                Some(v) => self.tree.insert(key, v)?,
                None => self.tree.remove(key)?,
            };
            Ok(Ok(()))
        })
    }

    /// sled's `get`.
    pub(super) fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        self.tree.get(key)
    }

    /// sled's `contains_key`.
    pub(super) fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<bool> {
        self.tree.contains_key(key)
    }

    /// sled's `iter`.
    pub(super) fn iter(&self) -> sled::Iter {
        self.tree.iter()
    }

    /// sled's `scan_prefix`.
    pub(super) fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> sled::Iter {
        self.tree.scan_prefix(prefix)
    }

    /// sled's `range`.
    pub(super) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> sled::Iter {
        self.tree.range(range)
    }

    /// sled's `len` (walks the whole tree).
    pub(super) fn len(&self) -> usize {
        self.tree.len()
    }
}
