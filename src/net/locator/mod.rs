//! The locator as a sans-IO machine: every rule about our own locator record
//! and the records we hold for others, driven by [`Machine::handle`] with
//! the present moment as an argument, in the style of iroh-gossip's
//! `proto/`. It owns its timers ([`Machine::poll_timeout`]); it sends
//! nothing and stores nothing itself — it returns [`Output`]s, and reads
//! the DHT node it runs in (record store, routing table, our addresses)
//! through [`Dht`]. The network task translates between libp2p's Kademlia
//! and these inputs and outputs (`net::event_loop::kademlia`); the
//! simulator (`benches/sim`) drives the same machine over a modelled
//! network.
//!
//! The rules it applies:
//! - **Publish** a signed record ([`crate::wire::locator::sign`]) when the
//!   [`Republisher`] says so (addresses changed, half the TTL, a young
//!   routing table grew, a failed put); its seq is `max(last + 1, now in
//!   ms)`, handed out for persisting ([`Output::PersistSeq`]), so it keeps
//!   growing across restarts. While the node says it is not publishable
//!   yet ([`Input::Publishable`]: a NATed node without a relay circuit),
//!   a publication that falls due waits, and goes out [`SETTLE`] after the
//!   hold ends (so the circuit address reported with it is in the record).
//! - **Lookups** take the first valid answer from a *peer*
//!   ([`crate::wire::locator::validate_answer`]) and finish there; our own
//!   store's copy answers only if it is newer or no peer answers, and an
//!   older own copy is replaced by the peer's. A lookup of ourselves is
//!   answered from the record we last published, without a query.
//! - **Keep or replace** what peers put to us: valid, newer than what we
//!   hold, within the sender's share of the store
//!   ([`crate::net::record_store`]). A public room's record follows its
//!   own rule ([`rooms`]): the first owner of a name keeps it.
//! - **Hand over** held records to a newly met peer that now ranks among
//!   their closest holders, **pass on** a record a holder handed us to the
//!   closer peers it did not count on ([`crate::net::record_handoff`]), and
//!   **retry** a failed hand-over once, to the peers that did not take it.
//! - **Leave**: at shutdown, an "offline" record put to every holder, and
//!   the machine stops when they all answered or [`SHUTDOWN_GRACE`] passed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::{KBucketKey, Quorum, Record, RecordKey};
use tracing::{debug, warn};

use super::record_handoff;
use super::record_store::PutError;
use super::republish::{Republisher, SETTLE};
use crate::identity::Identity;
use crate::wire::locator::{self, Locator, RecordError};

mod interface;
pub mod rooms;
#[cfg(test)]
mod tests;

pub use interface::{CLOSEST_NEEDED, Dht, Input, Now, Op, Output};

/// How long a clean shutdown waits for the "offline" record to be stored.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A lookup under way.
struct Lookup {
    asked: PeerId,
    waiter: u64,
    /// Our own store's copy, given only if no peer answers (or it is the
    /// newer): a holder that missed the owner's last put would otherwise
    /// answer its own lookups with the stale copy for the record's lifetime.
    own: Option<Locator>,
}

/// A put under way, and what its outcome means.
enum Put {
    /// Our own publication.
    Own,
    /// Our "offline" record at shutdown.
    Offline,
    /// A hand-over or pass-on of the record under `key` to `peers`;
    /// `retry`: whether a failure is tried once more.
    HandOver {
        key: RecordKey,
        peers: Vec<PeerId>,
        retry: bool,
    },
}

/// The locator machine of one node.
pub struct Machine {
    identity: Identity,
    local: PeerId,
    ttl: Duration,
    republisher: Republisher,
    seq: u64,
    published: Option<Locator>,
    /// Publication held back ([`Input::Publishable`]).
    holding: bool,
    next_op: u64,
    lookups: HashMap<Op, Lookup>,
    puts: HashMap<Op, Put>,
    /// Leaving: until when we wait for the "offline" put.
    stopping: Option<Instant>,
    stopped: bool,
}

