//! The group operations of this node, each one store job on the node's
//! store worker (so a send's chain counter, its log line and the outbox
//! rows of every member's copy are written and flushed together, before
//! the caller is answered: a number is never used twice, even across a
//! crash), and the creator's issuing of a new state.

use libp2p::PeerId;

use super::keys::{self, Chain};
use super::roster::{self, GroupError};
use super::{Ctx, GroupDone, GroupEvent, GroupOpError, Outcome, msg_id};
use crate::store::{GroupRow, LogRow, PrevEpoch, Store, StoreError};
use crate::wire::group::{
    Change, GroupBody, GroupId, GroupState, Header, Member, MsgBody, Op, Plain, Role, SignedState,
    sign_message,
};
use crate::wire::message::{self, Body, Envelope, Inner, MessageId};

/// Seals `body` to `to` as a 1:1 message of ours and writes its outbox row.
pub(super) fn send_1to1(
    s: &Store,
    ctx: &Ctx,
    to: &PeerId,
    bytes: &[u8],
    sent_at: u64,
) -> Result<Envelope, GroupOpError> {
    let env = seal_1to1(ctx, to, bytes, sent_at)?;
    s.insert_outbox_only(to, &env)?;
    Ok(env)
}

/// Seals `body` to `to` as a 1:1 message of ours, to send over a direct
/// link only: no outbox row.
pub(super) fn seal_1to1(
    ctx: &Ctx,
    to: &PeerId,
    bytes: &[u8],
    sent_at: u64,
) -> Result<Envelope, GroupOpError> {
    let inner = Inner {
        from: ctx.sealer.me().to_bytes(),
        sent_at,
        body: Body::Group(bytes.to_vec()),
    };
    message::seal(&ctx.sealer, MessageId::random(), to, &inner)
        .map_err(|e| GroupOpError::Seal(e.to_string()))
}

fn encode(body: &GroupBody) -> Result<Vec<u8>, GroupOpError> {
    crate::wire::encode(body).map_err(|e| GroupOpError::Group(GroupError::Wire(e.into())))
}

/// Makes a group with us as creator and only member.
pub(super) fn create(s: &Store, ctx: &Ctx, name: &str, now: u64) -> Outcome {
    if name.is_empty() || name.len() > crate::wire::group::MAX_NAME {
        return Err(GroupOpError::BadName);
    }
    let me = ctx.sealer.me().to_bytes();
    let state = GroupState {
        group_id: GroupId::random().map_err(|e| GroupError::Wire(e.into()))?,
        name: name.to_string(),
        creator: me.clone(),
        epoch: 0,
        roster: vec![Member {
            id: me.clone(),
            role: Role::Admin,
        }],
        prev: [0; 32],
        issued_at: now,
        change: Change::Created,
    };
    let signed =
        SignedState::sign(&ctx.identity, &state).map_err(|e| GroupError::Wire(e.into()))?;
    let row = GroupRow {
        state: signed,
        secret: Some(keys::fresh_secret().ok_or(GroupOpError::NoRandomness)?),
        joined: true,
        gone: false,
        prev: None,
    };
    s.put_group(&state.group_id, &row)?;
    s.add_group_log(&state.group_id, &change_line(&state))?;
    Ok(GroupDone {
        out: Vec::new(),
        events: Vec::new(),
        answer: super::Answer::Created(state.group_id, state.name),
        fast: None,
    })
}

/// The log line of a state's change.
pub(super) fn change_line(state: &GroupState) -> LogRow {
    let who = |b: &[u8]| PeerId::from_bytes(b).map_or_else(|_| "?".to_string(), |p| p.to_string());
    let text = match &state.change {
        Change::Created => format!("created the group {:?}", state.name),
        Change::Added(ids) => format!(
            "added {}",
            ids.iter().map(|i| who(i)).collect::<Vec<_>>().join(", ")
        ),
        Change::Removed(id) => format!("removed {}", who(id)),
        Change::Left(id) => format!("{} left", who(id)),
        Change::Role(id, Role::Admin) => format!("made {} an admin", who(id)),
        Change::Role(id, Role::Member) => format!("made {} a member", who(id)),
    };
    LogRow {
        id: format!("state-{}", state.epoch),
        from: state.creator.clone(),
        sent_at: state.issued_at,
        text,
        system: true,
        wire: None,
    }
}

/// Moves `row` from its state `cur` to `signed` with `secret`: the epoch
/// left becomes the previous one, kept for its grace from `now`.
pub(super) fn advance(
    row: &mut GroupRow,
    cur: &GroupState,
    signed: &SignedState,
    secret: Option<[u8; 32]>,
    now: u64,
) {
    row.prev = Some(PrevEpoch {
        epoch: cur.epoch,
        members: cur.roster.iter().map(|m| m.id.clone().into()).collect(),
        secret: row.secret,
        ended_at: now,
    });
    row.state = signed.clone();
    row.secret = secret;
}

