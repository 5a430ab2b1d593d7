//! What this node does with a `Body::Group` it received in a 1:1 message
//! (a store job, within the batch that files it): a group message is
//! authenticated (signature of the sender it names, who must also be the
//! 1:1 envelope's sender), judged by the roster rules, opened with the
//! sender's chain and filed once; a state is taken when the creator
//! issued it and it follows ours (an invitation when we had no group);
//! a request is applied by the creator.

use libp2p::PeerId;
use tracing::debug;

use super::keys::{self, Chain};
use super::roster::{self, EpochView, GroupError};
use super::{Ctx, GroupEvent, GroupOpError, msg_id, ops};
use crate::node::rooms::rules::MAX_AHEAD_MS;
use crate::store::{GroupRow, LogRow, Store, StoreError};
use crate::wire::group::{
    GroupBody, GroupId, GroupState, MAX_GROUP_BYTES, Plain, SignedState, decode_body, open_message,
};
use crate::wire::message::Envelope;

/// Most invitations waiting for `group join` at once; more are refused
/// until some are accepted.
pub const MAX_INVITATIONS: usize = 64;

/// Most lines (changes and messages, filed or kept for their epoch) a
/// pending invitation holds: its group was made by anyone, maybe a
/// stranger, and until `group join` accepts it nothing else bounds what
/// its members may file with us. More wait with their senders (`Later`).
pub const MAX_PENDING_LINES: usize = 256;

/// How far past our epoch a message may be and still be kept for its
/// state: the creator sends states in order, so an honest member is
/// rarely more than a change or two ahead of us.
pub const MAX_EPOCHS_AHEAD: u64 = 2;

/// What taking one group item left: events, and 1:1 messages to send (a
/// creator's new state).
#[derive(Default)]
pub(crate) struct Taken {
    /// For listeners.
    pub(crate) events: Vec<GroupEvent>,
    /// Written to the outbox already; the service queues them.
    pub(crate) out: Vec<(PeerId, Envelope)>,
    /// For a direct link only, in no outbox (catch-up answers and the
    /// questions that follow them): one who went away asks again.
    pub(crate) direct: Vec<(PeerId, Envelope)>,
    /// Whether the item was one we had (a duplicate).
    pub(crate) duplicate: bool,
}

/// Takes the group item `bytes` that `from` sent us. The outer error is
/// the store's; the inner one why the item was dropped.
pub(crate) fn take(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    bytes: &[u8],
    now: u64,
) -> Result<Result<Taken, GroupError>, StoreError> {
    let body = match decode_body(bytes) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e.into())),
    };
    let mut taken = Taken::default();
    let res = match body {
        GroupBody::Message(signed) => message(s, ctx, from, bytes, &signed, now, &mut taken),
        GroupBody::State { state, secret } => {
            take_state(s, ctx, from, &state, secret, now, &mut taken)
        }
        GroupBody::SyncAsk {
            group_id,
            epoch,
            have,
        } => super::sync_jobs::answer(s, ctx, from, (&group_id, epoch), &have, now, &mut taken),
        GroupBody::Relay { messages, more } => {
            super::sync_jobs::relayed(s, ctx, from, &messages, more, now, &mut taken)
        }
        GroupBody::Request { group_id, op } => {
            match ops::issue(s, ctx, &group_id, from, &op, now) {
                Ok(done) => {
                    taken.out = done.out;
                    taken.events = done.events;
                    Ok(())
                }
                Err(GroupOpError::Store(e)) => Err(Fail::Store(e)),
                Err(GroupOpError::Group(e)) => Err(Fail::Drop(e)),
                Err(e) => {
                    debug!(%from, "group request not applied: {e}");
                    Err(Fail::Drop(GroupError::NotCreator))
                }
            }
        }
    };
    outcome(res, taken)
}

