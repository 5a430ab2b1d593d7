//! The store jobs of a large group's catch-up ([`super::sync`] holds the
//! rules): the question a member asks ([`ask`]), the answer another
//! member gives from its log ([`answer`]), and filing that answer
//! ([`relayed`]). Questions and answers travel as sealed 1:1 messages
//! (`Body::Group`) over a direct link only: no outbox row, no retry, no
//! mailbox copy. Both are worth something only while both ends are up,
//! and a member who went away asks again when it is back.

use std::sync::atomic::Ordering;

use libp2p::PeerId;
use tracing::debug;

use super::receive::{self, Fail, Taken};
use super::roster::{self, GroupError};
use super::sync::{self, RELAY_BUDGET, RELAY_MAX};
use super::{Ctx, ops};
use crate::store::{GroupRow, Relation, Store, StoreError};
use crate::wire::group::{
    GroupBody, GroupId, Have, MAX_GROUP_BYTES, MAX_MEMBERS, MsgBody, SignedState,
};

fn encode(body: &GroupBody) -> Result<Vec<u8>, StoreError> {
    crate::wire::encode(body).map_err(|_| StoreError::Corrupt("group"))
}

/// The epochs we hold of our joined group `row` (the current one, and the
/// previous in its grace); none of a group we left or never joined.
fn held_epochs(ctx: &Ctx, group: &GroupId, row: &GroupRow) -> Vec<roster::EpochView> {
    if row.gone || !row.joined {
        return Vec::new();
    }
    let Ok(opened) = ctx.states.open(group, &row.state) else {
        return Vec::new();
    };
    [Some((*opened.view).clone()), receive::prev_view(row)]
        .into_iter()
        .flatten()
        .collect()
}

/// The members (PeerId bytes) of `epoch` of our joined group `row`, if we
/// hold that epoch.
fn epoch_members(ctx: &Ctx, group: &GroupId, row: &GroupRow, epoch: u64) -> Option<Vec<Vec<u8>>> {
    held_epochs(ctx, group, row)
        .into_iter()
        .find(|v| v.epoch == epoch)
        .map(|v| v.members)
}

/// What we have of `epoch` of `group`, per sender, the gaps' budget
/// spent from the sender at `round` on ([`sync::have_of`]); a member we
/// blocked counts as complete (its messages are refused, so asking for
/// them would only fill answers with what we drop).
fn have(
    s: &Store,
    (group, epoch): (&GroupId, u64),
    members: &[Vec<u8>],
    round: u64,
) -> Result<Vec<Have>, StoreError> {
    // One read of the buddy list (short), not one per member.
    let blocked_keys = s.blocked()?;
    let blocked: Vec<&[u8]> = members
        .iter()
        .filter(|m| blocked_keys.contains(m))
        .map(Vec::as_slice)
        .collect();
    let taken = s.group_seen_in(group, epoch)?;
    // The blocked left out first, so that their gaps, which never fill,
    // spend none of the question's budget of gaps.
    let mut have = sync::have_of(
        taken
            .iter()
            .filter(|(sender, _, _)| !blocked.contains(&sender.as_slice()))
            .map(|(sender, n, _)| (sender.as_slice(), *n)),
        round,
    );
    have.extend(blocked.iter().map(|m| Have {
        sender: m.to_vec(),
        next: u64::MAX,
        missing: Vec::new(),
    }));
    have.truncate(MAX_MEMBERS);
    Ok(have)
}

/// A catch-up question, and whom it may go to.
pub(crate) struct Ask {
    /// The `Body::Group` bytes.
    pub(crate) bytes: Vec<u8>,
    /// The members of the epoch asked about, us included.
    pub(crate) members: Vec<PeerId>,
}

/// The question asking a member for what we lack of `epoch` of `group`
/// in catch-up round `round`; `None` when we do not hold that epoch of a
/// group we joined.
pub(crate) fn ask(
    s: &Store,
    ctx: &Ctx,
    group: &GroupId,
    epoch: u64,
    round: u64,
) -> Result<Option<Ask>, StoreError> {
    let Some(row) = s.group(group)? else {
        return Ok(None);
    };
    let Some(members) = epoch_members(ctx, group, &row, epoch) else {
        return Ok(None);
    };
    let bytes = encode(&GroupBody::SyncAsk {
        group_id: *group,
        epoch,
        have: have(s, (group, epoch), &members, round)?,
    })?;
    let members = members
        .iter()
        .filter_map(|m| PeerId::from_bytes(m).ok())
        .collect();
    Ok(Some(Ask { bytes, members }))
}

/// Seals the group item `bytes` to `to` in a 1:1 message left in `taken`
/// for sending over a direct link only.
fn reply(ctx: &Ctx, to: &PeerId, bytes: &[u8], now: u64, taken: &mut Taken) {
    match ops::seal_1to1(ctx, to, bytes, now) {
        Ok(env) => taken.direct.push((*to, env)),
        Err(e) => debug!(%to, "cannot send a catch-up item: {e}"),
    }
}

