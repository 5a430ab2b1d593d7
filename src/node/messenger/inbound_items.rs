//! What the inbound batch does with a buddy request and with a group item,
//! once `accept::decide` has let them in.

use libp2p::PeerId;
use tracing::debug;

use super::super::accept::{self, Path, Take};
use super::Batch;
use crate::store::{Store, StoreError};
use crate::wire::message::{AckResult, MessageId, RejectReason};

impl Batch {
    /// A buddy request (or its acceptance) from `from`, sent at `sent_at`.
    pub(super) fn take_request(
        &mut self,
        s: &Store,
        from: PeerId,
        requester: accept::Requester,
        sent_at: u64,
        now: u64,
    ) -> Result<AckResult, StoreError> {
        let is_new = s.buddy_request_is_new(&from, sent_at)?;
        match accept::take_request(requester, is_new) {
            Take::Replayed => {}
            Take::File => {
                if s.add_request(&from, now)? {
                    self.requests.push(from);
                }
                s.note_buddy_request(&from, sent_at)?;
            }
            Take::Accepted => {
                self.accepted.push(from);
                s.note_buddy_request(&from, sent_at)?;
            }
        }
        Ok(AckResult::Accepted)
    }

    /// A group item (`bytes`) in message `id` from `from`.
    pub(super) fn take_group(
        &mut self,
        s: &Store,
        groups: &crate::node::groups::Ctx,
        (id, from): (MessageId, PeerId),
        bytes: &[u8],
        now: u64,
        path: Path,
    ) -> Result<AckResult, StoreError> {
        Ok(
            match crate::node::groups::receive::take(s, groups, &from, bytes, now)? {
                Ok(t) => {
                    self.group_ids.push((from, id));
                    self.group_events.extend(t.events);
                    self.group_out.extend(t.out);
                    self.group_direct.extend(t.direct);
                    if t.duplicate {
                        AckResult::Duplicate
                    } else {
                        AckResult::Accepted
                    }
                }
                Err(crate::node::groups::roster::GroupError::Later) => {
                    // Nothing kept and no receipt: its sender offers
                    // it again, and by then its epoch's state is here.
                    AckResult::Rejected(accept::not_now(path))
                }
                Err(e) => {
                    debug!(%from, "group item dropped: {e}");
                    // Taken off the sender's hands all the same (a
                    // mailbox copy too): sending it again cannot help.
                    self.group_ids.push((from, id));
                    AckResult::Rejected(RejectReason::Malformed)
                }
            },
        )
    }
}
