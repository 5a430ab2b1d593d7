//! What the messaging service does with the reports of its tasks and of
//! the store worker: links up and down, acks, deposits, fetches, stored
//! incoming batches (whose follow-ups are the service's `received`); and
//! the state changes they leave, written in one store job.

use std::collections::HashSet;
use std::time::Instant;

use libp2p::PeerId;
use tracing::{debug, warn};

use super::link::LinkTx;
use super::link::hand_to_link;
use super::{Event, Internal, Link, Service};
use crate::store::{Direction, Flush, MessageState, StoredMessage};
use crate::wire::message::{Ack, AckResult, MessageId, ReceiptKind, RejectReason};

/// A state change to write, collected and applied in one blocking call.
pub(super) enum Op {
    /// A message left the outbox (delivered or refused); its row, if the
    /// service still had it, with the new state.
    Done(PeerId, MessageId, MessageState, Option<StoredMessage>),
    Stored(PeerId, MessageId),
    Receipt(PeerId, ReceiptKind, Vec<MessageId>),
}

impl Service {
    /// Takes one report of a task or of the store worker; state changes to
    /// write go to `ops`, written together by [`Service::apply`].
    pub(super) async fn on_internal(&mut self, ev: Internal, ops: &mut Vec<Op>) {
        let now = Instant::now();
        match ev {
            Internal::LinkUp(peer, tx) => self.link_up(peer, tx),
            Internal::LinkFailed(peer, reason) => {
                debug!(%peer, "cannot reach directly: {reason}");
                self.connect_ended(&peer, true);
                if let Some(Link::Connecting(ids)) = self.links.remove(&peer) {
                    // Store and forward: leave them in the recipient's
                    // mailboxes, all but those for a direct link only.
                    let (direct, ids): (Vec<_>, Vec<_>) =
                        ids.into_iter().partition(|id| self.outbox.is_direct(id));
                    for id in direct {
                        self.attempt_failed(&id, now);
                    }
                    // Those on a recheck are in the mailboxes already.
                    let ids = self.outbox.missed(ids, now);
                    if !ids.is_empty() {
                        self.deposit(peer, ids);
                    }
                }
            }
            Internal::LinkDown(peer) => {
                if let Some(Link::Up { in_flight, .. }) = self.links.remove(&peer) {
                    for id in in_flight {
                        self.attempt_failed(&id, now);
                    }
                }
            }
            Internal::Acked(peer, ack) => ops.extend(self.acked(peer, ack, now)),
            Internal::Received(r) => self.received(r),
            Internal::Deposited {
                peer,
                stored,
                failed,
            } => {
                for id in failed {
                    self.attempt_failed(&id, now);
                }
                self.outbox.parked(&stored, now);
                ops.extend(stored.into_iter().map(|id| Op::Stored(peer, id)));
            }
            Internal::FetchDone(done) => self.drive_fetcher(done),
            Internal::Unsent(ids) => {
                for id in ids {
                    self.finish(&id);
                }
            }
        }
    }

    /// A link to `peer` is open: what waited for it goes on the wire.
    fn link_up(&mut self, peer: PeerId, tx: LinkTx) {
        self.connect_ended(&peer, false);
        let waiting = match self.links.remove(&peer) {
            Some(Link::Connecting(w)) => w,
            _ => Vec::new(),
        };
        let mut in_flight = HashSet::new();
        hand_to_link(&self.envelopes, waiting, &tx, &mut in_flight);
        self.links.insert(peer, Link::Up { tx, in_flight });
    }

    /// `peer` answered a message on its link: the message is done
    /// (delivered or refused for good) or, if the peer could not take it
    /// now, retried. Returns the state change to write.
    fn acked(&mut self, peer: PeerId, ack: Ack, now: Instant) -> Option<Op> {
        let id = ack.id?;
        // Only an answer to a message this peer's link carries counts:
        // ids are no secret (mailbox holders see them), and an ack for one
        // from anyone else must not end it.
        let on_link = match self.links.get_mut(&peer) {
            Some(Link::Up { in_flight, .. }) => in_flight.remove(&id),
            _ => false,
        };
        if !on_link {
            return None;
        }
        // A direct-only message has no retry after this and no row to finish.
        let direct = self.outbox.is_direct(&id);
        if ack.result == AckResult::Rejected(RejectReason::Unavailable) {
            if self.outbox.unavailable(&id, &peer, now) && direct {
                self.envelopes.remove(&id);
            }
            return None;
        }
        if !self.outbox.acked(&id, &peer) {
            return None;
        }
        let out = self.envelopes.remove(&id)?;
        if direct {
            return None;
        }
        let state = match ack.result {
            AckResult::Accepted | AckResult::Duplicate => MessageState::Delivered,
            AckResult::Rejected(reason) => {
                warn!(%peer, %id, "message refused: {reason}");
                MessageState::Failed
            }
        };
        // Told now, not after the write: the write is queued before any
        // read a listener can ask for next (reads go through the same
        // queue), so nobody sees an older state after this.
        if out.message.is_some() {
            let _ = self.inbound.events.send(Event::State { id, peer, state });
        }
        Some(Op::Done(peer, id, state, out.message))
    }

    /// Applies collected state changes in one store job and tells listeners
    /// about each that changed something as soon as it is written, on the
    /// store thread: a read queued after this job (which answers from
    /// inside its own job) never shows a state whose event has not been
    /// sent. Not flushed: a state lost in a crash is learnt again (the
    /// message is resent and answered `Duplicate`).
    pub(super) fn apply(&mut self, ops: Vec<Op>) {
        let events = self.inbound.events.clone();
        self.inbound.queue.then(
            Flush::No,
            move |s| {
                let changed = |peer, id, state| {
                    let _ = events.send(Event::State { id, peer, state });
                };
                for op in ops {
                    match op {
                        Op::Done(peer, id, state, message) => {
                            s.remove_from_outbox(&id)?;
                            match message {
                                // Still queued or stored: any later state
                                // would have finished it already.
                                Some(mut m) => {
                                    m.state = state;
                                    s.put_history(&m)?;
                                }
                                // A receipt or request (no row), or a row
                                // written before outbox rows carried it.
                                None => {
                                    if s.advance(Direction::Out, &peer, &id, state)?.is_some() {
                                        changed(peer, id, state);
                                    }
                                }
                            }
                        }
                        Op::Stored(peer, id) => {
                            if s.advance(Direction::Out, &peer, &id, MessageState::Stored)?
                                .is_some()
                            {
                                changed(peer, id, MessageState::Stored);
                            }
                        }
                        Op::Receipt(peer, kind, ids) => {
                            let state = match kind {
                                ReceiptKind::Delivered => MessageState::Delivered,
                                ReceiptKind::Read => MessageState::Read,
                            };
                            for id in ids {
                                if s.receipt(&peer, &id, state)?.is_some() {
                                    changed(peer, id, state);
                                } else {
                                    debug!(%peer, %id, ?state, "a receipt changed nothing");
                                }
                            }
                        }
                    }
                }
                Ok(())
            },
            |res| {
                if let Err(e) = res {
                    warn!("cannot record message states: {e}");
                }
            },
        );
    }
}
