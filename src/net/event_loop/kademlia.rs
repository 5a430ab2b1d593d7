//! The event loop's Kademlia side: our locator record (publish, lookups),
//! peers entering the routing table, and the records we hold for others
//! (keep or replace, hand over to newcomers, pass on, retry). The rules
//! are in the pure modules [`crate::net::republish`] and
//! [`crate::net::record_handoff`]; this applies them to the swarm.

use std::time::{Duration, Instant};

use libp2p::kad::store::RecordStore;
use libp2p::kad::{
    self, GetRecordOk, InboundRequest, KBucketKey, PeerRecord, QueryId, QueryResult, Quorum, Record,
};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, identify};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::{EventLoop, NetEvent};
use crate::clock::unix_ms;
use crate::net::behaviour::KAD_PROTOCOL;
use crate::net::record_handoff;
use crate::net::record_store::PutError;
use crate::wire::locator::{self, Locator};

impl EventLoop {
    pub(super) fn find(&mut self, peer: PeerId, reply: oneshot::Sender<Option<Locator>>) {
        let key = locator::record_key(&peer);
        if peer == *self.swarm.local_peer_id() {
            let own = self.swarm.behaviour_mut().kad.store_mut().get(&key);
            let loc = own.and_then(|r| locator::validate(&key, &r.value, unix_ms(), None).ok());
            let _ = reply.send(loc);
            return;
        }
        let id = self.swarm.behaviour_mut().kad.get_record(key);
        self.pending_finds.insert(id, (peer, reply));
    }

    /// Signs and puts a fresh locator record.
    pub(super) fn publish(&mut self, online: bool) -> Option<QueryId> {
        let now = unix_ms();
        self.seq = (self.seq + 1).max(now);
        let addrs = self.public_addrs();
        let ttl_ms = self.locator_ttl.as_millis() as u64;
        let value = match locator::sign(&self.identity, self.seq, &addrs, now + ttl_ms, online) {
            Ok(v) => v,
            Err(e) => {
                warn!("cannot sign locator: {e}");
                return None;
            }
        };
        let seq = self.seq;
        self.writer.submit(move |s| {
            if let Err(e) = s.set_locator_seq(seq) {
                warn!("cannot save locator seq: {e}");
            }
        });
        let record = Record {
            key: locator::record_key(self.swarm.local_peer_id()),
            value,
            publisher: None,
            expires: Some(Instant::now() + self.locator_ttl),
        };
        let table = self.routing_table_size();
        debug!(seq, online, ?addrs, table, "publishing locator");
        self.republisher.published(Instant::now(), table);
        // Leaving, we wait (up to the grace) for every holder: the query
        // ends at its quorum, and with it our swarm, cutting off the puts
        // still under way — a holder that missed "offline" would go on
        // answering "online" for the record's lifetime.
        let quorum = if online { Quorum::One } else { Quorum::All };
        match self.swarm.behaviour_mut().kad.put_record(record, quorum) {
            Ok(id) => Some(id),
            Err(e) => {
                warn!("cannot store own locator: {e}");
                None
            }
        }
    }