/// Answers `from`'s question about `epoch` of `group`: the signed messages
/// we have and it lacks, oldest number first, up to [`RELAY_BUDGET`]
/// bytes and [`RELAY_MAX`] messages (`more` when some were left out).
/// Only a member of that epoch is answered, and only by a member: a
/// removed member learns nothing sent after its removal, a stranger
/// nothing at all; and a member only at [`sync::AnswerLimit`]'s pace.
pub(super) fn answer(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    (group, epoch): (&GroupId, u64),
    have: &[Have],
    now: u64,
    taken: &mut Taken,
) -> Result<(), Fail> {
    let row = s.group(group)?.ok_or(GroupError::NotMember)?;
    let members = epoch_members(ctx, group, &row, epoch).ok_or(GroupError::NotMember)?;
    if !members.contains(&from.to_bytes()) {
        return Err(GroupError::NotMember.into());
    }
    // Before the epoch's index is read: a member asking in a loop is
    // answered at the limit's pace, and the rest costs a lookup.
    let admitted = ctx
        .answers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .allow(*from, now);
    if !admitted {
        debug!(%from, "a catch-up question over the asker's limit: not answered");
        return Ok(());
    }
    let ours = s.group_seen_in(group, epoch)?;
    let lines = sync::lacking(
        ours.iter()
            .map(|(sender, n, at)| (sender.as_slice(), *n, at.as_slice())),
        have,
    );
    let (mut messages, mut bytes, mut more) = (Vec::new(), 0, false);
    for at in lines.into_iter().filter(|at| !at.is_empty()) {
        let Some(wire) = s.group_log_at(at)?.and_then(|l| l.wire) else {
            continue;
        };
        if messages.len() >= RELAY_MAX || bytes + wire.len() > RELAY_BUDGET {
            more = true;
            break;
        }
        let Ok(signed) = crate::wire::decode::<SignedState>(&wire, MAX_GROUP_BYTES) else {
            continue;
        };
        bytes += wire.len();
        messages.push(signed);
    }
    if messages.is_empty() {
        return Ok(());
    }
    crate::net::stats::count(crate::net::stats::Kind::GroupSync);
    let bytes = encode(&GroupBody::Relay { messages, more })?;
    reply(ctx, from, &bytes, now, taken);
    Ok(())
}

/// Files an answer from `from`, a member of the group's current or
/// previous epoch (anyone else's is dropped whole): each message by its
/// own sender's signature and the roster rules, as if that sender had
/// sent it (once: the dedupe on sender, epoch and number), a blocked
/// sender's skipped. When the answer left some out and brought something
/// new, the next question goes back to `from` at once.
pub(super) fn relayed(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    messages: &[SignedState],
    more: bool,
    now: u64,
    taken: &mut Taken,
) -> Result<(), Fail> {
    let bodies: Vec<(MsgBody, &SignedState)> = messages
        .iter()
        .filter_map(|m| {
            let body = crate::wire::decode::<MsgBody>(&m.body, MAX_GROUP_BYTES).ok()?;
            Some((body, m))
        })
        .collect();
    let Some(group) = bodies.first().map(|(b, _)| b.header.group_id) else {
        return Ok(());
    };
    let row = s.group(&group)?.ok_or(GroupError::NotMember)?;
    let relayer = from.to_bytes();
    if !held_epochs(ctx, &group, &row)
        .iter()
        .any(|v| v.members.contains(&relayer))
    {
        return Err(GroupError::NotMember.into());
    }
    let mut progress = None;
    for (body, signed) in bodies.iter().filter(|(b, _)| b.header.group_id == group) {
        let Ok(sender) = PeerId::from_bytes(&body.header.sender) else {
            continue;
        };
        if s.relation(&sender)? == Relation::Blocked {
            continue;
        }
        let raw = encode(&GroupBody::Message((*signed).clone()))?;
        let before = taken.events.len();
        match receive::message(s, ctx, &sender, &raw, signed, now, taken) {
            Ok(()) if taken.events.len() > before => {
                ctx.relayed.fetch_add(1, Ordering::AcqRel);
                progress = Some(body.header.epoch);
            }
            Ok(()) => {}
            Err(Fail::Store(e)) => return Err(Fail::Store(e)),
            Err(Fail::Drop(e)) => debug!(%from, "a relayed group message dropped: {e}"),
        }
    }
    // The answer as a whole is new to us, whatever its messages were.
    taken.duplicate = false;
    // The next question at once; the time stands in for the round (no
    // count of questions here), so its gaps' budget starts at another
    // sender than the last one's.
    match progress {
        Some(epoch) if more => match ask(s, ctx, &group, epoch, now)? {
            Some(a) => {
                ctx.asks.fetch_add(1, Ordering::AcqRel);
                reply(ctx, from, &a.bytes, now, taken);
                Ok(())
            }
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "sync_jobs_tests.rs"]
mod tests;
