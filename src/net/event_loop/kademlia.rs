//! The event loop's Kademlia side: a translator between `kad::Event`s and
//! the inputs and outputs of the locator machine ([`crate::net::locator`]),
//! which holds every rule about our locator record and the records we hold
//! for others. Here: which query is which operation of the machine, who
//! waits for which lookup, and the swarm calls the machine asks for.

use std::collections::VecDeque;
use std::time::Instant;

use libp2p::kad::{
    self, GetRecordOk, InboundRequest, KBucketKey, PeerRecord, QueryId, QueryResult, RecordKey,
};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, identify, mdns};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::{EventLoop, NetEvent};
use crate::clock::unix_ms;
use crate::net::behaviour::KAD_PROTOCOL;
use crate::net::kad_probe::{Admit, Bucket};
use crate::net::locator::{CLOSEST_NEEDED, Dht, Input, Now, Output};
use crate::net::record_store::SourceCappedStore;
use crate::wire::locator::Locator;

/// How many buckets a bootstrap refreshes after its lookup of our own key:
/// the farthest ones (half, a quarter of the key space), where a lookup's
/// first hop goes. libp2p refreshes every bucket beyond our closest
/// neighbour's, one lookup (~45 requests, most over new connections) each,
/// one after another: about log2(N) lookups a join, eight or so in a
/// network of a few hundred nodes, which kept a network busy for a minute
/// after its last node started. The nearer buckets fill from the lookup of
/// our own key, which walks through them, and from the peers that query us.
const FAR_BUCKETS_REFRESHED: u32 = 2;

/// Whether a bootstrap whose step just ended, with `num_remaining`
/// buckets still to refresh (nearest first), skips the one it goes on to.
fn skips_refresh(num_remaining: Option<u32>) -> bool {
    num_remaining.is_some_and(|n| n > FAR_BUCKETS_REFRESHED)
}

/// What the locator machine reads of our Kademlia node.
struct KadView<'a> {
    kad: &'a mut kad::Behaviour<SourceCappedStore>,
    addrs: &'a [Multiaddr],
}

impl Dht for KadView<'_> {
    fn store(&mut self) -> &mut SourceCappedStore {
        self.kad.store_mut()
    }

    fn closest_known(&mut self, key: &RecordKey) -> Vec<KBucketKey<PeerId>> {
        let target = KBucketKey::new(key.clone());
        self.kad
            .get_closest_local_peers(&target)
            .take(CLOSEST_NEEDED)
            .collect()
    }

    fn table_size(&mut self) -> usize {
        self.kad.kbuckets().map(|b| b.num_entries()).sum()
    }

    fn addrs(&self) -> Vec<Multiaddr> {
        self.addrs.to_vec()
    }
}

impl EventLoop {
    pub(super) fn find(&mut self, peer: PeerId, reply: oneshot::Sender<Option<Locator>>) {
        let waiter = self.next_waiter;
        self.next_waiter += 1;
        self.find_waiters.insert(waiter, reply);
        self.drive_locator(Input::Find { waiter, peer });
    }

