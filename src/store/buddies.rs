//! The buddy list, pending buddy requests, and my own presence.
//!
//! Adding a key is the permission for it to see my presence; `hidden`
//! buddies see me offline; `blocked` keys are refused everything.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::messages::{dec, enc};
use super::{Store, StoreError};
use crate::wire::presence::Own;

pub(super) const BUDDIES: &str = "buddies";
pub(super) const REQUESTS: &str = "buddy_requests";
const OWN_PRESENCE_KEY: &[u8] = b"own_presence";
/// Prefix of the `meta` keys that keep, per peer, the sender clock of the
/// latest buddy request taken from it.
const REQUEST_SEEN_PREFIX: &[u8] = b"buddy_request_seen/";
/// Most peers whose latest buddy request is remembered. Keys cost a
/// stranger nothing, so the markers are capped; a new one beyond the cap
/// replaces the one with the oldest request. A marker only matters while
/// someone may replay that peer's old request (a mailbox holder that kept
/// it) after the request was accepted and the buddy removed or blocked;
/// losing one lets such a replay list the request again — a request the
/// user can ignore, granting nothing — and `sent_at` is bounded by our
/// clock, so no marker can pose as newer than every honest one.
pub const MAX_REQUEST_MARKERS: usize = 2048;

/// Most pending buddy requests kept. Keys cost a stranger nothing, so the
/// list is capped; a new request beyond the cap replaces the oldest. A
/// request is cheap to send again, and a person is unlikely to leave a
/// thousand requests unanswered and still want the oldest; the list is
/// read whole (`buddy_requests`), so it must stay small.
pub const MAX_BUDDY_REQUESTS: usize = 1000;

fn request_seen_key(peer: &PeerId) -> Vec<u8> {
    [REQUEST_SEEN_PREFIX, &peer.to_bytes()].concat()
}

/// How we relate to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Not on the buddy list: messages land under requests.
    Stranger,
    /// On the buddy list.
    Buddy,
    /// Blocked: everything from it is refused.
    Blocked,
}

/// One entry of the buddy list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buddy {
    /// Its ID (PeerId bytes).
    #[serde(with = "serde_bytes")]
    pub peer: Vec<u8>,
    /// My name for it.
    pub name: String,
    /// Sees me offline.
    pub hidden: bool,
    /// Refused everything.
    pub blocked: bool,
}

impl Buddy {
    /// Its ID.
    pub fn peer_id(&self) -> Option<PeerId> {
        PeerId::from_bytes(&self.peer).ok()
    }
}

/// A buddy request: someone added me.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuddyRequest {
    /// Who (PeerId bytes).
    #[serde(with = "serde_bytes")]
    pub peer: Vec<u8>,
    /// When it arrived, Unix ms.
    pub at: u64,
}

impl Store {
    /// Writes an entry and makes it durable ([`Store::flush`], with its
    /// `fdatasync`) before the user is told it is done: a block or a hide
    /// that a power cut undoes would let through what the user shut out.
    fn write_buddy(&self, b: &Buddy) -> Result<(), StoreError> {
        self.buddies.put(&b.peer, enc(b, BUDDIES)?)?;
        self.flush()
    }

    /// The entry for `peer`, if any.
    pub fn buddy(&self, peer: &PeerId) -> Result<Option<Buddy>, StoreError> {
        self.buddies
            .get(peer.to_bytes())?
            .map(|v| dec(&v, BUDDIES))
            .transpose()
    }

    /// The whole list, blocked keys included.
    pub fn buddies(&self) -> Result<Vec<Buddy>, StoreError> {
        self.buddies.iter()?.map(|i| dec(&i?.1, BUDDIES)).collect()
    }

    /// The keys we blocked (PeerId bytes): one read of the list, for
    /// rules that check many peers at once.
    pub fn blocked(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let all = self.buddies()?.into_iter();
        Ok(all.filter(|b| b.blocked).map(|b| b.peer).collect())
    }

    /// How we relate to `peer`.
    pub fn relation(&self, peer: &PeerId) -> Result<Relation, StoreError> {
        Ok(match self.buddy(peer)? {
            None => Relation::Stranger,
            Some(b) if b.blocked => Relation::Blocked,
            Some(_) => Relation::Buddy,
        })
    }

