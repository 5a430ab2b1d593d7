//! The DHT record store: libp2p's `MemoryStore`, with every record charged
//! to the peer it came from and a cap per such source, so one peer cannot
//! fill the store and have every honest record after it refused.
//!
//! *Source* is the peer whose connection delivered the record (Noise has
//! authenticated it): the `PUT` sender, or the peer whose lookup answer we
//! kept. Not the record's owner: the owner's key is what the record is
//! *about*, and anyone can generate identities and sign a record for each.
//! A locator is one record per identity, under one key (see
//! `wire::locator::validate`), so an owner putting its own record costs its
//! source one slot; a holder handing records over or passing them on (see
//! `net::record_handoff`) is charged for each record it hands us, until
//! the owner's own next put (or any newer copy from another source)
//! replaces it. Honest hand-overs to one peer are about the records near
//! that peer's key: in the swarm benchmark, 4692 hand-over puts among 200
//! nodes and ~40 000 among 1000 — some 23 and 40 a node *from all its
//! sources together* (docs/performance.md) — so 64 from one source leaves
//! room. A network where most nodes are DHT clients (many records per
//! server) hands more per peer; a record refused there is still held by the
//! other holders and put again by its owner at half its lifetime. Our own
//! puts (libp2p's `RecordStore::put`) are charged to us and not capped.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::store::{self, MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

/// Most records the store holds in all.
pub const MAX_RECORDS: usize = 4096;
/// Most records charged to one source peer: one sixty-fourth of
/// [`MAX_RECORDS`], so filling the store takes sixty-four peers holding
/// connections to us, not one.
pub const MAX_RECORDS_PER_SOURCE: usize = 64;

/// Most providers kept per key (a room's members announcing themselves).
pub const MAX_PROVIDERS_PER_KEY: usize = 20;
/// Most keys with providers held (rooms we know members of).
pub const MAX_PROVIDED_KEYS: usize = 1024;
/// Most keys one announcing peer is held as a provider under: as many rooms
/// as a node may join, so one peer cannot take the whole
/// [`MAX_PROVIDED_KEYS`] table and have every honest room refused.
pub const MAX_PROVIDED_PER_PEER: usize = 64;

/// Least time between two sweeps for expired records: records live for
/// hours, so a second's delay in freeing one costs nothing.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Why a record was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PutError {
    /// The source already has [`MAX_RECORDS_PER_SOURCE`] records here.
    #[error("{peer} already has {MAX_RECORDS_PER_SOURCE} records stored here")]
    SourceFull {
        /// The peer that sent the record.
        peer: PeerId,
    },
    /// The store itself refused (full, or the value too large).
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A `MemoryStore` whose records are charged to the peer that sent them.
pub struct SourceCappedStore {
    inner: MemoryStore,
    local: PeerId,
    cap: usize,
    source_of: HashMap<RecordKey, PeerId>,
    held_from: HashMap<PeerId, usize>,
    /// The keys each other peer announced itself under (a superset of what
    /// is held: the inner store may drop a provider on its own, which is
    /// noticed when the set is checked).
    provided_by: HashMap<PeerId, HashSet<RecordKey>>,
    /// When expired records were last dropped.
    swept_at: Option<Instant>,
}

impl SourceCappedStore {
    /// A store for the node `local`, with at most `max_records` records of
    /// at most `max_value_bytes` each, and [`MAX_RECORDS_PER_SOURCE`] per
    /// source.
    pub fn new(local: PeerId, max_records: usize, max_value_bytes: usize) -> Self {
        let config = MemoryStoreConfig {
            max_records,
            max_value_bytes,
            // Provider records say who is in a public room (only room
            // keys are accepted, `event_loop/pubsub.rs`): K members per
            // room are enough to find the rest over gossipsub.
            max_providers_per_key: MAX_PROVIDERS_PER_KEY,
            max_provided_keys: MAX_PROVIDED_KEYS,
        };
        Self {
            inner: MemoryStore::with_config(local, config),
            local,
            cap: MAX_RECORDS_PER_SOURCE,
            source_of: HashMap::new(),
            held_from: HashMap::new(),
            provided_by: HashMap::new(),
            swept_at: None,
        }
    }

    /// Stores `record` as sent by `source` at `now`, replacing any record
    /// under its key (whose charge moves to `source`). Refused if `source`
    /// is at its cap and the key is not already charged to it, counting only
    /// records not yet expired.
    pub fn put_from(
        &mut self,
        source: PeerId,
        record: Record,
        now: Instant,
    ) -> Result<(), PutError> {
        let previous = self.source_of.get(&record.key).copied();
        let new_to_source = previous != Some(source) && source != self.local;
        if new_to_source && self.held_from(&source) >= self.cap {
            self.remove_expired(now);
            if self.held_from(&source) >= self.cap {
                return Err(PutError::SourceFull { peer: source });
            }
        }
        let key = record.key.clone();
        match self.inner.put(record.clone()) {
            Err(store::Error::MaxRecords) => {
                self.remove_expired(now);
                self.inner.put(record)?;
            }
            other => other?,
        }
        if let Some(p) = previous {
            self.uncharge(&p);
        }
        *self.held_from.entry(source).or_default() += 1;
        self.source_of.insert(key, source);
        Ok(())
    }