/// The creator applies `op` asked by `requester`: issues the next state
/// with a fresh epoch secret, takes it itself, and sends it to every
/// member (the secret sealed 1:1 to each) and to whoever is no longer
/// one (without the secret).
pub(super) fn issue(
    s: &Store,
    ctx: &Ctx,
    group: &GroupId,
    requester: &PeerId,
    op: &Op,
    now: u64,
) -> Outcome {
    let mut row = s.group(group)?.ok_or(GroupOpError::UnknownGroup)?;
    let cur = row.state.open().map_err(GroupError::from)?;
    if cur.creator != ctx.sealer.me().to_bytes() {
        return Err(GroupError::NotCreator.into());
    }
    let next = roster::next_state(&cur, &row.state, requester, op, now)?;
    let signed = SignedState::sign(&ctx.identity, &next).map_err(|e| GroupError::Wire(e.into()))?;
    let secret = keys::fresh_secret().ok_or(GroupOpError::NoRandomness)?;
    advance(&mut row, &cur, &signed, Some(secret), now);
    s.put_group(group, &row)?;
    let line = change_line(&next);
    s.add_group_log(group, &line)?;
    let me = ctx.sealer.me();
    let mut out = Vec::new();
    let with = encode(&GroupBody::State {
        state: signed.clone(),
        secret: Some(secret),
    })?;
    for m in next.members().into_iter().filter(|m| *m != me) {
        out.push((m, send_1to1(s, ctx, &m, &with, now)?));
    }
    let without = encode(&GroupBody::State {
        state: signed,
        secret: None,
    })?;
    for m in cur.members() {
        if m != me && next.role_of(&m).is_none() {
            out.push((m, send_1to1(s, ctx, &m, &without, now)?));
        }
    }
    Ok(GroupDone {
        out,
        events: vec![GroupEvent::Change {
            group: *group,
            text: line.text,
        }],
        answer: super::Answer::Done,
        fast: None,
    })
}

/// A change asked by us: the creator issues it at once; anyone else sends
/// the request to the creator, who issues it when it gets it.
pub(super) fn change(s: &Store, ctx: &Ctx, group: &GroupId, op: Op, now: u64) -> Outcome {
    let mut row = s.group(group)?.ok_or(GroupOpError::UnknownGroup)?;
    let cur = row.state.open().map_err(GroupError::from)?;
    let me = ctx.sealer.me();
    if cur.creator == me.to_bytes() {
        return issue(s, ctx, group, &me, &op, now);
    }
    // Checked here too, so a refusal is told at once rather than by the
    // creator's silence.
    roster::next_state(&cur, &row.state, &me, &op, now)?;
    let creator = cur.creator_id().map_err(|e| GroupError::Wire(e.into()))?;
    let bytes = encode(&GroupBody::Request {
        group_id: *group,
        op: op.clone(),
    })?;
    let env = send_1to1(s, ctx, &creator, &bytes, now)?;
    if op == Op::Leave {
        row.gone = true;
        row.joined = false;
        s.put_group(group, &row)?;
    }
    Ok(GroupDone {
        out: vec![(creator, env)],
        events: Vec::new(),
        answer: super::Answer::Requested,
        fast: None,
    })
}

/// Sends `text` to the group: sealed once under our chain, signed, and
/// either published once on the large group's topic or, in a small
/// group, one copy of those bytes to each other member in its own 1:1
/// envelope.
pub(super) fn send(s: &Store, ctx: &Ctx, group: &GroupId, text: &str, now: u64) -> Outcome {
    roster::check_text(text)?;
    let row = s.group(group)?.ok_or(GroupOpError::UnknownGroup)?;
    let state = row.state.open().map_err(GroupError::from)?;
    let me = ctx.sealer.me();
    let secret = match (row.secret, row.gone, state.role_of(&me)) {
        (Some(secret), false, Some(_)) => secret,
        _ => return Err(GroupError::NotMember.into()),
    };
    let me_b = me.to_bytes();
    let mut chain = match s.group_chain(group, state.epoch, &me_b)? {
        Some(b) => crate::wire::decode::<Chain>(&b, usize::MAX)
            .map_err(|_| StoreError::Corrupt("group_chains"))?,
        None => Chain::new(keys::chain_start(&secret, group, state.epoch, &me_b)),
    };
    let (n, mk) = chain.advance();
    s.put_group_chain(
        group,
        state.epoch,
        &me_b,
        &crate::wire::encode(&chain).map_err(|_| StoreError::Corrupt("group_chains"))?,
    )?;
    let header = Header {
        group_id: *group,
        epoch: state.epoch,
        sender: me_b.clone(),
        n,
    };
    let aad = crate::wire::encode(&header).map_err(|e| GroupError::Wire(e.into()))?;
    let plain = crate::wire::encode(&Plain {
        sent_at: now,
        text: text.to_string(),
    })
    .map_err(|e| GroupError::Wire(e.into()))?;
    let ct = keys::seal(&mk, &aad, &plain).map_err(GroupError::from)?;
    let signed = sign_message(
        &ctx.identity,
        &MsgBody {
            header: header.clone(),
            ct,
        },
    )
    .map_err(|e| GroupError::Wire(e.into()))?;
    let bytes = encode(&GroupBody::Message(signed.clone()))?;
    // A large group's message goes out once, on gossip; members who miss
    // it catch up from other members (`super::sync`). A small group's
    // goes to each member 1:1.
    let (out, fast) = if ctx.fast.applies(state.roster.len(), bytes.len()) {
        let publish = super::fast::Publish {
            topic: super::fast::topic(&secret, group, state.epoch),
            data: bytes,
        };
        (Vec::new(), Some(publish))
    } else {
        (copies(s, ctx, &state, &bytes, now)?, None)
    };
    let id = msg_id(&header);
    let at = s.add_group_log(
        group,
        &LogRow {
            id: id.clone(),
            from: me_b.clone(),
            sent_at: now,
            text: text.to_string(),
            system: false,
            wire: Some(crate::wire::encode(&signed).map_err(|e| GroupError::Wire(e.into()))?),
        },
    )?;
    s.group_seen(group, state.epoch, &me_b, n, &at)?;
    Ok(GroupDone {
        out,
        events: Vec::new(),
        answer: super::Answer::Sent(id),
        fast,
    })
}

