//! Which fetched messages still owe their sender a delivery receipt: the
//! [`Fetcher`](super::fetcher::Fetcher)'s memory of the receipts it asked
//! for lately, since every holder of a mailbox hands over the same
//! messages.

use std::collections::{HashSet, VecDeque};

use crate::node::mailbox::fetcher::FETCH_ITEMS;
use crate::wire::message::MessageId;

/// The ids we sent a delivery receipt for lately (at most `cap`, oldest
/// forgotten first). A fetched message that is already in our history
/// gets a receipt too — after a crash between storing it and sending the
/// receipt, nothing else would ever tell its sender — but each of the R
/// holders hands over the same message, and one receipt is enough.
#[derive(Debug)]
pub struct Receipted {
    cap: usize,
    order: VecDeque<MessageId>,
    set: HashSet<MessageId>,
}

/// How many receipted ids are remembered: a few fetches' worth.
pub const RECEIPTED: usize = 4 * FETCH_ITEMS;

impl Receipted {
    /// Remembers at most `cap` ids.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Of `ids`, those not receipted lately, now remembered as receipted.
    pub fn fresh(&mut self, ids: Vec<MessageId>) -> Vec<MessageId> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if self.cap == 0 || !self.set.insert(id) {
                continue;
            }
            self.order.push_back(id);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
            out.push(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_goes_once_per_id_while_it_is_remembered() {
        let id = |n: u8| MessageId([n; 16]);
        let mut r = Receipted::new(3);
        assert_eq!(r.fresh(vec![id(1), id(2)]), vec![id(1), id(2)]);
        assert_eq!(r.fresh(vec![id(2), id(3), id(3)]), vec![id(3)]);
        // A fourth id pushes out the oldest, which may be receipted again.
        assert_eq!(r.fresh(vec![id(4)]), vec![id(4)]);
        assert_eq!(r.fresh(vec![id(2), id(1)]), vec![id(1)]);
        assert!(r.set.len() <= 3 && r.order.len() <= 3);
    }
}
