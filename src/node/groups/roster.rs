//! The rules of a group's roster and epochs, pure: who may ask for which
//! change, the state the creator issues for it, which states a member
//! takes, and which messages it takes in which epoch. The store job of
//! [`super::receive`] reads the facts and applies these verdicts.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::wire::group::{
    Change, GroupState, GroupWireError, Member, Op, Role, SignedState, check_state,
};
use crate::wire::message::MAX_BODY;

use super::keys::KeyError;

/// How long after a new epoch a message sealed in the previous one is
/// still taken (messages in flight while the state changed). Local time,
/// from when this node took the new state, so a member fetching a long
/// backlog from its mailbox still reads what was sent before the change.
pub const GRACE_MS: u64 = 10 * 60 * 1000;

/// Why a group operation or an incoming group item was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// Bad bytes, a bad signature, a limit.
    #[error(transparent)]
    Wire(#[from] GroupWireError),
    /// A key problem (replay, too far ahead, does not open).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Only admins may do that.
    #[error("only an admin may do that")]
    NotAdmin,
    /// The peer is not a member.
    #[error("not a member of the group")]
    NotMember,
    /// The peer is a member already.
    #[error("already a member")]
    AlreadyMember,
    /// The member has that role already.
    #[error("the member has that role already")]
    SameRole,
    /// The creator cannot be removed, leave nor stop being an admin: it
    /// is the key authority.
    #[error("the creator cannot be removed, leave or stop being an admin")]
    Creator,
    /// A state not signed by the group's creator, or for another group.
    #[error("state not issued by the group's creator")]
    NotCreator,
    /// A state no newer than the one we have.
    #[error("stale state")]
    Stale,
    /// A state that does not follow the one we have (wrong `prev`).
    #[error("state does not follow ours")]
    Fork,
    /// The roster would exceed its limit.
    #[error("too many members")]
    TooManyMembers,
    /// A message in an epoch we have no secret for.
    #[error("no key for epoch {0}")]
    UnknownEpoch(u64),
    /// A message in the previous epoch after the grace window.
    #[error("epoch over: message too late")]
    GraceOver,
    /// The 1:1 envelope's sender is not the message's sender.
    #[error("sender mismatch")]
    SenderMismatch,
    /// Too many invitations wait for an answer.
    #[error("too many pending invitations")]
    TooManyInvitations,
    /// A message for an epoch whose state has not come that cannot be
    /// kept (not from a member we know, too far ahead, or the group's
    /// buffer is full): not taken now, so its sender offers it again.
    #[error("cannot take it yet")]
    Later,
    /// The message's text is over its limit or not what it should be.
    #[error("malformed message")]
    Malformed,
}

/// A requester of role `role` makes member `id` a `to`: admins only,
/// never the creator, and only a change.
fn set_role(
    roster: &mut [Member],
    role: Role,
    creator: &[u8],
    id: &[u8],
    to: Role,
) -> Result<Change, GroupError> {
    if role != Role::Admin {
        return Err(GroupError::NotAdmin);
    }
    if id == creator {
        return Err(GroupError::Creator);
    }
    let member = roster
        .iter_mut()
        .find(|m| m.id == id)
        .ok_or(GroupError::NotMember)?;
    if member.role == to {
        return Err(GroupError::SameRole);
    }
    member.role = to;
    Ok(Change::Role(id.to_vec(), to))
}