/// Files a group message whose signature was checked already, as
/// [`take`] files one: `body` is what [`open_message`] made of `signed`
/// (the fast path's judgement, `fast::precheck`), `from` the sender it
/// names, and `row` its group as the caller read it in this store job.
pub(crate) fn take_checked(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    row: GroupRow,
    (raw, signed, body): (&[u8], &SignedState, crate::wire::group::MsgBody),
    now: u64,
) -> Result<Result<Taken, GroupError>, StoreError> {
    let mut taken = Taken::default();
    let res = if body.header.sender == from.to_bytes() {
        opened_message(s, ctx, from, row, (raw, signed, body), now, &mut taken)
    } else {
        Err(GroupError::SenderMismatch.into())
    };
    outcome(res, taken)
}

/// The result of taking one item: the store's error outside, why it was
/// dropped inside.
fn outcome(res: Result<(), Fail>, taken: Taken) -> Result<Result<Taken, GroupError>, StoreError> {
    match res {
        Ok(()) => Ok(Ok(taken)),
        Err(Fail::Drop(e)) => Ok(Err(e)),
        Err(Fail::Store(e)) => Err(e),
    }
}

/// The previous epoch of a stored group, for [`roster::may_send`] (the
/// current one is [`Opened::view`](super::opened::Opened)).
pub(super) fn prev_view(row: &GroupRow) -> Option<EpochView> {
    row.prev.as_ref().map(|p| EpochView {
        epoch: p.epoch,
        members: p.members.iter().map(|m| m.to_vec()).collect(),
        ended_at: Some(p.ended_at),
    })
}

/// Authenticates a signed group message: the signature is its named
/// sender's, and that sender is the one whose 1:1 envelope carried it.
pub fn authenticate(
    from: &PeerId,
    signed: &SignedState,
) -> Result<crate::wire::group::MsgBody, GroupError> {
    let body = open_message(signed)?;
    if body.header.sender != from.to_bytes() {
        return Err(GroupError::SenderMismatch);
    }
    Ok(body)
}

pub(super) fn message(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    raw: &[u8],
    signed: &SignedState,
    now: u64,
    taken: &mut Taken,
) -> Result<(), Fail> {
    let body = authenticate(from, signed)?;
    let Some(row) = s.group(&body.header.group_id)? else {
        return Err(GroupError::NotMember.into());
    };
    opened_message(s, ctx, from, row, (raw, signed, body), now, taken)
}

/// [`message`] once `body` is authenticated (`signed` opened, signed by
/// `from`) and its group's `row` read.
fn opened_message(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    row: GroupRow,
    (raw, signed, body): (&[u8], &SignedState, crate::wire::group::MsgBody),
    now: u64,
    taken: &mut Taken,
) -> Result<(), Fail> {
    let h = &body.header;
    pending_room(s, &row, &h.group_id)?;
    let opened = ctx
        .states
        .open(&h.group_id, &row.state)
        .map_err(GroupError::from)?;
    let state = &opened.state;
    match roster::may_send(
        &opened.view,
        prev_view(&row).as_ref(),
        &h.sender,
        h.epoch,
        now,
    ) {
        Err(GroupError::UnknownEpoch(e)) if e > state.epoch => {
            // The state of that epoch has not reached us yet: keep it, if
            // a member we know sent it for an epoch near ours and there is
            // room; otherwise its sender offers it again later.
            let known = state.roster.iter().any(|m| m.id == h.sender);
            if known
                && e <= state.epoch.saturating_add(MAX_EPOCHS_AHEAD)
                && s.add_group_pending(&h.group_id, e, &from.to_bytes(), raw)?
            {
                return Ok(());
            }
            return Err(GroupError::Later.into());
        }
        r => r.map_err(Fail::Drop)?,
    }
    let secret = if h.epoch == state.epoch {
        row.secret
    } else {
        row.prev.as_ref().and_then(|p| p.secret)
    }
    .ok_or(Fail::Drop(GroupError::UnknownEpoch(h.epoch)))?;
    if s.group_was_seen(&h.group_id, h.epoch, &h.sender, h.n)? {
        taken.duplicate = true;
        return Ok(());
    }
    let mut chain = match s.group_chain(&h.group_id, h.epoch, &h.sender)? {
        Some(b) => crate::wire::decode::<Chain>(&b, MAX_GROUP_BYTES)
            .map_err(|_| StoreError::Corrupt("group_chains"))?,
        None => Chain::new(keys::chain_start(&secret, &h.group_id, h.epoch, &h.sender)),
    };
    let mk = chain.take(h.n).map_err(GroupError::from)?;
    let aad = crate::wire::encode(h).map_err(|e| GroupError::Wire(e.into()))?;
    let plain = keys::open(&mk, &aad, &body.ct).map_err(GroupError::from)?;
    let plain: Plain =
        crate::wire::decode(&plain, MAX_GROUP_BYTES).map_err(|_| GroupError::Malformed)?;
    roster::check_text(&plain.text).map_err(Fail::Drop)?;
    // The log is ordered by the writer's clock: a date far ahead would
    // sit after every later message, hiding them from `log`.
    if plain.sent_at > now.saturating_add(MAX_AHEAD_MS) {
        return Err(GroupError::Malformed.into());
    }
    let chain = crate::wire::encode(&chain).map_err(|e| GroupError::Wire(e.into()))?;
    s.put_group_chain(&h.group_id, h.epoch, &h.sender, &chain)?;
    let line = LogRow {
        id: msg_id(h),
        from: h.sender.clone(),
        sent_at: plain.sent_at,
        text: plain.text,
        system: false,
        wire: crate::wire::encode(signed).ok(),
    };
    let at = s.add_group_log(&h.group_id, &line)?;
    // Noted last: had anything before failed, the retry is taken.
    s.group_seen(&h.group_id, h.epoch, &h.sender, h.n, &at)?;
    taken.events.push(GroupEvent::Message {
        group: h.group_id,
        from: *from,
        id: line.id,
        sent_at: line.sent_at,
        text: line.text,
    });
    Ok(())
}