    /// Hands `input` to the locator machine and carries out what it asks.
    pub(super) fn drive_locator(&mut self, input: Input) {
        // Read once: carrying out the machine's outputs changes no address.
        let addrs = self.public_addrs();
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now = Now {
                at: Instant::now(),
                unix_ms: unix_ms(),
            };
            let mut view = KadView {
                kad: &mut self.swarm.behaviour_mut().kad,
                addrs: &addrs,
            };
            for output in self.locator.handle(input, now, &mut view) {
                inputs.extend(self.apply(output));
            }
        }
    }

    /// Carries out one output of the locator machine; returns what it
    /// tells the machine at once (a put the swarm refused).
    fn apply(&mut self, output: Output) -> Option<Input> {
        let kad = &mut self.swarm.behaviour_mut().kad;
        match output {
            Output::GetRecord { op, key } => {
                self.locator_queries.insert(kad.get_record(key), op);
            }
            Output::FinishLookup { op } => {
                let id = self.locator_queries.iter().find(|(_, o)| **o == op);
                if let Some(mut q) = id.and_then(|(id, _)| kad.query_mut(id)) {
                    q.finish();
                }
            }
            Output::PutRecord { op, record, quorum } => match kad.put_record(record, quorum) {
                Ok(id) => {
                    self.locator_queries.insert(id, op);
                }
                Err(e) => {
                    warn!("cannot store own locator: {e}");
                    return Some(Input::PutDone {
                        op,
                        result: Err(Vec::new()),
                    });
                }
            },
            Output::PutRecordTo {
                op,
                record,
                peers,
                quorum,
            } => {
                let id = kad.put_record_to(record, peers.into_iter(), quorum);
                self.locator_queries.insert(id, op);
            }
            Output::Answer { waiter, locator } => {
                if let Some(reply) = self.find_waiters.remove(&waiter) {
                    let _ = reply.send(locator);
                }
            }
            Output::PersistSeq(seq) => {
                self.store.try_submit(move |s| {
                    if let Err(e) = s.set_locator_seq(seq) {
                        warn!("cannot save locator seq: {e}");
                    }
                });
            }
        }
        None
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

    /// A peer that speaks our Kademlia enters the routing table at the
    /// addresses it listens on.
    pub(super) fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        if !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        for addr in &info.listen_addrs {
            self.admit(peer, addr.clone());
        }
        if let Some(r) = self
            .lasting
            .identified(peer, info.listen_addrs, Instant::now())
        {
            self.remember(r);
        }
    }

    /// Offers `peer` at `addr` to the routing table under the rule of
    /// [`crate::net::kad_probe`]: a full bucket takes it (and checks its
    /// oldest entry) at most once per period.
    fn admit(&mut self, peer: PeerId, addr: Multiaddr) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        let Some(b) = kad.kbucket(peer) else {
            return;
        };
        let bucket = Bucket {
            index: b.range().0.ilog2().unwrap_or(0),
            full: b.num_entries() >= kad::K_VALUE.get(),
            holds: b.iter().any(|e| *e.node.key.preimage() == peer),
            pending: b.has_pending(),
            oldest_gone: b
                .iter()
                .next()
                .is_some_and(|e| e.status == kad::NodeStatus::Disconnected),
        };
        if self.probes.admit(bucket, Instant::now()) == Admit::Add {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
    }

    /// Peers found on the LAN enter the routing table, and are dialled.
    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        for (peer, addr) in found {
            debug!(%peer, %addr, "found on the LAN");
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
            if !self.swarm.is_connected(&peer) {
                let _ = self
                    .swarm
                    .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
            }
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
            } => self.drive_locator(Input::Inbound { source, record }),
            kad::Event::InboundRequest {
                request:
                    InboundRequest::AddProvider {
                        record: Some(record),
                    },
            } => self.on_add_provider(record),
            kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                ..
            } => {
                self.drive_locator(Input::NewPeer(peer));
                let _ = self.net_events.try_send(NetEvent::NewPeer(peer));
            }
            // (`PendingRoutablePeer` comes only with libp2p's own inserts.)
            kad::Event::RoutablePeer { peer, address } => self.admit(peer, address),
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => self.on_query(id, result, step.last),
            _ => {}
        }
    }

    fn on_query(&mut self, id: QueryId, result: QueryResult, last: bool) {
        if self.rooms_pending.owns(&id) {
            self.on_room_query(id, result, last);
            return;
        }
        match result {
            QueryResult::GetRecord(res) => {
                let Some(&op) = self.locator_queries.get(&id) else {
                    return;
                };
                let done = last || res.is_err();
                if done {
                    self.locator_queries.remove(&id);
                }
                if let Ok(GetRecordOk::FoundRecord(PeerRecord { record, peer })) = res {
                    let from = peer;
                    self.drive_locator(Input::Found { op, from, record });
                }
                if done {
                    self.drive_locator(Input::LookupDone { op });
                }
            }
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
            QueryResult::Bootstrap(res) => {
                let remaining = match res {
                    Ok(ok) => Some(ok.num_remaining),
                    Err(kad::BootstrapError::Timeout { num_remaining, .. }) => num_remaining,
                };
                // The query now refreshes a bucket nearer than the farthest
                // few: end it before it sends a request (libp2p then moves
                // on to the next bucket, which this ends too, up to those).
                if skips_refresh(remaining)
                    && let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id)
                {
                    q.finish();
                }
            }
            QueryResult::PutRecord(res) => {
                #[cfg(feature = "test-util")]
                if let Some(reply) = self.pending_puts.remove(&id) {
                    let _ = reply.send(res.map(|_| ()).map_err(|e| e.to_string()));
                    return;
                }
                let Some(op) = self.locator_queries.remove(&id) else {
                    return;
                };
                let result = res.map(|_| ()).map_err(|e| match e {
                    kad::PutRecordError::QuorumFailed { success, .. }
                    | kad::PutRecordError::Timeout { success, .. } => success,
                });
                self.drive_locator(Input::PutDone { op, result });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libp2p reports, after each step, how many bucket refreshes remain
    /// (nearest bucket first) and goes on to the next: only the last
    /// `FAR_BUCKETS_REFRESHED` run.
    #[test]
    fn a_bootstrap_refreshes_only_the_farthest_buckets() {
        // Ten buckets to refresh after the lookup of our own key.
        let run: Vec<u32> = (1..=10)
            .rev()
            .filter(|&n| !skips_refresh(Some(n)))
            .collect();
        assert_eq!(run, vec![2, 1]);
        // The last step (nothing remains) and a step whose count is not
        // known are left alone.
        assert!(!skips_refresh(Some(0)));
        assert!(!skips_refresh(None));
    }
}