    /// Puts `peer` on the list under `name` (unblocking it, keeping its
    /// hidden flag) and clears its pending request. Returns true if it was
    /// not a buddy before.
    pub fn add_buddy(&self, peer: &PeerId, name: &str) -> Result<bool, StoreError> {
        let old = self.buddy(peer)?;
        let was_buddy = old.as_ref().is_some_and(|b| !b.blocked);
        let b = Buddy {
            peer: peer.to_bytes(),
            name: name.to_string(),
            hidden: old.is_some_and(|b| b.hidden),
            blocked: false,
        };
        self.requests.delete(peer.to_bytes())?;
        self.release_stranger(peer)?;
        self.write_buddy(&b)?;
        Ok(!was_buddy)
    }

    /// Removes `peer` from the list (durably, as [`Store::flush`]);
    /// returns whether it was there.
    pub fn remove_buddy(&self, peer: &PeerId) -> Result<bool, StoreError> {
        let gone = self.buddies.remove(peer.to_bytes())?.is_some();
        self.flush()?;
        Ok(gone)
    }

    /// Changes one buddy's entry; `None` if it is not on the list.
    pub fn update_buddy(
        &self,
        peer: &PeerId,
        f: impl FnOnce(&mut Buddy),
    ) -> Result<Option<Buddy>, StoreError> {
        let Some(mut b) = self.buddy(peer)? else {
            return Ok(None);
        };
        f(&mut b);
        self.write_buddy(&b)?;
        Ok(Some(b))
    }

    /// Blocks `peer` (adding an entry for a stranger) and drops its request.
    pub fn block(&self, peer: &PeerId) -> Result<(), StoreError> {
        let mut b = self.buddy(peer)?.unwrap_or(Buddy {
            peer: peer.to_bytes(),
            name: String::new(),
            hidden: false,
            blocked: false,
        });
        b.blocked = true;
        self.requests.delete(peer.to_bytes())?;
        self.release_stranger(peer)?;
        self.write_buddy(&b)
    }

    /// Records that `peer` added me; returns true if this is news. Keeps
    /// at most [`MAX_BUDDY_REQUESTS`], the oldest going first.
    pub fn add_request(&self, peer: &PeerId, at: u64) -> Result<bool, StoreError> {
        self.add_request_within(peer, at, MAX_BUDDY_REQUESTS)
    }

    /// [`Store::add_request`] keeping at most `cap`: a new request first
    /// makes room by removing the oldest ones (and unreadable ones). A
    /// scan of at most the cap, only when a request is news.
    fn add_request_within(&self, peer: &PeerId, at: u64, cap: usize) -> Result<bool, StoreError> {
        if self.requests.contains_key(peer.to_bytes())? {
            return Ok(false);
        }
        if self.requests.len()? >= cap {
            let mut rows: Vec<(u64, sled::IVec)> = Vec::new();
            for item in self.requests.iter()? {
                let (k, v) = item?;
                // An unreadable request sorts first and goes first.
                let at = dec::<BuddyRequest>(&v, REQUESTS).map_or(0, |r| r.at);
                rows.push((at, k));
            }
            rows.sort_by_key(|(at, _)| *at);
            let surplus = rows.len() + 1 - cap.max(1);
            for (_, k) in rows.into_iter().take(surplus) {
                self.requests.delete(k)?;
            }
        }
        let r = BuddyRequest {
            peer: peer.to_bytes(),
            at,
        };
        self.requests.put(peer.to_bytes(), enc(&r, REQUESTS)?)?;
        Ok(true)
    }