fn take_state(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    signed: &SignedState,
    secret: Option<[u8; 32]>,
    now: u64,
    taken: &mut Taken,
) -> Result<(), Fail> {
    let new = signed.open().map_err(GroupError::from)?;
    // Only the creator issues states, and sends them itself.
    if new.creator != from.to_bytes() {
        return Err(GroupError::NotCreator.into());
    }
    let gid = new.group_id;
    let (row, event) = match s.group(&gid)? {
        Some(row) => {
            let Some(row) = update(s, ctx, row, signed, &new, secret, now)? else {
                return Ok(());
            };
            let text = ops::change_line(&new).text;
            (row, GroupEvent::Change { group: gid, text })
        }
        None => {
            let row = invitation(s, ctx, signed, &new, secret)?;
            let (name, from) = (new.name.clone(), *from);
            (
                row,
                GroupEvent::Invitation {
                    group: gid,
                    name,
                    from,
                },
            )
        }
    };
    taken.events.push(event);
    s.put_group(&gid, &row)?;
    s.add_group_log(&gid, &ops::change_line(&new))?;
    // Messages that came before this epoch's state.
    for (sender, bytes) in s.take_group_pending(&gid, new.epoch)? {
        let Ok(sender) = PeerId::from_bytes(&sender) else {
            continue;
        };
        if let Ok(t) = take(s, ctx, &sender, &bytes, now)? {
            taken.events.extend(t.events);
        }
    }
    Ok(())
}

/// A newer state of a group we have: the row to store, or `None` when a
/// pending invitation was withdrawn (and forgotten).
fn update(
    s: &Store,
    ctx: &Ctx,
    mut row: GroupRow,
    signed: &SignedState,
    new: &GroupState,
    secret: Option<[u8; 32]>,
    now: u64,
) -> Result<Option<GroupRow>, Fail> {
    let me = ctx.sealer.me();
    let cur = row.state.open().map_err(GroupError::from)?;
    roster::accept_state(&cur, &row.state, new).map_err(Fail::Drop)?;
    // A pending invitation (neither accepted nor left) that no
    // longer has us: withdrawn, so forgotten; otherwise the
    // invitation cap could be dodged by inviting and withdrawing.
    let pending = !row.joined && !row.gone;
    if pending && (new.role_of(&me).is_none() || secret.is_none()) {
        s.delete_group(&new.group_id)?;
        return Ok(None);
    }
    pending_room(s, &row, &new.group_id)?;
    ops::advance(&mut row, &cur, signed, secret, now);
    // Removed (or left): no secret. Added again: a member again.
    row.gone = new.role_of(&me).is_none() || secret.is_none();
    if row.gone {
        row.secret = None;
    }
    Ok(Some(row))
}

