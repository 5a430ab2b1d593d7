//! The store jobs of a large group's catch-up ([`super::sync`] holds the
//! rules): the question a member asks ([`ask`]), the answer another
//! member gives from its log ([`answer`]), and filing that answer
//! ([`relayed`]). Questions and answers travel as ordinary 1:1 messages
//! (`Body::Group`), so they are sealed, durable and retried like any.

use libp2p::PeerId;
use tracing::debug;

use super::receive::{self, Fail, Taken};
use super::roster::GroupError;
use super::sync::{self, RELAY_BUDGET, RELAY_MAX};
use super::{Ctx, GroupOpError, ops};
use crate::store::{Relation, Store, StoreError};
use crate::wire::group::{GroupBody, GroupId, Have, MAX_GROUP_BYTES, MsgBody, SignedState};

fn encode(body: &GroupBody) -> Result<Vec<u8>, StoreError> {
    crate::wire::encode(body).map_err(|_| StoreError::Corrupt("group"))
}

/// What we have of `epoch` of `group`, per sender.
fn have(s: &Store, group: &GroupId, epoch: u64) -> Result<Vec<Have>, StoreError> {
    let taken = s.group_seen_in(group, epoch)?;
    Ok(sync::have_of(
        taken.iter().map(|(sender, n, _)| (sender.as_slice(), *n)),
    ))
}

/// The `Body::Group` bytes asking a member for what we lack of `epoch` of
/// `group`.
pub(crate) fn ask(s: &Store, group: &GroupId, epoch: u64) -> Result<Vec<u8>, StoreError> {
    encode(&GroupBody::SyncAsk {
        group_id: *group,
        epoch,
        have: have(s, group, epoch)?,
    })
}

/// Seals `body` to `to` in a 1:1 message left in `taken` for sending.
fn reply(
    s: &Store,
    ctx: &Ctx,
    to: &PeerId,
    body: &GroupBody,
    now: u64,
    taken: &mut Taken,
) -> Result<(), Fail> {
    match ops::send_1to1(s, ctx, to, &encode(body)?, now) {
        Ok(env) => {
            taken.out.push((*to, env));
            Ok(())
        }
        Err(GroupOpError::Store(e)) => Err(Fail::Store(e)),
        Err(e) => {
            debug!(%to, "cannot answer a catch-up: {e}");
            Ok(())
        }
    }
}

/// Answers `from`'s question about `epoch` of `group`: the signed messages
/// we have and it lacks, oldest number first, up to [`RELAY_BUDGET`]
/// bytes and [`RELAY_MAX`] messages (`more` when some were left out).
/// Only a member of that epoch is answered, and only by a member: a
/// removed member learns nothing sent after its removal, a stranger
/// nothing at all.
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
    if row.gone || !row.joined {
        return Err(GroupError::NotMember.into());
    }
    let state = row.state.open().map_err(GroupError::from)?;
    let (cur, prev) = receive::views(&state, &row);
    let asker = from.to_bytes();
    let member = [Some(&cur), prev.as_ref()]
        .into_iter()
        .flatten()
        .any(|v| v.epoch == epoch && v.members.contains(&asker));
    if !member {
        return Err(GroupError::NotMember.into());
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
    reply(
        s,
        ctx,
        from,
        &GroupBody::Relay { messages, more },
        now,
        taken,
    )
}

/// Files an answer from `from`: each message by its own sender's
/// signature and the roster rules, as if that sender had sent it (once:
/// the dedupe on sender, epoch and number), a blocked sender's skipped.
/// When the answer left some out and brought something new, the next
/// question goes back to `from` at once.
pub(super) fn relayed(
    s: &Store,
    ctx: &Ctx,
    from: &PeerId,
    messages: &[SignedState],
    more: bool,
    now: u64,
    taken: &mut Taken,
) -> Result<(), Fail> {
    let mut progress = None;
    for signed in messages {
        let Ok(body) = crate::wire::decode::<MsgBody>(&signed.body, MAX_GROUP_BYTES) else {
            continue;
        };
        let Ok(sender) = PeerId::from_bytes(&body.header.sender) else {
            continue;
        };
        if s.relation(&sender)? == Relation::Blocked {
            continue;
        }
        let raw = encode(&GroupBody::Message(signed.clone()))?;
        let before = taken.events.len();
        match receive::message(s, &sender, &raw, signed, now, taken) {
            Ok(()) if taken.events.len() > before => {
                progress = Some((body.header.group_id, body.header.epoch));
            }
            Ok(()) => {}
            Err(Fail::Store(e)) => return Err(Fail::Store(e)),
            Err(Fail::Drop(e)) => debug!(%from, "a relayed group message dropped: {e}"),
        }
    }
    // The answer as a whole is new to us, whatever its messages were.
    taken.duplicate = false;
    match progress {
        Some((group, epoch)) if more => {
            let have = have(s, &group, epoch)?;
            let ask = GroupBody::SyncAsk {
                group_id: group,
                epoch,
                have,
            };
            reply(s, ctx, from, &ask, now, taken)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "sync_jobs_tests.rs"]
mod tests;
