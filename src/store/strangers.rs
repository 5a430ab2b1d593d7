//! How much strangers can make us keep: their messages, filed as requests.
//!
//! Keys cost nothing, so anything a stranger can make us store needs a cap
//! that no number of keys can lift. A stranger's messages are counted as
//! they are stored, per stranger and in all (`meta` counters, written in
//! the batch that stores the messages); one over either cap is refused, so
//! its sender keeps it and offers it again. Adding the stranger as a buddy
//! or blocking it lets go of its count: a buddy's messages are never capped
//! nor evicted, and a blocked key sends nothing more.

use libp2p::PeerId;

use super::{Store, StoreError};

/// Most messages kept from one stranger (filed as requests). Enough to
/// introduce oneself and hold a first conversation — a stranger who writes
/// more is one to add or to block — while a stranger flooding us fills
/// only its own share.
pub const MAX_REQUEST_MESSAGES_PER_STRANGER: u64 = 200;

/// Most messages kept from all strangers together: with bodies up to
/// [`MAX_BODY`](crate::wire::message::MAX_BODY) (64 KiB) at most about
/// 256 MiB of disk, whatever number of keys sends them; 20 strangers at
/// their own cap, or thousands writing a few lines each.
pub const MAX_REQUEST_MESSAGES: u64 = 4096;

/// Prefix of the `meta` keys counting, per stranger, its stored messages.
const COUNT_PREFIX: &[u8] = b"request_msgs/";
/// The `meta` key counting all strangers' stored messages.
const TOTAL_KEY: &[u8] = b"request_msgs_total";

fn count_key(peer: &[u8]) -> Vec<u8> {
    [COUNT_PREFIX, peer].concat()
}

impl Store {
    fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(match self.meta.get(key)? {
            None => 0,
            // An unreadable counter counts as full: it fails closed.
            Some(v) => <[u8; 8]>::try_from(v.as_ref()).map_or(u64::MAX, u64::from_be_bytes),
        })
    }

    /// Counts one more stored message from stranger `peer` (PeerId bytes)
    /// if it fits under both caps; false if it does not, and nothing is
    /// counted. Not flushed: it goes with the batch that stores it.
    pub(super) fn count_request_message(&self, peer: &[u8]) -> Result<bool, StoreError> {
        self.count_request_message_within(
            peer,
            MAX_REQUEST_MESSAGES_PER_STRANGER,
            MAX_REQUEST_MESSAGES,
        )
    }

    fn count_request_message_within(
        &self,
        peer: &[u8],
        per_stranger: u64,
        total: u64,
    ) -> Result<bool, StoreError> {
        let key = count_key(peer);
        let (mine, all) = (self.counter(&key)?, self.counter(TOTAL_KEY)?);
        if mine >= per_stranger || all >= total {
            return Ok(false);
        }
        self.meta.put(key, &(mine + 1).to_be_bytes())?;
        self.meta.put(TOTAL_KEY, &(all + 1).to_be_bytes())?;
        Ok(true)
    }

    /// Stops counting `peer`'s messages against strangers (it became a
    /// buddy, or is blocked). Not flushed: it goes with the caller's write.
    pub(super) fn release_stranger(&self, peer: &PeerId) -> Result<(), StoreError> {
        let Some(v) = self.meta.remove(count_key(&peer.to_bytes()))? else {
            return Ok(());
        };
        let mine = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes);
        let all = self.counter(TOTAL_KEY)?;
        if all != u64::MAX {
            self.meta
                .put(TOTAL_KEY, &all.saturating_sub(mine).to_be_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::Filed;
    use crate::store::{Direction, MessageState, StoredMessage};
    use crate::wire::message::MessageId;

    fn from_stranger(peer: &PeerId, sent_at: u64) -> StoredMessage {
        StoredMessage {
            id: MessageId::random(),
            peer: peer.to_bytes(),
            direction: Direction::In,
            sent_at,
            stored_at: sent_at,
            content_type: "text/plain".into(),
            subject: None,
            data: b"hi".to_vec(),
            state: MessageState::Unread,
            request: true,
        }
    }

    #[test]
    fn caps_per_stranger_and_in_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let take = |p: &PeerId| s.count_request_message_within(&p.to_bytes(), 2, 3).unwrap();
        assert!(take(&a) && take(&a));
        assert!(!take(&a), "a's own cap");
        assert!(take(&b));
        assert!(!take(&c), "the cap in all");
        // A becomes a buddy (or is blocked): its count goes.
        s.release_stranger(&a).unwrap();
        assert!(take(&c) && take(&b));
        assert!(!take(&b), "b's own cap");
        s.release_stranger(&a).unwrap();
        assert!(!take(&c), "releasing twice frees nothing");
    }

    #[test]
    fn stored_stranger_messages_stop_at_the_cap_and_buddies_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        let (eve, bob) = (PeerId::random(), PeerId::random());
        let cap = MAX_REQUEST_MESSAGES_PER_STRANGER;
        let msgs: Vec<StoredMessage> = (0..=cap).map(|t| from_stranger(&eve, t)).collect();
        let filed = s.insert_incoming(&msgs).unwrap();
        let new = filed.iter().filter(|f| **f == Filed::New).count() as u64;
        assert_eq!(new, cap, "{filed:?}");
        assert_eq!(filed.last(), Some(&Filed::Full));
        // A copy of a stored one is still a duplicate, not refused.
        assert_eq!(
            s.insert_incoming(&msgs[..1]).unwrap(),
            vec![Filed::Duplicate]
        );
        let kept = s.incoming(Some(true)).unwrap();
        assert_eq!(kept.len() as u64, cap, "the refused one is not stored");
        assert!(!kept.iter().any(|m| m.id == msgs[cap as usize].id));
        // A buddy's messages are not counted: many more go in.
        let mut from_bob: Vec<StoredMessage> = (0..=cap).map(|t| from_stranger(&bob, t)).collect();
        from_bob.iter_mut().for_each(|m| m.request = false);
        let filed = s.insert_incoming(&from_bob).unwrap();
        assert!(filed.iter().all(|f| *f == Filed::New), "{filed:?}");
        // Once Eve is added, her next message goes in.
        s.add_buddy(&eve, "eve").unwrap();
        let later = from_stranger(&eve, cap + 1);
        assert_eq!(s.insert_incoming(&[later]).unwrap(), vec![Filed::New]);
    }
}