impl Machine {
    /// The machine of the node `identity`, publishing records that live
    /// `ttl`, at most once per `min_interval` as its table grows; `seq` is
    /// the last seq it published (persisted).
    pub fn new(identity: Identity, ttl: Duration, min_interval: Duration, seq: u64) -> Self {
        Self {
            local: identity.peer_id(),
            identity,
            ttl,
            republisher: Republisher::new(ttl, min_interval),
            seq,
            published: None,
            holding: false,
            next_op: 0,
            lookups: HashMap::new(),
            puts: HashMap::new(),
            stopping: None,
            stopped: false,
        }
    }

    /// Applies `input` at `now`; returns what the driver must do, in order.
    pub fn handle(&mut self, input: Input, now: Now, dht: &mut impl Dht) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Find { waiter, peer } => self.find(waiter, peer, now, &mut out),
            Input::AddressesChanged => self.republisher.addresses_changed(now.at),
            Input::Publishable(false) => self.holding = true,
            Input::Publishable(true) => {
                if std::mem::take(&mut self.holding) {
                    self.republisher.not_before(now.at + SETTLE);
                }
            }
            Input::Shutdown => self.shutdown(now, dht, &mut out),
            Input::Tick => self.tick(now, dht, &mut out),
            Input::Found { op, from, record } => self.found(op, from, record, now, dht, &mut out),
            Input::LookupDone { op } => {
                if let Some(l) = self.lookups.remove(&op) {
                    out.push(Output::Answer {
                        waiter: l.waiter,
                        locator: l.own,
                    });
                }
            }
            Input::PutDone { op, result } => self.put_done(op, result, now, dht, &mut out),
            Input::Inbound { source, record } => self.inbound(source, record, now, dht, &mut out),
            Input::NewPeer(peer) => {
                let size = dht.table_size();
                self.republisher.peer_added(now.at, size);
                if self.stopping.is_none() {
                    self.hand_over(peer, now, dht, &mut out);
                }
            }
        }
        out
    }

    /// When the machine next needs an [`Input::Tick`], if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.stopping {
            Some(_) if self.stopped => None,
            Some(deadline) => Some(*deadline),
            None if self.holding => None,
            None => self.republisher.due(),
        }
    }

    /// Whether a shutdown has finished: the "offline" record is stored, or
    /// the grace is over.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The last seq published (or given at start).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The locator we last published, if any.
    pub fn published(&self) -> Option<&Locator> {
        self.published.as_ref()
    }

    fn op(&mut self) -> Op {
        self.next_op += 1;
        Op(self.next_op)
    }

    fn find(&mut self, waiter: u64, peer: PeerId, now: Now, out: &mut Vec<Output>) {
        if peer == self.local {
            let locator = self
                .published
                .clone()
                .filter(|l| l.expires_at > now.unix_ms);
            out.push(Output::Answer { waiter, locator });
            return;
        }
        let op = self.op();
        self.lookups.insert(
            op,
            Lookup {
                asked: peer,
                waiter,
                own: None,
            },
        );
        out.push(Output::GetRecord {
            op,
            key: locator::record_key(&peer),
        });
    }

    /// Lookup `op` found `record`. A peer's valid answer, or our own copy if
    /// it is newer, answers at once; an own copy older than the peer's is
    /// replaced by it (validated once, here).
    fn found(
        &mut self,
        op: Op,
        from: Option<PeerId>,
        record: Record,
        now: Now,
        dht: &mut impl Dht,
        out: &mut Vec<Output>,
    ) {
        let Some(lookup) = self.lookups.get_mut(&op) else {
            return; // answered already
        };
        let loc = match locator::validate_answer(
            &lookup.asked,
            &record.key,
            &record.value,
            now.unix_ms,
        ) {
            Ok(loc) => loc,
            Err(e) => {
                debug!(?from, "ignoring record from lookup: {e}");
                return;
            }
        };
        let Some(from) = from else {
            lookup.own = Some(loc);
            return;
        };
        let answer = match lookup.own.take() {
            Some(own) if own.seq > loc.seq => own,
            Some(own) => {
                if own.seq < loc.seq {
                    self.store(from, &loc, record, now, dht);
                }
                loc
            }
            None => loc,
        };
        if let Some(l) = self.lookups.remove(&op) {
            out.push(Output::Answer {
                waiter: l.waiter,
                locator: Some(answer),
            });
        }
        out.push(Output::FinishLookup { op });
    }

    /// Stores a record validated as `loc`, sent by `source`, expiring with
    /// it; whether the store took it.
    fn store(
        &self,
        source: PeerId,
        loc: &Locator,
        mut record: Record,
        now: Now,
        dht: &mut impl Dht,
    ) -> bool {
        let left = Duration::from_millis(loc.expires_at.saturating_sub(now.unix_ms));
        record.expires = Some(now.at + left);
        match dht.put_from(source, record, now.at) {
            Ok(()) => true,
            Err(e @ PutError::SourceFull { .. }) => {
                debug!("record not stored: {e}");
                false
            }
            Err(e) => {
                warn!("record store full: {e}");
                false
            }
        }
    }

    /// Keeps `record`, sent by `source`, if it is valid, newer than what we
    /// hold and within `source`'s share of the store; returns its locator
    /// if it was new to us and stored.
    fn keep(
        &self,
        source: PeerId,
        record: &Record,
        now: Now,
        dht: &mut impl Dht,
    ) -> Result<Option<Locator>, RecordError> {
        let held = dht.held(&record.key).map(|r| r.value);
        if held.as_deref() == Some(record.value.as_slice()) {
            return Ok(None); // a re-replication of what we hold
        }
        let held_seq = held.as_deref().and_then(locator::seq_of);
        let loc = locator::validate(&record.key, &record.value, now.unix_ms, held_seq)?;
        Ok(self
            .store(source, &loc, record.clone(), now, dht)
            .then_some(loc))
    }

    /// With Kademlia's `FilterBoth`, nothing enters our record store unless
    /// it passes [`Machine::keep`]. A record a holder handed us (not its
    /// owner's own put) goes on to the closer peers that holder did not
    /// count on ([`record_handoff::pass_on`]): without it, a peer we met
    /// before the record reached us never gets it.
    fn inbound(
        &mut self,
        source: PeerId,
        record: Record,
        now: Now,
        dht: &mut impl Dht,
        out: &mut Vec<Output>,
    ) {
        if crate::wire::room::is_room_key(&record.key) {
            if let Err(e) = self.keep_room(source, record, now, dht) {
                debug!(%source, "refused room record: {e}");
            }
            return;
        }
        match self.keep(source, &record, now, dht) {
            Ok(Some(loc)) if self.stopping.is_none() && loc.peer != source => {
                let target = KBucketKey::new(record.key.clone());
                let known = dht.closest_known(&record.key);
                let local = KBucketKey::from(self.local);
                let to = record_handoff::pass_on(&target, &local, &KBucketKey::from(source), known);
                if !to.is_empty() {
                    debug!(%source, ?to, key = ?record.key, "passing on a record handed over");
                    // `All`: the outcome then names every peer that did
                    // not take it, for the retry.
                    self.put_to(record, to, Quorum::All, true, out);
                }
            }
            Ok(_) => {}
            Err(e) => debug!(%source, "refused record: {e}"),
        }
    }

    fn put_to(
        &mut self,
        record: Record,
        peers: Vec<PeerId>,
        quorum: Quorum,
        retry: bool,
        out: &mut Vec<Output>,
    ) {
        let op = self.op();
        self.puts.insert(
            op,
            Put::HandOver {
                key: record.key.clone(),
                peers: peers.clone(),
                retry,
            },
        );
        out.push(Output::PutRecordTo {
            op,
            record,
            peers,
            quorum,
        });
    }

    /// Gives a newly met peer the held records it now ranks among the
    /// closest holders of, when we are the one to send them
    /// ([`record_handoff::should_hand_over`]). Without it a locator put into
    /// a young network stays with its first holders while lookups move to
    /// nodes that joined later.
    fn hand_over(&mut self, newcomer: PeerId, now: Now, dht: &mut impl Dht, out: &mut Vec<Output>) {
        let local = KBucketKey::from(self.local);
        let theirs = KBucketKey::from(newcomer);
        let mut keys = dht.held_keys(now.at);
        keys.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        for key in keys {
            let target = KBucketKey::new(key.clone());
            let known = dht.closest_known(&key);
            if !record_handoff::should_hand_over(&target, &local, &theirs, known) {
                continue;
            }
            let Some(record) = dht.held(&key) else {
                continue;
            };
            debug!(%newcomer, ?key, "handing over a held record");
            self.put_to(record, vec![newcomer], Quorum::One, true, out);
        }
    }

    fn put_done(
        &mut self,
        op: Op,
        result: Result<(), Vec<PeerId>>,
        now: Now,
        dht: &mut impl Dht,
        out: &mut Vec<Output>,
    ) {
        let Some(put) = self.puts.remove(&op) else {
            return;
        };
        match (put, result) {
            (Put::Offline, _) => self.stopped = true,
            (Put::Own, Ok(())) => {}
            (Put::Own, Err(_)) => {
                debug!("locator publication incomplete");
                let size = dht.table_size();
                self.republisher.failed(now.at, size);
            }
            (Put::HandOver { .. }, Ok(())) => {}
            (Put::HandOver { key, peers, retry }, Err(success)) => {
                debug!(?key, "hand-over of a held record failed");
                if retry {
                    self.retry_hand_over(key, peers, &success, now, dht, out);
                }
            }
        }
    }

    /// Tries a failed hand-over once more, to the peers that did not take
    /// the record. Once we know a peer closer to the key than we are, we
    /// leave later newcomers to it; if our put to it failed on a busy
    /// moment, nobody hands the record on and it stays behind for good. A
    /// second failure is left alone: the peer is most likely gone.
    fn retry_hand_over(
        &mut self,
        key: RecordKey,
        peers: Vec<PeerId>,
        success: &[PeerId],
        now: Now,
        dht: &mut impl Dht,
        out: &mut Vec<Output>,
    ) {
        let rest: Vec<PeerId> = peers.into_iter().filter(|p| !success.contains(p)).collect();
        if rest.is_empty() || self.stopping.is_some() {
            return;
        }
        let record = dht.held(&key).filter(|r| !r.is_expired(now.at));
        let Some(record) = record else {
            return;
        };
        debug!(?key, ?rest, "handing over a held record again");
        self.put_to(record, rest, Quorum::All, false, out);
    }

    fn tick(&mut self, now: Now, dht: &mut impl Dht, out: &mut Vec<Output>) {
        match &self.stopping {
            Some(deadline) if now.at >= *deadline => self.stopped = true,
            Some(_) => {}
            None if !self.holding && self.republisher.is_due(now.at) => {
                self.publish(true, now, dht, out);
            }
            None => {}
        }
    }

    fn shutdown(&mut self, now: Now, dht: &mut impl Dht, out: &mut Vec<Output>) {
        if self.stopping.is_some() {
            return;
        }
        self.stopped = self.publish(false, now, dht, out).is_none();
        self.stopping = Some(now.at + SHUTDOWN_GRACE);
    }

    /// Signs and puts a fresh locator record.
    fn publish(
        &mut self,
        online: bool,
        now: Now,
        dht: &mut impl Dht,
        out: &mut Vec<Output>,
    ) -> Option<Op> {
        self.seq = (self.seq + 1).max(now.unix_ms);
        let addrs = dht.addrs();
        let expires_at = now.unix_ms + self.ttl.as_millis() as u64;
        let value = match locator::sign(&self.identity, self.seq, &addrs, expires_at, online) {
            Ok(v) => v,
            Err(e) => {
                warn!("cannot sign locator: {e}");
                return None;
            }
        };
        out.push(Output::PersistSeq(self.seq));
        let table = dht.table_size();
        debug!(seq = self.seq, online, ?addrs, table, "publishing locator");
        self.republisher.published(now.at, table);
        self.published = Some(Locator {
            peer: self.local,
            seq: self.seq,
            addrs,
            expires_at,
            online,
        });
        let record = Record {
            key: locator::record_key(&self.local),
            value,
            publisher: None,
            expires: Some(now.at + self.ttl),
        };
        let op = self.op();
        self.puts
            .insert(op, if online { Put::Own } else { Put::Offline });
        // Leaving, we wait (up to the grace) for every holder: the query
        // ends at its quorum, and with it our swarm, cutting off the puts
        // still under way — a holder that missed "offline" would go on
        // answering "online" for the record's lifetime.
        let quorum = if online { Quorum::One } else { Quorum::All };
        out.push(Output::PutRecord { op, record, quorum });
        Some(op)
    }
}