/// The state the creator issues for `op`, asked by `requester`, on top of
/// `cur` (signed as `cur_signed`), at `now`.
pub fn next_state(
    cur: &GroupState,
    cur_signed: &SignedState,
    requester: &PeerId,
    op: &Op,
    now: u64,
) -> Result<GroupState, GroupError> {
    let role = cur.role_of(requester).ok_or(GroupError::NotMember)?;
    let creator = cur.creator.as_slice();
    let mut roster = cur.roster.clone();
    let change = match op {
        Op::Add(ids) => {
            if role != Role::Admin {
                return Err(GroupError::NotAdmin);
            }
            let mut added = Vec::new();
            for id in ids {
                PeerId::from_bytes(id).map_err(|_| GroupError::Malformed)?;
                if roster.iter().any(|m| m.id == id.as_slice()) {
                    return Err(GroupError::AlreadyMember);
                }
                roster.push(Member {
                    id: id.to_vec(),
                    role: Role::Member,
                });
                added.push(id.clone());
            }
            Change::Added(added)
        }
        Op::Remove(id) => {
            if role != Role::Admin {
                return Err(GroupError::NotAdmin);
            }
            if id.as_slice() == creator {
                return Err(GroupError::Creator);
            }
            let before = roster.len();
            roster.retain(|m| m.id != *id);
            if roster.len() == before {
                return Err(GroupError::NotMember);
            }
            Change::Removed(id.clone())
        }
        Op::Leave => {
            let me = requester.to_bytes();
            if me == creator {
                return Err(GroupError::Creator);
            }
            roster.retain(|m| m.id != me);
            Change::Left(me)
        }
        Op::SetRole(id, to) => set_role(&mut roster, role, creator, id, *to)?,
    };
    let next = GroupState {
        group_id: cur.group_id,
        name: cur.name.clone(),
        creator: cur.creator.clone(),
        epoch: cur.epoch + 1,
        roster,
        prev: cur_signed.hash(),
        issued_at: now,
        change,
    };
    check_state(&next).map_err(|_| GroupError::TooManyMembers)?;
    Ok(next)
}

/// Whether a member holding `cur` (signed as `cur_signed`) takes `new`:
/// same group, same creator (the state's signature was checked against
/// the creator it names), newer, and following ours when it is the very
/// next epoch. A gap (states lost or not yet fetched) is taken: every
/// state carries the whole roster and its own secret.
pub fn accept_state(
    cur: &GroupState,
    cur_signed: &SignedState,
    new: &GroupState,
) -> Result<(), GroupError> {
    if new.group_id != cur.group_id || new.creator != cur.creator {
        return Err(GroupError::NotCreator);
    }
    if new.epoch <= cur.epoch {
        return Err(GroupError::Stale);
    }
    if new.epoch == cur.epoch + 1 && new.prev != cur_signed.hash() {
        return Err(GroupError::Fork);
    }
    Ok(())
}

/// What a member knows of one epoch to judge a message in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochView {
    /// The epoch.
    pub epoch: u64,
    /// Its members (PeerId bytes).
    pub members: Vec<Vec<u8>>,
    /// When this node took the state that ended this epoch (`None` while
    /// it is current).
    pub ended_at: Option<u64>,
}

/// Whether a message from `sender` sealed in `epoch`, arriving at `now`,
/// is taken, given what we know of the current and previous epochs.
pub fn may_send(
    cur: &EpochView,
    prev: Option<&EpochView>,
    sender: &[u8],
    epoch: u64,
    now: u64,
) -> Result<(), GroupError> {
    let view = if epoch == cur.epoch {
        cur
    } else {
        match prev {
            Some(p) if p.epoch == epoch => {
                if p.ended_at.is_some_and(|t| now > t.saturating_add(GRACE_MS)) {
                    return Err(GroupError::GraceOver);
                }
                p
            }
            _ if epoch < cur.epoch => return Err(GroupError::GraceOver),
            _ => return Err(GroupError::UnknownEpoch(epoch)),
        }
    };
    if !view.members.iter().any(|m| m == sender) {
        return Err(GroupError::NotMember);
    }
    Ok(())
}

/// The limit on what a member may send as one group message.
pub fn check_text(text: &str) -> Result<(), GroupError> {
    if text.len() > crate::wire::group::MAX_TEXT.min(MAX_BODY) {
        return Err(GroupError::Malformed);
    }
    Ok(())
}

#[cfg(test)]
#[path = "roster_tests.rs"]
mod tests;