    /// Addresses worth publishing: our listeners (relay circuits included)
    /// and confirmed external addresses, without loopback ones unless that
    /// is all we have (tests, the demo).
    pub(super) fn public_addrs(&self) -> Vec<Multiaddr> {
        // Listeners include our relay circuit addresses; external ones
        // those AutoNAT, UPnP or the user confirmed (some also listeners).
        let mut seen = std::collections::HashSet::new();
        let all: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .chain(self.swarm.external_addresses())
            .filter(|a| seen.insert(*a))
            .cloned()
            .collect();
        let is_loopback = |a: &Multiaddr| {
            a.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_loopback(),
                Protocol::Ip6(ip) => ip.is_loopback(),
                _ => false,
            })
        };
        let routable: Vec<Multiaddr> = all.iter().filter(|a| !is_loopback(a)).cloned().collect();
        if routable.is_empty() { all } else { routable }
    }

    pub(super) fn routing_table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    pub(super) fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        if !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        for addr in &info.listen_addrs {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
        }
        if let Some(r) = self
            .lasting
            .identified(peer, info.listen_addrs, Instant::now())
        {
            self.remember(r);
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_record(source, record),
            kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                ..
            } => {
                let size = self.routing_table_size();
                self.republisher.peer_added(Instant::now(), size);
                if self.stopping.is_none() {
                    self.hand_over_records(peer);
                }
                let _ = self.net_events.try_send(NetEvent::NewPeer(peer));
            }
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(PeerRecord {
                    record,
                    peer,
                }))) => {
                    let now = unix_ms();
                    let answer = match self.pending_finds.get(&id) {
                        Some(&(asked, _)) => {
                            locator::validate_answer(&asked, &record.key, &record.value, now)
                        }
                        None => return, // answered already
                    };
                    match (answer, peer) {
                        (Ok(loc), None) => {
                            self.own_answers.insert(id, loc);
                        }
                        (Ok(loc), Some(from)) => self.found(id, loc, record, from),
                        (Err(e), _) => debug!(?peer, "ignoring record from lookup: {e}"),
                    }
                    if step.last {
                        self.find_done(id);
                    }
                }
                QueryResult::GetRecord(_) => self.find_done(id),
                QueryResult::GetClosestPeers(res) => {
                    let peers = match res {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    for p in &peers {
                        for a in &p.addrs {
                            self.swarm.add_peer_address(p.peer_id, a.clone());
                        }
                    }
                    if let Some(reply) = self.pending_closest.remove(&id) {
                        let _ = reply.send(peers.into_iter().map(|p| p.peer_id).collect());
                    }
                }
                QueryResult::PutRecord(res) => {
                    if let Some(reply) = self.pending_puts.remove(&id) {
                        let _ = reply.send(res.map(|_| ()).map_err(|e| e.to_string()));
                        return;
                    }
                    if let Some(retry) = self.handoffs.remove(&id) {
                        if let Err(e) = res {
                            debug!("hand-over of a held record failed: {e}");
                            if let Some(peers) = retry {
                                self.retry_hand_over(e, peers);
                            }
                        }
                        return;
                    }
                    if let Some(s) = &mut self.stopping
                        && s.query == Some(id)
                    {
                        s.query = None;
                        return;
                    }
                    if let Err(e) = res {
                        debug!("locator publication incomplete: {e}");
                        let size = self.routing_table_size();
                        self.republisher.failed(Instant::now(), size);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Gives a newly met peer the held locators it now ranks among the
    /// closest holders of, when we are the one to send them (see
    /// [`record_handoff`]). Without it a locator put into a young network
    /// stays with its first holders while lookups move to nodes that joined
    /// later.
    pub(super) fn hand_over_records(&mut self, newcomer: PeerId) {
        let local = KBucketKey::from(*self.swarm.local_peer_id());
        let theirs = KBucketKey::from(newcomer);
        let kad = &mut self.swarm.behaviour_mut().kad;
        let now = Instant::now();
        let keys: Vec<kad::RecordKey> = kad
            .store_mut()
            .records()
            .filter(|r| !r.is_expired(now))
            .map(|r| r.key.clone())
            .collect();
        for key in keys {
            let target = KBucketKey::new(key.clone());
            let known = kad.get_closest_local_peers(&target);
            if !record_handoff::should_hand_over(&target, &local, &theirs, known) {
                continue;
            }
            let Some(record) = kad.store_mut().get(&key).map(|r| r.into_owned()) else {
                continue;
            };
            debug!(%newcomer, ?key, "handing over a held record");
            let id = kad.put_record_to(record, std::iter::once(newcomer), Quorum::One);
            self.handoffs.insert(id, Some(vec![newcomer]));
        }
    }

    /// A peer answered lookup `id` with a valid `loc`. The newer of it and
    /// our own copy (if we hold one) is the answer; an own copy older than
    /// the peer's is replaced.
    pub(super) fn found(&mut self, id: QueryId, loc: Locator, record: Record, from: PeerId) {
        let answer = match self.own_answers.remove(&id) {
            Some(own) if own.seq > loc.seq => own,
            Some(_) => {
                if let Err(e) = self.keep_record(from, record) {
                    debug!("not replacing our copy: {e}");
                }
                loc
            }
            None => loc,
        };
        if let Some((_, reply)) = self.pending_finds.remove(&id) {
            let _ = reply.send(Some(answer));
        }
        if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            q.finish();
        }
    }

    /// Lookup `id` ended: whoever has not been answered gets our own copy,
    /// if we hold one, or nothing.
    pub(super) fn find_done(&mut self, id: QueryId) {
        let own = self.own_answers.remove(&id);
        if let Some((_, reply)) = self.pending_finds.remove(&id) {
            let _ = reply.send(own);
        }
    }

    /// With `FilterBoth`, nothing enters our record store unless it passes
    /// here: signature, key (the canonical locator key of the record's
    /// signer), seq, expiry and size, and the sender's share of the store.
    pub(super) fn on_inbound_record(&mut self, source: PeerId, record: Record) {
        match self.keep_record(source, record) {
            Ok(Some((loc, record))) if self.stopping.is_none() && loc.peer != source => {
                self.pass_on_record(source, record);
            }
            Ok(_) => {}
            Err(e) => debug!(%source, "refused record: {e}"),
        }
    }

    /// Stores `record`, sent by `source`, if it is valid, newer than what
    /// we hold and within `source`'s share of the store
    /// ([`crate::net::record_store`]); returns it with its locator if it was new
    /// to us.
    pub(super) fn keep_record(
        &mut self,
        source: PeerId,
        mut record: Record,
    ) -> Result<Option<(Locator, Record)>, locator::RecordError> {
        let now = unix_ms();
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let held = store.get(&record.key).map(|r| r.value.clone());
        if held.as_deref() == Some(record.value.as_slice()) {
            return Ok(None); // a re-replication of what we hold
        }
        let held_seq = held.as_deref().and_then(locator::seq_of);
        let loc = locator::validate(&record.key, &record.value, now, held_seq)?;
        record.expires = Some(Instant::now() + Duration::from_millis(loc.expires_at - now));
        match store.put_from(source, record.clone(), Instant::now()) {
            Ok(()) => {}
            Err(e @ PutError::SourceFull { .. }) => {
                debug!("record not stored: {e}");
                return Ok(None);
            }
            Err(e) => {
                warn!("record store full: {e}");
                return Ok(None);
            }
        }
        Ok(Some((loc, record)))
    }

    /// Passes a record a holder has just handed us on to the closer peers
    /// it did not count on (see [`record_handoff::pass_on`]): without it, a
    /// peer we met before the record reached us never gets it.
    pub(super) fn pass_on_record(&mut self, source: PeerId, record: Record) {
        let local = KBucketKey::from(*self.swarm.local_peer_id());
        let target = KBucketKey::new(record.key.clone());
        let kad = &mut self.swarm.behaviour_mut().kad;
        let known = kad.get_closest_local_peers(&target);
        let to = record_handoff::pass_on(&target, &local, &KBucketKey::from(source), known);
        if to.is_empty() {
            return;
        }
        debug!(%source, ?to, key = ?record.key, "passing on a record handed over");
        // `All`: the outcome then names every peer that did not take it,
        // for the retry.
        let id = kad.put_record_to(record, to.iter().copied(), Quorum::All);
        self.handoffs.insert(id, Some(to));
    }

    /// Tries a failed hand-over once more, to the peers that did not take
    /// the record. Once we know a peer closer to the key than we are, we
    /// leave later newcomers to it; if our put to it failed on a busy
    /// moment, nobody hands the record on and it stays behind for good
    /// (1000-node runs saw 35–109 of ~40 000 hand-overs fail; every retry
    /// that was counted succeeded). A second failure is left alone: the peer is most likely
    /// gone.
    pub(super) fn retry_hand_over(&mut self, error: kad::PutRecordError, peers: Vec<PeerId>) {
        let (kad::PutRecordError::QuorumFailed { key, success, .. }
        | kad::PutRecordError::Timeout { key, success, .. }) = error;
        let rest: Vec<PeerId> = peers.into_iter().filter(|p| !success.contains(p)).collect();
        if rest.is_empty() || self.stopping.is_some() {
            return;
        }
        let kad = &mut self.swarm.behaviour_mut().kad;
        let record = kad.store_mut().get(&key).map(|r| r.into_owned());
        let Some(record) = record.filter(|r| !r.is_expired(Instant::now())) else {
            return;
        };
        debug!(?key, ?rest, "handing over a held record again");
        let id = kad.put_record_to(record, rest.iter().copied(), Quorum::All);
        self.handoffs.insert(id, None);
    }
}
