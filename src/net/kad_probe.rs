//! When a full Kademlia bucket may check whether its oldest entry is
//! still alive.
//!
//! Offered a new peer for a full bucket whose oldest entry is
//! disconnected, libp2p-kad dials that entry: if it answers it stays, else
//! the newcomer takes its place (the Kademlia paper's rule, which favours
//! peers that stay). With connections closing once idle (20 s), nearly
//! every entry of a settled node is disconnected, so every new connection
//! made a node dial an old entry, whose own identify of us made *it* dial
//! one of its old entries, and so on: a chain of dials through the
//! network, each connection living out its idle timeout. So the event
//! loop inserts peers itself (`BucketInserts::Manual`): a bucket with room
//! takes a peer at once; a full one is offered one (and may dial its
//! oldest) at most once per [`PROBE_EVERY`]. A dead entry stays at most
//! that long past the first newcomer that would replace it, and queries
//! find live peers meanwhile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a full bucket may check its oldest entry.
pub const PROBE_EVERY: Duration = Duration::from_secs(600);

/// What the event loop does with a peer offered for the routing table.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Add it: the bucket has room, holds it already, is checking its
    /// oldest entry already (kad adds the address to a peer waiting on
    /// that check and dials nothing), or may check its oldest now.
    Add,
    /// Leave it out: the bucket is full and checked its oldest entry less
    /// than [`PROBE_EVERY`] ago, or its oldest is connected (nothing to
    /// check: kad would refuse the newcomer).
    Skip,
}

/// The bucket a peer falls in, as the event loop sees it.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    /// Its index: the log2 of the distances it covers.
    pub index: u32,
    /// Whether it is full (K entries).
    pub full: bool,
    /// Whether it already holds the peer.
    pub holds: bool,
    /// Whether a newcomer already waits on a check of its oldest entry
    /// (libp2p-kad then takes no other newcomer, and dials nothing).
    pub pending: bool,
    /// Whether its oldest entry is disconnected: only then does a
    /// newcomer make libp2p-kad dial it.
    pub oldest_gone: bool,
}

/// When each full bucket last checked its oldest entry (at most 256
/// keys: one per bucket).
#[derive(Debug, Default)]
pub struct BucketProbes {
    last: HashMap<u32, Instant>,
}

impl BucketProbes {
    /// Whether a peer falling in `b` goes into the table now; a full
    /// bucket's check is counted from here, and only when there is one
    /// to make.
    pub fn admit(&mut self, b: Bucket, now: Instant) -> Admit {
        if b.holds || !b.full || b.pending {
            return Admit::Add;
        }
        if !b.oldest_gone {
            return Admit::Skip;
        }
        if let Some(at) = self.last.get(&b.index)
            && now.saturating_duration_since(*at) < PROBE_EVERY
        {
            return Admit::Skip;
        }
        self.last.insert(b.index, now);
        Admit::Add
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(index: u32, full: bool) -> Bucket {
        Bucket {
            index,
            full,
            holds: false,
            pending: false,
            oldest_gone: true,
        }
    }

    #[test]
    fn a_bucket_with_room_or_holding_the_peer_always_takes_it() {
        let (mut p, t) = (BucketProbes::default(), Instant::now());
        for _ in 0..3 {
            assert_eq!(p.admit(bucket(5, false), t), Admit::Add);
            let holds = Bucket {
                holds: true,
                ..bucket(5, true)
            };
            assert_eq!(p.admit(holds, t), Admit::Add);
        }
        assert!(p.last.is_empty(), "no check counted");
    }

    #[test]
    fn a_full_bucket_checks_its_oldest_once_per_period() {
        let (mut p, t) = (BucketProbes::default(), Instant::now());
        assert_eq!(p.admit(bucket(7, true), t), Admit::Add);
        assert_eq!(p.admit(bucket(7, true), t + PROBE_EVERY / 2), Admit::Skip);
        // Another bucket has its own period.
        assert_eq!(p.admit(bucket(8, true), t + PROBE_EVERY / 2), Admit::Add);
        assert_eq!(p.admit(bucket(7, true), t + PROBE_EVERY), Admit::Add);
        assert_eq!(p.admit(bucket(7, true), t + PROBE_EVERY), Admit::Skip);
    }

    #[test]
    fn a_full_bucket_with_nothing_to_check_uses_up_no_check() {
        let (mut p, t) = (BucketProbes::default(), Instant::now());
        // Checking already: the newcomer's address goes to kad, which
        // dials nothing; no check counted.
        let pending = Bucket {
            pending: true,
            ..bucket(3, true)
        };
        assert_eq!(p.admit(pending, t), Admit::Add);
        // Its oldest connected: nothing to check, and nothing counted.
        let alive = Bucket {
            oldest_gone: false,
            ..bucket(3, true)
        };
        assert_eq!(p.admit(alive, t), Admit::Skip);
        assert!(p.last.is_empty());
        // So once its oldest is gone, it is checked at once.
        assert_eq!(p.admit(bucket(3, true), t), Admit::Add);
        assert_eq!(p.admit(bucket(3, true), t), Admit::Skip);
    }
}
