//! What goes into the locator machine and what comes out of it: its
//! inputs, its outputs, the present moment it is given, and [`Dht`], what
//! it reads of the node it runs in.

use std::time::Instant;

use libp2p::kad::{K_VALUE, KBucketKey, Quorum, Record, RecordKey};
use libp2p::{Multiaddr, PeerId};

use super::PutError;
use crate::net::record_store::SourceCappedStore;
use crate::wire::locator::Locator;
use libp2p::kad::store::RecordStore;

/// How many of the routing table's closest peers [`Dht::closest_known`]
/// must yield at least: the hand-over and pass-on rules look at the K
/// closest, skipping us and the peer in question.
pub const CLOSEST_NEEDED: usize = K_VALUE.get() + 2;

/// One DHT operation the machine asked for (a lookup or a put); the
/// driver maps it to its own query ids and reports back under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Op(pub(super) u64);

/// The present moment on both clocks the machine needs: monotonic for its
/// timers, Unix milliseconds for records (which carry wall-clock expiry).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time, for timers.
    pub at: Instant,
    /// Unix milliseconds, for record expiry and seqs.
    pub unix_ms: u64,
}

/// What the machine reads of the DHT node it runs in. It never does I/O:
/// these are reads of in-memory state, and one write whose outcome a rule
/// depends on (a record refused by the store is not passed on).
pub trait Dht {
    /// The record store (Kademlia's own, or a simulated node's).
    fn store(&mut self) -> &mut SourceCappedStore;
    /// The record held under `key`, expired or not.
    fn held(&mut self, key: &RecordKey) -> Option<Record> {
        self.store().get(key).map(|r| r.into_owned())
    }
    /// The keys of every record held and not expired at `now`.
    fn held_keys(&mut self, now: Instant) -> Vec<RecordKey> {
        self.store()
            .records()
            .filter(|r| !r.is_expired(now))
            .map(|r| r.key.clone())
            .collect()
    }
    /// Stores `record` as sent by `source`, within its share of the store.
    fn put_from(&mut self, source: PeerId, record: Record, now: Instant) -> Result<(), PutError> {
        self.store().put_from(source, record, now)
    }
    /// Our routing table ordered by distance to `key`, closest first: at
    /// least the [`CLOSEST_NEEDED`] closest.
    fn closest_known(&mut self, key: &RecordKey) -> Vec<KBucketKey<PeerId>>;
    /// How many peers the routing table holds.
    fn table_size(&mut self) -> usize;
    /// The addresses worth publishing now.
    fn addrs(&self) -> Vec<Multiaddr>;
}

/// What happens to the machine.
#[derive(Debug)]
pub enum Input {
    /// Look up `peer`'s locator; the answer comes as [`Output::Answer`]
    /// with the same `waiter`.
    Find {
        /// Chosen by the caller, to match the answer.
        waiter: u64,
        /// Whose locator.
        peer: PeerId,
    },
    /// What [`Dht::addrs`] returns has changed.
    AddressesChanged,
    /// Whether our record may be published now. `false` holds every
    /// publication back (a node not reachable directly, still waiting for
    /// a relay circuit to put in it); `true` lets what fell due meanwhile
    /// go out.
    Publishable(bool),
    /// Leave the network: publish "offline", then stop.
    Shutdown,
    /// Time passed (at least up to [`super::Machine::poll_timeout`]).
    Tick,
    /// Lookup `op` found `record`, from peer `from` or (`None`) from our
    /// own store.
    Found {
        /// The lookup.
        op: Op,
        /// Who answered; `None` for our own store.
        from: Option<PeerId>,
        /// What it answered.
        record: Record,
    },
    /// Lookup `op` ended.
    LookupDone {
        /// The lookup.
        op: Op,
    },
    /// Put `op` ended: `Ok`, or `Err` with the peers that did store it.
    PutDone {
        /// The put.
        op: Op,
        /// Its outcome.
        result: Result<(), Vec<PeerId>>,
    },
    /// `source` (authenticated by its connection) asks us to store `record`.
    Inbound {
        /// The sender.
        source: PeerId,
        /// The record.
        record: Record,
    },
    /// A peer entered our routing table.
    NewPeer(PeerId),
}

/// What the machine asks of its driver.
#[derive(Debug)]
pub enum Output {
    /// Start an iterative lookup of `key`.
    GetRecord {
        /// Report its results under this.
        op: Op,
        /// The key.
        key: RecordKey,
    },
    /// Stop lookup `op`: it is answered.
    FinishLookup {
        /// The lookup.
        op: Op,
    },
    /// Store our own `record` locally and put it to the closest peers of
    /// its key (Kademlia's `put_record`).
    PutRecord {
        /// Report the outcome under this.
        op: Op,
        /// Our signed locator.
        record: Record,
        /// How many holders must take it.
        quorum: Quorum,
    },
    /// Put `record` to these peers only (a hand-over or pass-on).
    PutRecordTo {
        /// Report the outcome under this.
        op: Op,
        /// A held record.
        record: Record,
        /// To whom.
        peers: Vec<PeerId>,
        /// How many must take it.
        quorum: Quorum,
    },
    /// The answer to [`Input::Find`] `waiter`.
    Answer {
        /// As given with the find.
        waiter: u64,
        /// The locator found, if any.
        locator: Option<Locator>,
    },
    /// Persist this seq: the next run must publish a higher one.
    PersistSeq(u64),
}