/// Writes every other member's 1:1 copy of the group message `bytes` to
/// the outbox.
fn copies(
    s: &Store,
    ctx: &Ctx,
    state: &GroupState,
    bytes: &[u8],
    now: u64,
) -> Result<Vec<(PeerId, Envelope)>, GroupOpError> {
    let me = ctx.sealer.me();
    let mut out = Vec::new();
    for m in state.members().into_iter().filter(|m| *m != me) {
        out.push((m, send_1to1(s, ctx, &m, bytes, now)?));
    }
    Ok(out)
}

/// Accepts an invitation: the group is listed and its log shown.
pub(super) fn join(s: &Store, group: &GroupId) -> Outcome {
    let mut row = s.group(group)?.ok_or(GroupOpError::UnknownGroup)?;
    if row.gone {
        return Err(GroupError::NotMember.into());
    }
    row.joined = true;
    s.put_group(group, &row)?;
    Ok(GroupDone {
        out: Vec::new(),
        events: Vec::new(),
        answer: super::Answer::Done,
        fast: None,
    })
}

/// A group message claiming `claimed` as its sender, sealed under
/// `claimed`'s chain of the current epoch with our copy of the epoch
/// secret, unsigned (tests: what anyone who knows the secret can seal, to
/// be signed by whoever publishes it).
#[cfg(feature = "test-util")]
pub(super) fn seal_as(
    s: &Store,
    group: &GroupId,
    claimed: &PeerId,
    text: &str,
    now: u64,
) -> Result<MsgBody, GroupOpError> {
    let row = s.group(group)?.ok_or(GroupOpError::UnknownGroup)?;
    let state = row.state.open().map_err(GroupError::from)?;
    let secret = row.secret.ok_or(GroupError::NotMember)?;
    let sender = claimed.to_bytes();
    let header = Header {
        group_id: *group,
        epoch: state.epoch,
        sender: sender.clone(),
        n: 1_000,
    };
    let start = keys::chain_start(&secret, group, state.epoch, &sender);
    let aad = crate::wire::encode(&header).map_err(|e| GroupError::Wire(e.into()))?;
    let plain = crate::wire::encode(&Plain {
        sent_at: now,
        text: text.to_string(),
    })
    .map_err(|e| GroupError::Wire(e.into()))?;
    let ct = keys::seal(&keys::key_at(&start, header.n), &aad, &plain).map_err(GroupError::from)?;
    Ok(MsgBody { header, ct })
}

/// A group message claiming `claimed` as its sender, sealed under
/// `claimed`'s chain and signed with our key (tests: the impersonation
/// every member could attempt, since all know the epoch secret).
#[cfg(feature = "test-util")]
pub(super) fn send_forged(
    s: &Store,
    ctx: &Ctx,
    group: &GroupId,
    claimed: &PeerId,
    text: &str,
    now: u64,
) -> Outcome {
    let body = seal_as(s, group, claimed, text, now)?;
    let state = s
        .group(group)?
        .ok_or(GroupOpError::UnknownGroup)?
        .state
        .open()
        .map_err(GroupError::from)?;
    let signed = sign_message(&ctx.identity, &body).map_err(|e| GroupError::Wire(e.into()))?;
    let bytes = encode(&GroupBody::Message(signed))?;
    let me = ctx.sealer.me();
    let mut out = Vec::new();
    for m in state.members().into_iter().filter(|m| *m != me) {
        out.push((m, send_1to1(s, ctx, &m, &bytes, now)?));
    }
    Ok(GroupDone {
        out,
        events: Vec::new(),
        answer: super::Answer::Done,
        fast: None,
    })
}