/// The first state of a group we did not have: an invitation, if we are
/// in it with its secret and the invitations waiting are under the cap.
fn invitation(
    s: &Store,
    ctx: &Ctx,
    signed: &SignedState,
    new: &GroupState,
    secret: Option<[u8; 32]>,
) -> Result<GroupRow, Fail> {
    let (Some(secret), Some(_)) = (secret, new.role_of(&ctx.sealer.me())) else {
        return Err(GroupError::NotMember.into());
    };
    // Anyone can make a group with us in it: pending invitations
    // are capped, so strangers cannot fill the table.
    let pending = s
        .groups()?
        .iter()
        .filter(|(_, r)| !r.joined && !r.gone)
        .count();
    if pending >= MAX_INVITATIONS {
        return Err(GroupError::TooManyInvitations.into());
    }
    Ok(GroupRow {
        state: signed.clone(),
        secret: Some(secret),
        joined: false,
        gone: false,
        prev: None,
    })
}

/// Puts off a line for a pending invitation that holds
/// [`MAX_PENDING_LINES`] already: `Later`, so nothing is lost and its
/// sender offers it again, to be taken once the invitation is accepted.
/// Messages kept for their epoch count too, so the ones a state releases
/// always fit. An accepted group is not capped here.
pub(super) fn pending_room(s: &Store, row: &GroupRow, gid: &GroupId) -> Result<(), Fail> {
    if !row.joined && !row.gone && s.group_lines_reach(gid, MAX_PENDING_LINES)? {
        return Err(GroupError::Later.into());
    }
    Ok(())
}

/// Why taking an item stopped: the store failed (the batch fails and
/// its sender tries again), or the item is dropped.
pub(super) enum Fail {
    Store(StoreError),
    Drop(GroupError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<GroupError> for Fail {
    fn from(e: GroupError) -> Self {
        Fail::Drop(e)
    }
}

/// Opens the signed group message `bytes` (as a member's log holds it)
/// with every secret this node holds for its group, without using or
/// changing any chain: what a test uses to show which members can read a
/// message, on the bytes that travelled.
#[cfg(feature = "test-util")]
pub fn try_open(
    s: &Store,
    from: &PeerId,
    wire: &[u8],
) -> Result<Result<String, GroupError>, StoreError> {
    let signed: SignedState = match crate::wire::decode(wire, MAX_GROUP_BYTES) {
        Ok(x) => x,
        Err(e) => return Ok(Err(GroupError::Wire(e.into()))),
    };
    let body = match authenticate(from, &signed) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e)),
    };
    let h = &body.header;
    let Some(row) = s.group(&h.group_id)? else {
        return Ok(Err(GroupError::NotMember));
    };
    // Every secret we hold, tried for the message's epoch: what a
    // removed member holding old secrets would try.
    let secrets: Vec<[u8; 32]> = [row.secret, row.prev.as_ref().and_then(|p| p.secret)]
        .into_iter()
        .flatten()
        .collect();
    if secrets.is_empty() {
        return Ok(Err(GroupError::UnknownEpoch(h.epoch)));
    }
    let aad = crate::wire::encode(h).map_err(|_| StoreError::Corrupt("group"))?;
    for secret in secrets {
        let start = keys::chain_start(&secret, &h.group_id, h.epoch, &h.sender);
        if let Ok(p) = keys::open(&keys::key_at(&start, h.n), &aad, &body.ct) {
            return Ok(crate::wire::decode::<Plain>(&p, MAX_GROUP_BYTES)
                .map(|p| p.text)
                .map_err(|_| GroupError::Malformed));
        }
    }
    Ok(Err(GroupError::Key(keys::KeyError::Open)))
}

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