    /// How many records `source` has in the store.
    pub fn held_from(&self, source: &PeerId) -> usize {
        self.held_from.get(source).copied().unwrap_or(0)
    }

    /// Drops every expired record (libp2p removes one only when it is asked
    /// for), so expired records count against no cap.
    /// At most once per [`SWEEP_EVERY`]: a peer at its cap would otherwise
    /// buy a walk over every record with each put it sends.
    fn remove_expired(&mut self, now: Instant) {
        if self
            .swept_at
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.swept_at = Some(now);
        let expired: Vec<RecordKey> = self
            .inner
            .records()
            .filter(|r| r.is_expired(now))
            .map(|r| r.key.clone())
            .collect();
        for key in expired {
            self.remove(&key);
        }
    }

    /// Keeps in `provided_by` only the keys still held, unexpired, for
    /// their announcer: of one peer, or of every peer when the table has
    /// grown past what the store can hold.
    fn prune_provided(&mut self, only: Option<PeerId>, now: Instant) {
        let inner = &self.inner;
        let held = |who: &PeerId, k: &RecordKey| {
            inner
                .providers(k)
                .iter()
                .any(|p| p.provider == *who && !p.is_expired(now))
        };
        match only {
            Some(who) => {
                if let Some(keys) = self.provided_by.get_mut(&who) {
                    keys.retain(|k| held(&who, k));
                }
            }
            None => self.provided_by.retain(|who, keys| {
                keys.retain(|k| held(who, k));
                !keys.is_empty()
            }),
        }
    }

    fn uncharge(&mut self, source: &PeerId) {
        if let Some(n) = self.held_from.get_mut(source) {
            *n -= 1;
            if *n == 0 {
                self.held_from.remove(source);
            }
        }
    }
}

