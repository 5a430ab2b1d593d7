//! The send window of one link — a pure machine shared by the link's
//! writer (which may put a message on the wire only while there is room)
//! and its ack reader (which frees room).
//!
//! Room is freed only by an ack naming a message this link carries and
//! has not had answered yet. An ack for an id the peer guessed or saw
//! elsewhere, or a second ack for the same message, is ignored: it gives
//! no credit (a peer could otherwise widen the window without bound and
//! make us queue every message at once) and is not passed on.
//!
//! An ack *without* an id ends the link. The peer sends one for a frame it
//! could not even decode (`Rejected{Malformed}` or `{TooLarge}`, e.g. a
//! peer of another protocol version): it answers one of our frames, but we
//! cannot tell which, so its slot could never be freed — after a window's
//! worth of them the writer would wait for room for good, with its
//! messages in flight and never retried. Closing the link instead hands
//! every message it carried back to the outbox's backoff (and, while the
//! peer stays unreachable, to its mailboxes).
//!
//! For the same reason a link whose peer stops answering altogether is
//! closed: when frames have been unanswered for [`Window::stalled`]'s
//! limit with no ack crediting any of them, the link gives them back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::wire::message::MessageId;

/// What an ack does to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It answers a message on the link: a slot is free again, and the
    /// service hears of it.
    Credit,
    /// It answers nothing this link carries unanswered: dropped.
    Ignore,
    /// It answers a frame the peer could not read, we cannot tell which:
    /// the link is closed and its messages go back to the outbox.
    Broken,
}

/// Which messages one link has on the wire unanswered, at most `cap`.
#[derive(Debug)]
pub(super) struct Window {
    cap: usize,
    /// Unanswered frames per id (a count, so that even an id put on the
    /// link twice is answered at most twice).
    in_flight: HashMap<MessageId, u32>,
    /// Sum of `in_flight`'s counts.
    len: usize,
    /// When the link last made progress while it had frames unanswered:
    /// the first frame sent into an empty window, or the last credited ack.
    progress: Option<Instant>,
}

impl Window {
    /// An empty window of `cap` slots.
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap,
            in_flight: HashMap::new(),
            len: 0,
            progress: None,
        }
    }

    /// Takes a slot for `id`, about to go on the wire at `now`; false
    /// (nothing taken) if the window is full.
    pub(super) fn send(&mut self, id: MessageId, now: Instant) -> bool {
        if self.len >= self.cap {
            return false;
        }
        if self.len == 0 {
            self.progress = Some(now);
        }
        *self.in_flight.entry(id).or_default() += 1;
        self.len += 1;
        true
    }

    /// The peer answered `id` (`None`: a frame it could not read) at
    /// `now`: what the link does with the ack.
    pub(super) fn ack(&mut self, id: Option<MessageId>, now: Instant) -> Verdict {
        let Some(id) = id else {
            return Verdict::Broken;
        };
        let Some(n) = self.in_flight.get_mut(&id) else {
            return Verdict::Ignore;
        };
        *n -= 1;
        if *n == 0 {
            self.in_flight.remove(&id);
        }
        self.len -= 1;
        self.progress = Some(now);
        Verdict::Credit
    }

    /// Whether frames are unanswered and no ack has credited any for
    /// `limit`: the peer has stopped answering, and the link should give
    /// its messages back rather than hold them in flight for good. Acks
    /// that credit nothing do not count as progress.
    pub(super) fn stalled(&self, now: Instant, limit: Duration) -> bool {
        self.len > 0
            && self
                .progress
                .is_some_and(|t| now.saturating_duration_since(t) >= limit)
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
        let t0 = Instant::now();
        let mut w = Window::new(4);
        let sent: Vec<MessageId> = (0..4).map(|_| MessageId::random()).collect();
        for id in &sent {
            assert!(w.send(*id, t0));
        }
        assert!(!w.send(MessageId::random(), t0), "full");
        // A flood of acks for ids never sent here.
        for _ in 0..1000 {
            assert_eq!(w.ack(Some(MessageId::random()), t0), Verdict::Ignore);
        }
        assert_eq!(w.len(), 4, "unsolicited acks freed slots");
        assert!(!w.send(MessageId::random(), t0), "still full");
        // A real ack frees exactly one slot, once.
        assert_eq!(w.ack(Some(sent[0]), t0), Verdict::Credit);
        assert_eq!(
            w.ack(Some(sent[0]), t0),
            Verdict::Ignore,
            "a second ack for it is ignored"
        );
        assert_eq!(w.len(), 3);
        let next = MessageId::random();
        assert!(w.send(next, t0));
        assert!(!w.send(MessageId::random(), t0), "one slot, used");
        for id in sent[1..].iter().chain([&next]) {
            assert_eq!(w.ack(Some(*id), t0), Verdict::Credit);
        }
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn an_id_sent_twice_is_credited_twice_at_most() {
        let t0 = Instant::now();
        let mut w = Window::new(2);
        let id = MessageId::random();
        assert!(w.send(id, t0) && w.send(id, t0));
        assert_eq!(w.ack(Some(id), t0), Verdict::Credit);
        assert_eq!(w.ack(Some(id), t0), Verdict::Credit);
        assert_eq!(w.ack(Some(id), t0), Verdict::Ignore);
        assert_eq!(w.len(), 0);
    }

    /// An id-less ack answers a frame we cannot name: crediting nothing
    /// would leak its slot for good (a window of them stalls the writer
    /// forever), so it breaks the link, full window or not.
    #[test]
    fn an_ack_without_an_id_breaks_the_link() {
        let t0 = Instant::now();
        let mut w = Window::new(2);
        assert_eq!(w.ack(None, t0), Verdict::Broken, "on an idle link");
        let sent = [MessageId::random(), MessageId::random()];
        for id in sent {
            assert!(w.send(id, t0));
        }
        assert_eq!(w.ack(None, t0), Verdict::Broken, "on a full link");
        assert_eq!(w.len(), 2, "and credits nothing");
    }

    /// A peer that stops answering is found out: frames unanswered for the
    /// limit with no credited ack. Junk acks do not keep the link alive;
    /// a real one does; an empty window never stalls.
    #[test]
    fn a_window_without_credit_for_the_limit_is_stalled() {
        let limit = Duration::from_secs(60);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = Window::new(4);
        assert!(!w.stalled(at(1000), limit), "nothing sent: never stalled");
        let (a, b) = (MessageId::random(), MessageId::random());
        assert!(w.send(a, t0));
        assert!(w.send(b, at(30)), "a second frame does not reset the clock");
        assert!(!w.stalled(at(59), limit));
        assert!(w.stalled(at(60), limit));
        assert_eq!(w.ack(Some(MessageId::random()), at(61)), Verdict::Ignore);
        assert!(w.stalled(at(61), limit), "junk is no progress");
        assert_eq!(w.ack(Some(a), at(70)), Verdict::Credit);
        assert!(!w.stalled(at(129), limit), "a real ack is");
        assert!(w.stalled(at(130), limit));
        assert_eq!(w.ack(Some(b), at(131)), Verdict::Credit);
        assert!(!w.stalled(at(1000), limit), "all answered");
        assert!(w.send(a, at(2000)));
        assert!(!w.stalled(at(2059), limit), "the clock starts at the send");
        assert!(w.stalled(at(2060), limit));
    }
}
