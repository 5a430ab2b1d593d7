//! The send window of one link — a pure machine shared by the link's
//! writer (which may put a message on the wire only while there is room)
//! and its ack reader (which frees room).
//!
//! Room is freed only by an ack naming a message this link carries and
//! has not had answered yet. Anything else the peer sends — acks for ids it
//! guessed or saw elsewhere, a second ack for the same message, acks
//! without an id — is ignored: it gives no credit (a peer could otherwise
//! widen the window without bound and make us queue every message at
//! once) and is not passed on.

use std::collections::HashMap;

use crate::wire::message::MessageId;

/// Which messages one link has on the wire unanswered, at most `cap`.
#[derive(Debug)]
pub(super) struct Window {
    cap: usize,
    /// Unanswered frames per id (a count, so that even an id put on the
    /// link twice is answered at most twice).
    in_flight: HashMap<MessageId, u32>,
    /// Sum of `in_flight`'s counts.
    len: usize,
}

impl Window {
    /// An empty window of `cap` slots.
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            in_flight: HashMap::new(),
            len: 0,
        }
    }

    /// Takes a slot for `id`, about to go on the wire; false (nothing
    /// taken) if the window is full.
    pub(super) fn send(&mut self, id: MessageId) -> bool {
        if self.len >= self.cap {
            return false;
        }
        *self.in_flight.entry(id).or_default() += 1;
        self.len += 1;
        true
    }

    /// The peer answered `id`: true, and a slot is free again, if `id` is
    /// on this link unanswered; false — ignore the ack — otherwise.
    pub(super) fn ack(&mut self, id: Option<MessageId>) -> bool {
        let Some(id) = id else { return false };
        let Some(n) = self.in_flight.get_mut(&id) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            self.in_flight.remove(&id);
        }
        self.len -= 1;
        true
    }

    /// Unanswered messages on the link.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsolicited_acks_give_no_credit() {
        let mut w = Window::new(4);
        let sent: Vec<MessageId> = (0..4).map(|_| MessageId::random()).collect();
        for id in &sent {
            assert!(w.send(*id));
        }
        assert!(!w.send(MessageId::random()), "full");
        // A flood of acks for ids never sent here, and without ids.
        for _ in 0..1000 {
            w.ack(Some(MessageId::random()));
            w.ack(None);
        }
        assert_eq!(w.len(), 4, "unsolicited acks freed slots");
        assert!(!w.send(MessageId::random()), "still full");
        assert!(!w.ack(Some(MessageId::random())), "ignored");
        assert!(!w.ack(None), "ignored");
        // A real ack frees exactly one slot, once.
        assert!(w.ack(Some(sent[0])));
        assert!(!w.ack(Some(sent[0])), "a second ack for it is ignored");
        assert_eq!(w.len(), 3);
        let next = MessageId::random();
        assert!(w.send(next));
        assert!(!w.send(MessageId::random()), "one slot, used");
        for id in sent[1..].iter().chain([&next]) {
            assert!(w.ack(Some(*id)));
        }
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn an_id_sent_twice_is_credited_twice_at_most() {
        let mut w = Window::new(2);
        let id = MessageId::random();
        assert!(w.send(id) && w.send(id));
        assert!(w.ack(Some(id)) && w.ack(Some(id)));
        assert!(!w.ack(Some(id)));
        assert_eq!(w.len(), 0);
    }
}