impl RecordStore for SourceCappedStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    /// libp2p's own puts: our own record, charged to us.
    fn put(&mut self, r: Record) -> store::Result<()> {
        match self.put_from(self.local, r, Instant::now()) {
            Ok(()) => Ok(()),
            Err(PutError::Store(e)) => Err(e),
            // Not reached: our own puts are not capped.
            Err(PutError::SourceFull { .. }) => Err(store::Error::MaxRecords),
        }
    }

    fn remove(&mut self, k: &RecordKey) {
        self.inner.remove(k);
        if let Some(source) = self.source_of.remove(k) {
            self.uncharge(&source);
        }
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    /// Another peer is held under at most [`MAX_PROVIDED_PER_PEER`] keys
    /// (Kademlia has checked that the announcer sent the record); our own
    /// announcements are not capped.
    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        let who = record.provider;
        if who == self.local {
            return self.inner.add_provider(record);
        }
        let now = Instant::now();
        if self.provided_by.len() > MAX_PROVIDED_KEYS * MAX_PROVIDERS_PER_KEY {
            self.prune_provided(None, now);
        }
        let over = |s: &Self| {
            s.provided_by
                .get(&who)
                .is_some_and(|k| k.len() >= MAX_PROVIDED_PER_PEER && !k.contains(&record.key))
        };
        if over(self) {
            self.prune_provided(Some(who), now);
            if over(self) {
                return Err(store::Error::MaxProvidedKeys);
            }
        }
        let key = record.key.clone();
        self.inner.add_provider(record)?;
        self.provided_by.entry(who).or_default().insert(key);
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.inner.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.inner.remove_provider(k, p);
        if let Some(keys) = self.provided_by.get_mut(p) {
            keys.remove(k);
            if keys.is_empty() {
                self.provided_by.remove(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(n: usize, expires: Option<Instant>) -> Record {
        let mut r = Record::new(RecordKey::new(&format!("key {n}")), vec![1]);
        r.expires = expires;
        r
    }

    fn store() -> SourceCappedStore {
        SourceCappedStore::new(PeerId::random(), MAX_RECORDS, 2048)
    }

    #[test]
    fn one_source_is_capped_and_others_still_land() {
        let now = Instant::now();
        let mut s = store();
        let (flood, honest) = (PeerId::random(), PeerId::random());
        let stored = (0..MAX_RECORDS_PER_SOURCE * 3)
            .filter(|&n| s.put_from(flood, record(n, None), now).is_ok())
            .count();
        assert_eq!(stored, MAX_RECORDS_PER_SOURCE);
        assert_eq!(s.records().count(), MAX_RECORDS_PER_SOURCE);
        assert!(matches!(
            s.put_from(flood, record(99_999, None), now),
            Err(PutError::SourceFull { peer }) if peer == flood
        ));
        assert!(s.get(&record(99_999, None).key).is_none());
        // A sentinel from another source lands.
        s.put_from(honest, record(100_000, None), now).unwrap();
        assert!(s.get(&record(100_000, None).key).is_some());
        assert_eq!(s.held_from(&honest), 1);
        // A key the flooder already holds may still be replaced by it.
        s.put_from(flood, record(0, None), now).unwrap();
        assert_eq!(s.held_from(&flood), MAX_RECORDS_PER_SOURCE);
    }

    fn provider(n: usize, who: PeerId) -> ProviderRecord {
        ProviderRecord::new(RecordKey::new(&format!("room {n}")), who, Vec::new())
    }

    #[test]
    fn one_announcer_is_capped_and_others_still_land() {
        let mut s = store();
        let (flood, honest) = (PeerId::random(), PeerId::random());
        let held = (0..MAX_PROVIDED_PER_PEER * 3)
            .filter(|&n| s.add_provider(provider(n, flood)).is_ok())
            .count();
        assert_eq!(held, MAX_PROVIDED_PER_PEER);
        let refused = provider(9_999, flood);
        assert!(s.add_provider(refused.clone()).is_err());
        assert!(s.providers(&refused.key).is_empty());
        // A sentinel from another announcer under a new key lands.
        let sentinel = provider(10_000, honest);
        s.add_provider(sentinel.clone()).unwrap();
        assert_eq!(s.providers(&sentinel.key), vec![sentinel]);
        // Renewing a key it already holds is no new key.
        s.add_provider(provider(0, flood)).unwrap();
        // A record it lost frees a place.
        s.remove_provider(&provider(0, flood).key, &flood);
        s.add_provider(refused.clone()).unwrap();
        assert_eq!(s.providers(&refused.key).len(), 1);
    }

    #[test]
    fn a_source_at_its_cap_buys_at_most_one_sweep_a_second() {
        let t0 = Instant::now();
        let mut s = store();
        let flood = PeerId::random();
        let soon = Some(t0 + Duration::from_millis(100));
        for n in 0..MAX_RECORDS_PER_SOURCE {
            s.put_from(flood, record(n, soon), t0).unwrap();
        }
        // At the cap: this refusal sweeps (nothing has expired yet).
        assert!(s.put_from(flood, record(1000, None), t0).is_err());
        // Expired now, but the last sweep is under a second old.
        let half = t0 + Duration::from_millis(500);
        assert!(s.put_from(flood, record(1001, None), half).is_err());
        assert_eq!(s.held_from(&flood), MAX_RECORDS_PER_SOURCE);
        // A second on, the sweep frees the expired records.
        let later = t0 + SWEEP_EVERY + Duration::from_millis(1);
        s.put_from(flood, record(1002, None), later).unwrap();
        assert_eq!(s.held_from(&flood), 1);
    }

    #[test]
    fn a_replaced_or_removed_record_frees_its_source() {
        let now = Instant::now();
        let mut s = store();
        let (holder, owner) = (PeerId::random(), PeerId::random());
        for n in 0..MAX_RECORDS_PER_SOURCE {
            s.put_from(holder, record(n, None), now).unwrap();
        }
        assert!(s.put_from(holder, record(1000, None), now).is_err());
        // The owner's own put replaces a handed-over copy: the charge moves.
        s.put_from(owner, record(0, None), now).unwrap();
        assert_eq!(s.held_from(&holder), MAX_RECORDS_PER_SOURCE - 1);
        assert_eq!(s.held_from(&owner), 1);
        s.put_from(holder, record(1000, None), now).unwrap();
        s.remove(&record(1000, None).key);
        assert_eq!(s.held_from(&holder), MAX_RECORDS_PER_SOURCE - 1);
        // Our own puts (libp2p's) are never capped.
        for n in 0..MAX_RECORDS_PER_SOURCE + 5 {
            RecordStore::put(&mut s, record(5000 + n, None)).unwrap();
        }
    }

    #[test]
    fn expired_records_count_against_no_cap() {
        let now = Instant::now();
        let mut s = store();
        let holder = PeerId::random();
        let soon = Some(now + Duration::from_secs(1));
        for n in 0..MAX_RECORDS_PER_SOURCE {
            s.put_from(holder, record(n, soon), now).unwrap();
        }
        assert!(s.put_from(holder, record(1000, None), now).is_err());
        let later = now + Duration::from_secs(2);
        s.put_from(holder, record(1000, None), later).unwrap();
        assert_eq!(s.held_from(&holder), 1);
        assert_eq!(s.records().count(), 1);
    }

    #[test]
    fn the_store_as_a_whole_stays_bounded() {
        let now = Instant::now();
        let mut s = SourceCappedStore::new(PeerId::random(), 10, 2048);
        let mut n = 0;
        for _ in 0..5 {
            let source = PeerId::random();
            for _ in 0..4 {
                let _ = s.put_from(source, record(n, None), now);
                n += 1;
            }
        }
        assert_eq!(s.records().count(), 10);
        let counted: usize = s.held_from.values().sum();
        assert_eq!(counted, 10);
    }
}