    /// Whether a buddy request `peer` sealed at `sent_at` (its clock) is
    /// newer than every one taken from it before. A request envelope stays
    /// valid for good and anyone who saw it (a mailbox holder) can send it
    /// again; only a newer one, which only `peer` can seal, may bring a
    /// request back after it was accepted, removed or blocked.
    pub fn buddy_request_is_new(&self, peer: &PeerId, sent_at: u64) -> Result<bool, StoreError> {
        let latest = match self.meta.get(request_seen_key(peer))? {
            None => return Ok(true),
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(REQUESTS))?,
            ),
        };
        Ok(sent_at > latest)
    }

    /// Records that `peer`'s buddy request sealed at `sent_at` was taken
    /// (see [`Store::buddy_request_is_new`]). Not flushed: it goes with the
    /// batch that took the request.
    pub fn note_buddy_request(&self, peer: &PeerId, sent_at: u64) -> Result<(), StoreError> {
        self.note_buddy_request_within(peer, sent_at, MAX_REQUEST_MARKERS)
    }

    /// [`Store::note_buddy_request`], keeping at most `cap` markers: a
    /// marker for a peer not yet marked first makes room by removing those
    /// of the oldest requests (and unreadable ones). A scan of at most the
    /// cap, only when a new peer's request is taken.
    fn note_buddy_request_within(
        &self,
        peer: &PeerId,
        sent_at: u64,
        cap: usize,
    ) -> Result<(), StoreError> {
        let key = request_seen_key(peer);
        if !self.meta.contains_key(&key)? {
            let mut rows: Vec<(u64, sled::IVec)> = Vec::new();
            for item in self.meta.scan_prefix(REQUEST_SEEN_PREFIX)? {
                let (k, v) = item?;
                // An unreadable marker sorts first and goes first.
                let at = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes);
                rows.push((at, k));
            }
            if rows.len() >= cap {
                rows.sort_by_key(|(at, _)| *at);
                let surplus = rows.len() + 1 - cap.max(1);
                for (_, k) in rows.into_iter().take(surplus) {
                    self.meta.delete(k)?;
                }
            }
        }
        self.meta.put(key, &sent_at.to_be_bytes())?;
        Ok(())
    }

    /// Pending buddy requests, oldest first.
    pub fn buddy_requests(&self) -> Result<Vec<BuddyRequest>, StoreError> {
        let mut v: Vec<BuddyRequest> = self
            .requests
            .iter()?
            .map(|i| dec(&i?.1, REQUESTS))
            .collect::<Result<_, _>>()?;
        v.sort_by_key(|r| r.at);
        Ok(v)
    }

    /// My explicit presence as last set.
    pub fn own_presence(&self) -> Result<Option<Own>, StoreError> {
        self.meta
            .get(OWN_PRESENCE_KEY)?
            .map(|v| dec(&v, "meta"))
            .transpose()
    }

    /// Saves my explicit presence, durably ([`Store::flush`]): an
    /// "invisible" must survive a power cut as the user set it.
    pub fn set_own_presence(&self, own: &Own) -> Result<(), StoreError> {
        self.meta.put(OWN_PRESENCE_KEY, enc(own, "meta")?)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::presence::OwnStatus;

    #[test]
    fn relations_requests_and_presence_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (bob, eve) = (PeerId::random(), PeerId::random());
        {
            let s = Store::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(s.relation(&bob).unwrap(), Relation::Stranger);
            assert!(s.add_request(&bob, 5).unwrap());
            assert!(!s.add_request(&bob, 6).unwrap());
            assert!(s.add_buddy(&bob, "bob").unwrap());
            assert!(!s.add_buddy(&bob, "bobby").unwrap());
            assert!(
                s.buddy_requests().unwrap().is_empty(),
                "adding accepts the request"
            );
            s.update_buddy(&bob, |b| b.hidden = true).unwrap();
            s.add_request(&eve, 7).unwrap();
            s.set_own_presence(&Own {
                status: OwnStatus::Away,
                note: Some("lunch".into()),
                ..Own::default()
            })
            .unwrap();
        }
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let b = s.buddy(&bob).unwrap().unwrap();
        assert_eq!((b.name.as_str(), b.hidden), ("bobby", true));
        assert_eq!(s.buddy_requests().unwrap().len(), 1);
        assert_eq!(
            s.own_presence().unwrap().unwrap().note.as_deref(),
            Some("lunch")
        );
        s.block(&eve).unwrap();
        assert_eq!(s.relation(&eve).unwrap(), Relation::Blocked);
        assert!(s.buddy_requests().unwrap().is_empty());
        assert!(s.remove_buddy(&bob).unwrap());
        assert_eq!(s.relation(&bob).unwrap(), Relation::Stranger);
    }

    #[test]
    fn only_a_newer_buddy_request_is_news_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (bob, eve) = (PeerId::random(), PeerId::random());
        {
            let s = Store::open(dir.path(), 1 << 20).unwrap();
            assert!(s.buddy_request_is_new(&bob, 100).unwrap());
            s.note_buddy_request(&bob, 100).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        assert!(
            !s.buddy_request_is_new(&bob, 100).unwrap(),
            "the same one again"
        );
        assert!(!s.buddy_request_is_new(&bob, 99).unwrap(), "an older one");
        assert!(s.buddy_request_is_new(&bob, 101).unwrap(), "a newer one");
        assert!(s.buddy_request_is_new(&eve, 1).unwrap(), "kept per peer");
        // Accepting and removing the buddy forgets nothing.
        s.add_buddy(&bob, "bob").unwrap();
        s.remove_buddy(&bob).unwrap();
        assert!(!s.buddy_request_is_new(&bob, 100).unwrap());
    }

    #[test]
    fn request_markers_are_capped_and_the_oldest_goes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let markers = || s.meta.scan_prefix(REQUEST_SEEN_PREFIX).unwrap().count();
        // Sealed at 300, 100, 200: the one at 100 is the oldest.
        for (p, at) in peers.iter().zip([300, 100, 200]) {
            s.note_buddy_request_within(p, at, 3).unwrap();
        }
        assert_eq!(markers(), 3);
        // A newer request from a marked peer replaces its marker.
        s.note_buddy_request_within(&peers[0], 400, 3).unwrap();
        assert_eq!(markers(), 3);
        s.note_buddy_request_within(&peers[3], 50, 3).unwrap();
        assert_eq!(markers(), 3, "capped");
        assert!(
            s.buddy_request_is_new(&peers[1], 100).unwrap(),
            "the oldest was forgotten"
        );
        assert!(!s.buddy_request_is_new(&peers[0], 400).unwrap());
        assert!(!s.buddy_request_is_new(&peers[2], 200).unwrap());
        assert!(!s.buddy_request_is_new(&peers[3], 50).unwrap());
        // An unreadable marker goes before any readable one.
        s.meta
            .insert(request_seen_key(&peers[3]), &b"bad"[..])
            .unwrap();
        s.note_buddy_request_within(&peers[1], 1, 3).unwrap();
        assert_eq!(markers(), 3);
        assert!(
            s.buddy_request_is_new(&peers[3], 0).unwrap(),
            "the unreadable marker went"
        );
        assert!(!s.buddy_request_is_new(&peers[2], 200).unwrap());
    }

    #[test]
    fn buddy_requests_are_capped_and_the_oldest_goes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        let listed = || -> Vec<Vec<u8>> {
            s.buddy_requests()
                .unwrap()
                .into_iter()
                .map(|r| r.peer)
                .collect()
        };
        // Arrived at 30, 10, 20: the one at 10 is the oldest.
        for (p, at) in peers.iter().zip([30, 10, 20]) {
            assert!(s.add_request_within(p, at, 3).unwrap());
        }
        assert!(!s.add_request_within(&peers[0], 40, 3).unwrap(), "known");
        assert_eq!(listed().len(), 3);
        assert!(s.add_request_within(&peers[3], 50, 3).unwrap());
        assert_eq!(
            listed(),
            vec![
                peers[2].to_bytes(),
                peers[0].to_bytes(),
                peers[3].to_bytes()
            ],
            "capped, the oldest gone"
        );
        // An unreadable row goes before any readable one.
        s.requests.insert(peers[0].to_bytes(), &b"bad"[..]).unwrap();
        assert!(s.add_request_within(&peers[4], 60, 3).unwrap());
        assert_eq!(s.requests.len().unwrap(), 3);
        assert_eq!(
            listed(),
            vec![
                peers[2].to_bytes(),
                peers[3].to_bytes(),
                peers[4].to_bytes()
            ]
        );
    }
}
